# shellcheck shell=sh disable=SC2034,SC2016 # MB etc. are for the sourcing script; jq filters use $
# Helpers for the scenario suites that run inside a guest (v2-cases.sh, zone-cases.sh,
# systemd-cases.sh). Sourced, never run; POSIX sh, so busybox ash runs it too.
# Owns: the suite's private work dir and state root, running kraal bounded in time
# with its output kept per call, busybox bundles, assertions that name what they
# compared, one PASS/FAIL/SKIP line per case, and cleaning up after every case
# (containers, cgroup dirs, processes, units and mounts it made) with a leak check.
#
# Set before sourcing: SUITE (name used in the report lines); KGLOBAL (global
# flags every kraal call gets, e.g. --systemd-cgroup), optional. With
# --systemd-cgroup, `bundle` gives containers a systemd cgroupsPath and `cgdir`
# names their scope's directory, so the same cases run under either driver.
#
# A suite runs its cases with `run_cases`, which first prints `CASES N`: the host
# fails the step unless N > 0 and exactly N PASS/FAIL/SKIP lines follow.

KRAAL=${KRAAL:-$(cat /vm/kraal-path)}
KGLOBAL=${KGLOBAL:-}
W=/tmp/kvm-$SUITE
ROOT=$W/root
MB=1048576
# Generous: the guest runs 5-20x slower than the host under TCG.
CMD_TIMEOUT=${CMD_TIMEOUT:-60}
NCALL=0

rm -rf "$W"
mkdir -p "$W/io" "$ROOT"

# This shell's own cgroup (cgroup v2 only) and the directory a relative
# cgroupsPath resolves from, as kraal and the Rust tests resolve it.
OWN_CG=$(sed -n 's/^0:://p' /proc/self/cgroup)
CGROOT=/sys/fs/cgroup
OWN_DIR=$CGROOT${OWN_CG%/}
# Relative cgroup parent of this suite's containers.
PARENT=kraal-vm-$SUITE
PARENT_DIR=$OWN_DIR/$PARENT
# The systemd driver: containers get cgroupsPath system.slice:kraal-SUITE:ID, the
# transient scope kraal-SUITE-ID.scope in system.slice.
case " $KGLOBAL " in
*" --systemd-cgroup "*) SDDRIVER=1 ;;
*) SDDRIVER="" ;;
esac

# cgpath ID: the cgroupsPath `bundle` gives container ID.
cgpath() {
	if [ -n "$SDDRIVER" ]; then
		echo "system.slice:kraal-$SUITE:$1"
	else
		echo "$PARENT/$1"
	fi
}

# cgdir ID: the cgroup directory of container ID (created by `bundle`).
cgdir() {
	if [ -n "$SDDRIVER" ]; then
		echo "$CGROOT/system.slice/kraal-$SUITE-$1.scope"
	else
		echo "$PARENT_DIR/$1"
	fi
}

up() { cut -d' ' -f1 /proc/uptime; }

# die MSG: fails the current case (cases run in a subshell).
die() {
	echo "ASSERT: $*"
	exit 1
}

# skip MSG: the case cannot run here (exit 77), and says why.
skip() {
	echo "$*"
	exit 77
}

# k ARGS...: runs kraal --root ROOT ARGS, bounded; stdout in $OUT, stderr in $ERR
# (files of this call only: a detached container keeps writing to the create's).
k() {
	NCALL=$((NCALL + 1))
	OUT=$W/io/$NCALL.out
	ERR=$W/io/$NCALL.err
	echo "+ kraal $KGLOBAL $*" >"$W/io/$NCALL.cmd"
	# shellcheck disable=SC2086 # KGLOBAL holds flags
	timeout -k 10 "$CMD_TIMEOUT" "$KRAAL" --root "$ROOT" $KGLOBAL "$@" >"$OUT" 2>"$ERR" </dev/null
}

