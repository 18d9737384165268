#!/bin/sh
# shellcheck disable=SC2016,SC2317 # container scripts and jq filters are single-quoted; helpers run via wait_for
# cgroup v2 scenarios, run inside a guest whose only cgroup hierarchy is cgroup2 at
# /sys/fs/cgroup: the same behaviours tests/cgroups.rs checks on the v1 host, against
# v2 files. Limits land in memory.max/cpu.max/cpu.weight/pids.max/..., an OOM kill is
# reported by `events`, pids.max stops a fork bomb, the eBPF device program denies
# (and is replaced on update), update changes a running container, pause/resume use
# cgroup.freeze, kill --all empties the cgroup (also without a pid namespace), ps
# lists it, delete removes it, throttles and device weights reach a real disk,
# checkBeforeUpdate and idle-with-shares behave, and a kraal started from a populated
# cgroup (a systemd service, a login session) still gets working controllers.
#
# With SUITE=v2sd KGLOBAL=--systemd-cgroup (guest/v2sd-cases.sh) the same cases run
# under the systemd driver: `bundle` and `cgdir` (cases-lib.sh) then place each
# container in a transient scope.
#
#   sh v2-cases.sh [CASE...]     (default: every case)
# Output: CASES N, PASS/FAIL/SKIP lines, then "v2: N passed, M failed, K skipped".

SUITE=${SUITE:-v2}
# shellcheck source=cases-lib.sh
. /vm/cases-lib.sh

if ! grep -q " /sys/fs/cgroup cgroup2 " /proc/mounts || grep -q " cgroup " /proc/mounts; then
	echo "FAIL $SUITE:setup: cgroup2 is not alone at /sys/fs/cgroup: $(grep cgroup /proc/mounts)"
	exit 1
fi

# The device a probe container opens: /dev/loop-control (10:237), which the config
# creates, no default rule allows, and opening needs no capability. Only EPERM counts
# as denied: anything else (ENODEV without the loop driver, ...) is reported as is.
DEVPROBE='for d in loop-control null; do
	for m in read write; do
		if [ $m = read ]; then err=$(dd if=/dev/$d of=/dev/null count=0 2>&1 >/dev/null)
		else err=$(dd if=/dev/zero of=/dev/$d count=0 2>&1 >/dev/null); fi
		case "$? $err" in
		0*) echo $d-$m-ok ;;
		*"not permitted"*) echo $d-$m-denied ;;
		*) echo "$d-$m-error($err)" | tr " " _ ;;
		esac
	done
done'

case_limits_land_in_v2_files() {
	bundle lim 'touch /shared/ready; sleep 1000'
	resources '{"memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
		"cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0"},
		"pids": {"limit": 50}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	pid=$(init_pid "$ID")
	d=$(cgdir "$ID")
	in_procs "$d" "$pid" || die "init $pid is not in $d/cgroup.procs: $(cat "$d/cgroup.procs" 2>&1)"
	eq "$(cgdir_of "$pid")" "$d" "the init's cgroup"
	fileq "$d/memory.max" $((64 * MB))
	fileq "$d/memory.low" $((32 * MB))
	# v1's memory+swap 96M with memory 64M is 32M of swap on v2.
	fileq "$d/memory.swap.max" $((32 * MB))
	# crun and runc 1.3+: the quadratic in log2(shares) that maps 1024 to 100.
	fileq "$d/cpu.weight" 59
	fileq "$d/cpu.max" "20000 100000"
	fileq "$d/cpu.max.burst" 1000
	fileq "$d/cpuset.cpus" 0
	fileq "$d/cpuset.mems" 0
	fileq "$d/pids.max" 50

	kok events --stats "$ID"
	[ "$(wc -l <"$OUT")" = 1 ] || die "events --stats printed $(wc -l <"$OUT") lines: $(cat "$OUT")"
	eq "$(jq -r .type "$OUT")" stats "event type"
	eq "$(jq -r .id "$OUT")" "$ID" "event id"
	eq "$(jq -r .data.memory.usage.limit "$OUT")" $((64 * MB)) "events: memory.usage.limit"
	eq "$(jq -r .data.pids.limit "$OUT")" 50 "events: pids.limit"
	[ "$(jq -r '.data.pids.current // 0' "$OUT")" -ge 1 ] || die "events: pids.current < 1: $(cat "$OUT")"
	[ "$(jq -r '.data.cpu.usage.total // 0' "$OUT")" -gt 0 ] || die "events: cpu.usage.total is 0: $(cat "$OUT")"
	# No cpuset stats on v2 (runc reads none from cgroup2 either).
	kok delete --force "$ID"
	[ ! -e "$d" ] || die "$d left after delete --force"
}

