#!/bin/sh
# shellcheck disable=SC2016,SC2317 # container scripts and jq filters are single-quoted; helpers run via wait_for
# Scenarios for the guest where systemd is PID 1 on a pure cgroup v2 tree: the boot
# itself (systemctl is-system-running), the guest's own ability to make transient
# scopes (so a driver failure is kraal's, not the image's), and kraal's systemd
# cgroup driver (`--systemd-cgroup`, cgroupsPath slice:prefix:name): the transient
# scope is created, holds the init, carries the limits as unit properties and in
# the cgroup files, follows update, pause and kill --all, and is gone after delete.
#
#   sh systemd-cases.sh [CASE...]     (default: every case)

SUITE=${SUITE:-systemd}
KGLOBAL=--systemd-cgroup
# shellcheck source=cases-lib.sh
. /vm/cases-lib.sh

SCOPE_ROOT=/sys/fs/cgroup/system.slice

# prop UNIT NAME: one property of a unit, as systemctl shows it.
prop() {
	systemctl show -p "$2" --value "$1" 2>&1
}

propq() {
	eq "$(prop "$1" "$2")" "$3" "$1 property $2"
}

# gone UNIT: systemd no longer knows the unit.
gone() {
	[ "$(systemctl show -p LoadState --value "$1" 2>/dev/null)" = not-found ]
}

# sdbundle NAME SCRIPT CGROUPSPATH: a bundle (see `bundle`) whose cgroupsPath is
# CGROUPSPATH; "null" removes the field.
sdbundle() {
	bundle "$1" "$2" "$3"
}

case_system_is_running() {
	st=$(timeout 300 systemctl is-system-running --wait 2>&1)
	echo "  is-system-running: $st"
	if [ "$st" != running ]; then
		systemctl --failed --no-legend --plain 2>&1 | sed 's/^/  failed unit: /'
		die "systemctl is-system-running says '$st'"
	fi
}

case_env_cgroup2_tree_of_systemd() {
	grep -q " /sys/fs/cgroup cgroup2 " /proc/mounts || die "no cgroup2 at /sys/fs/cgroup: $(grep cgroup /proc/mounts)"
	! grep -q " cgroup " /proc/mounts || die "a v1 hierarchy is mounted: $(grep cgroup /proc/mounts)"
	eq "$(cat /proc/1/cgroup)" "0::/init.scope" "PID 1's cgroup"
	eq "$OWN_CG" "/system.slice/kraal-vm-tests.service" "the suite's own cgroup"
}

# The image can do what the driver asks of systemd (D-Bus, transient scopes,
# resource properties): if this fails, the driver cases below say nothing.
case_env_systemd_run_makes_a_scope() {
	out=$(timeout 120 systemd-run --quiet --scope --unit=kraal-vm-envcheck -p MemoryMax=33554432 -p TasksMax=17 \
		sh -c 'd=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup); cat $d/memory.max $d/pids.max' 2>&1)
	eq "$(echo "$out" | tr '\n' ' ')" "33554432 17 " "memory.max and pids.max inside systemd-run --scope"
}

case_driver_scope_holds_the_init_with_its_limits() {
	sdbundle test 'sleep 1000' 'system.slice:kraal:test'
	resources '{"memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
		"cpu": {"shares": 512, "quota": 20000, "period": 100000},
		"pids": {"limit": 40}}'
	unit=kraal-test.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	eq "$(systemctl is-active $unit)" active "systemctl is-active $unit"
	systemctl status --no-pager $unit >"$W/status" 2>&1
	rc=$?
	sed 's/^/  | /' "$W/status" | head -n 12
	eq "$rc" 0 "systemctl status $unit exit code"
	pid=$(init_pid "$ID")
	d=$SCOPE_ROOT/$unit
	eq "$(cgdir_of "$pid")" "$d" "the init's cgroup"
	propq $unit Slice system.slice
	propq $unit Delegate yes
	propq $unit MemoryMax $((64 * MB))
	propq $unit MemoryLow $((32 * MB))
	propq $unit MemorySwapMax $((32 * MB))
	propq $unit TasksMax 40
	# crun and runc 1.3+: the quadratic in log2(shares) that maps 1024 to 100.
	propq $unit CPUWeight 59
	propq $unit CPUQuotaPerSecUSec 200ms
	fileq "$d/memory.max" $((64 * MB))
	fileq "$d/memory.low" $((32 * MB))
	fileq "$d/memory.swap.max" $((32 * MB))
	fileq "$d/pids.max" 40
	fileq "$d/cpu.weight" 59
	fileq "$d/cpu.max" "20000 100000"
	kok events --stats "$ID"
	eq "$(jq -r .data.memory.usage.limit "$OUT")" $((64 * MB)) "events: memory limit"
	eq "$(jq -r .data.pids.limit "$OUT")" 40 "events: pids limit"
	kok exec "$ID" cat /proc/self/cgroup
	eq "$(cat "$OUT")" "0::/" "/proc/self/cgroup of an exec'd process"
	kok delete --force "$ID"
	wait_for 30 gone $unit || die "$unit still known after delete: $(systemctl show -p LoadState,ActiveState,Result $unit | tr '\n' ' ')"
	[ ! -e "$d" ] || die "$d left after delete"
}

