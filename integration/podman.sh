#!/usr/bin/env bash
# Podman with kraal as its OCI runtime (`podman --runtime PATH`): run --rm with
# exit codes, detached containers (ps, logs, exec, stop, rm), stop's SIGKILL
# after the timeout, run -it on a pty, pause/unpause, kill, memory and pids
# limits, --user, --cap-drop, --read-only, --network none, the default bridge
# network and `podman stats`.
#
# Everything podman keeps lives in a private work dir: storage (vfs), run root,
# the runtime's state root (--runtime-flag root=), tmp dir (file locks),
# network configs, events. Podman reads contrib/clients/containers.conf (with
# our path). Containers and conmon get a cgroup parent below this shell's
# cgroup. The default network is a private bridge network (its own bridge name
# and subnet), removed afterwards with the iptables chains netavark added.
# shellcheck disable=SC2016,SC2317 # container scripts in single quotes; teardown runs from a trap
SUITE=podman
. "$(dirname "$0")/lib.sh"

select_runtime || setup_failed "no runtime to test"
need_cmd podman podman || setup_failed "podman is missing and could not be installed"
need_cmd script bsdutils || setup_failed "script(1) is missing"
say "runtime under test: $RT_NAME ($RT)"

IMG=localhost/kraal-int/busybox:latest
NET=kraalint
BRIDGE=kraalint0
SUBNET_PREFIX=10.213.77
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

# Side effects podman has whatever its flags: the blob info cache and the
# netavark run dir.
remove_if_new /var/lib/containers
remove_if_new /run/containers
# Podman keeps network namespaces in /run/netns (a shared bind mount of itself
# that it makes when missing), whatever its flags.
netns_dir_existed=
[ -d /run/netns ] && netns_dir_existed=1
netns_list() { find /run/netns -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort; }
netns_list >"$WORK/netns.before"
undo_netns() {
	local f
	for f in $(netns_list | comm -13 "$WORK/netns.before" -); do
		case $f in netns-*) umount "/run/netns/$f" 2>/dev/null; rm -f "/run/netns/$f" ;; esac
	done
	if [ -z "$netns_dir_existed" ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
		umount /run/netns 2>/dev/null
		rmdir /run/netns
	fi
}
on_exit undo_netns

# Podman's configuration is contrib/clients/containers.conf with our path, plus what
# keeps podman private (integration/lib.sh), and our own default network.
podman_private_conf "$RT" "default_network = \"$NET\"
"
# The default network: a bridge of our own, so its teardown touches nothing else.
jq -n --arg name "$NET" --arg br "$BRIDGE" --arg p "$SUBNET_PREFIX" --arg id "$(printf '%s' "$WORK" | sha256sum | cut -c1-64)" '{
	name: $name, id: $id, driver: "bridge", network_interface: $br,
	created: "2024-01-01T00:00:00Z",
	subnets: [{subnet: ($p + ".0/24"), gateway: ($p + ".1")}],
	ipv6_enabled: false, internal: false, dns_enabled: false,
	ipam_options: {driver: "host-local"}}' >"$WORK/net/$NET.json"

# pm: podman told the runtime's path (--runtime PATH); pm-conf: podman finding
# it through the configuration (runtime = "kraal").
for w in pm pm-conf; do
	rtflag="--runtime $RT"
	[ "$w" = pm ] || rtflag=
	cat >"$WORK/bin/$w" <<-EOF
		#!/bin/sh
		export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
		exec podman --root $WORK/root --runroot $WORK/runroot --storage-driver vfs $rtflag \\
			--runtime-flag root=$WORK/runtime-root --cgroup-manager cgroupfs --events-backend file \\
			--tmpdir $WORK/tmp --network-config-dir $WORK/net "\$@"
	EOF
	chmod 0755 "$WORK/bin/$w"
done
PM=$WORK/bin/pm

# netavark: remember the host's iptables chains and ip_forward to undo its changes.
ipt_chains() { for tb in filter nat; do iptables -t "$tb" -S 2>/dev/null | awk -v t="$tb" '$1 == "-N" { print t, $2 }'; done; }
ipt_chains >"$WORK/chains.before"
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
undo_network() {
	ip link del "$BRIDGE" 2>/dev/null
	local tb ch
	ipt_chains | grep -vxF -f "$WORK/chains.before" | while read -r tb ch; do
		# Drop the jumps into the chain, then the chain itself.
		iptables -t "$tb" -S | awk -v c="$ch" '$1 == "-A" && $0 ~ ("-j " c "( |$)") { $1 = "-D"; print }' |
			while read -r rule; do eval "iptables -t $tb $rule"; done
		iptables -t "$tb" -F "$ch"
	done
	ipt_chains | grep -vxF -f "$WORK/chains.before" | while read -r tb ch; do iptables -t "$tb" -X "$ch"; done
	echo "$fwd_before" >/proc/sys/net/ipv4/ip_forward
}
on_exit undo_network