case_blkio_weight_uses_the_v2_weight_file() {
	bundle bw 'sleep 1000'
	resources '{"blockIO": {"weight": 500}}'
	k create --bundle "$B" "$ID"
	rc=$?
	d=$(cgdir "$ID")
	if [ -e "$d/io.bfq.weight" ]; then
		[ $rc = 0 ] || die "create failed: $(cat "$ERR")"
		fileq "$d/io.bfq.weight" "default 500"
	elif [ -e "$d/io.weight" ]; then
		[ $rc = 0 ] || die "create failed: $(cat "$ERR")"
		# runc/crun: io.weight = 1 + (blkio - 10) * 9999 / 990.
		fileq "$d/io.weight" "default 4950"
	else
		[ $rc != 0 ] || die "create succeeded although $d has no io weight file"
		grep -q 'linux.resources.blockIO.weight' "$ERR" || die "error does not name the field: $(cat "$ERR")"
		return 0
	fi
	kok delete --force "$ID"
	[ ! -e "$d" ] || die "$d left after delete"
}

case_v1_only_fields_are_refused_cleanly() {
	bundle v1only 'true'
	# disableOOMKiller and swappiness: ignored with a warning, as runc's v2 driver does.
	resources '{"memory": {"limit": 67108864, "disableOOMKiller": true, "swappiness": 10}}'
	kok create --bundle "$B" "$ID"
	grep -q 'memory.disableOOMKiller: ignored' "$ERR" || die "no warning about disableOOMKiller: $(cat "$ERR")"
	grep -q 'memory.swappiness: 10 ignored' "$ERR" || die "no warning about swappiness: $(cat "$ERR")"
	fileq "$PARENT_DIR/$ID/memory.max" 67108864
	kok delete --force "$ID"
	resources '{"memory": {"limit": 67108864, "useHierarchy": false}}'
	kfail useHierarchy create --bundle "$B" "$ID"
	[ ! -e "$PARENT_DIR/$ID" ] || die "refused create left $PARENT_DIR/$ID"
	[ ! -e "$ROOT/$ID" ] || die "refused create left state $ROOT/$ID"
	resources '{"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 100000}}'
	kfail realtime create --bundle "$B" "$ID"
	resources '{"blockIO": {"leafWeight": 300}}'
	kfail leafWeight create --bundle "$B" "$ID"
	# network (net_cls/net_prio): pure v2 has neither; ignored with a warning, as runc.
	resources '{"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 1}]}}'
	kok create --bundle "$B" "$ID"
	grep -q 'linux.resources.network: ignored' "$ERR" || die "no warning about linux.resources.network: $(cat "$ERR")"
	[ -d "$PARENT_DIR/$ID" ] || die "$PARENT_DIR/$ID missing after create"
	kok delete --force "$ID"
	[ ! -e "$PARENT_DIR/$ID" ] || die "$PARENT_DIR/$ID left"
}

case_unified_keys_are_written() {
	bundle uni 'sleep 1000'
	resources '{"unified": {"memory.high": "50331648", "pids.max": "12"}}'
	kok create --bundle "$B" "$ID"
	d=$(cgdir "$ID")
	fileq "$d/memory.high" 50331648
	fileq "$d/pids.max" 12
	kok delete --force "$ID"
	bundle uni2 'true'
	resources '{"unified": {"memory.no_such_file": "1"}}'
	kfail linux.resources.unified create --bundle "$B" "$ID"
	resources '{"unified": {"../memory.max": "1"}}'
	kfail linux.resources.unified create --bundle "$B" "$ID"
	[ ! -e "$PARENT_DIR/$ID" ] || die "refused create left $PARENT_DIR/$ID"
}