case_driver_update_sets_unit_properties() {
	sdbundle upd 'sleep 1000' 'system.slice:kraal:upd'
	resources '{"memory": {"limit": 67108864}, "pids": {"limit": 50}}'
	unit=kraal-upd.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$SCOPE_ROOT/$unit
	kok update --memory 128m --memory-swap 256m --pids-limit 30 --cpu-share 256 --cpu-quota 50000 "$ID"
	propq $unit MemoryMax $((128 * MB))
	propq $unit MemorySwapMax $((128 * MB))
	propq $unit TasksMax 30
	propq $unit CPUWeight 35
	propq $unit CPUQuotaPerSecUSec 500ms
	fileq "$d/memory.max" $((128 * MB))
	fileq "$d/memory.swap.max" $((128 * MB))
	fileq "$d/pids.max" 30
	fileq "$d/cpu.weight" 35
	fileq "$d/cpu.max" "50000 100000"
	echo '{"pids": {"limit": -1}}' >"$W/res.json"
	kok update -r "$W/res.json" "$ID"
	propq $unit TasksMax infinity
	fileq "$d/pids.max" max
	# systemd re-applies a unit's settings on daemon-reload: the limits must survive.
	timeout 120 systemctl daemon-reload || die "daemon-reload failed"
	fileq "$d/memory.max" $((128 * MB))
	fileq "$d/cpu.max" "50000 100000"
	kok delete --force "$ID"
	wait_for 30 gone $unit || die "$unit still known after delete"
}

case_driver_devices_survive_daemon_reload() {
	sdbundle dev 'sleep 1000' 'system.slice:kraal:dev'
	edit '.linux.devices = [{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 384}] |
		.linux.resources.devices = [{"allow": false, "access": "rwm"}]'
	unit=kraal-dev.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	# Only EPERM counts as denied (ENODEV without the loop driver would not).
	probe='for d in loop-control zero; do
		err=$(dd if=/dev/$d of=/dev/null count=0 2>&1 >/dev/null)
		case "$? $err" in
		0*) echo $d-ok ;;
		*"not permitted"*) echo $d-denied ;;
		*) echo "$d-error($err)" | tr " " _ ;;
		esac
	done'
	kok exec "$ID" sh -c "$probe"
	eq "$(tr '\n' ' ' <"$OUT")" "loop-control-denied zero-ok " "device access before daemon-reload"
	timeout 120 systemctl daemon-reload || die "daemon-reload failed"
	kok exec "$ID" sh -c "$probe"
	eq "$(tr '\n' ' ' <"$OUT")" "loop-control-denied zero-ok " "device access after daemon-reload"
	kok delete --force "$ID"
}

case_driver_pause_resume_and_kill_all() {
	sdbundle pause 'i=0; while :; do i=$((i+1)); echo $i > /shared/c.tmp; mv /shared/c.tmp /shared/counter; sleep 0.05; sleep 1000 & done' 'system.slice:kraal:pause'
	unit=kraal-pause.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	d=$SCOPE_ROOT/$unit
	counter() { cat "$SHARED/counter" 2>/dev/null || echo 0; }
	started() { [ "$(counter)" -gt 3 ]; }
	wait_for 60 started || die "the counter never started"
	kok pause "$ID"
	fileq "$d/cgroup.freeze" 1
	at=$(counter)
	sleep 1
	eq "$(counter)" "$at" "the counter while paused"
	kok resume "$ID"
	moved() { [ "$(counter)" -gt $((at + 3)) ]; }
	wait_for 60 moved || die "the counter did not move after resume"
	kok kill --all "$ID" KILL
	empty() { [ ! -s "$d/cgroup.procs" ]; }
	wait_for 30 empty || die "processes left after kill --all: $(cat "$d/cgroup.procs" 2>&1)"
	stopped() { k state "$ID" && [ "$(jq -r .status "$OUT")" = stopped ]; }
	wait_for 30 stopped || die "not stopped after kill --all: $(cat "$OUT")"
	kok delete "$ID"
	wait_for 30 gone $unit || die "$unit still known after delete: $(systemctl show -p LoadState,ActiveState,Result $unit | tr '\n' ' ')"
}

