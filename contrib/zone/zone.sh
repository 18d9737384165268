#!/usr/bin/env bash
# zone.sh: zones, full Debian systems with systemd as PID 1, each in a kraal
# container with its own network namespace and an address on a host-only
# bridge. See docs/zones.md.
#
# Owns: the debootstrap'ed rootfs cache (shared, read-only lower layer), each
# zone's bundle (overlay rootfs, config.json, the network hooks, its state), and
# starting, waiting for and halting a zone. The network itself is the hooks'
# (net-up, net-down next to this script).
set -euo pipefail

prog=zone.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SUITE=bookworm
MIRROR=${KRAAL_ZONE_MIRROR:-http://deb.debian.org/debian}
# What the rootfs is debootstrap'ed with (part of the cache key): systemd as
# init, dbus (systemctl talks to it for some verbs), busybox for the demo httpd.
PKGS=systemd,systemd-sysv,dbus,busybox
CACHE=${KRAAL_ZONE_CACHE:-/var/cache/kraal-zone}
ZONES=${KRAAL_ZONE_DIR:-/var/lib/kraal-zone}
BRIDGE=${KRAAL_ZONE_BRIDGE:-kraalzone0}
# Absolute: hook paths in config.json must be, and down may run from elsewhere.
case $CACHE in /*) ;; *) CACHE=$PWD/$CACHE ;; esac
case $ZONES in /*) ;; *) ZONES=$PWD/$ZONES ;; esac
BOOT_TIMEOUT=${KRAAL_ZONE_BOOT_TIMEOUT:-60}
STOP_TIMEOUT=${KRAAL_ZONE_STOP_TIMEOUT:-30}
# RFC 5737 documentation networks: never routed on the internet. The first one
# the host does not use already is the default subnet.
TEST_NETS=(192.0.2 198.51.100 203.0.113)
# Podman's default capabilities plus AUDIT_WRITE (systemd-journald, logins).
CAPS='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_NET_BIND_SERVICE",
	"CAP_SETFCAP","CAP_SETGID","CAP_SETPCAP","CAP_SETUID","CAP_SYS_CHROOT","CAP_AUDIT_WRITE"]'

usage() {
	cat >&2 <<EOF
usage: $prog build
       $prog up NAME [--rootfs DIR] [--addr ADDR] [--root STATEDIR] [--cgroup-parent CGROUP]
       $prog down NAME [--root STATEDIR]
       $prog status NAME [--root STATEDIR]

  build   debootstrap $SUITE (minbase + ${PKGS//,/, }) into the cache once
          (rebuilt when the package list changes) and print the rootfs path
  up      boot zone NAME: an overlay of the rootfs (DIR, default the cache),
          systemd as PID 1, busybox httpd on port 80, its own network namespace
          with eth0 on the host-only bridge; waits until systemd says running
          (or degraded) and prints the state and the address. ADDR: A.B.C.N or
          N (default: the first free one) in a /24 of its own. CGROUP: the
          cgroup parent, relative to kraal's own cgroup unless it starts with /
          (default kraal-zone). STATEDIR: kraal's --root
  down    halt zone NAME (SIGRTMIN+3, SIGKILL after ${STOP_TIMEOUT}s), delete it
          and everything up made; nothing to do is not an error
  status  the zone's state and address

environment:
  KRAAL               kraal binary (default: kraal in PATH, else this crate's target/release/kraal)
  KRAAL_ZONE_CACHE    rootfs cache (default /var/cache/kraal-zone)
  KRAAL_ZONE_DIR      zones' bundles (default /var/lib/kraal-zone)
  KRAAL_ZONE_BRIDGE   host bridge (default kraalzone0)
  KRAAL_ZONE_SUBNET   the zones' /24, e.g. 198.51.100.0/24 (default: the first RFC 5737
                      network the host does not use)
  KRAAL_ZONE_MIRROR   Debian mirror (default http://deb.debian.org/debian)
  KRAAL_ZONE_BOOT_TIMEOUT, KRAAL_ZONE_STOP_TIMEOUT   seconds (default 60, 30)
EOF
	exit 2
}

say() { echo "$prog: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# ---- exit handlers ---------------------------------------------------------------

_cleanups=()
at_exit() { _cleanups+=("$*"); }
_run_cleanups() {
	local rc=$? i
	trap - EXIT INT TERM HUP
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[i]}" || true
	done
	exit "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- host tools -------------------------------------------------------------------

# need_pkgs CMD:PACKAGE...: installs (one apt-get run) the packages whose command is missing.
need_pkgs() {
	local p missing=()
	for p in "$@"; do
		command -v "${p%%:*}" >/dev/null 2>&1 || missing+=("${p#*:}")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	[ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}, and not root to install them"
	say "installing ${missing[*]}"
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >&2 ||
		die "apt-get install ${missing[*]} failed"
	for p in "$@"; do
		command -v "${p%%:*}" >/dev/null 2>&1 || die "${p%%:*} is still missing after installing ${p#*:}"
	done
}

find_kraal() {
	if [ -n "${KRAAL:-}" ]; then
		[ -x "$KRAAL" ] || die "KRAAL=$KRAAL is not an executable file"
		echo "$KRAAL"
	elif command -v kraal >/dev/null 2>&1; then
		command -v kraal
	elif [ -x "$here/../../target/release/kraal" ]; then
		(cd "$here/../../target/release" && echo "$PWD/kraal")
	else
		die "kraal not found: set KRAAL, put kraal in PATH, or run 'cargo build --release'"
	fi
}

# ---- the rootfs cache -------------------------------------------------------------

# remove_tree DIR: rm -rf that first unmounts what is mounted below DIR (a
# killed debootstrap leaves /proc, /sys or device binds in its target) and never
# crosses into another file system.
remove_tree() {
	local m
	[ -e "$1" ] || return 0
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	rm -rf --one-file-system "$1"
}

# build_rootfs: prints the cached rootfs, debootstrapping it first when missing.
# Built under a temporary name and renamed when complete: a cache dir that
# exists is whole. Builds are serialised by a lock in the cache dir.
build_rootfs() {
	local key dir tmp log lockfd old
	# Also when run in a command substitution (whose shell has no traps of its own).
	trap _run_cleanups EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	[ "$(id -u)" = 0 ] || die "build needs root (debootstrap)"
	need_pkgs debootstrap:debootstrap
	mkdir -p "$CACHE"
	key=$(printf '%s\n' "$SUITE" "$PKGS" "$MIRROR" minbase | sha256sum | cut -c1-12)
	dir=$CACHE/rootfs-$SUITE-$key
	exec {lockfd}>"$CACHE/.lock"
	flock -w 1800 "$lockfd" || die "timed out waiting for another build ($CACHE/.lock)"
	if [ ! -d "$dir" ]; then
		# Leftovers of a build that was killed (under the lock, none is running).
		for old in "$CACHE"/.tmp-*; do remove_tree "$old"; done
		tmp=$CACHE/.tmp-$$
		log=$CACHE/.tmp-$$.log
		at_exit "remove_tree $(printf %q "$tmp"); rm -f $(printf %q "$log")"
		say "debootstrap $SUITE (minbase + $PKGS) from $MIRROR into $dir (once; a few minutes)"
		if ! debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$tmp" "$MIRROR" >"$log" 2>&1; then
			tail -n 15 "$log" | sed 's/^/    /' >&2
			die "debootstrap $SUITE from $MIRROR failed ($(grep '^E:' "$log" | tail -n 1 | cut -c1-200)); is the mirror reachable? log above"
		fi
		rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
		# Each zone gets its own machine id (zone.sh up writes it in the upper layer).
		: >"$tmp/etc/machine-id"
		mv "$tmp" "$dir"
		for old in "$CACHE"/rootfs-*; do
			[ "$old" != "$dir" ] || continue
			rootfs_in_use "$old" || remove_tree "$old"
		done
	fi
	exec {lockfd}>&-
	echo "$dir"
}

# rootfs_in_use DIR: an overlay mount or a zone's record names DIR.
rootfs_in_use() {
	grep -qF "lowerdir=$1," /proc/self/mountinfo && return 0
	grep -qsxF "LOWER=$1" "$ZONES"/*/zone.env
}