case_hugetlb_limits() {
	[ -n "$(ls /sys/kernel/mm/hugepages 2>/dev/null)" ] || skip "no huge page sizes in this kernel"
	bundle huge 'sleep 1000'
	resources '{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}'
	kok create --bundle "$B" "$ID"
	fileq "$PARENT_DIR/$ID/hugetlb.2MB.max" 4194304
	kok delete --force "$ID"
	bundle huge2 'true'
	resources '{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}'
	kfail linux.resources.hugepageLimits create --bundle "$B" "$ID"
}

case_controllers_are_enabled_down_the_tree() {
	bundle ctl 'sleep 1000'
	resources '{"memory": {"limit": 67108864}, "pids": {"limit": 20}, "cpu": {"shares": 1024}}'
	kok create --bundle "$B" "$ID"
	d=$(cgdir "$ID")
	for c in memory pids cpu io cpuset; do
		grep -qw "$c" "$PARENT_DIR/cgroup.subtree_control" ||
			die "$c not enabled in $PARENT_DIR/cgroup.subtree_control: $(cat "$PARENT_DIR/cgroup.subtree_control")"
		grep -qw "$c" "$d/cgroup.controllers" ||
			die "$c not available in $d/cgroup.controllers: $(cat "$d/cgroup.controllers")"
	done
	# The container's own cgroup holds its init: it must not enable controllers.
	eq "$(readf "$d/cgroup.subtree_control")" "" "$d/cgroup.subtree_control"
	kok delete --force "$ID"
}

case_memory_limit_oom_kills_and_events_reports_it() {
	bundle oom 'touch /shared/ready; while [ ! -e /shared/go ]; do sleep 0.05; done;
		tail /dev/zero; echo $? > /shared/hog-status; sleep 1000'
	resources '{"memory": {"limit": 16777216, "swap": 16777216}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$(cgdir "$ID")
	wait_for 60 test -e "$SHARED/ready" || die "the container never got ready"
	fileq "$d/memory.swap.max" 0
	ev=$W/events.out
	timeout 300 "$KRAAL" --root "$ROOT" events --interval 200ms "$ID" >"$ev" 2>"$W/events.err" </dev/null &
	evpid=$!
	register_pid $evpid
	wait_for 60 grep -q '"type":"stats"' "$ev" || die "no stats line from events: $(cat "$ev" "$W/events.err")"
	touch "$SHARED/go"
	wait_for 120 grep -q '"type":"oom"' "$ev" || die "no oom event: $(tail -n 3 "$ev"; cat "$W/events.err"; cat "$d/memory.events")"
	eq "$(grep '"type":"oom"' "$ev" | head -n 1)" "{\"type\":\"oom\",\"id\":\"$ID\"}" "oom event line"
	wait_for 60 test -s "$SHARED/hog-status" || die "the hog never finished"
	eq "$(cat "$SHARED/hog-status")" 137 "the hog's exit status (SIGKILL by the OOM killer)"
	[ "$(keyed "$d/memory.events" oom_kill)" -ge 1 ] || die "memory.events: $(cat "$d/memory.events")"
	k state "$ID"
	eq "$(jq -r .status "$OUT")" running "status after the OOM kill"
	kok events --stats "$ID"
	max=$(jq -r '.data.memory.usage.max // 0' "$OUT")
	if [ "$max" -le $((15 * MB)) ] || [ "$max" -gt $((16 * MB)) ]; then
		die "events: memory.usage.max $max should be near the 16M limit (memory.peak $(readf "$d/memory.peak"))"
	fi
	kok delete --force "$ID"
	# The stream ends by itself once the container is gone.
	n=0
	while kill -0 $evpid 2>/dev/null; do
		n=$((n + 1))
		[ $n -lt 300 ] || die "events did not exit after delete"
		sleep 0.1
	done
	wait $evpid
	eq "$?" 0 "events exit status after delete"
}

