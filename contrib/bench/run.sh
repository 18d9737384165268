#!/usr/bin/env bash
# Benchmarks kraal against crun and runc on one busybox bundle and writes the table
# into docs/performance.md (between its bench:results markers) and to stdout.
#
#   sudo contrib/bench/run.sh                 # the full measurement (30 runs per figure)
#   BENCH_RUNS=10 contrib/bench/run.sh        # a quick end-to-end check
#
# Scenarios (BENCH_SCENARIOS, in this order by default: "run csd exec rss many size"):
#   run   `run` of /bin/true: create, start, wait, delete in one call (hyperfine)
#   csd   `create`, `start`, wait for exit, `delete` as separate calls (bench.py)
#   exec  `exec <id> /bin/true` into a running container (hyperfine)
#   rss   peak RSS of the runtime process during `run` (/usr/bin/time -f %M)
#   many  BENCH_N sleeping containers per runtime created and started one after
#         another, then all deleted with --force; leftovers checked (bench.py)
#   size  size of the runtime's binary
# Runtimes alternate run by run (each round rotates which goes first); every figure is
# the median of BENCH_RUNS rounds (after BENCH_WARMUP unrecorded ones) with min-max.
#
# Environment: BENCH_RUNS (30), BENCH_WARMUP (3), BENCH_N (100), BENCH_MANY_ROUNDS (1),
# BENCH_SCENARIOS, BENCH_RUNTIMES ("kraal crun runc"; kraal must be among them),
# BENCH_DOC (docs/performance.md; "-" prints only), BENCH_CGROUP_PARENT (kraal-bench),
# BENCH_KEEP=1 keeps the work directory (logs, raw results).
#
# Everything runs inside `unshare --mount --cgroup --propagation private` with the
# cgroup hierarchies mounted again (see lib.sh for why crun needs it on this hybrid
# host). A new scenario is a scenario_NAME function below that appends rows
# `scenario<TAB>runtime<TAB>value` to $RESULTS, plus its rows in bench.py's ROWS.
set -euo pipefail

BENCH_PROG=run.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$HERE/lib.sh"

RUNS=${BENCH_RUNS:-30}
WARMUP=${BENCH_WARMUP:-3}
N=${BENCH_N:-100}
MANY_ROUNDS=${BENCH_MANY_ROUNDS:-1}
SCENARIOS=${BENCH_SCENARIOS:-run csd exec rss many size}
RUNTIMES=${BENCH_RUNTIMES:-kraal crun runc}
DOC=${BENCH_DOC:-$REPO/docs/performance.md}
CG_PARENT=${BENCH_CGROUP_PARENT:-kraal-bench}

# ---- inside the namespace ----------------------------------------------------------

read -ra RT_ARR <<<"$RUNTIMES"
RT_CSV=$(IFS=,; echo "${RT_ARR[*]}")