teardown_podman() {
	timeout 60 "$PM" rm --all --force --time 0 >/dev/null 2>&1
	# Whatever podman could not remove: its runtime state and processes.
	local pidf
	for pidf in "$WORK"/runroot/vfs-containers/*/userdata/pidfile "$WORK"/runroot/vfs-containers/*/userdata/conmon.pid; do
		kill_pidfile "$pidf"
	done
	umount_under "$WORK"
	cgroup_cleanup "${CGP:-}"
}
on_exit teardown_podman

# Podman reads a container's cgroups at one path for all controllers (stats),
# so the parent must be the same absolute path in every hierarchy.
CGP=$(cgroup_uniform_parent "$TAG-podman") || setup_failed "cannot find this shell's cgroup"
RUN=(--cgroup-parent "$CGP" "${ULIMITS[@]}")

make_rootfs_tar || setup_failed "making the busybox rootfs failed (see $WORK/logs/mkbundle.log)"
timeout 120 "$PM" import --change CMD=/bin/sh --change ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	"$WORK/rootfs.tar" "$IMG" >"$WORK/logs/import.log" 2>&1 ||
	setup_failed "podman import failed: $(tail -n 1 "$WORK/logs/import.log")"

cname() { echo "$TAG-$1"; }

# A container whose init handles SIGTERM (exit 7) and says when it is ready.
TERM_TRAP='trap "echo got-TERM; exit 7" TERM; trap "echo got-USR1; exit 10" USR1; echo ready; while :; do sleep 0.2; done'
# A container whose init has no handler: as pid 1 it ignores SIGTERM.
NO_TRAP='echo ready; while :; do sleep 0.2; done'

wait_ready() { # NAME
	wait_until 20 "'$PM' logs '$1' 2>/dev/null | grep -q ready" || bail "container $1 never printed ready: $("$PM" logs "$1" 2>&1 | tail -n 3 | tr '\n' ' ')"
}

state_of() { "$PM" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }

s_run_rm_exit() {
	local c
	c=$(cname rm)
	expect_rc 3 "$PM" run --rm --name "$c" "${RUN[@]}" "$IMG" sh -c 'echo hello-from-podman; exit 3'
	contains "$OUT" hello-from-podman "container output"
	expect_rc 0 "$PM" ps -a -q --filter "name=$c"
	[ -z "$OUT" ] || bail "--rm left the container behind: $OUT"
}

s_detached() {
	local c start
	c=$(cname det)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$TERM_TRAP"
	wait_ready "$c"
	expect_rc 0 "$PM" ps --filter "name=$c" --format '{{.Names}} {{.Status}}'
	contains "$OUT" "$c Up" "podman ps"
	expect_rc 0 "$PM" logs "$c"
	contains "$OUT" ready "podman logs"
	expect_rc 0 "$PM" exec "$c" sh -c 'echo $((6*7))'
	has_line "$OUT" 42 "podman exec output"
	expect_rc 5 "$PM" exec "$c" sh -c 'exit 5'
	expect_rc 0 "$PM" exec --user 1000:1000 --env FOO=bar --workdir /tmp "$c" sh -c 'echo "$(id -u) $FOO $(pwd)"'
	contains "$OUT" "1000 bar /tmp" "podman exec --user --env --workdir"
	start=$SECONDS
	expect_rc 0 "$PM" stop -t 20 "$c"
	[ $((SECONDS - start)) -lt 15 ] || bail "stop waited for the timeout although the container exits on SIGTERM"
	expect_rc 0 "$PM" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c"
	contains "$OUT" "exited 7" "state after stop (SIGTERM handler exits 7)"
	expect_rc 0 "$PM" logs "$c"
	contains "$OUT" got-TERM "logs after stop"
	expect_rc 0 "$PM" rm "$c"
	expect_rc 0 "$PM" ps -a -q --filter "name=$c"
	[ -z "$OUT" ] || bail "podman rm left the container behind"
}

s_stop_timeout() {
	local c start took
	c=$(cname stopkill)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$NO_TRAP"
	wait_ready "$c"
	start=$SECONDS
	expect_rc 0 "$PM" stop -t 2 "$c"
	took=$((SECONDS - start))
	[ "$took" -ge 2 ] || bail "stop returned after ${took}s, before the 2s timeout: SIGTERM should be ignored by pid 1"
	[ "$took" -lt 15 ] || bail "stop took ${took}s: SIGKILL after the 2s timeout did not end the container"
	expect_rc 0 "$PM" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c"
	contains "$OUT" "exited 137" "state after stop (SIGKILL)"
	expect_rc 0 "$PM" rm "$c"
}

