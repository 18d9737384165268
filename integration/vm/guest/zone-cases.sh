#!/bin/sh
# shellcheck disable=SC2016,SC2317 # container scripts are single-quoted; helpers run via wait_for
# A systemd "zone" (contrib/zone/zone.sh: a Debian system with systemd as PID 1 in a
# kraal container, its own network namespace on a host-only bridge, busybox httpd on
# port 80) on a pure cgroup v2 host: it boots to `running` with no failed unit, its
# systemd got the controllers and enabled them for its units, `kraal exec` reaches it
# although systemd has made the container's cgroup an inner node (exec joins the
# init's cgroup), `kraal ps`, `update`, `events` and `pause` act on the whole tree,
# its service answers from the host over the bridge, SIGRTMIN+3 halts it through
# systemd's own shutdown, and `zone.sh down` leaves no state, cgroup, mount, veth or
# bridge.
#
# The cases share one zone, booted by the first (a boot is the expensive part under
# TCG); a later case that finds no zone says so and fails. In the systemd guest a
# second zone runs under the --systemd-cgroup driver, as Podman would run it there.
# The zones' root is the systemd guest's image, a debootstrap'ed bookworm with
# systemd, dbus and busybox like the one `zone.sh build` makes (no network here to
# build one): the guest's own root filesystem in the systemd guest, the image
# attached read-only as /dev/vda in the plain guest; a small layer on top masks what
# only the VM needs. zone.sh and its hooks are in /vm/zone, as they ship.
#
#   sh zone-cases.sh [CASE...]     (default: every case, in file order)

SUITE=${SUITE:-zone}
# shellcheck source=cases-lib.sh
. /vm/cases-lib.sh

ZONE_SH=/vm/zone/zone.sh
NAME=kvm-zone1
ADDR=192.0.2.10
BRIDGE=kraalzone0
# The zones' own kraal root, bundles and cgroup parent: apart from what cases-lib
# cleans after every case, since the zone outlives a case.
ZROOT=$W/zone-state
export KRAAL_ZONE_DIR="$W/zones"
export KRAAL_ZONE_BRIDGE=$BRIDGE
export KRAAL_ZONE_BOOT_TIMEOUT="${KRAAL_ZONE_BOOT_TIMEOUT:-240}"
CGPARENT=kraal-vm-zones
# A relative cgroupsPath is taken from the parent of kraal's own cgroup on v2 (as
# runc): from the test unit that is system.slice, in the plain guest the root.
case $OWN_CG in
/ | "") ZCG_PARENT=$CGROOT/$CGPARENT ;;
*) ZCG_PARENT=$CGROOT$(dirname "$OWN_CG")/$CGPARENT ;;
esac
ZCG=$ZCG_PARENT/$NAME
LAYER=$W/zone-layer
LOWER=$W/zone-lower
IMAGE_MNT=$W/zone-image
UP_MARK=$W/zone-is-up
HALT_MARK=/var/lib/kraal-vm-zone/halted

export KRAAL

# zk ARGS...: kraal on the zones' state root (stdout $OUT, stderr $ERR).
zk() {
	NCALL=$((NCALL + 1))
	OUT=$W/io/$NCALL.out
	ERR=$W/io/$NCALL.err
	echo "+ kraal --root $ZROOT $*" >"$W/io/$NCALL.cmd"
	timeout "$CMD_TIMEOUT" "$KRAAL" --root "$ZROOT" "$@" >"$OUT" 2>"$ERR" </dev/null
}

zkok() {
	zk "$@"
	rc=$?
	[ "$rc" = 0 ] || die "kraal $* exited $rc; stderr: $(cat "$ERR")"
}

# zexec CMD...: runs CMD in the zone; its stdout in $OUT.
zexec() { zkok exec "$NAME" "$@"; }

need_zone() {
	[ -e "$UP_MARK" ] || die "no zone: zone_up_boots_systemd did not bring it up"
}