case_driver_oom_kill_leaves_the_container_running() {
	sdbundle oom 'touch /shared/ready; while [ ! -e /shared/go ]; do sleep 0.05; done;
		tail /dev/zero; echo $? > /shared/hog-status; sleep 1000' 'system.slice:kraal:oom'
	resources '{"memory": {"limit": 16777216, "swap": 16777216}}'
	unit=kraal-oom.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	kok start "$ID"
	wait_for 60 test -e "$SHARED/ready" || die "never ready"
	ev=$W/events.out
	# shellcheck disable=SC2086 # KGLOBAL holds flags
	timeout 300 "$KRAAL" --root "$ROOT" $KGLOBAL events --interval 200ms "$ID" >"$ev" 2>"$W/events.err" </dev/null &
	register_pid $!
	wait_for 60 grep -q '"type":"stats"' "$ev" || die "no stats line from events: $(cat "$ev" "$W/events.err")"
	touch "$SHARED/go"
	wait_for 120 grep -q '"type":"oom"' "$ev" || die "no oom event: $(cat "$W/events.err")"
	wait_for 60 test -s "$SHARED/hog-status" || die "the hog never finished; unit $(prop $unit ActiveState)/$(prop $unit Result)"
	eq "$(cat "$SHARED/hog-status")" 137 "the hog's exit status"
	sleep 2
	k state "$ID"
	eq "$(jq -r .status "$OUT")" running "status 2s after the OOM kill (unit $(prop $unit ActiveState)/$(prop $unit Result), OOMPolicy $(prop $unit OOMPolicy))"
	kok delete --force "$ID"
	wait_for 30 gone $unit || die "$unit still known after delete: $(systemctl show -p LoadState,ActiveState,Result $unit | tr '\n' ' ')"
}

case_driver_container_that_exits_leaves_no_unit() {
	sdbundle ex 'true' 'system.slice:kraal:ex'
	unit=kraal-ex.scope
	register_unit $unit
	kok run --bundle "$B" "$ID"
	wait_for 30 gone $unit || die "$unit still known after run: $(systemctl show -p LoadState,ActiveState,Result $unit | tr '\n' ' ')"
	[ ! -e "$SCOPE_ROOT/$unit" ] || die "$SCOPE_ROOT/$unit left after run"
}

case_driver_default_path_is_kraal_id_scope() {
	sdbundle dflt 'sleep 1000' null
	unit=kraal-dflt.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	pid=$(init_pid "$ID")
	eq "$(cgdir_of "$pid")" "$SCOPE_ROOT/$unit" "the init's cgroup without cgroupsPath"
	kok delete --force "$ID"
	wait_for 30 gone $unit || die "$unit still known after delete"
}

case_driver_custom_slice() {
	sdbundle slc 'sleep 1000' 'kraal-vm.slice:kv:slc'
	unit=kv-slc.scope
	register_unit $unit
	kok create --bundle "$B" "$ID"
	pid=$(init_pid "$ID")
	eq "$(cgdir_of "$pid")" "/sys/fs/cgroup/kraal.slice/kraal-vm.slice/$unit" "the init's cgroup in a nested slice"
	propq $unit Slice kraal-vm.slice
	kok delete --force "$ID"
	wait_for 30 gone $unit || die "$unit still known after delete"
	# Slices outlive their scopes (under runc too); the test's are removed here.
	timeout 60 systemctl stop kraal-vm.slice kraal.slice
}

case_driver_refuses_bad_paths_cleanly() {
	sdbundle bad 'true' 'not-a-systemd-path'
	kfail linux.cgroupsPath create --bundle "$B" "$ID"
	edit '.linux.cgroupsPath = "system.slice:kraal:x.slice"'
	kfail linux.cgroupsPath create --bundle "$B" "$ID"
	edit '.linux.cgroupsPath = "bad/slice:kraal:x"'
	kfail slice create --bundle "$B" "$ID"
	[ ! -e "$ROOT/$ID" ] || die "a refused create left state $ROOT/$ID"
	[ -z "$(ls -d /sys/fs/cgroup/*not-a-systemd-path* 2>/dev/null)" ] || die "a cgroup named after the bad path was made"
}

if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046 # one word per case name
	set -- $(all_cases /vm/systemd-cases.sh)
fi
run_cases "$@"
suite_end