s_run_it() {
	local c
	c=$(cname tty)
	pty_shell 4 "$PM" run -it --rm --name "$c" "${RUN[@]}" "$IMG" sh
	contains "$OUT" /dev/pts/0 "tty inside the container"
}

# exec -it through a pty into a running container, and the exit codes engines derive
# from the runtime's error text: 127 for a command that does not exist (run and
# exec), 126 for one that is not executable.
s_exec_it_missing_command() {
	local c
	c=$(cname execit)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$TERM_TRAP"
	wait_ready "$c"
	pty_shell 6 "$PM" exec -it "$c" sh
	expect_rc 127 "$PM" exec "$c" /no-such-command
	expect_rc 127 "$PM" exec "$c" no-such-command
	expect_rc 126 "$PM" exec "$c" /etc
	expect_rc 0 "$PM" rm -f -t 0 "$c"
	expect_rc 127 "$PM" run --rm "${RUN[@]}" "$IMG" /no-such-command
}

# freezer_state PID: FROZEN/THAWED of the container whose init is PID (v1 or v2).
freezer_state() {
	local pid=$1 path dir
	path=$(awk -F: '$2 ~ /(^|,)freezer(,|$)/ { print $3 }' "/proc/$pid/cgroup")
	if [ -n "$path" ] && dir=$(cgroup_dir freezer "$path"); then
		cat "$dir/freezer.state"
		return
	fi
	path=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
	dir=$(cgroup_dir cgroup2 "$path") || return 1
	if grep -qx 'frozen 1' "$dir/cgroup.events"; then echo FROZEN; else echo THAWED; fi
}

s_pause() {
	local c pid
	c=$(cname pause)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$NO_TRAP"
	wait_ready "$c"
	pid=$("$PM" inspect -f '{{.State.Pid}}' "$c")
	expect_rc 0 "$PM" pause "$c"
	[ "$(state_of "$c")" = paused ] || bail "state after pause is $(state_of "$c"), want paused"
	[ "$(freezer_state "$pid")" = FROZEN ] || bail "freezer state after pause is $(freezer_state "$pid"), want FROZEN"
	expect_rc 0 "$PM" unpause "$c"
	[ "$(state_of "$c")" = running ] || bail "state after unpause is $(state_of "$c"), want running"
	[ "$(freezer_state "$pid")" = THAWED ] || bail "freezer state after unpause is $(freezer_state "$pid"), want THAWED"
	expect_rc 0 "$PM" exec "$c" true
	expect_rc 0 "$PM" rm -f -t 0 "$c"
}

s_kill() {
	local c
	c=$(cname kill)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$TERM_TRAP"
	wait_ready "$c"
	expect_rc 0 "$PM" kill --signal USR1 "$c"
	expect_rc 0 "$PM" wait "$c"
	has_line "$OUT" 10 "exit code after kill -s USR1 (handler exits 10)"
	expect_rc 0 "$PM" rm "$c"
	c=$(cname kill9)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$NO_TRAP"
	wait_ready "$c"
	expect_rc 0 "$PM" kill "$c"
	expect_rc 0 "$PM" wait "$c"
	has_line "$OUT" 137 "exit code after kill (SIGKILL)"
	expect_rc 0 "$PM" rm "$c"
}

s_limits() {
	local c
	# The limits as the container sees them (v1 and v2 file names).
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --memory 64m --pids-limit 50 "$IMG" sh -c '
		cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
		cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'
	has_line "$OUT" 67108864 "memory limit inside the container"
	has_line "$OUT" 50 "pids limit inside the container"
	# And on the host, for a running container.
	c=$(cname limits)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" --memory 64m --pids-limit 50 "$IMG" sh -c "$NO_TRAP"
	wait_ready "$c"
	local id dir
	id=$("$PM" inspect -f '{{.Id}}' "$c")
	if dir=$(cgroup_dir memory "$CGP/libpod-$id"); then
		[ "$(cat "$dir/memory.limit_in_bytes")" = 67108864 ] || bail "host $dir/memory.limit_in_bytes is $(cat "$dir/memory.limit_in_bytes" 2>&1)"
		dir=$(cgroup_dir pids "$CGP/libpod-$id")
		[ "$(cat "$dir/pids.max")" = 50 ] || bail "host $dir/pids.max is $(cat "$dir/pids.max" 2>&1)"
	else # cgroup v2
		dir=$(cgroup_dir cgroup2 "$CGP/libpod-$id")
		[ "$(cat "$dir/memory.max")" = 67108864 ] || bail "host $dir/memory.max is $(cat "$dir/memory.max" 2>&1)"
		[ "$(cat "$dir/pids.max")" = 50 ] || bail "host $dir/pids.max is $(cat "$dir/pids.max" 2>&1)"
	fi
	expect_rc 0 "$PM" rm -f -t 0 "$c"
	# They take effect: the pids limit stops forks, the memory limit OOM-kills.
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --pids-limit 8 "$IMG" sh -c '
		(for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done) 2>&1; echo "loop-status=$?"'
	contains "$OUT" "can't fork" "forking 12 processes under --pids-limit 8"
	expect_rc 137 "$PM" run --rm "${RUN[@]}" --memory 32m --memory-swap 32m "$IMG" sh -c 'head -c 200m /dev/zero | tail'
}