# The zone's lower layer: the systemd image (the guest's root fs in the systemd guest,
# overlayfs sees it alone and none of the mounts on it) under a layer with what the
# VM added to it masked: the test unit, the guest's fstab and its /tmp unit. A unit
# records that systemd stopped it: only an orderly shutdown writes the mark.
make_lower() {
	if [ "$(cat /proc/1/comm)" = systemd ]; then
		src=/
	else
		mkdir -p "$IMAGE_MNT"
		[ -b /dev/vda ] || {
			echo "no /dev/vda: the plain guest was booted without the systemd image"
			return 1
		}
		mount -t ext4 -o ro,noload /dev/vda "$IMAGE_MNT" || return 1
		src=$IMAGE_MNT
	fi
	s=$LAYER/etc/systemd/system
	mkdir -p "$s/multi-user.target.wants" "$LOWER"
	for u in kraal-vm-tests.service tmp.mount; do
		ln -s /dev/null "$s/$u"
	done
	: >"$LAYER/etc/fstab"
	cat >"$s/kraal-vm-zone-halt.service" <<-EOF
		[Unit]
		Description=records an orderly shutdown (kraal VM suite)

		[Service]
		Type=oneshot
		RemainAfterExit=yes
		ExecStart=/bin/true
		ExecStop=/bin/sh -c 'mkdir -p ${HALT_MARK%/*} && echo stopped-by-systemd >$HALT_MARK'

		[Install]
		WantedBy=multi-user.target
	EOF
	ln -s ../kraal-vm-zone-halt.service "$s/multi-user.target.wants/kraal-vm-zone-halt.service"
	mount -t overlay -o "ro,lowerdir=$LAYER:$src" kraal-vm-zone-lower "$LOWER"
}

# unmake_lower: prints what it could not unmount.
unmake_lower() {
	for m in "$LOWER" "$IMAGE_MNT"; do
		if mounted "$m" && ! umount "$m" 2>/dev/null; then
			echo "mount: $m (busy)"
			umount -l "$m"
		fi
	done
}

# zone_leftovers: what a zone left on the host, one line each; empty when clean.
zone_leftovers() {
	[ ! -e "$ZROOT/$NAME" ] || echo "kraal state: $ZROOT/$NAME"
	[ ! -e "$ZCG_PARENT" ] || echo "cgroups: $(find "$ZCG_PARENT" -type d | tr '\n' ' ')"
	grep -F "$KRAAL_ZONE_DIR" /proc/mounts | sed 's/^/mount: /'
	[ ! -e "$KRAAL_ZONE_DIR" ] || echo "zone dir: $(find "$KRAAL_ZONE_DIR" -maxdepth 2 | tr '\n' ' ')"
	ip -o link show 2>/dev/null | awk -F': ' -v br="$BRIDGE" '$2 ~ /^kz/ || $2 == br { print "link: " $2 }'
}

case_zone_up_boots_systemd() {
	[ -x "$ZONE_SH" ] || die "$ZONE_SH is missing from the payload"
	make_lower || die "cannot make the zone's lower layer"
	t0=$(up)
	timeout 400 "$ZONE_SH" up "$NAME" --rootfs "$LOWER" --addr "$ADDR" --root "$ZROOT" \
		--cgroup-parent "$CGPARENT" >"$W/up.out" 2>"$W/up.err" </dev/null
	rc=$?
	echo "  zone.sh up: exit $rc in $(awk -v a="$t0" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')s"
	sed 's/^/  | /' "$W/up.out" "$W/up.err"
	[ "$rc" = 0 ] || die "zone.sh up exited $rc"
	touch "$UP_MARK"
	grep -qx "state: running" "$W/up.out" || die "zone.sh up did not report 'state: running'"
	zk exec "$NAME" systemctl is-system-running
	st=$(cat "$OUT")
	zexec systemctl --failed --no-legend --plain
	failed=$(cat "$OUT")
	if [ "$st" != running ] || [ -n "$failed" ]; then
		echo "$failed" | while read -r u _; do
			[ -n "$u" ] || continue
			zk exec "$NAME" systemctl status --no-pager --lines 8 "$u"
			sed 's/^/  | /' "$OUT"
		done
		die "systemctl is-system-running in the zone says '$st'; failed units: $(echo "$failed" | tr '\n' ' ')"
	fi
	zexec cat /proc/1/comm
	eq "$(cat "$OUT")" systemd "the zone's PID 1"
	zexec hostname
	eq "$(cat "$OUT")" "$NAME" "the zone's hostname"
	zexec cat /proc/1/cgroup
	eq "$(cat "$OUT")" "0::/init.scope" "the zone's PID 1 cgroup (in its cgroup namespace)"
	zexec systemctl is-active zone-httpd.service kraal-vm-zone-halt.service systemd-journald.service dbus.service
	eq "$(tr '\n' ' ' <"$OUT")" "active active active active " "units in the zone"
	zkok state "$NAME"
	eq "$(jq -r .status "$OUT")" running "kraal state"
	pid=$(jq -r .pid "$OUT")
	eq "$(cgdir_of "$pid")" "$ZCG/init.scope" "the zone's init seen from the host"
}