# The bomb is a child shell: a shell whose fork fails exits (busybox ash), and the
# init must outlive it, or the container stops (and under the systemd driver its
# scope, now empty, is gone with the files to check).
case_pids_limit_stops_a_fork_bomb() {
	bundle pids 'touch /shared/ready; sh -c "while :; do sleep 1000 & done" & exec sleep 100000'
	resources '{"pids": {"limit": 8}}'
	kok create --bundle "$B" "$ID"
	d=$(cgdir "$ID")
	kok start "$ID"
	wait_for 60 test -e "$SHARED/ready" || die "never ready"
	need_cgdir "$d" "$ID"
	refused() { [ "$(keyed "$d/pids.events" max)" -gt 0 ]; }
	wait_for 60 refused || die "no fork refused: pids.events $(cat "$d/pids.events"), pids.current $(readf "$d/pids.current")"
	[ "$(readf "$d/pids.current")" -le 8 ] || die "pids.current $(readf "$d/pids.current") above the limit"
	fileq "$d/pids.max" 8
	kok ps --format json "$ID"
	[ "$(jq length "$OUT")" -le 8 ] || die "ps lists more than 8: $(cat "$OUT")"
	k state "$ID"
	eq "$(jq -r .status "$OUT")" running "status once the bomb hit the limit"
	kok delete --force "$ID"
}

# probe RULES: runs the device probe with linux.resources.devices = RULES.
probe() {
	bundle "dev$1" "$DEVPROBE"
	edit '.linux.devices = [{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 384}] |
		.linux.resources.devices = $r' --argjson r "$2"
	kok run --bundle "$B" "$ID"
	tr '\n' ' ' <"$OUT"
}

case_device_ebpf_program_denies() {
	out=$(probe 1 '[{"allow": false, "access": "rwm"}]')
	for want in loop-control-read-denied loop-control-write-denied null-read-ok null-write-ok; do
		case " $out " in *" $want "*) ;; *) die "deny all: $want missing from: $out" ;; esac
	done
	out=$(probe 2 '[{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "r"}]')
	for want in loop-control-read-ok loop-control-write-denied null-read-ok; do
		case " $out " in *" $want "*) ;; *) die "allow read: $want missing from: $out" ;; esac
	done
	out=$(probe 3 '[{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "major": 10, "minor": 237, "access": "w"}]')
	for want in loop-control-read-ok loop-control-write-denied null-write-ok; do
		case " $out " in *" $want "*) ;; *) die "deny list: $want missing from: $out" ;; esac
	done
}

case_update_changes_a_running_container() {
	bundle upd 'touch /shared/ready; sleep 1000'
	resources '{"memory": {"limit": 67108864}, "pids": {"limit": 50}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$(cgdir "$ID")
	kok update --memory 128m --memory-swap 256m --pids-limit 30 --cpu-share 256 --cpu-quota 50000 "$ID"
	fileq "$d/memory.max" $((128 * MB))
	fileq "$d/memory.swap.max" $((128 * MB))
	fileq "$d/pids.max" 30
	fileq "$d/cpu.weight" 35
	fileq "$d/cpu.max" "50000 100000"
	# The rest of runc's update flags.
	kok update --cpu-period 50000 --cpu-quota 25000 --cpu-burst 500 --memory-reservation 16m --cpuset-mems 0 "$ID"
	fileq "$d/cpu.max" "25000 50000"
	fileq "$d/cpu.max.burst" 500
	fileq "$d/memory.low" $((16 * MB))
	fileq "$d/cpuset.mems" 0
	# As runc: ignored with a warning.
	kok update --kernel-memory 10m "$ID"
	grep -q -- '--kernel-memory: ignored' "$ERR" || die "no warning for --kernel-memory: $(cat "$ERR")"
	kok update --cpu-idle 1 "$ID"
	fileq "$d/cpu.idle" 1
	kok update --cpu-idle 0 "$ID"
	fileq "$d/cpu.idle" 0
	kok update --cpuset-cpus 1 "$ID"
	fileq "$d/cpuset.cpus" 1
	echo "{\"memory\": {\"limit\": $((96 * MB)), \"swap\": $((96 * MB))}, \"pids\": {\"limit\": 25}}" >"$W/res.json"
	kok update --resources "$W/res.json" "$ID"
	fileq "$d/memory.max" $((96 * MB))
	fileq "$d/memory.swap.max" 0
	fileq "$d/pids.max" 25
	echo '{"pids": {"limit": -1}, "unified": {"memory.high": "83886080"}}' >"$W/res2.json"
	kok update -r "$W/res2.json" "$ID"
	fileq "$d/pids.max" max
	fileq "$d/memory.high" 83886080
	kok events --stats "$ID"
	eq "$(jq -r .data.memory.usage.limit "$OUT")" $((96 * MB)) "events after update: memory limit"
	kfail --memory update --memory lots "$ID"
	echo '{"memory": {"limit": "big"}}' >"$W/bad.json"
	kfail memory.limit update -r "$W/bad.json" "$ID"
	fileq "$d/memory.max" $((96 * MB))
	kfail "does not exist" update --pids-limit 5 no-such-container
	kok delete --force "$ID"
}

