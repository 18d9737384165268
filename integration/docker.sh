#!/usr/bin/env bash
# Docker with kraal registered as an extra runtime (`dockerd --add-runtime
# kraal=PATH`, `docker run --runtime kraal`): run --rm with exit codes, a
# detached container with exec, logs, stop (SIGTERM, and SIGKILL after the
# timeout) and rm, and run -it on a pty.
#
# A private dockerd (data root, exec root, socket, pid file, empty daemon.json,
# its own managed containerd under the exec root), vfs storage, no bridge and
# no iptables rules: the scenarios need no network. Containers get a relative
# cgroup parent under this shell's cgroup.
# shellcheck disable=SC2016,SC2317 # container scripts in single quotes; teardown runs from a trap
SUITE=docker
. "$(dirname "$0")/lib.sh"

select_runtime || setup_failed "no runtime to test"
need_cmd dockerd docker.io || setup_failed "dockerd is missing and could not be installed"
need_cmd script bsdutils || setup_failed "script(1) is missing"
# The CLI that comes with the daemon (another docker may be first in PATH).
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker) || setup_failed "the docker CLI is missing"
say "runtime under test: $RT_NAME ($RT)"

# Docker reserves the name runc for its built-in runtime.
DRT=kraal
[ "$RT_NAME" = kraal ] || DRT=$RT_NAME-compare
IMG=kraal-int/busybox:latest
CGP=$TAG-docker
SOCK=$WORK/docker.sock
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
RUN=(--runtime "$DRT" "${ULIMITS[@]}")
# dockerd makes its libtrust key there whatever --data-root says.
remove_if_new /etc/docker/key.json
remove_if_new /run/containerd
remove_if_new /run/docker

mkdir -p "$WORK"/{data,exec,cli}
echo '{}' >"$WORK/daemon.json"
cat >"$WORK/bin/d" <<EOF
#!/bin/sh
export DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$WORK/cli
exec $DOCKER_CLI "\$@"
EOF
chmod 0755 "$WORK/bin/d"
D=$WORK/bin/d

dockerd --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/exec" \
	-H "unix://$SOCK" --pidfile "$WORK/dockerd.pid" --add-runtime "$DRT=$RT" \
	--storage-driver vfs --bridge none --iptables=false --ip-forward=false --ip-masq=false \
	--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$CGP" \
	>"$WORK/logs/dockerd.log" 2>&1 &
DOCKERD_PID=$!

teardown_docker() {
	local ids
	mapfile -t ids < <(timeout 20 "$D" ps -aq 2>/dev/null)
	[ "${#ids[@]}" = 0 ] || timeout 60 "$D" rm -f "${ids[@]}"
	stop_pid "$DOCKERD_PID" 20
	# Whatever outlived dockerd: its containerd, shims and container inits.
	local f
	for f in "$WORK"/exec/containerd/containerd.pid \
		"$WORK"/exec/containerd/daemon/io.containerd.runtime.v2.task/*/*/init.pid \
		"$WORK"/exec/containerd/daemon/io.containerd.runtime.v2.task/*/*/shim.pid; do
		kill_pidfile "$f"
	done
	umount_under "$WORK"
	cgroup_cleanup "$CGP"
	rmdir /run/containerd/s /run/containerd 2>/dev/null
}
on_exit teardown_docker

wait_socket "$SOCK" 60 "$DOCKERD_PID" || setup_failed "dockerd did not start: $(tail -n 3 "$WORK/logs/dockerd.log" | tr '\n' ' ')"
wait_until 30 "'$D' version" || setup_failed "dockerd does not answer: $(tail -n 3 "$WORK/logs/dockerd.log" | tr '\n' ' ')"

make_rootfs_tar || setup_failed "making the busybox rootfs failed (see $WORK/logs/mkbundle.log)"
timeout 120 "$D" import --change 'CMD ["sh"]' \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	"$WORK/rootfs.tar" "$IMG" >"$WORK/logs/import.log" 2>&1 ||
	setup_failed "docker import failed: $(tail -n 1 "$WORK/logs/import.log")"

TERM_TRAP='trap "echo got-TERM; exit 7" TERM; echo ready; while :; do sleep 0.2; done'
NO_TRAP='echo ready; while :; do sleep 0.2; done'

wait_ready() {
	wait_until 20 "'$D' logs '$1' 2>&1 | grep -q ready" || bail "container $1 never printed ready: $("$D" logs "$1" 2>&1 | tail -n 3 | tr '\n' ' ')"
}