# ---- zones ------------------------------------------------------------------------

valid_name() {
	[[ $1 =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] ||
		die "bad zone name '$1': lower-case letters, digits and '-' (a hostname), at most 63"
}

# env_get KEY FILE: the value of KEY=... in a zone.env file.
env_get() { { sed -n "s/^$1=//p" "$2" 2>/dev/null || true; } | tail -n 1; }

# subnet_taken PREFIX: prints the host's routes (other than the zones' bridge and
# the default route) that cover or lie within PREFIX.0/24.
subnet_taken() {
	{ ip -4 route show table all match "$1.0/24" || true; ip -4 route show table all root "$1.0/24" || true; } 2>/dev/null |
		awk -v br="$BRIDGE" '$1 != "default" { for (i = 1; i < NF; i++) if ($i == "dev" && $(i + 1) == br) next; print }' | sort -u
}

# bridge_prefix: A.B.C of the bridge's 192.0.2.1/24-style address, if it exists.
bridge_prefix() {
	{ ip -4 -o addr show dev "$BRIDGE" 2>/dev/null || true; } | awk '{ split($4, a, "/"); if (a[2] == 24) { sub(/\.1$/, "", a[1]); print a[1]; exit } }'
}

valid_prefix() { [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] && [ "${BASH_REMATCH[1]}" -le 255 ] && [ "${BASH_REMATCH[2]}" -le 255 ] && [ "${BASH_REMATCH[3]}" -le 255 ]; }

# choose_address ADDR: prints "PREFIX N", the zone's /24 and host number (ADDR: "",
# N or A.B.C.N). The caller holds the zones lock.
choose_address() {
	local want=$1 prefix="" n="" br taken used p
	br=$(bridge_prefix)
	case $want in
	"") ;;
	*.*.*.*)
		prefix=${want%.*}
		n=${want##*.}
		;;
	*) n=$want ;;
	esac
	if [ -n "$n" ]; then
		if ! [[ $n =~ ^[0-9]{1,3}$ ]] || [ "$n" -lt 2 ] || [ "$n" -gt 254 ]; then
			die "--addr $want: the host number must be 2..254 (.1 is the bridge)"
		fi
	fi
	if [ -z "$prefix" ]; then
		if [ -n "$br" ]; then
			prefix=$br
		elif [ -n "${KRAAL_ZONE_SUBNET:-}" ]; then
			[[ $KRAAL_ZONE_SUBNET == *.0/24 ]] || die "KRAAL_ZONE_SUBNET=$KRAAL_ZONE_SUBNET: want a /24 like 198.51.100.0/24"
			prefix=${KRAAL_ZONE_SUBNET%.0/24}
		else
			for p in "${TEST_NETS[@]}"; do
				if [ -z "$(subnet_taken "$p")" ]; then
					prefix=$p
					break
				fi
			done
			[ -n "$prefix" ] || die "the host routes all of ${TEST_NETS[*]/%/.0/24}: set KRAAL_ZONE_SUBNET to a free /24"
		fi
	fi
	valid_prefix "$prefix" || die "--addr $want: not an IPv4 address"
	if [ -n "$br" ] && [ "$br" != "$prefix" ]; then
		die "bridge $BRIDGE serves $br.0/24, not $prefix.0/24: pick an address in it, or another KRAAL_ZONE_BRIDGE"
	fi
	if [ -z "$br" ]; then
		taken=$(subnet_taken "$prefix")
		[ -z "$taken" ] || die "$prefix.0/24 is already routed on this host ($(echo "$taken" | head -n 2 | tr '\n' ';')): pick another network (e.g. KRAAL_ZONE_SUBNET), see docs/zones.md"
	fi
	used=$(cat /dev/null "$ZONES"/*/zone.env 2>/dev/null | sed -n "s/^ADDR=\($prefix\.[0-9]*\)$/\1/p") || true
	if [ -n "$n" ]; then
		! grep -qxF "$prefix.$n" <<<"$used" || die "$prefix.$n is taken by another zone in $ZONES"
	else
		for ((n = 2; n <= 254; n++)); do
			grep -qxF "$prefix.$n" <<<"$used" || break
		done
		[ "$n" -le 254 ] || die "no free address left in $prefix.0/24"
	fi
	echo "$prefix $n"
}

# kr ARGS...: kraal with the zone's state root.
kr() {
	if [ -n "$ROOT" ]; then
		"$KRAAL_BIN" --root "$ROOT" "$@"
	else
		"$KRAAL_BIN" "$@"
	fi
}

status_of() { { kr state "$1" 2>/dev/null || true; } | jq -r '.status // empty'; }

# wait_status NAME STATUS SECONDS
wait_status() {
	local end=$((SECONDS + $3)) s
	while :; do
		s=$(status_of "$1")
		[ "$s" = "$2" ] || [ -z "$s" ] && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# teardown NAME: everything up made, in reverse, whatever of it exists.
# Returns 1 when something could not be undone.
teardown() {
	local name=$1 bundle=$ZONES/$1 st rc=0 hook
	st=$(status_of "$name")
	case $st in
	paused)
		kr resume "$name" >&2 || true
		st=running
		;;
	esac
	case $st in
	running | creating | created)
		if [ "$st" = running ]; then
			# SIGRTMIN+3 halts systemd. kraal (and runc) take the name; by number
			# (37 in glibc's numbering, as Podman sends it) for a runtime that does not.
			kr kill "$name" SIGRTMIN+3 >&2 2>/dev/null || kr kill "$name" 37 >&2 || true
			if ! wait_status "$name" stopped "$STOP_TIMEOUT"; then
				say "zone $name did not halt within ${STOP_TIMEOUT}s of SIGRTMIN+3: sending SIGKILL"
			fi
		fi
		if [ "$(status_of "$name")" != stopped ]; then
			kr kill "$name" KILL >&2 || true
			wait_status "$name" stopped 10 || say "zone $name is still $(status_of "$name") after SIGKILL"
		fi
		;;
	esac
	if [ -n "$st" ]; then
		kr delete "$name" >&2 || kr delete --force "$name" >&2 || { say "kraal delete $name failed"; rc=1; }
	fi
	# The poststop hook ran net-down; again, for a container kraal no longer knew.
	hook=$here/net-down
	[ -x "$bundle/net-down" ] && hook=$bundle/net-down
	jq -n --arg id "$name" --arg b "$bundle" --arg br "$(env_get BRIDGE "$bundle/zone.env")" \
		'{ociVersion: "1.3.0", id: $id, status: "stopped", bundle: $b, annotations: {"org.kraal.zone.bridge": $br}}' |
		"$hook" >&2 || { say "net-down for $name failed"; rc=1; }
	if mountpoint -q "$bundle/rootfs" 2>/dev/null; then
		umount "$bundle/rootfs" 2>/dev/null || umount -l "$bundle/rootfs" || { say "cannot unmount $bundle/rootfs"; rc=1; }
	fi
	if [ -d "$bundle" ]; then
		if mountpoint -q "$bundle/rootfs" 2>/dev/null; then
			say "$bundle/rootfs is still mounted: keeping $bundle"
			rc=1
		else
			rm -rf --one-file-system "$bundle" || rc=1
		fi
	fi
	rmdir "$ZONES" 2>/dev/null || true
	return "$rc"
}

# customize MERGED NAME ADDR: the zone's own files, written through the overlay
# (so into its upper layer).
customize() {
	local r=$1 name=$2 addr=$3 u
	mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
	echo "$name" >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
		"$name" "$addr" "$name" >"$r/etc/hosts"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"
	echo >>"$r/etc/machine-id"
	# The journal in memory: the upper layer stays small.
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\n' >"$r/etc/systemd/journald.conf.d/zone.conf"
	# Units that have nothing to do in a container without devices, consoles or
	# clocks of its own.
	for u in systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
		systemd-timesyncd.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
		e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
		ln -sfn /dev/null "$r/etc/systemd/system/$u"
	done
	mkdir -p "$r/srv/www"
	cat >"$r/srv/www/index.html" <<-EOF
		<!doctype html>
		<title>zone $name</title>
		<p>zone $name at $addr: busybox httpd under systemd, in a kraal container</p>
	EOF
	cat >"$r/etc/systemd/system/zone-httpd.service" <<-EOF
		[Unit]
		Description=busybox httpd serving /srv/www (kraal zone demo)
		After=network.target

		[Service]
		ExecStart=/bin/busybox httpd -f -p 80 -h /srv/www
		Restart=on-failure

		[Install]
		WantedBy=multi-user.target
	EOF
	ln -sfn /etc/systemd/system/zone-httpd.service "$r/etc/systemd/system/multi-user.target.wants/zone-httpd.service"
}

# write_config BUNDLE NAME CGROUPSPATH ADDR PREFIX
write_config() {
	local b=$1 name=$2 cg=$3 addr=$4 prefix=$5
	kr spec --bundle "$b" || die "kraal spec failed"
	jq --arg name "$name" --arg b "$b" --arg cg "$cg" --arg addr "$addr/24" --arg gw "$prefix.1/24" \
		--arg br "$BRIDGE" --argjson caps "$CAPS" '
		.hostname = $name
		| .root.readonly = false
		| .process.args = ["/sbin/init"]
		| .process.terminal = false
		| .process.env += ["container=kraal"]
		| .process.noNewPrivileges = false
		| .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps}
		| .mounts |= (map(if .destination == "/sys/fs/cgroup" then .options |= map(select(. != "ro")) else . end)
			+ [{destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=755"]},
			   {destination: "/run/lock", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "size=5m"]},
			   {destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"]}])
		| .linux.cgroupsPath = $cg
		| if any(.linux.namespaces[]; .type == "network") then . else .linux.namespaces += [{type: "network"}] end
		| .annotations = {"org.kraal.zone.name": $name, "org.kraal.zone.address": $addr,
			"org.kraal.zone.gateway": $gw, "org.kraal.zone.bridge": $br,
			"org.kraal.zone.stop-signal": "SIGRTMIN+3"}
		| ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] as $env
		| .hooks = {createRuntime: [{path: ($b + "/net-up"), args: ["net-up"], env: $env, timeout: 30}],
			poststop: [{path: ($b + "/net-down"), args: ["net-down"], env: $env, timeout: 30}]}
	' "$b/config.json" >"$b/config.json.new" || die "editing $b/config.json failed"
	mv "$b/config.json.new" "$b/config.json"
}

# wait_boot NAME: waits until systemd in the zone says running or degraded; prints it.
wait_boot() {
	local name=$1 end=$((SECONDS + BOOT_TIMEOUT)) out left
	while :; do
		left=$((end - SECONDS))
		[ "$left" -gt 0 ] || break
		# Early on systemctl cannot reach systemd yet and returns at once.
		out=$(timeout -k 5 $((left + 5)) "${KR_CMD[@]}" exec "$name" timeout "$left" systemctl is-system-running --wait 2>/dev/null | tail -n 1) || true
		case $out in
		running | degraded)
			echo "$out"
			return 0
			;;
		esac
		[ "$(status_of "$name")" = running ] || {
			echo "${out:-exited}"
			return 1
		}
		sleep 0.5
	done
	echo "${out:-unknown}"
	return 1
}

cmd_up() {
	local name="" lower="" addr_opt="" cgparent=kraal-zone bundle lockfd prefix n addr state cg
	[ $# -ge 1 ] || usage
	name=$1
	shift
	ROOT=""
	while [ $# -gt 0 ]; do
		case $1 in
		--rootfs | --addr | --root | --cgroup-parent)
			[ $# -ge 2 ] || die "$1 needs a value"
			case $1 in
			--rootfs) lower=$2 ;;
			--addr) addr_opt=$2 ;;
			--root) ROOT=$2 ;;
			--cgroup-parent) cgparent=$2 ;;
			esac
			shift 2
			;;
		*) die "up: unknown argument '$1'" ;;
		esac
	done
	valid_name "$name"
	case $ROOT in "" | /*) ;; *) ROOT=$PWD/$ROOT ;; esac
	[ "$(id -u)" = 0 ] || die "up needs root"
	[[ $BRIDGE =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "KRAAL_ZONE_BRIDGE=$BRIDGE: not an interface name (at most 15 of A-Z a-z 0-9 _ . -)"
	case $cgparent in "" | *..* | *//*) die "--cgroup-parent '$cgparent': want a path like kraal-zone or /a/b" ;; esac
	cgparent=${cgparent%/}
	need_pkgs jq:jq ip:iproute2 nsenter:util-linux flock:util-linux mountpoint:util-linux
	KRAAL_BIN=$(find_kraal)
	KR_CMD=("$KRAAL_BIN")
	[ -z "$ROOT" ] || KR_CMD+=(--root "$ROOT")
	if [ -n "$lower" ]; then
		[ -d "$lower" ] || die "--rootfs $lower: not a directory"
		lower=$(cd "$lower" && pwd -P)
	else
		lower=$(build_rootfs)
	fi
	[ -e "$lower/lib/systemd/systemd" ] || [ -e "$lower/usr/lib/systemd/systemd" ] ||
		die "$lower has no lib/systemd/systemd: not a rootfs with systemd"
	[ -e "$lower/sbin/init" ] || [ -L "$lower/sbin/init" ] || die "$lower has no /sbin/init"
	bundle=$ZONES/$name
	case $lower$bundle in *[,:[:space:]]*) die "paths with ',', ':' or blanks cannot be overlay layers: $lower, $bundle" ;; esac

	# Claim the name and an address (the hooks take the same lock, only briefly).
	mkdir -p "$ZONES"
	at_exit "rmdir $(printf %q "$ZONES") 2>/dev/null || true"
	exec {lockfd}<"$ZONES"
	flock -w 60 "$lockfd" || die "timed out waiting for the lock on $ZONES"
	[ ! -e "$bundle" ] || die "zone $name exists ($bundle): '$prog down $name' first"
	[ -z "$(status_of "$name")" ] || die "kraal already has a container named $name${ROOT:+ (root $ROOT)}"
	prefix=$(choose_address "$addr_opt")
	n=${prefix#* }
	prefix=${prefix% *}
	addr=$prefix.$n
	mkdir "$bundle"
	# From here on a failure undoes everything.
	UP_DONE=
	# shellcheck disable=SC2016 # UP_DONE is read when the handler runs
	at_exit '[ -n "$UP_DONE" ] || { say "undoing zone '"$name"'"; teardown '"'$name'"' || true; }'
	printf 'NAME=%s\nADDR=%s\nBRIDGE=%s\nLOWER=%s\nROOT=%s\n' "$name" "$addr" "$BRIDGE" "$lower" "$ROOT" >"$bundle/zone.env"
	exec {lockfd}<&-

	mkdir "$bundle/upper" "$bundle/work" "$bundle/rootfs"
	mount -t overlay overlay -o "lowerdir=$lower,upperdir=$bundle/upper,workdir=$bundle/work" "$bundle/rootfs" ||
		die "mounting the overlay on $bundle/rootfs failed"
	customize "$bundle/rootfs" "$name" "$addr"
	install -m 0755 "$here/net-up" "$here/net-down" "$bundle/"
	# Relative: below kraal's own cgroup (runc's rule); absolute: as given.
	cg=$cgparent/$name
	write_config "$bundle" "$name" "$cg" "$addr" "$prefix"

	say "starting zone $name ($addr)"
	if ! kr run -d --bundle "$bundle" "$name" </dev/null >"$bundle/console.log" 2>&1; then
		tail -n 15 "$bundle/console.log" | sed 's/^/    /' >&2
		die "kraal run $name failed (log above)"
	fi
	if ! state=$(wait_boot "$name"); then
		say "zone $name did not come up within ${BOOT_TIMEOUT}s (systemd says: $state); its console:"
		tail -n 25 "$bundle/console.log" | sed 's/^/    /' >&2
		kr exec "$name" systemctl --failed --no-legend >&2 2>/dev/null || true
		exit 1
	fi
	if [ "$state" = degraded ]; then
		say "zone $name is degraded; failed units:"
		kr exec "$name" systemctl --failed --no-legend --plain >&2 || true
	fi
	# shellcheck disable=SC2034 # read by the exit handler
	UP_DONE=1
	printf 'zone: %s\nstate: %s\naddress: %s\nurl: http://%s/\n' "$name" "$state" "$addr" "$addr"
}

# common NAME [--root STATEDIR]: sets ROOT (the option, else what up recorded) and KRAAL_BIN.
parse_name_root() {
	[ $# -ge 1 ] || usage
	NAME=$1
	shift
	ROOT=""
	local have_root=""
	while [ $# -gt 0 ]; do
		case $1 in
		--root)
			[ $# -ge 2 ] || die "--root needs a value"
			ROOT=$2
			have_root=1
			shift 2
			;;
		*) die "unknown argument '$1'" ;;
		esac
	done
	valid_name "$NAME"
	case $ROOT in "" | /*) ;; *) ROOT=$PWD/$ROOT ;; esac
	[ -n "$have_root" ] || ROOT=$(env_get ROOT "$ZONES/$NAME/zone.env")
	need_pkgs jq:jq ip:iproute2 flock:util-linux mountpoint:util-linux
	KRAAL_BIN=$(find_kraal)
	KR_CMD=("$KRAAL_BIN")
	[ -z "$ROOT" ] || KR_CMD+=(--root "$ROOT")
}

cmd_down() {
	parse_name_root "$@"
	[ "$(id -u)" = 0 ] || die "down needs root"
	if [ -z "$(status_of "$NAME")" ] && [ ! -e "$ZONES/$NAME" ]; then
		say "no zone $NAME: nothing to do"
		# The network, in case only it was left behind.
		jq -n --arg id "$NAME" --arg br "$BRIDGE" '{id: $id, status: "stopped", annotations: {"org.kraal.zone.bridge": $br}}' | "$here/net-down"
		return 0
	fi
	teardown "$NAME" || die "zone $NAME: not everything could be removed (see above)"
	say "zone $NAME is down"
}

cmd_status() {
	parse_name_root "$@"
	local st sys="" addr
	st=$(status_of "$NAME")
	addr=$(env_get ADDR "$ZONES/$NAME/zone.env")
	[ -n "$st" ] || [ -e "$ZONES/$NAME" ] || die "no zone $NAME"
	if [ "$st" = running ]; then
		sys=$(timeout 10 "${KR_CMD[@]}" exec "$NAME" systemctl is-system-running 2>/dev/null) || true
	fi
	printf 'zone: %s\ncontainer: %s\nstate: %s\naddress: %s\n' "$NAME" "${st:-none}" "${sys:-${st:-none}}" "${addr:-none}"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
build)
	[ $# -eq 0 ] || usage
	build_rootfs
	;;
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
status) cmd_status "$@" ;;
-h | --help | help) usage ;;
*)
	say "unknown command '$cmd'"
	usage
	;;
esac