# memory_and_pids DIR: DIR's cgroup.subtree_control enables both (systemd's default
# accounting needs them for every unit).
memory_and_pids() {
	has_words "$(readf "$1/cgroup.subtree_control")" memory pids
}

# ensure_domain_controller NAME DIR EXEC...: systemd in zone NAME enabled a domain
# controller in DIR, its container cgroup, which then takes no process (EBUSY): the
# premise of exec joining the init's cgroup. When the race that
# zone_systemd_enabled_its_controllers reports kept systemd from it at boot, a unit
# start (EXEC... runs a command in the zone) makes it try again, so the exec cases
# still test what they are about. A unit start brings back only some controllers.
ensure_domain_controller() {
	zn=$1
	cg=$2
	shift 2
	has_any_word "$(readf "$cg/cgroup.subtree_control")" memory pids cpu io && return 0
	echo "  no controller enabled in $cg: starting a unit in zone $zn to have systemd enable them"
	"$@" systemd-run --quiet --wait --unit kraal-vm-realize /bin/true
	has_any_word "$(readf "$cg/cgroup.subtree_control")" memory pids cpu io ||
		die "systemd enabled no domain controller in $cg ('$(readf "$cg/cgroup.subtree_control")'): exec's EBUSY path cannot be exercised"
}

# has_any_word LIST WORD...: one of the WORDs is in the blank-separated LIST.
has_any_word() {
	l=" $1 "
	shift
	for w in "$@"; do
		case $l in *" $w "*) return 0 ;; esac
	done
	return 1
}

# has_words LIST WORD...: every WORD is in the blank-separated LIST.
has_words() {
	l=" $1 "
	shift
	for w in "$@"; do
		case $l in *" $w "*) ;; *) return 1 ;; esac
	done
}

# The zone's systemd manages its own resources: kraal handed it the controllers, and
# systemd enabled them for its units in the container's cgroup. It cannot when a
# process sits in that cgroup itself while it sets up (no internal processes on v2:
# EBUSY), and then no unit of the zone has memory or tasks accounting or limits.
case_zone_systemd_enabled_its_controllers() {
	need_zone
	ctl=$(readf "$ZCG/cgroup.controllers")
	echo "  $ZCG: cgroup.controllers '$ctl', cgroup.subtree_control '$(readf "$ZCG/cgroup.subtree_control")'"
	has_words "$ctl" memory pids ||
		die "kraal did not delegate memory and pids to the zone's cgroup $ZCG (cgroup.controllers: $ctl)"
	if ! memory_and_pids "$ZCG"; then
		echo "  processes in $ZCG itself now: '$(tr '\n' ' ' <"$ZCG/cgroup.procs")'"
		# systemd logs the EBUSY at debug level only: nothing in the zone's journal.
		die "systemd in the zone could not enable memory and pids in its root cgroup $ZCG; the usual cause: a process exec'd into the zone while systemd set up (zone.sh up waits with 'kraal exec ... systemctl is-system-running --wait') joined the container's cgroup itself instead of the init's (init.scope), so systemd's write to cgroup.subtree_control failed with EBUSY"
	fi
	zexec systemctl show -p MemoryCurrent --value systemd-journald.service
	mem=$(cat "$OUT")
	zexec systemctl show -p TasksCurrent --value systemd-journald.service
	tasks=$(cat "$OUT")
	case "$mem $tasks" in
	[0-9]*" "[0-9]*) echo "  journald: memory $mem, tasks $tasks" ;;
	*) die "journald in the zone has no memory or tasks accounting: MemoryCurrent '$mem', TasksCurrent '$tasks'" ;;
	esac
}

