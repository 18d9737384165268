#!/usr/bin/env bash
# Zones: a debootstrap'ed Debian with systemd as PID 1 in a kraal container
# (contrib/zone/zone.sh, docs/zones.md), run directly and through Podman's
# --systemd=always.
#
# Direct zones: zone.sh build (the rootfs cache, $KRAAL_ZONE_CACHE, is shared
# and kept: it is a cache), then zones with a private state root, zone dir,
# bridge (its own name; zone.sh picks an RFC 5737 /24 the host does not use)
# and a cgroup parent below this shell's cgroup. Checked: systemd reaches
# "running", PID 1 is systemd with container=kraal, /run and /run/lock are
# tmpfs, no host filesystem but the configured ones is visible, the httpd
# answers from the host and from another zone, down removes everything, a zone
# that fails to boot is undone.
#
# Podman: the same rootfs imported as an image, run with --systemd=always and
# --network none, with and without -t; podman stop (SIGRTMIN+3) ends it with
# exit code 0 well before the stop timeout. Podman's storage, run root, state
# root, tmp dir and network configs are private (as in podman.sh).
# shellcheck disable=SC2317 # functions run from scenario and from the teardown trap
SUITE=zone
. "$(dirname "$0")/lib.sh"

select_runtime || setup_failed "no runtime to test"
need_cmd jq jq || setup_failed "jq is missing"
need_cmd curl curl || setup_failed "curl is missing"
say "runtime under test: $RT_NAME ($RT)"

