#!/usr/bin/env bash
# containerd (and its runc shim, io.containerd.runc.v2) with kraal as the runc
# binary: `ctr run --runtime io.containerd.runc.v2 --runc-binary PATH`. Runs
# with exit codes, detached tasks with `ctr task exec`, `task ps`, `task kill`
# and `task delete`, pause/resume, metrics, and a task on a pty (-t).
#
# A private containerd: its own config, root, state, socket, opt dir, runc root
# and FIFO dir in the work dir; the CRI plugin is off (no CNI, no pulls). The
# only thing outside the work dir is the shims' socket directory
# /run/containerd/s, which containerd 1.6 does not let us move (removed
# afterwards when we made it).
# shellcheck disable=SC2016,SC2317 # container scripts in single quotes; teardown runs from a trap
SUITE=containerd
. "$(dirname "$0")/lib.sh"

select_runtime || setup_failed "no runtime to test"
need_cmd containerd containerd || setup_failed "containerd is missing and could not be installed"
need_cmd ctr containerd || setup_failed "ctr is missing"
need_cmd script bsdutils || setup_failed "script(1) is missing"
say "runtime under test: $RT_NAME ($RT)"

NS=kraal-int
IMG=docker.io/kraal-int/busybox:latest
CGP=$TAG-containerd
SOCK=$WORK/containerd.sock
remove_if_new /run/containerd

mkdir -p "$WORK"/{root,state,opt,runc-root,fifo}
cat >"$WORK/config.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/opt"
EOF

cat >"$WORK/bin/c" <<EOF
#!/bin/sh
exec ctr --address $SOCK --namespace $NS "\$@"
EOF
chmod 0755 "$WORK/bin/c"
C=$WORK/bin/c
# runf ID: RUNF, how ctr points the runc shim at kraal for container ID.
runf() {
	RUNF=(--runtime io.containerd.runc.v2 --runc-binary "$RT" --runc-root "$WORK/runc-root"
		--cgroup "$CGP/$1" --fifo-dir "$WORK/fifo")
}

containerd --config "$WORK/config.toml" --log-level info >"$WORK/logs/containerd.log" 2>&1 &
CTRD_PID=$!

teardown_containerd() {
	local id
	for id in $(timeout 20 "$C" task ls -q 2>/dev/null); do
		timeout 20 "$C" task kill -s SIGKILL "$id"
		timeout 20 "$C" task delete --force "$id"
	done
	for id in $(timeout 20 "$C" container ls -q 2>/dev/null); do
		timeout 20 "$C" container delete "$id"
	done
	stop_pid "$CTRD_PID" 10
	# Whatever outlived containerd: shims and container inits, by their pid files.
	local f
	for f in "$WORK"/state/io.containerd.runtime.v2.task/*/*/init.pid "$WORK"/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
		kill_pidfile "$f"
	done
	umount_under "$WORK"
	cgroup_cleanup "$CGP"
	# The shims' sockets of this containerd (named after its address).
	rmdir /run/containerd/s /run/containerd 2>/dev/null
}
on_exit teardown_containerd

wait_socket "$SOCK" 30 "$CTRD_PID" || setup_failed "containerd did not start: $(tail -n 3 "$WORK/logs/containerd.log" | tr '\n' ' ')"

make_rootfs_tar || setup_failed "making the busybox rootfs failed (see $WORK/logs/mkbundle.log)"
make_oci_archive "$IMG" "$WORK/image.tar" || setup_failed "building the OCI archive failed"
timeout 120 "$C" image import "$WORK/image.tar" >"$WORK/logs/import.log" 2>&1 ||
	setup_failed "ctr image import failed: $(tail -n 1 "$WORK/logs/import.log")"
timeout 20 "$C" image ls -q | grep -qx "$IMG" || setup_failed "the imported image is not listed as $IMG"

TERM_TRAP='trap "exit 7" TERM; echo ready; while :; do sleep 0.2; done'
NO_TRAP='echo ready; while :; do sleep 0.2; done'