# systemd delegated the container's cgroup to itself and enabled controllers in it,
# so it takes no process (EBUSY); exec must land in the init's cgroup instead.
case_exec_joins_the_init_cgroup() {
	need_zone
	ensure_domain_controller "$NAME" "$ZCG" zexec
	# The premise: a process cannot join the container's cgroup itself.
	err=$(sh -c 'echo $$ >"$1/cgroup.procs"' sh "$ZCG" 2>&1) && die "a process could join $ZCG (no EBUSY)"
	echo "  joining $ZCG directly: $err"
	zexec cat /proc/self/cgroup
	eq "$(cat "$OUT")" "0::/init.scope" "/proc/self/cgroup of an exec'd process"
	zkok exec -d --pid-file "$W/exec.pid" "$NAME" sleep 600
	xpid=$(cat "$W/exec.pid")
	register_pid "$xpid"
	eq "$(cgdir_of "$xpid")" "$ZCG/init.scope" "a detached exec process's cgroup seen from the host"
	kill "$xpid"
	# ps sees every process of the tree, the services' too.
	zkok ps "$NAME"
	sed 's/^/  | /' "$OUT"
	grep -q 'httpd -f -p 80' "$OUT" || die "kraal ps does not list the zone's httpd"
	grep -q 'systemd-journald' "$OUT" || die "kraal ps does not list the zone's journald"
	# exec with a working directory, user and environment, as a client would.
	zexec --cwd /srv/www -u 65534:65534 -e ZONE_VAR=x sh -c 'echo "$(pwd) $(id -u):$(id -g) $ZONE_VAR"'
	eq "$(cat "$OUT")" "/srv/www 65534:65534 x" "exec --cwd/-u/-e"
}

# The container's cgroup is an inner node systemd manages: limits, stats and the
# freezer set on it still reach every process below.
case_update_stats_and_pause_reach_the_whole_tree() {
	need_zone
	zkok update --memory 512m --pids-limit 400 "$NAME"
	fileq "$ZCG/memory.max" $((512 * MB))
	fileq "$ZCG/pids.max" 400
	zkok events --stats "$NAME"
	n=$(jq -r '.data.pids.current // 0' "$OUT")
	# systemd, journald, dbus, logind, httpd at least.
	[ "$n" -ge 5 ] || die "events --stats: pids.current $n counts only part of the tree: $(cat "$OUT")"
	[ "$(jq -r '.data.memory.usage.usage // 0' "$OUT")" -gt 0 ] || die "events --stats: no memory usage: $(cat "$OUT")"
	j=$ZCG/system.slice/systemd-journald.service
	grep -q . "$j/cgroup.procs" 2>/dev/null || die "no journald in $j"
	zkok pause "$NAME"
	# Looked at, then resumed, then judged: a failed case must not leave it frozen.
	zk state "$NAME"
	st=$(jq -r .status "$OUT")
	frozen() { [ "$(keyed "$1/cgroup.events" frozen)" = 1 ]; }
	wait_for 30 frozen "$ZCG"
	top=$(keyed "$ZCG/cgroup.events" frozen)
	jf=$(keyed "$j/cgroup.events" frozen)
	zkok resume "$NAME"
	eq "$st" paused "kraal state after pause"
	eq "$top" 1 "frozen in $ZCG/cgroup.events after pause"
	eq "$jf" 1 "frozen in $j/cgroup.events after pause"
	zexec systemctl is-system-running
	eq "$(cat "$OUT")" running "systemctl is-system-running after resume"
	zk state "$NAME"
	eq "$(jq -r .status "$OUT")" running "kraal state after resume"
}