# idle and shares together: an idle group refuses a weight (EINVAL) and would not
# use it, so the shares are ignored with a warning (under the systemd driver the
# scope is idle before kraal writes anything); a weight for an idle group is refused
# with the reason (cgroupfs driver, as runc) or ends idle (systemd driver, as
# systemd's CPUWeight does); leaving idle and setting shares in one update works.
case_cpu_idle_with_shares() {
	bundle idle 'sleep 1000'
	resources '{"cpu": {"idle": 1, "shares": 512}}'
	kok create --bundle "$B" "$ID"
	grep -q 'cpu.shares: 512 ignored' "$ERR" || die "no warning about the ignored shares: $(cat "$ERR")"
	d=$(cgdir "$ID")
	fileq "$d/cpu.idle" 1
	if [ -n "$SDDRIVER" ]; then
		# systemd spells idle CPUWeight=idle: a new CPUWeight ends it (systemd
		# writes cpu.idle 0 first), so the update succeeds there.
		kok update --cpu-share 256 "$ID"
		fileq "$d/cpu.idle" 0
		fileq "$d/cpu.weight" 35
		kok update --cpu-idle 1 "$ID"
		fileq "$d/cpu.idle" 1
	else
		kfail SCHED_IDLE update --cpu-share 256 "$ID"
		fileq "$d/cpu.idle" 1
	fi
	kok update --cpu-idle 0 --cpu-share 256 "$ID"
	fileq "$d/cpu.idle" 0
	fileq "$d/cpu.weight" 35
	kok delete --force "$ID"
}

# checkBeforeUpdate: v2 itself would reclaim and OOM-kill below the usage; kraal
# refuses such a limit before writing it (the systemd driver before telling systemd).
case_memory_check_before_update_refuses_a_limit_below_usage() {
	bundle cbu 'dd if=/dev/zero of=/tmp/fill bs=1048576 count=24 2>/dev/null; touch /shared/ready; sleep 1000'
	resources '{"memory": {"limit": 268435456}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$(cgdir "$ID")
	wait_for 60 test -e "$SHARED/ready" || die "the container never filled its /tmp"
	cur=$(readf "$d/memory.current")
	[ "$cur" -ge $((20 * MB)) ] || die "memory.current $cur: 24 MiB of tmpfs should be charged to the container"
	echo "{\"memory\": {\"limit\": $((8 * MB)), \"checkBeforeUpdate\": true}}" >"$W/cbu.json"
	kfail checkBeforeUpdate update -r "$W/cbu.json" "$ID"
	fileq "$d/memory.max" 268435456
	echo "{\"memory\": {\"limit\": $((128 * MB)), \"checkBeforeUpdate\": true}}" >"$W/cbu2.json"
	kok update -r "$W/cbu2.json" "$ID"
	fileq "$d/memory.max" $((128 * MB))
	kok delete --force "$ID"
}

