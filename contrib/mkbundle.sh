#!/usr/bin/env bash
# Makes an OCI bundle from busybox-static: DIR/rootfs (busybox plus one symlink per
# applet, /etc/passwd and /etc/group) and DIR/config.json from `kraal spec`, with
# process.terminal false and process.args set to ARGS (default: sh).
#
# kraal is found as $KRAAL, else `kraal` in PATH, else target/release/kraal or
# target/debug/kraal next to this script's crate.
set -euo pipefail

prog=${0##*/}

usage() {
	echo "usage: $prog DIR [-- ARGS...]" >&2
	echo "  makes an OCI bundle in DIR (created if missing; DIR/rootfs and DIR/config.json must not exist)" >&2
	echo "  ARGS become process.args (default: sh)" >&2
	exit 2
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

[ $# -ge 1 ] || usage
case $1 in
-h | --help) usage ;;
-*) echo "$prog: unknown option $1" >&2; usage ;;
esac
dir=$1
shift
if [ $# -gt 0 ]; then
	[ "$1" = "--" ] || { echo "$prog: expected -- before the container's arguments, got $1" >&2; usage; }
	shift
	[ $# -gt 0 ] || { echo "$prog: -- must be followed by at least one argument" >&2; usage; }
	args=("$@")
else
	args=(sh)
fi

find_kraal() {
	if [ -n "${KRAAL:-}" ]; then
		[ -x "$KRAAL" ] || die "\$KRAAL=$KRAAL is not an executable file"
		echo "$KRAAL"
		return
	fi
	if command -v kraal >/dev/null 2>&1; then
		command -v kraal
		return
	fi
	local here crate
	here=$(cd "$(dirname "$0")" && pwd)
	crate=$(dirname "$here")
	for k in "$crate/target/release/kraal" "$crate/target/debug/kraal"; do
		if [ -x "$k" ]; then
			echo "$k"
			return
		fi
	done
	die "kraal not found: set \$KRAAL, put kraal in PATH, or run 'cargo build'"
}

need_pkg() { # command package
	command -v "$1" >/dev/null 2>&1 && return
	[ "$(id -u)" = 0 ] || die "$1 is missing: install the $2 package"
	echo "$prog: installing $2" >&2
	# Stale package lists make the first attempt fail: refresh them once and retry.
	DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2; } ||
		die "apt-get install $2 failed"
}

busybox=/bin/busybox
if [ ! -x "$busybox" ]; then
	need_pkg busybox busybox-static
	[ -x "$busybox" ] || die "$busybox is missing after installing busybox-static"
fi
# The rootfs has no libc: a dynamically linked busybox would not run in it.
if command -v file >/dev/null 2>&1 && ! file -L "$busybox" | grep -q 'statically linked'; then
	die "$busybox is not statically linked: install busybox-static"
fi
need_pkg jq jq
kraal=$(find_kraal)

rootfs=$dir/rootfs
[ ! -e "$rootfs" ] || die "$rootfs already exists"
[ ! -e "$dir/config.json" ] || die "$dir/config.json already exists"
made_dir=
[ -d "$dir" ] || made_dir=1
mkdir -p "$dir"
tmp=$(mktemp -d)
ok=
# On failure, leave nothing half-made behind.
cleanup() {
	rm -rf "$tmp"
	if [ -z "$ok" ]; then
		rm -rf "$rootfs"
		rm -f "$dir/config.json"
		if [ -n "$made_dir" ]; then rmdir "$dir" 2>/dev/null || true; fi
	fi
}
trap cleanup EXIT

mkdir -p "$rootfs"
for d in bin proc sys dev etc tmp root home/kraaluser; do
	mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"
n=0
while IFS= read -r applet; do
	case $applet in
	"" | busybox | */*) continue ;;
	esac
	ln -s busybox "$rootfs/bin/$applet"
	n=$((n + 1))
done < <("$busybox" --list)
[ "$n" -gt 0 ] || die "$busybox --list printed no applets"
chown 1000:1000 "$rootfs/home/kraaluser"

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
kraaluser:x:1000:1000:kraal test user:/home/kraaluser:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
kraaluser:x:1000:
extra:x:2000:kraaluser
nogroup:x:65534:
EOF

"$kraal" spec -b "$tmp" || die "$kraal spec failed"
args_json=$(jq -cn '$ARGS.positional' --args -- "${args[@]}")
jq --argjson args "$args_json" '.process.terminal = false | .process.args = $args' \
	"$tmp/config.json" >"$tmp/config.json.new" || die "editing config.json with jq failed"
mv "$tmp/config.json.new" "$dir/config.json"
ok=1
echo "$prog: bundle ready in $dir ($n applets, args: ${args[*]})" >&2