task_status() { "$C" task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
wait_status() { # ID STATUS
	wait_until 20 "[ \"\$(task_status '$1')\" = '$2' ]" || bail "task $1 is $(task_status "$1"), want $2"
}

s_run_exit() {
	local id=$TAG-run
	runf "$id"
	expect_rc 3 "$C" run --rm "${RUNF[@]}" "$IMG" "$id" sh -c 'echo hello-from-ctr; exit 3'
	contains "$OUT" hello-from-ctr "container output"
	"$C" container ls -q | grep -qx "$id" && bail "ctr run --rm left the container behind"
	return 0
}

s_detached() {
	local id=$TAG-det
	runf "$id"
	expect_rc 0 "$C" run -d "${RUNF[@]}" "$IMG" "$id" sh -c "$TERM_TRAP"
	wait_status "$id" RUNNING
	expect_rc 0 "$C" task exec --exec-id e1 "$id" sh -c 'echo $((6*7))'
	has_line "$OUT" 42 "ctr task exec output"
	expect_rc 5 "$C" task exec --exec-id e2 "$id" sh -c 'exit 5'
	expect_rc 0 "$C" task exec --exec-id e3 --user 1000 --cwd /tmp "$id" sh -c 'echo "$(id -u) $(pwd)"'
	contains "$OUT" "1000 /tmp" "ctr task exec --user --cwd"
	expect_rc 0 "$C" task ps "$id"
	contains "$OUT" "$("$C" task ls | awk -v id="$id" '$1 == id { print $2 }')" "ctr task ps lists the init's pid"
	expect_rc 0 "$C" task kill "$id"
	wait_status "$id" STOPPED
	expect_rc 0 "$C" task delete "$id"
	contains "$OUT" "exit code 7" "exit status reported by ctr task delete (SIGTERM handler exits 7)"
	expect_rc 0 "$C" container delete "$id"
	# A task that ignores SIGTERM, ended by SIGKILL.
	id=$TAG-det9
	runf "$id"
	expect_rc 0 "$C" run -d "${RUNF[@]}" "$IMG" "$id" sh -c "$NO_TRAP"
	wait_status "$id" RUNNING
	expect_rc 0 "$C" task kill --signal SIGKILL "$id"
	wait_status "$id" STOPPED
	expect_rc 0 "$C" task delete "$id"
	contains "$OUT" "exit code 137" "exit status reported by ctr task delete after SIGKILL"
	expect_rc 0 "$C" container delete "$id"
}

s_pause() {
	local id=$TAG-pause
	runf "$id"
	expect_rc 0 "$C" run -d "${RUNF[@]}" "$IMG" "$id" sh -c "$NO_TRAP"
	wait_status "$id" RUNNING
	expect_rc 0 "$C" task pause "$id"
	wait_status "$id" PAUSED
	expect_rc 0 "$C" task resume "$id"
	wait_status "$id" RUNNING
	expect_rc 0 "$C" task exec --exec-id after-resume "$id" true
	expect_rc 0 "$C" task kill --signal SIGKILL "$id"
	wait_status "$id" STOPPED
	expect_rc 0 "$C" task delete "$id"
	contains "$OUT" "exit code 137" "exit status reported by ctr task delete after SIGKILL"
	expect_rc 0 "$C" container delete "$id"
}

s_metrics() {
	local id=$TAG-metrics
	runf "$id"
	expect_rc 0 "$C" run -d "${RUNF[@]}" "$IMG" "$id" sh -c "$NO_TRAP"
	wait_status "$id" RUNNING
	expect_rc 0 "$C" task metrics "$id"
	contains "$OUT" "$id" "ctr task metrics header"
	# cgroup v1 names (memory.usage_in_bytes) or v2 (memory.usage).
	local mem pids
	mem=$(printf '%s\n' "$OUT" | awk '$1 == "memory.usage_in_bytes" || $1 == "memory.usage" { print $2 }')
	pids=$(printf '%s\n' "$OUT" | awk '$1 == "pids.current" { print $2 }')
	[ "${mem:-0}" -gt 0 ] || bail "ctr task metrics: no memory usage in $(printf '%s' "$OUT" | tr '\n' ' ' | tr -s ' ' | cut -c1-200)"
	[ "${pids:-0}" -gt 0 ] || bail "ctr task metrics: pids.current is ${pids:-missing}"
	expect_rc 0 "$C" task metrics --format json "$id"
	contains "$OUT" pids "metrics JSON"
	expect_rc 0 "$C" task kill --signal SIGKILL "$id"
	wait_status "$id" STOPPED
	"$C" task delete "$id" >/dev/null
	expect_rc 0 "$C" container delete "$id"
}

s_tty() {
	local id=$TAG-tty
	runf "$id"
	pty_shell 4 "$C" run -t --rm "${RUNF[@]}" "$IMG" "$id" sh
	contains "$OUT" /dev/pts/0 "tty inside the container"
}

# contrib/clients/containerd-config.toml parses, and names the runc shim with
# kraal as its BinaryName (its CRI path needs Kubernetes, not run here).
s_config() {
	sed "s|/usr/local/bin/kraal|$RT|" "$CRATE/contrib/clients/containerd-config.toml" >"$WORK/snippet.toml"
	expect_rc 0 containerd --config "$WORK/snippet.toml" config dump
	local got
	got=$(printf '%s\n' "$OUT" | awk '
		/^ *\[/ { sec = $0; gsub(/^ +| +$/, "", sec) }
		sec == "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kraal]" && $1 == "runtime_type" { print "type=" $3 }
		sec == "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kraal.options]" && $1 == "BinaryName" { print "binary=" $3 }')
	contains "$got" 'type="io.containerd.runc.v2"' "runtime_type of the kraal handler"
	contains "$got" "binary=\"$RT\"" "BinaryName of the kraal handler"
}

scenario containerd-config-snippet s_config
scenario ctr-run-exit-code s_run_exit
scenario ctr-detached-exec-ps-kill-delete s_detached
scenario ctr-pause-resume s_pause
scenario ctr-metrics s_metrics
scenario ctr-run-tty s_tty
finish