# Throttles and a per-device weight on a real disk (the systemd image attached as
# /dev/vda): io.max and io.weight take the device lines, and reading the disk inside
# the container is held to rbps. io.weight takes a device's weight only once
# blk-iocost runs for that device (io.cost.qos in the root cgroup, off by default);
# before that the kernel says EOPNOTSUPP, which kraal explains.
case_io_throttles_and_device_weight_on_a_real_disk() {
	[ -b /dev/vda ] || die "no /dev/vda in this guest"
	[ "$OWN_CG" = / ] || skip "needs the root cgroup's io.cost.qos (this suite runs in $OWN_CG)"
	mm=$(cat /sys/block/vda/dev)
	maj=${mm%:*}
	min=${mm#*:}
	bundle iodev 'sleep 1000'
	edit '.linux.devices = [{"path": "/dev/vda", "type": "b", "major": $ma, "minor": $mi, "fileMode": 384}] |
		.linux.resources = {"devices": [{"allow": true, "type": "b", "major": $ma, "minor": $mi, "access": "r"}],
			"blockIO": {"weightDevice": [{"major": $ma, "minor": $mi, "weight": 100}],
				"throttleReadBpsDevice": [{"major": $ma, "minor": $mi, "rate": 1048576}],
				"throttleWriteIOPSDevice": [{"major": $ma, "minor": $mi, "rate": 100}]}}' \
		--argjson ma "$maj" --argjson mi "$min"
	qos=$CGROOT/io.cost.qos
	d=$(cgdir "$ID")
	if [ ! -e "$d/io.bfq.weight" ] && ! grep -q "^$mm enable=1" "$qos" 2>/dev/null; then
		kfail "weightDevice[0].weight" create --bundle "$B" "$ID"
		grep -q "device $mm has no weight-based I/O control" "$ERR" || die "the refusal does not say why: $(cat "$ERR")"
		[ ! -e "$d" ] || die "the refused create left $d"
		[ -e "$qos" ] || die "no $qos: this kernel has no blk-iocost"
		echo "$mm enable=1" >"$qos" || die "cannot enable blk-iocost for $mm in $qos"
		echo "  blk-iocost enabled for $mm: $(grep "^$mm " "$qos")"
	fi
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	eq "$(grep "^$mm " "$d/io.max")" "$mm rbps=1048576 wbps=max riops=max wiops=100" "the io.max line of $mm (vda)"
	if [ -e "$d/io.bfq.weight" ]; then
		grep -qx "$mm 100" "$d/io.bfq.weight" || die "no '$mm 100' in io.bfq.weight: $(cat "$d/io.bfq.weight")"
	else
		# runc/crun: io.weight = 1 + (blkio - 10) * 9999 / 990.
		grep -qx "$mm 910" "$d/io.weight" || die "no '$mm 910' in io.weight: $(cat "$d/io.weight")"
	fi
	# The disk's last 3 MiB (nothing has read them yet, so no page cache) at 1 MiB/s
	# take well over 2s however fast the guest is; slowness only adds to it.
	skip=$(($(cat /sys/block/vda/size) / 128 - 48))
	t0=$(up)
	kok exec "$ID" dd if=/dev/vda of=/dev/null bs=65536 count=48 skip=$skip
	took=$(awk -v a="$t0" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')
	echo "  3 MiB read at rbps=1048576 in ${took}s"
	awk -v t="$took" 'BEGIN { exit !(t >= 2) }' || die "reading 3 MiB of vda at rbps=1MiB/s took only ${took}s"
	kok delete --force "$ID"
	# blk-iocost off again (it was off at boot).
	echo "$mm enable=0" >"$qos" 2>/dev/null
}

# The eBPF program is replaced on update (not stacked, not left alone). The default
# devices come after the config's rules (as in runc), so the probe is a device no
# default rule allows.
case_update_replaces_the_device_program() {
	bundle updev 'sleep 1000'
	edit '.linux.devices = [{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 384}] |
		.linux.resources.devices = [{"allow": false, "access": "rwm"},
			{"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rwm"}]'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	open_lc='err=$(dd if=/dev/loop-control of=/dev/null count=0 2>&1 >/dev/null) && echo ok || echo "$err"'
	kok exec "$ID" sh -c "$open_lc"
	eq "$(cat "$OUT")" ok "opening /dev/loop-control before the update"
	echo '{"devices": [{"allow": false, "access": "rwm"}]}' >"$W/dev.json"
	kok update -r "$W/dev.json" "$ID"
	kok exec "$ID" sh -c "$open_lc"
	case $(cat "$OUT") in
	*"not permitted"*) ;;
	*) die "opening /dev/loop-control after the update that removed it: $(cat "$OUT")" ;;
	esac
	kok exec "$ID" sh -c 'echo x >/dev/null'
	echo '{"devices": [{"allow": true, "type": "c", "major": 10, "minor": 237, "access": "r"}]}' >"$W/dev2.json"
	kok update -r "$W/dev2.json" "$ID"
	kok exec "$ID" sh -c "$open_lc"
	eq "$(cat "$OUT")" ok "opening /dev/loop-control after an update that allows it again"
	kok delete --force "$ID"
}