# What Podman does on a systemd host: the same zone config under the --systemd-cgroup
# driver, in a transient scope (Delegate=yes) systemd made, without the network
# hooks (a network namespace with lo only).
case_systemd_driver_zone_boots_and_execs() {
	[ "$(cat /proc/1/comm)" = systemd ] || skip "the --systemd-cgroup driver needs systemd on the host"
	need_zone
	KGLOBAL=--systemd-cgroup
	ID=kvm-zone2
	B=$W/b-$ID
	unit=kraal-$ID.scope
	scope=/sys/fs/cgroup/system.slice/$unit
	register_unit "$unit"
	mkdir -p "$B/upper" "$B/work" "$B/rootfs"
	mount -t overlay -o "lowerdir=$LOWER,upperdir=$B/upper,workdir=$B/work" kraal-vm-zone2 "$B/rootfs" ||
		die "cannot mount the overlay on $B/rootfs"
	register_mount "$B/rootfs"
	echo "$ID" >"$B/rootfs/etc/hostname"
	jq --arg id "$ID" '.hostname = $id | .root.path = "rootfs" | del(.hooks) | del(.annotations)
		| .linux.cgroupsPath = ("system.slice:kraal:" + $id)' "$KRAAL_ZONE_DIR/$NAME/config.json" >"$B/config.json" ||
		die "cannot derive a config from $KRAAL_ZONE_DIR/$NAME/config.json"
	kok run -d --bundle "$B" "$ID"
	zk2() { k exec "$ID" "$@"; }
	booted() {
		zk2 systemctl is-system-running
		case $(cat "$OUT") in running | degraded) return 0 ;; esac
		return 1
	}
	wait_until 240 booted || die "the zone under the systemd driver did not boot: $(cat "$OUT" "$ERR")"
	st=$(cat "$OUT")
	if [ "$st" != running ]; then
		zk2 systemctl --failed --no-legend --plain
		die "systemctl is-system-running in the zone says '$st'; failed units: $(tr '\n' ' ' <"$OUT")"
	fi
	eq "$(systemctl is-active "$unit")" active "systemctl is-active $unit"
	eq "$(systemctl show -p Delegate --value "$unit")" yes "$unit Delegate"
	pid=$(init_pid "$ID")
	eq "$(cgdir_of "$pid")" "$scope/init.scope" "the init's cgroup seen from the host"
	# (The wait above execs while systemd sets up: see zone_systemd_enabled_its_controllers.)
	ensure_domain_controller "$ID" "$scope" kok exec "$ID"
	kok exec "$ID" cat /proc/self/cgroup
	eq "$(cat "$OUT")" "0::/init.scope" "/proc/self/cgroup of an exec'd process"
	kok kill "$ID" SIGRTMIN+3
	stopped() { k state "$ID" && [ "$(jq -r .status "$OUT")" = stopped ]; }
	wait_until 60 stopped || die "not stopped within 60s of SIGRTMIN+3: $(cat "$OUT")"
	eq "$(readf "$B/rootfs$HALT_MARK")" stopped-by-systemd "the mark the halt unit's ExecStop writes"
	kok delete "$ID"
	gone() { [ "$(systemctl show -p LoadState --value "$unit" 2>/dev/null)" = not-found ]; }
	wait_until 30 gone || die "$unit still known after delete: $(systemctl show -p LoadState,ActiveState,Result "$unit" | tr '\n' ' ')"
	[ ! -e "$scope" ] || die "$scope left after delete"
	umount "$B/rootfs" || die "cannot unmount $B/rootfs"
}

