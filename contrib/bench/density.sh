#!/usr/bin/env bash
# Density benchmark: N idle containers per runtime, created and started one after
# another below one common parent cgroup, measured while all of them run, then deleted
# one after another and checked for leftovers. Writes the table into
# docs/performance.md (between its bench:density markers) and to stdout.
#
#   contrib/bench/density.sh                  # N = 100, 500 and 1000 (about 15-25 minutes)
#   contrib/bench/density.sh 20               # a quick end-to-end check
#
# For every N the runtimes run one at a time (the order rotates with N so each goes
# first equally often); per run:
#   - `create` + `start` of each container (busybox `sleep 100000` from one shared
#     rootfs, its own config with cgroupsPath TOP/<run>/<id>), each call timed alone;
#   - while all run: the growth of the common parent's v1 memory.usage_in_bytes, the
#     processes of the runtime's binary still alive (no per-container daemon) and
#     their RSS, and the number of container processes running;
#   - `delete --force` of each, timed; then no state entry, cgroup below the parent,
#     mount or process of the run may remain.
#
# Environment: DENSITY_RUNTIMES ("kraal crun runc"), BENCH_DOC (docs/performance.md;
# "-" prints only), BENCH_KEEP=1 keeps the work directory (per-container times in
# results.jsonl, the runtimes' messages in runtimes.log), DENSITY_CGROUP_PARENT
# (kraal-density: the first component of every cgroupsPath), DENSITY_TIMEOUT (120:
# seconds one runtime call may take), DENSITY_PAUSE (5: seconds between runs, for the
# kernel to finish tearing the last run's namespaces down).
#
# Everything runs inside `unshare --mount --cgroup --propagation private` with the
# cgroup hierarchies mounted again, as run.sh does (see lib.sh for why crun needs it).
set -euo pipefail

BENCH_PROG=density.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$HERE/lib.sh"

RUNTIMES=${DENSITY_RUNTIMES:-kraal crun runc}
DOC=${BENCH_DOC:-$REPO/docs/performance.md}
CG_TOP=${DENSITY_CGROUP_PARENT:-kraal-density}
TIMEOUT=${DENSITY_TIMEOUT:-120}
PAUSE=${DENSITY_PAUSE:-5}
IDLE_ARGS="sleep 100000"

usage() {
	echo "usage: $BENCH_PROG [N...]   (default: 100 500 1000)" >&2
	echo "  starts N idle containers with each of \$DENSITY_RUNTIMES, measures, deletes them" >&2
	exit 2
}

# ---- inside the namespace ----------------------------------------------------------