case_pause_freezes_and_resume_continues() {
	bundle pause 'i=0; while :; do i=$((i+1)); echo $i > /shared/c.tmp; mv /shared/c.tmp /shared/counter; sleep 0.05; done'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$(cgdir "$ID")
	counter() { cat "$SHARED/counter" 2>/dev/null || echo 0; }
	started() { [ "$(counter)" -gt 3 ]; }
	wait_for 60 started || die "the counter never started"
	kok pause "$ID"
	k state "$ID"
	eq "$(jq -r .status "$OUT")" paused "status after pause"
	fileq "$d/cgroup.freeze" 1
	eq "$(keyed "$d/cgroup.events" frozen)" 1 "cgroup.events frozen"
	at=$(counter)
	sleep 1
	eq "$(counter)" "$at" "the counter while paused"
	kfail paused pause "$ID"
	kok list --format json
	eq "$(jq -r '.[0].status' "$OUT")" paused "list status"
	kok resume "$ID"
	fileq "$d/cgroup.freeze" 0
	moved() { [ "$(counter)" -gt $((at + 3)) ]; }
	wait_for 60 moved || die "the counter did not move after resume"
	kfail "not paused" resume "$ID"
	kok pause "$ID"
	kok delete --force "$ID"
	[ ! -e "$d" ] || die "$d left after deleting a paused container"
}

case_kill_all_empties_the_cgroup() {
	bundle killall 'touch /shared/ready; while :; do sleep 1000 & sleep 0.02; done'
	resources '{"pids": {"limit": 64}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$(cgdir "$ID")
	wait_for 60 test -e "$SHARED/ready" || die "never ready"
	some() { [ "$(wc -l <"$d/cgroup.procs")" -ge 5 ]; }
	wait_for 60 some || die "the container did not fork"
	kok kill --all "$ID" KILL
	empty() { [ ! -s "$d/cgroup.procs" ]; }
	wait_for 30 empty || die "processes left after kill --all: $(cat "$d/cgroup.procs")"
	unpopulated() { [ "$(keyed "$d/cgroup.events" populated)" = 0 ]; }
	wait_for 30 unpopulated || die "cgroup.events still says populated: $(cat "$d/cgroup.events")"
	stopped() { k state "$ID" && [ "$(jq -r .status "$OUT")" = stopped ]; }
	wait_for 30 stopped || die "not stopped after kill --all: $(cat "$OUT")"
	kok delete "$ID"
	[ ! -e "$d" ] || die "$d left after delete"
}

# Without a pid namespace the init's death takes nobody along: only kill --all can
# empty the cgroup, and one `kill --all KILL` (cgroup.kill where the kernel has it)
# must, also while the container keeps forking.
case_kill_all_without_a_pid_namespace() {
	bundle killnopid 'touch /shared/ready; while :; do sleep 1000 & sleep 0.02; done'
	edit 'del(.linux.namespaces[] | select(.type == "pid"))'
	resources '{"pids": {"limit": 64}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$(cgdir "$ID")
	wait_for 60 test -e "$SHARED/ready" || die "never ready"
	some() { [ "$(wc -l <"$d/cgroup.procs")" -ge 10 ]; }
	wait_for 60 some || die "the container did not fork: $(cat "$d/cgroup.procs")"
	kok kill --all "$ID" KILL
	empty() { [ ! -s "$d/cgroup.procs" ]; }
	wait_for 30 empty || die "processes left after one kill --all: $(cat "$d/cgroup.procs")"
	stopped() { k state "$ID" && [ "$(jq -r .status "$OUT")" = stopped ]; }
	wait_for 30 stopped || die "not stopped after kill --all: $(cat "$OUT")"
	kok delete "$ID"
	[ ! -e "$d" ] || die "$d left after delete"
}

case_ps_lists_the_container_processes() {
	bundle ps 'sleep 1001 & sleep 1002 & touch /shared/ready; wait'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	wait_for 60 test -e "$SHARED/ready" || die "never ready"
	pid=$(init_pid "$ID")
	kok ps --format json "$ID"
	eq "$(jq length "$OUT")" 3 "ps --format json count ($(cat "$OUT"))"
	jq -e --argjson p "$pid" 'index($p) != null' "$OUT" >/dev/null || die "init $pid not in $(cat "$OUT")"
	kok ps "$ID"
	eq "$(wc -l <"$OUT")" 4 "ps table lines ($(cat "$OUT"))"
	if ! grep -q 'sleep 1001' "$OUT" || ! grep -q 'sleep 1002' "$OUT"; then
		die "ps table: $(cat "$OUT")"
	fi
	kok ps "$ID" -o pid,comm
	eq "$(tail -n +2 "$OUT" | wc -l)" 3 "ps -o pid,comm rows ($(cat "$OUT"))"
	kok delete --force "$ID"
}