case_service_answers_over_the_bridge() {
	need_zone
	ip -o -4 addr show dev "$BRIDGE" | grep -q " 192.0.2.1/24 " ||
		die "the bridge $BRIDGE lacks 192.0.2.1/24: $(ip -o addr show dev "$BRIDGE" 2>&1)"
	ports=$(cd "/sys/class/net/$BRIDGE/brif" 2>/dev/null && echo *)
	echo "  bridge ports: $ports"
	case $ports in kz*) ;; *) die "no veth of the zone on $BRIDGE" ;; esac
	zexec busybox ip -o -4 addr show dev eth0
	grep -q " $ADDR/24 " "$OUT" || die "the zone's eth0: $(cat "$OUT")"
	# busybox nc, not wget: bookworm's static busybox wget crashes when it cannot connect.
	printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$ADDR" | timeout 30 busybox nc -w 20 "$ADDR" 80 >"$W/page" 2>&1
	rc=$?
	sed 's/^/  | /' "$W/page"
	if [ "$rc" != 0 ] || ! head -n 1 "$W/page" | grep -q '^HTTP/1\.[01] 200' || ! grep -qF "zone $NAME at $ADDR" "$W/page"; then
		echo "  the host's side:"
		{ ip -br link; ip -br addr; ip route; ip neigh; } 2>&1 | sed 's/^/  | /'
		echo "  the zone's side:"
		zk exec "$NAME" sh -c 'busybox ip -o addr; busybox ip route; busybox netstat -ltn; busybox ping -c 1 -W 5 192.0.2.1' 2>&1
		sed 's/^/  | /' "$OUT" "$ERR"
		die "GET http://$ADDR/ (nc exit $rc) did not return the zone's page"
	fi
}

case_sigrtmin3_halts_it_through_systemd() {
	need_zone
	zkok state "$NAME"
	rootfs=$(jq -r .rootfs "$OUT")
	t0=$(up)
	zkok kill "$NAME" SIGRTMIN+3
	stopped() { zk state "$NAME" && [ "$(jq -r .status "$OUT")" = stopped ]; }
	wait_until 60 stopped || die "the zone did not stop within 60s of SIGRTMIN+3: $(cat "$OUT")"
	echo "  stopped $(awk -v a="$t0" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')s after SIGRTMIN+3"
	eq "$(readf "$rootfs$HALT_MARK")" stopped-by-systemd "the mark the halt unit's ExecStop writes"
	empty() { [ "$(keyed "$ZCG/cgroup.events" populated)" = 0 ]; }
	wait_for 10 empty || die "processes left in $ZCG: $(find "$ZCG" -name cgroup.procs -exec cat {} + 2>&1 | tr '\n' ' ')"
}

case_down_leaves_nothing() {
	need_zone
	timeout 120 "$ZONE_SH" down "$NAME" --root "$ZROOT" >"$W/down.out" 2>&1 </dev/null
	rc=$?
	sed 's/^/  | /' "$W/down.out"
	[ "$rc" = 0 ] || die "zone.sh down exited $rc"
	rm -f "$UP_MARK"
	left=$(zone_leftovers)
	[ -z "$left" ] || die "left after zone.sh down: $(echo "$left" | tr '\n' ';')"
	zk state "$NAME" && die "kraal still knows $NAME: $(cat "$OUT")"
	:
}

if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046 # one word per case name
	set -- $(all_cases /vm/zone-cases.sh)
	if [ "$(cat /proc/1/comm)" != systemd ]; then
		# Not a skip: a guest without systemd is not where these belong.
		# shellcheck disable=SC2046 # one word per case name
		set -- $(for c in "$@"; do case $c in systemd_driver_*) ;; *) echo "$c" ;; esac; done)
	fi
fi
# The cleanup check below reports a result line of its own.
EXTRA_CASES=1
run_cases "$@"
# A failed case can leave the zone up: take it down, and say so if even that fails.
if [ -e "$UP_MARK" ] || [ -n "$(zone_leftovers)" ]; then
	timeout 120 "$ZONE_SH" down "$NAME" --root "$ZROOT" >/dev/null 2>&1 </dev/null
fi
left=$(
	zone_leftovers
	unmake_lower
)
if [ -n "$left" ]; then
	echo "FAIL $SUITE:cleanup"
	echo "$left" | sed 's/^/    left behind: /'
	FAILED=$((FAILED + 1))
else
	echo "PASS $SUITE:cleanup"
	PASSED=$((PASSED + 1))
fi
suite_end