# The runtimes in order $1, so each goes first equally often.
rotated() { # index
	local -a r
	read -ra r <<<"$RUNTIMES"
	local k=$(($1 % ${#r[@]}))
	echo "${r[@]:k}" "${r[@]:0:k}"
}

# One (N, runtime) run, by bench.py; its JSON line goes to $RESULTS.
density_run() { # n runtime
	local n=$1 rt=$2
	local id=$TAG-$n-$rt
	mkdir -p "$STATE/$rt"
	"$PY" "$HERE/bench.py" density --name "$rt" \
		--command "$(bench_rt "$rt" | jq -Rc 'split(" ")')" --binary "$(bench_binary "$rt")" \
		--state-root "$STATE/$rt" --n "$n" --parent "$CG_TOP/$id" --id-prefix "$id" \
		--base-config "$BASE_BUNDLE/config.json" --rootfs "$BASE_BUNDLE/rootfs" \
		--bundles "$BUNDLES/$id" --args "$IDLE_ARGS" --work "$WORK" --log "$LOG" \
		--out "$RESULTS" --timeout "$TIMEOUT" ||
		bench_die "the run of $n $rt containers failed (runtime messages: $LOG)"
	# bench.py counted what the runtime left and deleted it; an entry `delete --force`
	# could not remove is removed here so the next run starts with an empty root.
	if ! rmdir "$STATE/$rt" 2>/dev/null; then
		bench_log "warning: $STATE/$rt still holds $(find "$STATE/$rt" -mindepth 1 -maxdepth 1 | wc -l) entries after the run of $n $rt containers: removed"
		rm -rf "${STATE:?}/$rt"
	fi
}

# Deletes the containers still in the state roots, ends the processes still in the
# run's cgroups (the containers this script started; by PID), and removes the cgroups
# this script made. The namespace's mounts go with the namespace.
inner_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ "$rc" = 0 ] || bench_log "stopped (exit $rc): deleting the containers and cgroups left"
	local rt e h d pid procs
	for rt in $RUNTIMES; do
		[ -d "$STATE/$rt" ] || continue
		for e in "$STATE/$rt"/*; do
			[ -e "$e" ] || continue
			# shellcheck disable=SC2046 # the command line is words
			timeout "$TIMEOUT" $(bench_rt "$rt") delete --force "${e##*/}" </dev/null >/dev/null 2>>"$LOG" ||
				bench_log "warning: $rt delete --force ${e##*/} failed"
		done
	done
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		procs=$(find /sys/fs/cgroup/*/"$CG_TOP"/"$TAG"-* -name cgroup.procs -exec cat {} + 2>/dev/null || true)
		[ -z "$procs" ] && break
		for pid in $procs; do kill -KILL "$pid" 2>/dev/null || true; done
		sleep 0.2
	done
	for h in /sys/fs/cgroup/*; do
		[ -L "$h" ] && continue
		[ -d "$h/$CG_TOP" ] || continue
		for d in "$h/$CG_TOP/$TAG"-*; do
			[ -d "$d" ] || continue
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || bench_log "warning: could not remove cgroup $d"
		done
		rmdir "$h/$CG_TOP" 2>/dev/null || true
	done
	exit "$rc"
}

inner() {
	trap inner_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_ns_mount_cgroups
	local -a ns
	read -ra ns <<<"$NS"
	local total=$((${#ns[@]} * $(wc -w <<<"$RUNTIMES"))) done=0 i n rt
	for ((i = 0; i < ${#ns[@]}; i++)); do
		n=${ns[i]}
		for rt in $(rotated "$i"); do
			((done > 0)) && sleep "$PAUSE"
			done=$((done + 1))
			bench_log "run $done/$total: $n containers with $rt"
			density_run "$n" "$rt"
		done
	done
}

# ---- outside -------------------------------------------------------------------------

outer_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	bench_outer_cleanup "${V2CHILD:-}" "$CG_TOP" "$TAG"
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		if [ "${BENCH_KEEP:-}" = 1 ]; then bench_log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
	fi
	exit "$rc"
}

check_settings() { # N...
	local n rt max=0
	for n in "$@"; do
		[[ $n =~ ^[1-9][0-9]*$ ]] || bench_die "N must be a whole number of at least 2, got '$n'"
		((n >= 2)) || bench_die "N must be at least 2, got $n"
		((n > max)) && max=$n
	done
	[ -n "$RUNTIMES" ] || bench_die "DENSITY_RUNTIMES is empty"
	for rt in $RUNTIMES; do
		case $rt in kraal | crun | runc) ;; *) bench_die "unknown runtime '$rt' in DENSITY_RUNTIMES (kraal, crun, runc)" ;; esac
	done
	[[ $CG_TOP =~ ^[A-Za-z0-9._-]+$ ]] || bench_die "DENSITY_CGROUP_PARENT must be one path component, got '$CG_TOP'"
	[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || bench_die "DENSITY_TIMEOUT must be a positive whole number, got '$TIMEOUT'"
	[[ $PAUSE =~ ^[0-9]+$ ]] || bench_die "DENSITY_PAUSE must be a whole number, got '$PAUSE'"
	# Room for the largest run: one process per container, plus the runtimes' own
	# processes while they work, plus the machine's other processes.
	local pid_max threads_max used
	pid_max=$(cat /proc/sys/kernel/pid_max)
	threads_max=$(cat /proc/sys/kernel/threads-max)
	used=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
	((used + max + 200 <= pid_max)) ||
		bench_die "$max containers need $max PIDs: pid_max is $pid_max and $used are in use"
	((used + max + 200 <= threads_max)) ||
		bench_die "$max containers need $max tasks: threads-max is $threads_max and $used are in use"
	local pids
	pids=$(bench_host_cgroup_dir /sys/fs/cgroup/pids 2>/dev/null || true)
	if [ -n "$pids" ] && [ -r "$pids/pids.max" ]; then
		local lim cur
		lim=$(cat "$pids/pids.max")
		cur=$(cat "$pids/pids.current")
		[ "$lim" = max ] || ((cur + max + 200 <= lim)) ||
			bench_die "$max containers do not fit in this shell's pids cgroup ($pids: $cur of $lim used)"
	fi
	local avail
	avail=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
	# A few MiB per idle container is plenty (a kernel stack, namespaces, page tables).
	((avail > max * 4 + 512)) || bench_die "$max containers need about $((max * 4)) MiB; $avail MiB available"
}

write_meta() { # file
	local rt versions='{}'
	for rt in $RUNTIMES; do versions=$(jq --arg rt "$rt" --arg v "$(bench_rt_version "$rt")" '.[$rt] = $v' <<<"$versions"); done
	local -a rts ns
	read -ra rts <<<"$RUNTIMES"
	read -ra ns <<<"$NS"
	jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg kernel "$(uname -r)" \
		--arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" --arg ncpu "$(nproc)" \
		--arg mem "$(awk '/^MemTotal:/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
		--arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson versions "$versions" \
		--argjson runtimes "$(jq -cn '$ARGS.positional' --args -- "${rts[@]}")" \
		--argjson ns "$(jq -cn '$ARGS.positional | map(tonumber)' --args -- "${ns[@]}")" \
		--arg layout "$(bench_cgroup_layout)" --arg pid_max "$(cat /proc/sys/kernel/pid_max)" \
		--arg nofile "$(ulimit -Sn)/$(ulimit -Hn)" --arg args "$IDLE_ARGS" \
		'{date: $date, kernel: $kernel, cpu: $cpu, ncpu: $ncpu, mem_gib: $mem, load: $load,
		  versions: $versions, runtimes: $runtimes, ns: $ns, layout: $layout, pid_max: $pid_max,
		  nofile: $nofile, args: $args}' >"$1"
}

outer() {
	case ${1:-} in -h | --help) usage ;; -*) echo "$BENCH_PROG: unknown option $1" >&2 && usage ;; esac
	[ $# -gt 0 ] || set -- 100 500 1000
	[ "$(id -u)" = 0 ] || bench_die "run as root (containers, cgroups and namespaces)"
	check_settings "$@"
	NS="$*"
	bench_need_common
	TAG=d$$
	V2CHILD=
	trap outer_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_prepare_work density results.jsonl
	bench_log "density of $RUNTIMES with N = $NS (work directory $WORK)"
	export RUNTIMES NS CG_TOP TIMEOUT PAUSE IDLE_ARGS TAG WORK STATE BUNDLES RESULTS LOG \
		KRAAL KRAAL_COMMIT BASE_BUNDLE PY
	local rc=0 t0=$SECONDS
	(
		# The namespace's cgroup root is the cgroup its first process is in.
		if [ -n "$V2CHILD" ]; then echo "$BASHPID" >"$V2CHILD/cgroup.procs"; fi
		exec unshare --mount --cgroup --propagation private -- bash "$HERE/density.sh" --inner
	) || rc=$?
	[ "$rc" = 0 ] || bench_die "the measurement failed (exit $rc); runtime messages are in $LOG (BENCH_KEEP=1 keeps it)"
	bench_log "all runs done in $((SECONDS - t0)) s"
	jq --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" '.load_end = $l' "$WORK/meta.json" >"$WORK/meta.json.new" &&
		mv "$WORK/meta.json.new" "$WORK/meta.json"
	local doc=()
	[ "$DOC" = - ] || doc=(--doc "$DOC")
	"$PY" "$HERE/bench.py" density-report --results "$RESULTS" --meta "$WORK/meta.json" "${doc[@]}" ||
		bench_die "writing the report failed"
	[ "$DOC" = - ] || bench_log "table written to $DOC"
}

if [ "${1:-}" = --inner ]; then inner; else outer "$@"; fi