case_exec_joins_the_container_cgroup() {
	bundle exj 'sleep 1000'
	resources '{"pids": {"limit": 20}}'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	kok exec "$ID" cat /proc/self/cgroup
	eq "$(cat "$OUT")" "0::/" "the exec'd process's /proc/self/cgroup (cgroup namespace)"
	kok exec -d "$ID" sleep 999
	kok ps --format json "$ID"
	eq "$(jq length "$OUT")" 2 "processes after exec -d ($(cat "$OUT"))"
	kok exec "$ID" cat /sys/fs/cgroup/pids.max
	eq "$(cat "$OUT")" 20 "pids.max seen inside the container at /sys/fs/cgroup"
	kok delete --force "$ID"
}

case_delete_removes_the_cgroup() {
	bundle del1 'true'
	resources '{"memory": {"limit": 67108864}}'
	kok run --bundle "$B" "$ID"
	[ ! -e "$PARENT_DIR/$ID" ] || die "$PARENT_DIR/$ID left after run"
	bundle del2 'sleep 1000'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	[ -d "$PARENT_DIR/$ID" ] || die "$PARENT_DIR/$ID missing while running"
	kok delete --force "$ID"
	[ ! -e "$PARENT_DIR/$ID" ] || die "$PARENT_DIR/$ID left after delete --force"
	bundle del3 'mkdir /sys/fs/cgroup/sub && echo $$ > /sys/fs/cgroup/sub/cgroup.procs && touch /shared/ready; sleep 1000'
	edit '(.mounts[] | select(.destination == "/sys/fs/cgroup") | .options) |= map(select(. != "ro"))'
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	wait_for 60 test -e "$SHARED/ready" || die "the container could not make a nested cgroup: $(cat "$W/io/"*.err | tail -n 3)"
	[ -d "$PARENT_DIR/$ID/sub" ] || die "nested cgroup $PARENT_DIR/$ID/sub missing"
	kok delete --force "$ID"
	[ ! -e "$PARENT_DIR/$ID" ] || die "$PARENT_DIR/$ID (with a nested cgroup) left after delete --force"
}

# kraal started from a cgroup that has processes (a systemd service, a login
# session): the kernel forbids enabling controllers below a populated cgroup, so a
# container placed under it has none. runc on v2 resolves a relative path from the
# parent of its own cgroup for this reason (fs2 defaultDirPath).
case_limits_apply_when_kraal_runs_in_a_populated_cgroup() {
	busy=$OWN_DIR/kraal-vm-busy-$$
	mkdir "$busy" || die "mkdir $busy"
	register_cgroup "$busy"
	sleep 1000 &
	sleeper=$!
	register_pid $sleeper
	echo $sleeper >"$busy/cgroup.procs" || die "cannot move a sleeper into $busy"
	bundle busy 'sleep 1000'
	resources '{"memory": {"limit": 67108864}, "pids": {"limit": 20}}'
	edit '.linux.cgroupsPath = "kraal-vm-nested/busy"'
	register_cgroup "$busy/kraal-vm-nested"
	register_cgroup "$OWN_DIR/kraal-vm-nested"
	# kraal runs from inside $busy.
	sh -c 'echo $$ > "$1/cgroup.procs" && exec timeout 60 "$2" --root "$3" create --bundle "$4" busy' \
		sh "$busy" "$KRAAL" "$ROOT" "$B" >"$W/busy.out" 2>"$W/busy.err" </dev/null
	rc=$?
	[ $rc = 0 ] || die "create from the populated cgroup $busy exited $rc: $(cat "$W/busy.err")"
	pid=$(init_pid busy)
	d=$(cgdir_of "$pid")
	echo "  container cgroup: $d"
	fileq "$d/memory.max" $((64 * MB))
	fileq "$d/pids.max" 20
	kok delete --force busy
	[ ! -e "$d" ] || die "$d left after delete"
}

if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046 # one word per case name
	set -- $(all_cases /vm/v2-cases.sh)
fi
run_cases "$@"
suite_end
