#!/bin/sh
# The v2 scenarios the systemd driver must pass too, run in the systemd guest: the
# cases of v2-cases.sh below, each container placed by `--systemd-cgroup` in a
# transient scope (cgroupsPath system.slice:kraal-v2sd:ID, the scope
# kraal-v2sd-ID.scope) instead of a cgroupfs directory, so the limits go through
# systemd's unit properties and kraal's cgroupfs writes together: ps, a fork bomb
# stopped by pids.max, the device program with allow and deny lists (next to
# systemd's own) and its replacement on update, checkBeforeUpdate, idle with shares,
# and kill --all without a pid namespace.
#
#   sh v2sd-cases.sh [CASE...]     (default: the list below)

[ $# -gt 0 ] || set -- ps_lists_the_container_processes pids_limit_stops_a_fork_bomb \
	device_ebpf_program_denies update_replaces_the_device_program \
	memory_check_before_update_refuses_a_limit_below_usage cpu_idle_with_shares \
	kill_all_without_a_pid_namespace
SUITE=v2sd KGLOBAL=--systemd-cgroup exec sh /vm/v2-cases.sh "$@"