# kok ARGS...: kraal must succeed.
kok() {
	k "$@"
	rc=$?
	[ "$rc" = 0 ] || die "kraal $* exited $rc; stderr: $(cat "$ERR")"
}

# kfail NEEDLE ARGS...: kraal must fail with an exit code and NEEDLE in stderr.
kfail() {
	needle=$1
	shift
	k "$@"
	rc=$?
	[ "$rc" != 0 ] || die "kraal $* should have failed; stdout: $(cat "$OUT")"
	[ "$rc" -lt 124 ] || die "kraal $* exited $rc (signal or timeout); stderr: $(cat "$ERR")"
	grep -qiF -- "$needle" "$ERR" || die "kraal $* failed (exit $rc) without naming '$needle'; stderr: $(cat "$ERR")"
	echo "  (refused as expected: $(head -c 300 "$ERR"))"
}

# eq GOT WANT WHAT
eq() {
	[ "$1" = "$2" ] || die "$3: got '$1', want '$2'"
}

# readf FILE: its trimmed content (empty and an ASSERT note when unreadable).
readf() {
	if [ -r "$1" ]; then
		tr -d '\n' <"$1"
	else
		echo "<missing $1>"
	fi
}

# fileq FILE WANT
fileq() {
	eq "$(readf "$1")" "$2" "$1"
}

# keyed FILE KEY: the number after KEY in a flat-keyed file (memory.events, ...).
keyed() {
	awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null
}

# wait_for SECS CMD...: polls CMD until it succeeds; fails after SECS.
wait_for() {
	secs=$1
	shift
	n=0
	while ! "$@"; do
		n=$((n + 1))
		[ "$n" -lt $((secs * 10)) ] || return 1
		sleep 0.1
	done
}