s_user() {
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --user 1000:1000 "$IMG" id
	contains "$OUT" "uid=1000(kraaluser) gid=1000(kraaluser)" "id with --user 1000:1000"
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --user kraaluser "$IMG" sh -c 'id -u; id -G; echo "home=$HOME"'
	has_line "$OUT" 1000 "id -u with --user kraaluser"
	has_line "$OUT" "1000 2000" "groups (id -G) with --user kraaluser, 2000 from /etc/group"
	has_line "$OUT" home=/home/kraaluser "HOME of --user kraaluser"
}

s_cap_drop() {
	local script='touch /tmp/f; if chown 1000 /tmp/f 2>/dev/null; then echo chown-allowed; else echo chown-denied; fi; grep CapEff /proc/self/status'
	expect_rc 0 "$PM" run --rm "${RUN[@]}" "$IMG" sh -c "$script"
	contains "$OUT" chown-allowed "chown with the default capabilities"
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --cap-drop CHOWN "$IMG" sh -c "$script"
	contains "$OUT" chown-denied "chown with --cap-drop CHOWN"
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --cap-drop all "$IMG" grep CapEff /proc/self/status
	contains "$OUT" 0000000000000000 "CapEff with --cap-drop all"
}

s_read_only() {
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --read-only "$IMG" sh -c '
		if touch /rootfile 2>/dev/null; then echo root-writable; else echo root-ro; fi
		touch /tmp/x && echo tmp-writable'
	contains "$OUT" root-ro "writing / with --read-only"
	contains "$OUT" tmp-writable "writing /tmp (podman's tmpfs) with --read-only"
}

s_network_none() {
	expect_rc 0 "$PM" run --rm "${RUN[@]}" --network none "$IMG" ls /sys/class/net
	[ "$(printf '%s' "$OUT" | tr -s ' \n' ' ' | sed 's/ $//')" = lo ] || bail "interfaces with --network none: $OUT, want only lo"
}

s_network_default() {
	expect_rc 0 "$PM" run --rm "${RUN[@]}" "$IMG" sh -c "ip -4 addr show eth0; ping -c 1 -W 3 $SUBNET_PREFIX.1"
	contains "$OUT" "inet $SUBNET_PREFIX." "eth0 address on the default (bridge) network"
	contains "$OUT" "1 packets received" "ping of the bridge gateway"
}

s_stats() {
	local c
	c=$(cname stats)
	expect_rc 0 "$PM" run -d --name "$c" "${RUN[@]}" "$IMG" sh -c "$NO_TRAP"
	wait_ready "$c"
	expect_rc 0 "$PM" stats --no-stream --format '{{.Name}} pids={{.PIDs}} mem={{.MemUsage}}' "$c"
	contains "$OUT" "$c pids=" "podman stats"
	case $OUT in *"pids=0 "* | *"mem=0B"* | *"mem=--"*) bail "podman stats has no data: $OUT" ;; esac
	expect_rc 0 "$PM" rm -f -t 0 "$c"
}

s_config() {
	expect_rc 0 "$WORK/bin/pm-conf" info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}'
	contains "$OUT" "kraal $RT" "podman info with contrib/clients/containers.conf"
	expect_rc 6 "$WORK/bin/pm-conf" run --rm "${RUN[@]}" "$IMG" sh -c 'exit 6'
}

scenario podman-config-snippet s_config
scenario podman-run-rm-exit-code s_run_rm_exit
scenario podman-detached-ps-logs-exec-stop-rm s_detached
scenario podman-stop-timeout-sigkill s_stop_timeout
scenario podman-run-it-pty s_run_it
scenario podman-exec-it-and-missing-command s_exec_it_missing_command
scenario podman-pause-unpause s_pause
scenario podman-kill s_kill
scenario podman-memory-pids-limits s_limits
scenario podman-user s_user
scenario podman-cap-drop s_cap_drop
scenario podman-read-only s_read_only
scenario podman-network-none s_network_none
scenario podman-network-default s_network_default
scenario podman-stats s_stats
finish
