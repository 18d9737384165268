#!/bin/sh
# The test run inside a guest: reads the plan the host packed (/vm/plan-MODE, one
# step a line) and runs each step, printing what the host parses:
#   KVM-BEGIN STEP UPTIME / KVM-EXIT STEP RC UPTIME around each step,
#   libtest's own lines (test NAME ... ok|FAILED|ignored) for Rust test binaries,
#   CASES N and then N PASS/FAIL/SKIP lines for a scenario script (the host checks
#   the count), KVM-SKIP for planned skips.
# Plan lines:  rust NAME [--skip TEST]...   (a test binary in /vm/tests)
#              cases SCRIPT [CASE]...        (a scenario script in /vm)
#              skip WHAT: WHY                (reported, not run)
# Usage: suite.sh plain|systemd

mode=${1:?mode}
plan=/vm/plan-$mode
# Per step: a hung binary must not eat the whole VM's time without a report.
STEP_TIMEOUT=${STEP_TIMEOUT:-420}
THREADS=${THREADS:-2}

up() { cut -d' ' -f1 /proc/uptime; }

[ -r "$plan" ] || {
	echo "KVM-FATAL no plan $plan"
	exit 1
}
echo "KVM-NOTE guest $mode: $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo), own cgroup $(sed -n 's/^0:://p' /proc/self/cgroup)"

while read -r kind name rest; do
	case $kind in
	'' | '#'*) continue ;;
	skip)
		echo "KVM-SKIP $name $rest"
		continue
		;;
	esac
	step=$kind:$name
	echo "KVM-BEGIN $step $(up)"
	case $kind in
	rust)
		# shellcheck disable=SC2086 # rest holds libtest arguments
		(cd /tmp && RUST_BACKTRACE=0 exec timeout "$STEP_TIMEOUT" "/vm/tests/$name" --test-threads="$THREADS" $rest) 2>&1 </dev/null
		rc=$?
		;;
	cases)
		# The scenarios run the release kraal (what ships; the Rust tests run the
		# debug one cargo baked into them). Both come from the same tree.
		# shellcheck disable=SC2086 # rest holds case names
		(cd /tmp && KRAAL=/vm/kraal-release exec timeout "$STEP_TIMEOUT" sh "/vm/$name" $rest) 2>&1 </dev/null
		rc=$?
		;;
	*)
		echo "KVM-FATAL unknown plan line: $kind $name $rest"
		rc=2
		;;
	esac
	echo "KVM-EXIT $step $rc $(up)"
done <"$plan"