s_run_rm_exit() {
	local c=$TAG-rm
	expect_rc 3 "$D" run --rm --name "$c" "${RUN[@]}" "$IMG" sh -c 'echo hello-from-docker; exit 3'
	contains "$OUT" hello-from-docker "container output"
	expect_rc 0 "$D" ps -aq --filter "name=$c"
	[ -z "$OUT" ] || bail "--rm left the container behind: $OUT"
}

s_detached() {
	local c=$TAG-det start took
	expect_rc 0 "$D" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$TERM_TRAP"
	wait_ready "$c"
	expect_rc 0 "$D" inspect -f '{{.HostConfig.Runtime}} {{.State.Status}}' "$c"
	contains "$OUT" "$DRT running" "runtime and state of the container"
	expect_rc 0 "$D" exec "$c" sh -c 'echo $((6*7))'
	has_line "$OUT" 42 "docker exec output"
	expect_rc 5 "$D" exec "$c" sh -c 'exit 5'
	expect_rc 0 "$D" exec --user 1000:1000 --env FOO=bar --workdir /tmp "$c" sh -c 'echo "$(id -u) $FOO $(pwd)"'
	contains "$OUT" "1000 bar /tmp" "docker exec --user --env --workdir"
	start=$SECONDS
	expect_rc 0 "$D" stop -t 20 "$c"
	[ $((SECONDS - start)) -lt 15 ] || bail "stop waited for the timeout although the container exits on SIGTERM"
	expect_rc 0 "$D" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c"
	contains "$OUT" "exited 7" "state after stop (SIGTERM handler exits 7)"
	expect_rc 0 "$D" logs "$c"
	contains "$OUT" got-TERM "logs after stop"
	expect_rc 0 "$D" rm "$c"
	# A container that ignores SIGTERM: stop sends SIGKILL after the timeout.
	c=$TAG-det9
	expect_rc 0 "$D" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$NO_TRAP"
	wait_ready "$c"
	start=$SECONDS
	expect_rc 0 "$D" stop -t 2 "$c"
	took=$((SECONDS - start))
	[ "$took" -ge 2 ] || bail "stop returned after ${took}s, before the 2s timeout"
	[ "$took" -lt 15 ] || bail "stop took ${took}s: SIGKILL after the timeout did not end the container"
	expect_rc 0 "$D" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c"
	contains "$OUT" "exited 137" "state after stop (SIGKILL)"
	expect_rc 0 "$D" rm "$c"
	expect_rc 0 "$D" ps -aq --filter "name=$TAG-det"
	[ -z "$OUT" ] || bail "docker rm left containers behind: $OUT"
}

s_run_it() {
	local c=$TAG-tty
	pty_shell 4 "$D" run -it --rm --name "$c" "${RUN[@]}" "$IMG" sh
	contains "$OUT" /dev/pts/0 "tty inside the container"
}

# exec -it through a pty, and the exit codes Docker derives from the runtime's error
# text, as with runc: `run` gives 127 for a command that does not exist; Docker 20.10's
# `exec` reports 126 for any process that could not be started.
s_exec_it_missing_command() {
	local c=$TAG-execit
	expect_rc 0 "$D" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$TERM_TRAP"
	wait_ready "$c"
	pty_shell 6 "$D" exec -it "$c" sh
	expect_rc 126 "$D" exec "$c" no-such-command
	expect_rc 126 "$D" exec "$c" /no-such-command
	expect_rc 126 "$D" exec "$c" /etc
	expect_rc 0 "$D" rm -f "$c"
	expect_rc 127 "$D" run --rm "${RUN[@]}" "$IMG" /no-such-command
}

# The daemon knows the runtime under the name given, at our path; and
# contrib/clients/docker-daemon.json says the same as --add-runtime (dockerd
# refuses both at once, and 20.10 has no --validate).
s_runtime_config() {
	expect_rc 0 "$D" info --format '{{json .Runtimes}}'
	printf '%s' "$OUT" | jq -e --arg n "$DRT" --arg p "$RT" '.[$n].path == $p' >/dev/null ||
		bail "docker info does not list runtime $DRT at $RT: $OUT"
	jq -e '.runtimes.kraal.path | type == "string"' "$CRATE/contrib/clients/docker-daemon.json" >/dev/null ||
		bail "contrib/clients/docker-daemon.json has no runtimes.kraal.path"
}

scenario docker-runtime-config s_runtime_config
scenario docker-run-rm-exit-code s_run_rm_exit
scenario docker-detached-exec-stop-rm s_detached
scenario docker-run-it-pty s_run_it
scenario docker-exec-it-and-missing-command s_exec_it_missing_command
finish