# wait_until SECS CMD...: as wait_for, but SECS of wall-clock time (guest uptime): for
# predicates that are slow themselves (a kraal call each).
wait_until() {
	secs=$1
	shift
	end=$(awk -v s="$secs" '{ printf "%d", $1 + s }' /proc/uptime)
	while ! "$@"; do
		[ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# A busybox rootfs copied for every bundle.
TEMPLATE=$W/rootfs-template
make_template() {
	mkdir -p "$TEMPLATE/bin" "$TEMPLATE/proc" "$TEMPLATE/sys" "$TEMPLATE/dev" \
		"$TEMPLATE/etc" "$TEMPLATE/tmp" "$TEMPLATE/root" "$TEMPLATE/shared"
	chmod 1777 "$TEMPLATE/tmp"
	cp /bin/busybox "$TEMPLATE/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$TEMPLATE/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$TEMPLATE/etc/passwd"
	printf 'root:x:0:\n' >"$TEMPLATE/etc/group"
}
make_template

# bundle NAME SCRIPT [CGROUPSPATH]: a bundle in $W/NAME running `sh -c SCRIPT`, id
# NAME, with the host dir $W/NAME/shared bound at /shared, and cgroupsPath
# CGROUPSPATH ("null": none), by default `cgpath NAME` (under the systemd driver its
# scope is registered for cleanup). Sets B (bundle dir), ID, SHARED.
bundle() {
	ID=$1
	B=$W/b-$ID
	SHARED=$B/shared
	rm -rf "$B"
	mkdir -p "$B" "$SHARED"
	cp -a "$TEMPLATE" "$B/rootfs"
	kok spec -b "$B"
	cg=${3:-$(cgpath "$ID")}
	edit ".process.terminal = false | .process.args = [\"sh\", \"-c\", \$s] |
		.root.readonly = false | .linux.cgroupsPath = \$cg |
		.mounts += [{destination: \"/shared\", type: \"bind\", source: \$sh, options: [\"rbind\", \"rw\"]}]" \
		--arg s "$2" --arg cg "$cg" --arg sh "$SHARED"
	if [ "$cg" = null ]; then
		edit 'del(.linux.cgroupsPath)'
	elif [ -z "${3:-}" ] && [ -n "$SDDRIVER" ]; then
		register_unit "kraal-$SUITE-$ID.scope"
	fi
}

# edit JQ-FILTER [JQ-ARGS...]: edits $B/config.json.
edit() {
	f=$1
	shift
	jq "$@" "$f" "$B/config.json" >"$B/config.json.new" || die "jq edit failed: $f"
	mv "$B/config.json.new" "$B/config.json"
}

# resources JSON: sets linux.resources.
resources() {
	edit '.linux.resources = $r' --argjson r "$1"
}

# init_pid ID
init_pid() {
	k state "$1" && jq -r .pid "$OUT"
}

# cgdir_of PID: the cgroup directory PID is in (cgroup v2).
cgdir_of() {
	p=$(sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null)
	[ -n "$p" ] && echo "$CGROOT${p%/}"
}

# need_cgdir DIR ID: dies unless DIR (the cgroup of container ID) exists, saying what
# became of the container (and of its scope, under the systemd driver).
need_cgdir() {
	[ -d "$1" ] && return 0
	k state "$2"
	echo "  state: $(tr '\n' ' ' <"$OUT") $(cat "$ERR")"
	if [ -n "$SDDRIVER" ]; then
		systemctl status --no-pager "kraal-$SUITE-$2.scope" 2>&1 | sed 's/^/  | /'
	fi
	p=$(jq -r .pid "$OUT" 2>/dev/null)
	die "no cgroup $1; the init (${p:-?}) is in $(cat "/proc/$p/cgroup" 2>&1)"
}

# in_procs DIR PID: PID is listed in DIR/cgroup.procs.
in_procs() {
	grep -qx "$2" "$1/cgroup.procs" 2>/dev/null
}

# Removes every container of the suite and every cgroup dir under the parent
# (killing what is left in them: only this suite's containers can be there).
rm_cgroup_tree() {
	[ -d "$1" ] || return 0
	for sub in "$1"/*/; do
		[ -d "$sub" ] && rm_cgroup_tree "${sub%/}"
	done
	n=0
	while [ -d "$1" ] && ! rmdir "$1" 2>/dev/null; do
		[ -w "$1/cgroup.kill" ] && echo 1 >"$1/cgroup.kill" 2>/dev/null
		n=$((n + 1))
		[ "$n" -lt 100 ] || {
			echo "cannot remove $1"
			return 1
		}
		sleep 0.1
	done
}

cleanup_case() {
	for d in "$ROOT"/*/; do
		[ -d "$d" ] || continue
		k delete --force "$(basename "$d")"
	done
	rm_cgroup_tree "$PARENT_DIR"
	for p in $CASE_PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	CASE_PIDS=""
	for extra in $CASE_CGROUPS; do
		rm_cgroup_tree "$extra"
	done
	CASE_CGROUPS=""
	for u in $CASE_UNITS; do
		timeout 60 systemctl stop "$u" 2>/dev/null
		timeout 60 systemctl reset-failed "$u" 2>/dev/null
	done
	CASE_UNITS=""
	for m in $CASE_MOUNTS; do
		mounted "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
	done
	CASE_MOUNTS=""
}

# mounted DIR: something is mounted on DIR.
mounted() {
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

# leaks: what a case left behind (containers, cgroups, units, mounts), empty when clean.
leaks() {
	for d in "$ROOT"/*/; do
		[ -d "$d" ] && echo "state left: $d"
	done
	for d in "$PARENT_DIR"/*/; do
		[ -d "$d" ] && echo "cgroup left: $d"
	done
	for m in $CASE_MOUNTS; do
		mounted "$m" && echo "mount left: $m"
	done
	for u in $CASE_UNITS; do
		st=$(systemctl show -p LoadState,ActiveState --value "$u" 2>/dev/null | tr '\n' ' ')
		case $st in
		"not-found "*) ;;
		*) echo "unit left: $u ($st)" ;;
		esac
	done
}

PASSED=0
FAILED=0
SKIPPED=0
CASE_PIDS=""
CASE_CGROUPS=""
CASE_UNITS=""
CASE_MOUNTS=""

# A case still running after this many seconds gets its log so far printed (a hang
# then shows where it is before the step or the VM times out).
CASE_SLOW=${CASE_SLOW:-180}

# run_case NAME: runs case_NAME in a subshell; prints PASS, FAIL (with its log) or
# SKIP, then cleans up. A case that passes but leaves containers or cgroups fails.
run_case() {
	name=$1
	log=$W/case-$name.log
	t0=$(up)
	(case_"$name") >"$log" 2>&1 &
	cpid=$!
	(
		sleep "$CASE_SLOW"
		if kill -0 "$cpid" 2>/dev/null; then
			echo "SLOW $SUITE:$name: still running after ${CASE_SLOW}s; its log so far:"
			tail -n 25 "$log" | sed 's/^/    /'
		fi
	) &
	wpid=$!
	wait "$cpid"
	rc=$?
	kill "$wpid" 2>/dev/null
	# Whatever the case registered for cleanup is in its log (subshell variables are lost).
	CASE_PIDS=$(sed -n 's/^CLEANUP-PID //p' "$log")
	CASE_CGROUPS=$(sed -n 's/^CLEANUP-CGROUP //p' "$log")
	CASE_UNITS=$(sed -n 's/^CLEANUP-UNIT //p' "$log")
	CASE_MOUNTS=$(sed -n 's/^CLEANUP-MOUNT //p' "$log")
	left=""
	if [ "$rc" = 0 ]; then
		left=$(leaks)
	fi
	cleanup_case
	t=$(awk -v a="$t0" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')
	if [ "$rc" = 0 ] && [ -z "$left" ]; then
		echo "PASS $SUITE:$name (${t}s)"
		PASSED=$((PASSED + 1))
	elif [ "$rc" = 77 ]; then
		echo "SKIP $SUITE:$name: $(tail -n 1 "$log")"
		SKIPPED=$((SKIPPED + 1))
	else
		echo "FAIL $SUITE:$name (${t}s)"
		grep -v '^CLEANUP-' "$log" | tail -n 40 | sed 's/^/    /'
		[ -z "$left" ] || echo "$left" | sed 's/^/    left behind: /'
		FAILED=$((FAILED + 1))
	fi
}

# register_pid PID / register_cgroup DIR: cleaned up after the case, pass or fail.
# (On stderr, which goes to the case's log also from inside a $(...).)
register_pid() { echo "CLEANUP-PID $1" >&2; }
register_cgroup() { echo "CLEANUP-CGROUP $1" >&2; }
# register_unit UNIT: a systemd unit stopped (and reset) after the case; a case
# that passes with the unit still loaded fails.
register_unit() { echo "CLEANUP-UNIT $1" >&2; }
# register_mount DIR: unmounted after the case (after its containers are deleted); a
# case that passes with DIR still mounted fails.
register_mount() { echo "CLEANUP-MOUNT $1" >&2; }

# EXTRA_CASES: result lines a suite prints besides its cases' (zone-cases.sh's
# cleanup check), counted into CASES.
EXTRA_CASES=0

# run_cases CASE...: prints `CASES N` (the host checks that N results follow; N = 0
# is a failure there, not a pass) and runs each case.
run_cases() {
	echo "CASES $(($# + EXTRA_CASES))"
	for c in "$@"; do
		run_case "$c"
	done
}

# all_cases SCRIPT: the case names defined in SCRIPT, in file order.
all_cases() {
	sed -n 's/^case_\([a-z0-9_]*\)() {$/\1/p' "$1"
}

suite_end() {
	rm_cgroup_tree "$PARENT_DIR"
	rm -rf "$W"
	echo "$SUITE: $PASSED passed, $FAILED failed, $SKIPPED skipped"
	[ "$FAILED" = 0 ]
}
