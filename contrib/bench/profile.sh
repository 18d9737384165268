#!/usr/bin/env bash
# Profiles one `run` lifecycle of /bin/true per runtime on the bundle run.sh uses, in the
# same private mount + cgroup namespace, with measures that hold still on a loaded
# machine:
#   - `strace -c -f`: syscall counts of the runtime and everything it forks, per
#     runtime (raw files, totals, top 10, counts per category side by side), for
#     `run` and for `exec` into a running container;
#   - `strace -f -ttt -T`: a full timed trace per runtime, and its slowest calls
#     (where a lifecycle blocks);
#   - `perf stat` (if perf works here): CPU time, context switches and page faults,
#     mean of PROFILE_PERF_RUNS runs;
#   - `valgrind --tool=callgrind` (if valgrind is installed): instructions executed by
#     the kraal process itself (not its children) for each lifecycle command, with the
#     top functions from a build that keeps its symbols (PROFILE_SYMBOLS=0 skips that
#     build and profiles the stripped binary: totals only). Commands that fork the
#     container's init fail under valgrind 3.19 (it lacks openat2); the table says so.
# Writes everything to PROFILE_OUT (default /tmp/kraal-profile.<time>), a summary to
# stdout and into docs/performance.md between its bench:profile markers (BENCH_DOC,
# "-" prints only). Run as root.
set -euo pipefail

BENCH_PROG=profile.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$HERE/lib.sh"

RUNTIMES=${BENCH_RUNTIMES:-kraal crun runc}
DOC=${BENCH_DOC:-$REPO/docs/performance.md}
CG_PARENT=${BENCH_CGROUP_PARENT:-kraal-bench}
PERF_RUNS=${PROFILE_PERF_RUNS:-20}
SYMBOLS=${PROFILE_SYMBOLS:-1}

# ---- inside the namespace ----------------------------------------------------------

run_cmd() { echo "$(bench_rt "$1") run --bundle $BUNDLES/$TAG-prof-$1 $TAG-prof-$1"; }