# The runtimes in round $1's order, so each goes first equally often.
rotated() { # round
	local -a r
	read -ra r <<<"$RUNTIMES"
	local k=$(($1 % ${#r[@]}))
	echo "${r[@]:k}" "${r[@]:0:k}"
}

# JSON for bench.py: per runtime its command line, state root and containers.
# $1 scenario; the per-runtime id and bundle are $TAG-$1-<rt>.
spec_single() { # scenario
	local rt out='{}'
	for rt in $RUNTIMES; do
		out=$(jq --arg rt "$rt" --arg cmd "$(bench_rt "$rt")" --arg root "$STATE/$rt" \
			--arg id "$TAG-$1-$rt" --arg b "$BUNDLES/$TAG-$1-$rt" --arg cg "$CG_PARENT" \
			'.[$rt] = {cmd: ($cmd | split(" ")), state_root: $root, id: $id, bundle: $b, cgroup_parent: $cg}' <<<"$out")
	done
	echo "$out" >"$WORK/spec-$1.json"
	echo "$WORK/spec-$1.json"
}

# After each scenario: nothing may be left in the state roots, the cgroups, the mount
# table or the process table. Counted per runtime into the results.
check_leftovers() { # scenario spec
	local out rt
	if out=$("$PY" "$HERE/bench.py" leftovers --spec "$2" --runtimes "$RT_CSV" \
		--work "$WORK" --cgroup-parent "$CG_PARENT"); then
		for rt in $RUNTIMES; do printf 'leftovers\t%s\t0\n' "$rt" >>"$RESULTS"; done
		return
	fi
	bench_log "leftovers after scenario $1:"
	printf '  %s\n' "${out//$'\n'/$'\n'  }" >&2
	for rt in $RUNTIMES; do
		printf 'leftovers\t%s\t%s\n' "$rt" "$(grep -c "^$rt:" <<<"$out" || true)" >>"$RESULTS"
	done
	# Clear them so the next scenario starts clean.
	inner_cleanup_containers
}

# One hyperfine call per round: one run of each runtime's command, in rotated order.
# $1 scenario, $2 round; then the command per runtime comes from cmd_for_$1.
hyperfine_rounds() { # scenario
	local scen=$1 r rt json="$WORK/hyperfine.json"
	local -a order cmds
	for ((r = 0; r < WARMUP + RUNS; r++)); do
		read -ra order <<<"$(rotated "$r")"
		cmds=()
		for rt in "${order[@]}"; do cmds+=("$("cmd_for_$scen" "$rt")"); done
		if ! hyperfine -N --runs 1 --output=inherit --export-json "$json" "${cmds[@]}" \
			>>"$WORK/hyperfine.log" 2>&1; then
			bench_die "hyperfine failed in scenario $scen, round $r; its log ($WORK/hyperfine.log) ends with: $(tail -n 5 "$WORK/hyperfine.log")"
		fi
		((r < WARMUP)) && continue
		local i=0 t
		for t in $(jq -r '.results[].times[0]' "$json"); do
			printf '%s\t%s\t%s\n' "$scen" "${order[i]}" "$(awk -v t="$t" 'BEGIN{printf "%.6f", t*1000}')" >>"$RESULTS"
			i=$((i + 1))
		done
		[ "$i" = "${#order[@]}" ] || bench_die "hyperfine reported $i results for ${#order[@]} commands"
	done
}

cmd_for_run() { echo "$(bench_rt "$1") run --bundle $BUNDLES/$TAG-run-$1 $TAG-run-$1"; }
cmd_for_exec() { echo "$(bench_rt "$1") exec $TAG-exec-$1 /bin/true"; }

scenario_run() {
	local rt
	for rt in $RUNTIMES; do bench_bundle "$TAG-run-$rt" "$CG_PARENT" /bin/true; done
	hyperfine_rounds run
	check_leftovers run "$(spec_single run)"
}

scenario_csd() {
	local rt spec
	for rt in $RUNTIMES; do bench_bundle "$TAG-csd-$rt" "$CG_PARENT" /bin/true; done
	spec=$(spec_single csd)
	"$PY" "$HERE/bench.py" csd --spec "$spec" --runtimes "$RT_CSV" --log "$LOG" \
		--out "$RESULTS" --runs "$RUNS" --warmup "$WARMUP" || bench_die "scenario csd failed (log: $LOG)"
	check_leftovers csd "$spec"
}

scenario_exec() {
	local rt
	for rt in $RUNTIMES; do
		bench_bundle "$TAG-exec-$rt" "$CG_PARENT" sleep 3600
		# shellcheck disable=SC2046
		$(bench_rt "$rt") create --bundle "$BUNDLES/$TAG-exec-$rt" "$TAG-exec-$rt" </dev/null >/dev/null 2>>"$LOG" ||
			bench_die "$rt create for the exec scenario failed: $(tail -n 3 "$LOG")"
		$(bench_rt "$rt") start "$TAG-exec-$rt" 2>>"$LOG" || bench_die "$rt start for the exec scenario failed: $(tail -n 3 "$LOG")"
	done
	hyperfine_rounds exec
	for rt in $RUNTIMES; do
		$(bench_rt "$rt") delete --force "$TAG-exec-$rt" 2>>"$LOG" || bench_die "$rt delete --force $TAG-exec-$rt failed: $(tail -n 3 "$LOG")"
	done
	check_leftovers exec "$(spec_single exec)"
}

scenario_rss() {
	local rt r kib
	for rt in $RUNTIMES; do bench_bundle "$TAG-rss-$rt" "$CG_PARENT" /bin/true; done
	for ((r = 0; r < WARMUP + RUNS; r++)); do
		for rt in $(rotated "$r"); do
			# shellcheck disable=SC2046
			/usr/bin/time -f %M -o "$WORK/rss.txt" $(bench_rt "$rt") run --bundle "$BUNDLES/$TAG-rss-$rt" "$TAG-rss-$rt" \
				</dev/null >/dev/null 2>>"$LOG" || bench_die "$rt run under /usr/bin/time failed: $(tail -n 3 "$LOG")"
			kib=$(tail -n 1 "$WORK/rss.txt")
			[[ $kib =~ ^[0-9]+$ ]] || bench_die "/usr/bin/time printed no peak RSS: $(cat "$WORK/rss.txt")"
			((r < WARMUP)) || printf 'rss\t%s\t%s\n' "$rt" "$kib" >>"$RESULTS"
		done
	done
	check_leftovers rss "$(spec_single rss)"
}

scenario_many() {
	local rt i id spec out='{}'
	bench_log "making $N bundles per runtime for the $N-container scenario"
	for rt in $RUNTIMES; do
		local ids=() bundles=() parent="$CG_PARENT/$TAG-many-$rt"
		for ((i = 1; i <= N; i++)); do
			id=$(printf '%s-m%04d-%s' "$TAG" "$i" "$rt")
			bench_bundle "$id" "$parent" sleep 3600
			bundles+=("$BUNDLES/$id")
			ids+=("$id")
		done
		out=$(jq --arg rt "$rt" --arg cmd "$(bench_rt "$rt")" --arg root "$STATE/$rt" --arg cg "$parent" \
			--argjson ids "$(jq -cn '$ARGS.positional' --args -- "${ids[@]}")" \
			--argjson bundles "$(jq -cn '$ARGS.positional' --args -- "${bundles[@]}")" \
			'.[$rt] = {cmd: ($cmd | split(" ")), state_root: $root, ids: $ids, bundles: $bundles, cgroup_parent: $cg}' <<<"$out")
	done
	spec=$WORK/spec-many.json
	echo "$out" >"$spec"
	"$PY" "$HERE/bench.py" many --spec "$spec" --runtimes "$RT_CSV" --log "$LOG" --out "$RESULTS" \
		--n "$N" --rounds "$MANY_ROUNDS" --work "$WORK" --cgroup-parent "$CG_PARENT" ||
		bench_die "scenario many failed (log: $LOG)"
	check_leftovers many "$spec"
}

scenario_size() {
	local rt
	for rt in $RUNTIMES; do printf 'size\t%s\t%s\n' "$rt" "$(stat -L -c %s "$(bench_binary "$rt")")" >>"$RESULTS"; done
}

# Deletes every container left in the runtimes' state roots (a failed scenario).
inner_cleanup_containers() {
	local rt id
	for rt in $RUNTIMES; do
		[ -d "$STATE/$rt" ] || continue
		for id in "$STATE/$rt"/*; do
			[ -e "$id" ] || continue
			id=${id##*/}
			$(bench_rt "$rt") delete --force "$id" </dev/null >/dev/null 2>>"$LOG" ||
				bench_log "warning: $rt delete --force $id failed"
		done
	done
}

inner_cleanup() {
	local rc=$?
	inner_cleanup_containers
	local h d
	for h in /sys/fs/cgroup/*; do
		[ -d "$h/$CG_PARENT" ] || continue
		for d in "$h/$CG_PARENT/$TAG"*; do
			[ -d "$d" ] || continue
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || bench_log "warning: could not remove cgroup $d"
		done
		rmdir "$h/$CG_PARENT" 2>/dev/null || true
	done
	exit "$rc"
}

# Every runtime runs /bin/true once in this namespace before anything is measured.
check_runtimes() {
	local rt
	for rt in $RUNTIMES; do
		bench_bundle "$TAG-check-$rt" "$CG_PARENT" /bin/true
		# shellcheck disable=SC2046
		if ! $(bench_rt "$rt") run --bundle "$BUNDLES/$TAG-check-$rt" "$TAG-check-$rt" </dev/null >/dev/null 2>"$WORK/check.err"; then
			bench_die "$rt cannot run a container in the namespace: $(cat "$WORK/check.err")"
		fi
	done
	check_leftovers check "$(spec_single check)"
	bench_log "all of $RUNTIMES run /bin/true in the namespace"
}

inner() {
	trap inner_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_ns_mount_cgroups
	check_runtimes
	local s
	for s in $SCENARIOS; do
		bench_log "scenario $s"
		"scenario_$s"
	done
}

# ---- outside -------------------------------------------------------------------------

outer_cleanup() {
	local rc=$?
	bench_outer_cleanup "${V2CHILD:-}" "$CG_PARENT" "$TAG"
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		if [ "${BENCH_KEEP:-}" = 1 ]; then bench_log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
	fi
	exit "$rc"
}

check_settings() {
	local v
	for v in RUNS WARMUP N MANY_ROUNDS; do
		[[ ${!v} =~ ^[0-9]+$ ]] || bench_die "BENCH_$v must be a whole number, got '${!v}'"
	done
	((RUNS >= 1)) || bench_die "BENCH_RUNS must be at least 1"
	((N >= 2)) || bench_die "BENCH_N must be at least 2"
	((MANY_ROUNDS >= 1)) || bench_die "BENCH_MANY_ROUNDS must be at least 1"
	[[ " $RUNTIMES " == *" kraal "* ]] || bench_die "BENCH_RUNTIMES must include kraal (the ratios are kraal's), got '$RUNTIMES'"
	local rt s
	for rt in $RUNTIMES; do
		case $rt in kraal | crun | runc) ;; *) bench_die "unknown runtime '$rt' in BENCH_RUNTIMES (kraal, crun, runc)" ;; esac
	done
	for s in $SCENARIOS; do
		declare -F "scenario_$s" >/dev/null || bench_die "unknown scenario '$s' in BENCH_SCENARIOS"
	done
	[[ $CG_PARENT =~ ^[A-Za-z0-9._-]+$ ]] || bench_die "BENCH_CGROUP_PARENT must be one path component, got '$CG_PARENT'"
}

write_meta() { # file
	local rt versions='{}'
	for rt in $RUNTIMES; do versions=$(jq --arg rt "$rt" --arg v "$(bench_rt_version "$rt")" '.[$rt] = $v' <<<"$versions"); done
	local note=
	((RUNS >= 30)) || note="preliminary: $RUNS runs per figure (the issue asks for at least 30)"
	jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg kernel "$(uname -r)" \
		--arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" --arg ncpu "$(nproc)" \
		--arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson versions "$versions" \
		--argjson runtimes "$(jq -cn '$ARGS.positional' --args -- "${RT_ARR[@]}")" \
		--arg layout "$(bench_cgroup_layout)" --argjson runs "$RUNS" --argjson warmup "$WARMUP" \
		--argjson n "$N" --argjson rounds "$MANY_ROUNDS" --arg note "$note" \
		'{date: $date, kernel: $kernel, cpu: $cpu, ncpu: $ncpu, load: $load, versions: $versions,
		  runtimes: $runtimes, layout: $layout, runs: $runs, warmup: $warmup, many_n: $n,
		  many_rounds: $rounds, note: $note}' >"$1"
}

outer() {
	[ "$(id -u)" = 0 ] || bench_die "run as root (containers, cgroups and namespaces)"
	check_settings
	bench_need_common
	bench_need hyperfine hyperfine
	bench_need /usr/bin/time time
	TAG=b$$
	V2CHILD=
	trap outer_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_prepare_work bench results.tsv
	bench_log "measuring $RUNTIMES: $RUNS runs per figure after $WARMUP warm-up rounds; scenarios: $SCENARIOS"
	export RUNS WARMUP N MANY_ROUNDS SCENARIOS RUNTIMES CG_PARENT TAG WORK STATE BUNDLES RESULTS LOG \
		KRAAL KRAAL_COMMIT BASE_BUNDLE PY
	local rc=0
	(
		# The namespace's cgroup root is the cgroup its first process is in.
		if [ -n "$V2CHILD" ]; then echo "$BASHPID" >"$V2CHILD/cgroup.procs"; fi
		exec unshare --mount --cgroup --propagation private -- bash "$HERE/run.sh" --inner
	) || rc=$?
	[ "$rc" = 0 ] || bench_die "the measurement failed (exit $rc); runtime messages are in $LOG (BENCH_KEEP=1 keeps it)"
	local doc=()
	[ "$DOC" = - ] || doc=(--doc "$DOC")
	"$PY" "$HERE/bench.py" report --results "$RESULTS" --meta "$WORK/meta.json" "${doc[@]}" ||
		bench_die "writing the report failed"
	[ "$DOC" = - ] || bench_log "table written to $DOC"
}

if [ "${1:-}" = --inner ]; then inner; else outer; fi