ZONE_SH=$CRATE/contrib/zone/zone.sh
ZROOT=$WORK/kraal-root
export KRAAL=$RT
export KRAAL_ZONE_DIR=$WORK/zones
export KRAAL_ZONE_BRIDGE=kzbr${TAG#ki}
KRAAL_ZONE_BRIDGE=${KRAAL_ZONE_BRIDGE:0:15}
export KRAAL_ZONE_BOOT_TIMEOUT=90
ZA=$TAG-web1
ZB=$TAG-web2
# Both zones' cgroups and Podman's go below one parent under this shell's cgroup.
CGP=$(cgroup_uniform_parent "$TAG-zone") || setup_failed "cannot find this shell's cgroup"
ZCG=$CGP/direct
PCG=$CGP/podman

# kz: the runtime with the zones' state root (a command, for expect_rc's timeout).
printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$RT" "$ZROOT" >"$WORK/bin/kz"
chmod 0755 "$WORK/bin/kz"
kz() { "$WORK/bin/kz" "$@"; }
veth_of() { echo "kz$(printf '%s' "$1" | sha256sum | cut -c1-10)"; }

teardown_zones() {
	local z
	for z in "$ZB" "$ZA" "$TAG-bad"; do
		timeout 60 "$ZONE_SH" down "$z" --root "$ZROOT"
	done
	ip link del "$KRAAL_ZONE_BRIDGE" 2>/dev/null
	umount_under "$WORK"
	cgroup_cleanup "$CGP"
}
on_exit teardown_zones

# ---- Podman, private (see podman.sh) ----------------------------------------------

IMG=localhost/kraal-int/zone:latest
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
remove_if_new /var/lib/containers
remove_if_new /run/containers
netns_dir_existed=
[ -d /run/netns ] && netns_dir_existed=1
undo_netns() {
	if [ -z "$netns_dir_existed" ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
		umount /run/netns 2>/dev/null
		rmdir /run/netns
	fi
}
on_exit undo_netns

setup_podman() {
	need_cmd podman podman || return 1
	podman_private_conf "$WORK/bin/pmrt/$RT_NAME"
	# The runtime's state root comes from a wrapper, not --runtime-flag root=:
	# podman's cleanup process (conmon's exit command) drops --runtime-flag and
	# would run `delete --force` against the default root, leaving the
	# container's state and cgroups behind. Same base name: podman keys
	# runtime_supports_json on it.
	mkdir -p "$WORK/bin/pmrt"
	printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$RT" "$WORK/runtime-root" >"$WORK/bin/pmrt/$RT_NAME"
	chmod 0755 "$WORK/bin/pmrt/$RT_NAME"
	cat >"$WORK/bin/pm" <<-EOF
		#!/bin/sh
		export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
		exec podman --root $WORK/root --runroot $WORK/runroot --storage-driver vfs --runtime $WORK/bin/pmrt/$RT_NAME \\
			--cgroup-manager cgroupfs --events-backend file --tmpdir $WORK/tmp --network-config-dir $WORK/net "\$@"
	EOF
	chmod 0755 "$WORK/bin/pm"
}
PM=$WORK/bin/pm
state_of() { "$PM" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }

teardown_podman() {
	[ -x "$PM" ] || return 0
	timeout 60 "$PM" rm --all --force --time 0 >/dev/null 2>&1
	timeout 60 "$PM" rmi --all --force >/dev/null 2>&1
	local pidf
	for pidf in "$WORK"/runroot/vfs-containers/*/userdata/pidfile "$WORK"/runroot/vfs-containers/*/userdata/conmon.pid; do
		kill_pidfile "$pidf"
	done
	umount_under "$WORK"
}
on_exit teardown_podman

# ---- helpers ----------------------------------------------------------------------

# need_rootfs: sets LOWER, the rootfs zone-build made (bails without one).
need_rootfs() {
	[ -s "$WORK/rootfs.path" ] || bail "no rootfs: zone-build failed"
	LOWER=$(cat "$WORK/rootfs.path")
}

# zone_up NAME: zone.sh up with the suite's private state; leaves the address in $WORK/NAME.addr.
zone_up() {
	need_rootfs
	CMD_TIMEOUT=150 expect_rc 0 "$ZONE_SH" up "$1" --rootfs "$LOWER" --root "$ZROOT" --cgroup-parent "$ZCG"
	has_line "$OUT" "state: running" "zone.sh up $1 (systemctl is-system-running)"
	sed -n 's/^address: //p' <<<"$OUT" >"$WORK/$1.addr"
	[ -s "$WORK/$1.addr" ] || bail "zone.sh up printed no address"
}

addr_of() { cat "$WORK/$1.addr" 2>/dev/null || bail "zone $1 has no address (zone-up failed?)"; }
init_pid() { kz state "$1" 2>/dev/null | jq -r '.pid // empty'; }

# cgroup_leftovers CGROUP: cgroup directories below CGROUP (absolute) in every hierarchy.
cgroup_leftovers() {
	local mp own
	while read -r mp _; do
		[ -d "$mp$1" ] && find "$mp$1" -mindepth 1 -type d
	done < <(cgroup_hierarchies)
}

# ---- scenarios ----------------------------------------------------------------------

s_build() {
	local out
	echo "+ zone.sh build"
	# The first build debootstraps (minutes); later ones find the cache.
	out=$(timeout -k 5 1200 "$ZONE_SH" build 2>&1)
	local rc=$?
	printf '%s\n' "$out"
	[ "$rc" = 0 ] || bail "zone.sh build exited $rc: $(printf '%s' "$out" | grep -v '^    ' | tail -n 1)"
	out=$(tail -n 1 <<<"$out")
	[ -x "$out/lib/systemd/systemd" ] || bail "zone.sh build printed '$out', which has no lib/systemd/systemd"
	[ -x "$out/bin/busybox" ] || bail "the rootfs has no busybox"
	echo "$out" >"$WORK/rootfs.path"
}

s_up() {
	local pid
	zone_up "$ZA"
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" systemctl --failed --no-legend --plain
	[ -z "$OUT" ] || bail "failed units in the zone: $OUT"
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" cat /proc/1/comm
	has_line "$OUT" systemd "PID 1 of the zone"
	pid=$(init_pid "$ZA")
	[ -n "$pid" ] || bail "no pid in kraal state $ZA"
	[ "$(readlink "/proc/$pid/exe")" = /usr/lib/systemd/systemd ] || [ "$(readlink "/proc/$pid/exe")" = /lib/systemd/systemd ] ||
		bail "the zone's init runs $(readlink "/proc/$pid/exe"), not systemd"
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" hostname
	has_line "$OUT" "$ZA" "the zone's hostname"
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" systemctl is-active zone-httpd.service dbus.service systemd-journald.service
	[ "$(grep -cx active <<<"$OUT")" = 3 ] || bail "zone-httpd, dbus, journald not all active: $OUT"
	# systemd made its own cgroups inside the zone's cgroup.
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" cat /proc/1/cgroup
	contains "$OUT" "/init.scope" "PID 1's cgroup (systemd moves itself to init.scope)"
}

s_config() {
	local pid mi hostdevs bad a
	pid=$(init_pid "$ZA")
	[ -n "$pid" ] || bail "zone $ZA is not running"
	tr '\0' '\n' <"/proc/$pid/environ" | grep -qx container=kraal || bail "/proc/1/environ of the zone has no container=kraal"
	mi=$(cat "/proc/$pid/mountinfo") || bail "cannot read the zone's mountinfo"
	printf '%s\n' "$mi"
	for m in /run /run/lock /tmp; do
		awk -v m="$m" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' <<<"$mi" | tail -n 1 | grep -qx tmpfs ||
			bail "$m in the zone is not a tmpfs"
	done
	awk '$5 == "/sys/fs/cgroup/systemd" || $5 == "/sys/fs/cgroup" { print $6 }' <<<"$mi" | grep -q '^rw' ||
		bail "the zone's systemd cgroup hierarchy is not mounted read-write"
	# A host filesystem shows up with the host's device number. Allowed: the
	# overlay (the zone's root), the cgroup hierarchies, and device nodes of
	# the host's /dev (at /dev/NAME, or masking a path of linux.maskedPaths).
	hostdevs=$(awk '{ print $3 }' /proc/self/mountinfo | sort -u)
	bad=$(awk -v masked="$(jq -r '.linux.maskedPaths[]?' "$KRAAL_ZONE_DIR/$ZA/config.json" | tr '\n' ' ')" '
		FNR == NR { host[$1] = 1; next }
		{
			for (i = 7; $i != "-"; i++);
			fs = $(i + 1); root = $4; mp = $5
			if (!($3 in host)) next
			if (mp == "/" && fs == "overlay") next
			if (fs == "cgroup" || fs == "cgroup2") next
			if (fs == "devtmpfs" && (mp == "/dev" root || index(" " masked " ", " " mp " "))) next
			print
		}' <(printf '%s\n' "$hostdevs") <(printf '%s\n' "$mi"))
	[ -z "$bad" ] || bail "host filesystems visible in the zone: $(printf '%s' "$bad" | tr '\n' ';' | cut -c1-300)"
	# The zone's only network device besides lo is eth0 with its address, and no route out.
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" busybox ip -4 -o addr show
	a=$(addr_of "$ZA")
	contains "$OUT" "eth0    inet $a/24" "the zone's eth0 address"
	expect_rc 0 "$WORK/bin/kz" exec "$ZA" busybox ip route show
	has_line "$OUT" "${a%.*}.0/24 dev eth0 scope link  src $a " "the zone's on-link route"
	! grep -q '^default' <<<"$OUT" || bail "the zone has a default route: $OUT"
}

s_http() {
	local a
	a=$(addr_of "$ZA")
	expect_rc 0 curl -sS --max-time 10 "http://$a/"
	contains "$OUT" "zone $ZA at $a" "the zone's page fetched from the host"
	ip -o link show "$(veth_of "$ZA")" | grep -q "master $KRAAL_ZONE_BRIDGE" || bail "the zone's veth $(veth_of "$ZA") is not on $KRAAL_ZONE_BRIDGE"
}

s_second() {
	local a b
	zone_up "$ZB"
	a=$(addr_of "$ZA")
	b=$(addr_of "$ZB")
	[ "$a" != "$b" ] || bail "both zones got $a"
	[ "${a%.*}" = "${b%.*}" ] || bail "the zones are on different /24s: $a, $b"
	expect_rc 0 curl -sS --max-time 10 "http://$b/"
	contains "$OUT" "zone $ZB at $b" "the second zone's page fetched from the host"
	# Zone to zone over the bridge.
	expect_rc 0 "$WORK/bin/kz" exec "$ZB" busybox wget -qO- "http://$a/"
	contains "$OUT" "zone $ZA at $a" "the first zone's page fetched from the second"
	# They share the lower layer; each zone's writes stay in its own upper layer.
	expect_rc 0 "$WORK/bin/kz" exec "$ZB" sh -c 'echo only-in-b >/etc/zone-b-file'
	expect_rc 1 "$WORK/bin/kz" exec "$ZA" test -e /etc/zone-b-file
	[ ! -e "$LOWER/etc/zone-b-file" ] || bail "a write in a zone reached the shared rootfs"
	expect_rc 0 "$ZONE_SH" down "$ZB" --root "$ZROOT"
	ip link show "$KRAAL_ZONE_BRIDGE" >/dev/null 2>&1 || bail "the bridge went with $ZB although $ZA still uses it"
	! ip link show "$(veth_of "$ZB")" >/dev/null 2>&1 || bail "$ZB's veth is still there"
	expect_rc 0 curl -sS --max-time 10 "http://$a/"
}

s_down() {
	local pid left
	pid=$(init_pid "$ZA")
	expect_rc 0 "$ZONE_SH" down "$ZA" --root "$ZROOT"
	contains "$OUT" "is down" "zone.sh down"
	case $OUT in *SIGKILL*) bail "the zone did not halt on SIGRTMIN+3: $OUT" ;; esac
	# The host's pid 1 may reap the orphaned init a little later: a zombie has ended.
	[ -z "$pid" ] || wait_until 5 "! grep -qs '^State:[[:space:]]*[RSDT]' /proc/$pid/status" ||
		bail "the zone's init (pid $pid) still runs: $(grep State /proc/"$pid"/status)"
	expect_rc 0 "$WORK/bin/kz" list -q
	[ -z "$OUT" ] || bail "kraal still lists $OUT"
	[ ! -e "$ZROOT/$ZA" ] || bail "the state dir $ZROOT/$ZA is left"
	[ ! -e "$KRAAL_ZONE_DIR" ] || bail "the zone dir is left: $(find "$KRAAL_ZONE_DIR" -maxdepth 2 | head -n 5 | tr '\n' ' ')"
	! grep -qF "$WORK/zones" /proc/self/mountinfo || bail "mounts left: $(grep -F "$WORK/zones" /proc/self/mountinfo | head -n 3)"
	! ip link show "$(veth_of "$ZA")" >/dev/null 2>&1 || bail "the veth $(veth_of "$ZA") is left"
	! ip link show "$KRAAL_ZONE_BRIDGE" >/dev/null 2>&1 || bail "the bridge $KRAAL_ZONE_BRIDGE is left"
	left=$(cgroup_leftovers "$ZCG")
	[ -z "$left" ] || bail "cgroups left: $(printf '%s' "$left" | head -n 5 | tr '\n' ' ')"
	# Down again: nothing to do, not an error.
	expect_rc 0 "$ZONE_SH" down "$ZA" --root "$ZROOT"
	contains "$OUT" "nothing to do" "a second zone.sh down"
}

s_fail_undo() {
	local fake=$WORK/fake-rootfs name=$TAG-bad left
	# A "systemd" that exits at once: the boot fails after kraal started the
	# container and net-up wired it, so up has all of it to undo.
	KRAAL=$KRAAL_BIN bash "$CRATE/contrib/mkbundle.sh" "$WORK/fake" >"$WORK/logs/mkbundle.log" 2>&1 || bail "mkbundle failed"
	mv "$WORK/fake/rootfs" "$fake"
	mkdir -p "$fake/lib/systemd" "$fake/sbin"
	printf '#!/bin/sh\necho fake-init-exits\nexit 3\n' >"$fake/lib/systemd/systemd"
	chmod 0755 "$fake/lib/systemd/systemd"
	ln -sf /lib/systemd/systemd "$fake/sbin/init"
	expect_rc 1 env KRAAL_ZONE_BOOT_TIMEOUT=20 "$ZONE_SH" up "$name" --rootfs "$fake" --root "$ZROOT" --cgroup-parent "$ZCG"
	contains "$OUT" "did not come up" "zone.sh up of a rootfs whose init exits"
	contains "$OUT" "fake-init-exits" "the console shown on failure"
	expect_rc 0 "$WORK/bin/kz" list -q
	[ -z "$OUT" ] || bail "kraal still lists $OUT"
	[ ! -e "$KRAAL_ZONE_DIR/$name" ] || bail "the bundle $KRAAL_ZONE_DIR/$name is left"
	! grep -qF "$WORK/zones" /proc/self/mountinfo || bail "overlay mount left"
	! ip link show "$(veth_of "$name")" >/dev/null 2>&1 || bail "the veth is left"
	! ip link show "$KRAAL_ZONE_BRIDGE" >/dev/null 2>&1 || bail "the bridge is left"
	left=$(cgroup_leftovers "$ZCG")
	[ -z "$left" ] || bail "cgroups left: $(printf '%s' "$left" | head -n 5 | tr '\n' ' ')"
}

s_podman_import() {
	need_rootfs
	setup_podman || bail "podman is missing and could not be installed"
	echo "+ tar -C $LOWER -c . | pm import --change CMD=/sbin/init - $IMG"
	tar -C "$LOWER" --numeric-owner -c . | timeout 600 "$PM" import --change CMD=/sbin/init - "$IMG" ||
		bail "podman import of the zone rootfs failed"
}

# podman_systemd NAME [-t]
podman_systemd() {
	local c=$TAG-$1 tty=${2:-} out start took end
	[ -x "$PM" ] || bail "no podman (zone-podman-import failed)"
	expect_rc 0 "$PM" run -d ${tty:+"$tty"} --name "$c" --systemd=always --network none --cgroup-parent "$PCG" "${ULIMITS[@]}" "$IMG" /sbin/init
	# Until systemd listens, systemctl fails at once ("Failed to connect to bus").
	end=$((SECONDS + 90))
	while :; do
		out=$(timeout -k 5 100 "$PM" exec "$c" timeout $((end - SECONDS + 1)) systemctl is-system-running --wait 2>&1)
		echo "$out"
		case $(tail -n 1 <<<"$out") in running | degraded) break ;; esac
		[ "$SECONDS" -lt "$end" ] || break
		[ "$(state_of "$c")" = running ] || break
		sleep 0.5
	done
	if [ "$(tail -n 1 <<<"$out")" != running ]; then
		"$PM" exec "$c" systemctl --failed --no-legend --plain
		"$PM" logs "$c" | tail -n 20
		bail "systemd in the podman container says '$(tail -n 1 <<<"$out")', want running"
	fi
	expect_rc 0 "$PM" exec "$c" cat /proc/1/comm
	has_line "$OUT" systemd "PID 1 under podman"
	expect_rc 0 "$PM" exec "$c" systemctl --failed --no-legend --plain
	[ -z "$OUT" ] || bail "failed units: $OUT"
	expect_rc 0 "$PM" inspect -f '{{.Config.StopSignal}}' "$c"
	case $OUT in 37 | SIGRTMIN+3 | RTMIN+3) ;; *) bail "podman's stop signal for --systemd=always is $OUT, want SIGRTMIN+3 (37)" ;; esac
	if [ -n "$tty" ]; then
		expect_rc 0 "$PM" exec "$c" test -c /dev/console
		wait_until 20 "'$PM' logs '$c' 2>/dev/null | grep -q 'login:'" || bail "no login prompt on the console: $("$PM" logs "$c" 2>&1 | tail -n 3 | tr '\r\n' '  ')"
	fi
	start=$SECONDS
	expect_rc 0 "$PM" stop -t 30 "$c"
	took=$((SECONDS - start))
	echo "podman stop took ${took}s"
	[ "$took" -lt 10 ] || bail "podman stop took ${took}s: SIGRTMIN+3 was not honoured"
	expect_rc 0 "$PM" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c"
	has_line "$OUT" "exited 0" "state after podman stop (systemd halts on SIGRTMIN+3, exit 0; SIGKILL would be 137)"
	expect_rc 0 "$PM" logs "$c"
	expect_rc 0 "$PM" rm "$c"
	expect_rc 0 "$PM" ps -a -q --filter "name=$c"
	[ -z "$OUT" ] || bail "podman rm left the container"
	# Podman's own cgroup for conmon ($PCG/conmon) stays (podman never removes
	# it; the teardown does); the container's must be gone.
	local left d
	left=$(cgroup_leftovers "$PCG" | grep -v '/conmon$')
	if [ -n "$left" ]; then
		for d in $left; do echo "left: $d tasks=$(wc -l <"$d/tasks" 2>/dev/null)"; done
		bail "cgroups left under $PCG: $(printf '%s' "$left" | head -n 5 | tr '\n' ' ')"
	fi
}

s_podman_plain() { podman_systemd sysd; }
s_podman_tty() { podman_systemd sysdt -t; }

scenario zone-build s_build
scenario zone-up-systemd-pid1 s_up
scenario zone-config-mounts-net s_config
scenario zone-http-from-host s_http
scenario zone-second-zone-shares-bridge s_second
scenario zone-down-leaves-nothing s_down
scenario zone-failed-boot-undone s_fail_undo
scenario zone-podman-import s_podman_import
scenario zone-podman-systemd s_podman_plain
scenario zone-podman-systemd-tty s_podman_tty
finish