inner_cleanup() {
	local rc=$? rt id h d
	for rt in $RUNTIMES; do
		for id in "$STATE/$rt"/*; do
			[ -e "$id" ] || continue
			$(bench_rt "$rt") delete --force "${id##*/}" </dev/null >/dev/null 2>&1 ||
				bench_log "warning: $rt delete --force ${id##*/} failed"
		done
	done
	for h in /sys/fs/cgroup/*; do
		for d in "$h/$CG_PARENT/$TAG"*; do
			[ -d "$d" ] || continue
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || bench_log "warning: could not remove cgroup $d"
		done
		rmdir "$h/$CG_PARENT" 2>/dev/null || true
	done
	exit "$rc"
}

# One kraal command under callgrind. The valgrind process keeps its PID, so its file
# is kraal's own process; forked helpers write files of their own (dropped), and
# exec'd programs run natively. Prints nothing; records the outcome in $OUT.
callgrind_step() { # step args...
	local step=$1 pid f
	shift
	valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$OUT/cg-$step.%p" \
		"$KRAAL_SYM" --root "$STATE/kraal" "$@" </dev/null >/dev/null 2>"$OUT/valgrind-$step.log" &
	pid=$!
	if wait "$pid" && [ -f "$OUT/cg-$step.$pid" ]; then
		mv "$OUT/cg-$step.$pid" "$OUT/callgrind-kraal-$step.out"
	else
		# valgrind 3.19 does not know openat2 (syscall 437) and answers ENOSYS:
		# the container setup fails under it, so say which call it was.
		printf '%s\t%s\n' "$step" "$(grep -m1 -E 'unhandled amd64-linux syscall|Unsupported clone|level=error|error' "$OUT/valgrind-$step.log" | sed 's/^==[0-9]*== //')" \
			>>"$OUT/callgrind-failed.tsv"
	fi
	for f in "$OUT/cg-$step".*; do [ -e "$f" ] && rm -f "$f"; done
	return 0
}

# kraal's lifecycle step by step under callgrind (steps that fork the container's
# init may fail under valgrind; the others run on a container made natively).
callgrind_kraal() {
	[[ " $RUNTIMES " == *" kraal "* ]] || return 0
	bench_log "callgrind: kraal"
	local id=$TAG-cg-kraal k=$KRAAL
	bench_bundle "$id" "$CG_PARENT" sleep 3600
	: >"$OUT/callgrind-failed.tsv"
	callgrind_step run run --bundle "$BUNDLES/$TAG-prof-kraal" "$TAG-prof-kraal"
	"$k" --root "$STATE/kraal" delete --force "$TAG-prof-kraal" >/dev/null 2>&1 || true
	callgrind_step create create --bundle "$BUNDLES/$id" "$id"
	if ! "$k" --root "$STATE/kraal" state "$id" >/dev/null 2>&1 ||
		[ "$("$k" --root "$STATE/kraal" state "$id" | jq -r .status)" != created ]; then
		"$k" --root "$STATE/kraal" delete --force "$id" >/dev/null 2>&1 || true
		"$k" --root "$STATE/kraal" create --bundle "$BUNDLES/$id" "$id" </dev/null >/dev/null 2>>"$OUT/kraal.err" ||
			bench_die "kraal create $id failed: $(tail -n 3 "$OUT/kraal.err")"
	fi
	callgrind_step start start "$id"
	callgrind_step state state "$id"
	callgrind_step exec exec "$id" /bin/true
	callgrind_step delete delete --force "$id"
	"$k" --root "$STATE/kraal" delete --force "$id" >/dev/null 2>&1 || true
}

inner() {
	trap inner_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_ns_mount_cgroups
	local rt
	for rt in $RUNTIMES; do
		bench_bundle "$TAG-prof-$rt" "$CG_PARENT" /bin/true
		# One untraced run first: page cache and dentries warm, as in run.sh.
		# shellcheck disable=SC2046,SC2091
		$(run_cmd "$rt") </dev/null >/dev/null 2>"$OUT/$rt.err" ||
			bench_die "$rt cannot run a container in the namespace: $(cat "$OUT/$rt.err")"
	done
	for rt in $RUNTIMES; do
		bench_log "strace -c -f: $rt"
		# shellcheck disable=SC2046
		strace -c -f -o "$OUT/strace-c-$rt.txt" $(run_cmd "$rt") </dev/null >/dev/null 2>>"$OUT/$rt.err" ||
			bench_die "$rt run under strace -c failed: $(tail -n 3 "$OUT/$rt.err")"
		# shellcheck disable=SC2046
		strace -f -ttt -T -s 128 -o "$OUT/strace-full-$rt.txt" $(run_cmd "$rt") </dev/null >/dev/null 2>>"$OUT/$rt.err" ||
			bench_die "$rt run under strace -f failed: $(tail -n 3 "$OUT/$rt.err")"
	done
	# exec: into a running container of each runtime.
	for rt in $RUNTIMES; do
		bench_log "strace -c -f of exec: $rt"
		bench_bundle "$TAG-profx-$rt" "$CG_PARENT" sleep 3600
		# shellcheck disable=SC2046,SC2015
		$(bench_rt "$rt") create --bundle "$BUNDLES/$TAG-profx-$rt" "$TAG-profx-$rt" </dev/null >/dev/null 2>>"$OUT/$rt.err" &&
			$(bench_rt "$rt") start "$TAG-profx-$rt" 2>>"$OUT/$rt.err" ||
			bench_die "$rt create/start of a sleeping container failed: $(tail -n 3 "$OUT/$rt.err")"
		# shellcheck disable=SC2046,SC2015
		$(bench_rt "$rt") exec "$TAG-profx-$rt" /bin/true </dev/null >/dev/null 2>>"$OUT/$rt.err" &&
			strace -c -f -o "$OUT/strace-c-exec-$rt.txt" $(bench_rt "$rt") exec "$TAG-profx-$rt" /bin/true \
				</dev/null >/dev/null 2>>"$OUT/$rt.err" &&
			strace -f -ttt -T -s 128 -o "$OUT/strace-full-exec-$rt.txt" $(bench_rt "$rt") exec "$TAG-profx-$rt" /bin/true \
				</dev/null >/dev/null 2>>"$OUT/$rt.err" ||
			bench_die "$rt exec under strace failed: $(tail -n 3 "$OUT/$rt.err")"
		$(bench_rt "$rt") delete --force "$TAG-profx-$rt" 2>>"$OUT/$rt.err" ||
			bench_die "$rt delete --force $TAG-profx-$rt failed: $(tail -n 3 "$OUT/$rt.err")"
	done
	if [ -n "$PERF" ]; then
		for rt in $RUNTIMES; do
			bench_log "perf stat -r $PERF_RUNS: $rt"
			# shellcheck disable=SC2046
			perf stat -x, -r "$PERF_RUNS" -e task-clock,context-switches,cpu-migrations,page-faults \
				-o "$OUT/perf-$rt.csv" $(run_cmd "$rt") </dev/null >/dev/null 2>>"$OUT/$rt.err" ||
				bench_die "$rt run under perf stat failed: $(tail -n 3 "$OUT/$rt.err")"
		done
	fi
	if [ -n "$VALGRIND" ]; then callgrind_kraal; fi
}

# ---- outside -------------------------------------------------------------------------

outer_cleanup() {
	local rc=$?
	bench_outer_cleanup "${V2CHILD:-}" "$CG_PARENT" "$TAG"
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
	exit "$rc"
}

# Instructions per kraal step, and the top functions by their own instructions.
callgrind_summary() {
	local step f total
	echo "| kraal command | instructions in kraal's own process |"
	echo "|---|---:|"
	for step in run create start state exec delete; do
		f=$OUT/callgrind-kraal-$step.out
		if [ -f "$f" ]; then
			total=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
			echo "| \`$step\` | $(sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$total") |"
		else
			echo "| \`$step\` | not measurable: $(awk -F'\t' -v s="$step" '$1 == s {print $2; exit}' "$OUT/callgrind-failed.tsv" | sed 's/|/\\|/g') |"
		fi
	done
	[ "$SYMBOLS" = 1 ] || return 0
	for step in start exec delete; do
		f=$OUT/callgrind-kraal-$step.out
		[ -f "$f" ] || continue
		echo ""
		echo "Top functions of kraal \`$step\` by own instructions (\`callgrind_annotate\`):"
		echo ""
		echo '```'
		# awk stops by itself: `head` would SIGPIPE the pipeline under pipefail.
		callgrind_annotate --threshold=100 "$f" 2>/dev/null |
			awk '/^-+$/ {sep++; next} sep >= 3 && NF && $1 ~ /^[0-9,]+$/ && n++ < 12 { sub(/ \[[^]]*\]$/, ""); print substr($0, 1, 150) }'
		echo '```'
	done
}

perf_summary() {
	echo "| \`perf stat\` per \`run\` (mean of $PERF_RUNS) | $(for rt in $RUNTIMES; do printf '%s | ' "$rt"; done)"
	echo "|---|$(for _ in $RUNTIMES; do printf -- '---:|'; done)"
	local ev
	for ev in task-clock context-switches cpu-migrations page-faults; do
		printf '| %s |' "$ev"
		for rt in $RUNTIMES; do
			awk -F, -v ev="$ev" '$3 == ev || $3 ~ "^"ev":" { v = $1; u = $2 } END { printf " %s %s |", (v == "" ? "n/a" : v), u }' "$OUT/perf-$rt.csv"
		done
		echo
	done
}

outer() {
	[ "$(id -u)" = 0 ] || bench_die "run as root (containers, cgroups and namespaces)"
	local rt
	for rt in $RUNTIMES; do
		case $rt in kraal | crun | runc) ;; *) bench_die "unknown runtime '$rt' in BENCH_RUNTIMES" ;; esac
	done
	[[ $PERF_RUNS =~ ^[1-9][0-9]*$ ]] || bench_die "PROFILE_PERF_RUNS must be a positive number, got '$PERF_RUNS'"
	bench_need_common
	bench_need strace strace
	PERF=
	if command -v perf >/dev/null 2>&1 && perf stat -e task-clock -x, -o /dev/null true 2>/dev/null; then PERF=1; fi
	VALGRIND=
	command -v valgrind >/dev/null 2>&1 && VALGRIND=1
	TAG=p$$
	V2CHILD=
	trap outer_cleanup EXIT
	trap 'exit 130' INT TERM
	WORK=$(mktemp -d /tmp/kraal-profile-work.XXXXXX)
	OUT=${PROFILE_OUT:-/tmp/kraal-profile.$(date +%Y%m%d-%H%M%S)}
	mkdir -p "$OUT" "$WORK/bin" "$WORK/state" "$WORK/bundles"
	bench_build_kraal "$WORK/bin"
	KRAAL_SYM=$KRAAL
	if [ -n "$VALGRIND" ] && [ "$SYMBOLS" = 1 ]; then
		# Same code as the release build, with its symbols kept: in a target dir of its
		# own so the shared release binary stays as it is.
		bench_log "building kraal with symbols for callgrind (target/bench-profile; slow the first time)"
		(cd "$REPO" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
			cargo build --release --quiet --target-dir "$REPO/target/bench-profile") ||
			bench_die "the build with symbols failed"
		cp "$REPO/target/bench-profile/release/kraal" "$WORK/bin/kraal-sym"
		KRAAL_SYM=$WORK/bin/kraal-sym
	fi
	bench_make_base_bundle "$WORK/bundle"
	STATE=$WORK/state
	BUNDLES=$WORK/bundles
	V2CHILD=$(bench_make_v2_child "kraal-bench.$TAG")
	export RUNTIMES CG_PARENT TAG WORK STATE BUNDLES OUT KRAAL KRAAL_SYM KRAAL_COMMIT BASE_BUNDLE PY PERF VALGRIND PERF_RUNS
	local rc=0
	(
		if [ -n "$V2CHILD" ]; then echo "$BASHPID" >"$V2CHILD/cgroup.procs"; fi
		exec unshare --mount --cgroup --propagation private -- bash "$HERE/profile.sh" --inner
	) || rc=$?
	[ "$rc" = 0 ] || bench_die "profiling failed (exit $rc); outputs so far are in $OUT"

	local files=() xfiles=() summary=$OUT/summary.md
	for rt in $RUNTIMES; do
		files+=("$rt=$OUT/strace-c-$rt.txt")
		xfiles+=("$rt=$OUT/strace-c-exec-$rt.txt")
	done
	{
		echo "Profiled $(date -u '+%Y-%m-%d %H:%M UTC') by \`contrib/bench/profile.sh\` on $(uname -r);" \
			"$(for rt in $RUNTIMES; do printf '%s; ' "$(bench_rt_version "$rt")"; done | sed 's/; $//')."
		echo ""
		"$PY" "$HERE/bench.py" strace-summary --title "Syscalls of one \`run\` of /bin/true" "${files[@]}"
		for rt in $RUNTIMES; do
			echo "Slowest calls of $rt's \`run\` (\`strace -f -T\`; blocking waits included):"
			echo ""
			"$PY" "$HERE/bench.py" strace-slow --top 6 "$OUT/strace-full-$rt.txt" | sed 's/^/    /'
			echo ""
		done
		"$PY" "$HERE/bench.py" strace-summary --title "Syscalls of one \`exec <id> /bin/true\`" "${xfiles[@]}"
		for rt in $RUNTIMES; do
			echo "Slowest calls of $rt's \`exec\`:"
			echo ""
			"$PY" "$HERE/bench.py" strace-slow --top 4 "$OUT/strace-full-exec-$rt.txt" | sed 's/^/    /'
			echo ""
		done
		if [ -n "$PERF" ]; then
			perf_summary
			echo ""
		fi
		if [ -n "$VALGRIND" ] && [[ " $RUNTIMES " == *" kraal "* ]]; then
			echo "Callgrind (\`valgrind --tool=callgrind --trace-children=no\`; deterministic counts):"
			echo ""
			callgrind_summary
			echo ""
		fi
		echo "Raw files: strace-c-*.txt, strace-full-*.txt, perf-*.csv, callgrind-*.out in \`$OUT\`."
	} >"$summary"
	cat "$summary"
	if [ "$DOC" != - ]; then
		"$PY" "$HERE/bench.py" section --doc "$DOC" --name profile --body "$summary" ||
			bench_die "writing the profile into $DOC failed"
		bench_log "profile written to $DOC; raw files in $OUT"
	fi
}

if [ "${1:-}" = --inner ]; then inner; else outer; fi
