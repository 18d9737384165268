#!/usr/bin/env bash
# Regenerates contrib/order/kraal.order: the functions a container's lifecycle runs,
# in the order they first run, which build.rs hands to the linker
# (--symbol-ordering-file) so they sit together in the binary. Starting kraal then
# maps a few hundred KiB of its code instead of most of it (each page fault maps a
# whole 64 KiB block around the faulting address).
#
# How: build kraal as `cargo build --release` does, with lld's link map beside it
# (the binary is stripped; the map names every function's address); run each
# command of a lifecycle under steptrace (steptrace.c: a ptrace tracer with a
# one-shot breakpoint on every function) to record which functions of kraal run, in
# kraal and in the container's init up to its exec; symbolize.py turns the
# addresses into names. Names are the
# compiler's mangled ones, so they stay valid across edits that do not rename a
# function or change a dependency; stale names are skipped by the linker. Re-run
# this after big changes (about two minutes, mostly the build; needs root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "make-order.sh: needs root (it runs containers)" >&2; exit 2; }
if ! command -v gcc >/dev/null || ! command -v jq >/dev/null || [ ! -x /bin/busybox ]; then
	bash "$crate/contrib/deps.sh"
fi

work=$(mktemp -d /tmp/kraal-order.XXXXXX)
root=$work/root
K=$crate/target/release/kraal
cleanup() {
	local id
	if [ -x "$K" ] && [ -d "$root" ]; then
		for id in $("$K" --root "$root" list -q 2>/dev/null); do
			"$K" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT

gcc -O2 -Wall -o "$work/steptrace" "$here/steptrace.c"
echo "make-order: building kraal with its link map" >&2
(cd "$crate" && KRAAL_LINK_MAP="$work/kraal.map" cargo build --release)

python3 "$here/symbolize.py" --starts "$work/kraal.map" >"$work/starts"

bash "$crate/contrib/mkbundle.sh" "$work/b" -- /bin/true >/dev/null
cfg() { # cfg NAME ARGS_JSON: a bundle dir sharing the rootfs, with its own args
	mkdir -p "$work/$1"
	jq --arg r "$work/b/rootfs" --arg cg "kraal-order-$$/$1" --argjson a "$2" \
		'.root.path = $r | .linux.cgroupsPath = $cg | .process.args = $a' \
		"$work/b/config.json" >"$work/$1/config.json"
}
cfg run '["/bin/true"]'
cfg idle '["sleep", "1000"]'

n=0
trace() { # trace CMD...: one kraal command under steptrace
	n=$((n + 1))
	echo "make-order: tracing kraal $*" >&2
	"$work/steptrace" "$K" "$work/starts" "$work/trace.$n" -- "$K" --root "$root" "$@" >/dev/null </dev/null
}
# The hot paths first: `run` is what most callers time.
trace run --bundle "$work/run" r1
trace create --bundle "$work/idle" c1
trace start c1
trace state c1
trace exec c1 /bin/true
trace list
trace ps c1
trace events --stats c1
trace pause c1
trace resume c1
trace kill c1 KILL
trace delete c1
trace run -d --bundle "$work/idle" d1
trace delete --force d1

traces=()
for i in $(seq 1 "$n"); do traces+=("$work/trace.$i"); done
python3 "$here/symbolize.py" "$work/kraal.map" "${traces[@]}" >"$work/kraal.order"
mv "$work/kraal.order" "$here/kraal.order"
echo "make-order: wrote $here/kraal.order ($(wc -l <"$here/kraal.order") functions); rebuild with cargo build --release" >&2
