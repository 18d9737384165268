#!/usr/bin/env bash
# The VM suite: kraal's cgroup v2 and systemd code run against a real kernel, in
# guests built from Debian packages and booted with qemu (KVM when it works here,
# else TCG). Ends with one line "N passed, M failed, K skipped"; exits 1 when
# anything failed or a guest did not boot or finish (a guest that silently skipped
# would hide exactly what this suite is for).
#
#   integration/vm/run.sh [plain|systemd|all]      (default: all)
#
# plain:   busybox initramfs, cgroup2 alone at /sys/fs/cgroup with every controller
#          enabled at the root; runs guest/v2-cases.sh, guest/zone-cases.sh (a systemd
#          zone made by contrib/zone/zone.sh, its root the systemd image attached
#          read-only) and the lifecycle, exec and cgroups test binaries (the
#          cgroups tests that need v1 files skipped, see lib.sh CGROUPS_V1_ONLY).
# systemd: debootstrap'ed bookworm with systemd as PID 1 (cgroup v2 only); runs
#          guest/systemd-cases.sh (boot state, the --systemd-cgroup driver),
#          guest/v2sd-cases.sh (v2 cases again, each container in a transient scope),
#          guest/zone-cases.sh (zones on the guest's own root, also under the
#          --systemd-cgroup driver) and the lifecycle and exec test binaries from a
#          systemd unit.
#
# The whole stage (build, cache, both guests) has one deadline, KRAAL_VM_BUDGET
# seconds (default 780, 13 minutes): each guest's timeout is cut to what is left of
# it, and a run that cannot finish inside it fails with "VM stage over budget".
#
# Cache (kernel, initramfs, debootstrap, image): $KRAAL_VM_CACHE, else
# $XDG_CACHE_HOME/kraal-vm, else /var/cache/kraal-vm. Other knobs: KRAAL_VM_ACCEL
# (kvm|tcg), KRAAL_VM_KEEP=1 (keep the work dir: reports, console logs),
# KRAAL_VM_TIMEOUT_PLAIN / KRAAL_VM_TIMEOUT_SYSTEMD (at most this many seconds per
# guest, default 540), KRAAL_VM_PLAN_PLAIN / KRAAL_VM_PLAN_SYSTEMD (a plan file, see
# guest/suite.sh), KRAAL_VM_ALLOW_SKIPS=1 (accept skips not in lib.sh's SKIP_ALLOWED).
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

[ "$(id -u)" = 0 ] || {
	echo "run.sh: the VM suite needs root (apt-get, the cache)" >&2
	exit 2
}
which=${1:-all}
case $which in
plain) guests=(plain) ;;
systemd) guests=(systemd) ;;
all) guests=(plain systemd) ;;
*)
	echo "usage: run.sh [plain|systemd|all]" >&2
	exit 2
	;;
esac

trap vm_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# fail_setup WHAT: a guest that cannot even be built fails the run, loudly.
fail_setup() {
	say "setup failed: $*"
	echo "0 passed, 1 failed"
	exit 1
}

s_or_never() { if [ -n "$1" ]; then echo "${1}s"; else echo never; fi; }

t_all=$(now)
BUDGET=${KRAAL_VM_BUDGET:-780}
DEADLINE=$(awk -v a="$t_all" -v b="$BUDGET" 'BEGIN { printf "%d", a + b }')
say "VM stage budget ${BUDGET}s (KRAAL_VM_BUDGET): everything must be done by $(date -d "@$DEADLINE" +%T)"
# The systemd guest's share the plain guest leaves it (image and disks, boot, tests).
SYSTEMD_RESERVE=300
# Less than this for a guest is not worth a boot.
GUEST_MIN=90

# guest_limit NAME CAP RESERVE: the guest's timeout: CAP, cut to what is left of the
# budget after RESERVE seconds for what follows it. Sets LIMIT and LIMIT_CUT (1 when
# the budget, not CAP, set it); fails when less than GUEST_MIN is left.
guest_limit() {
	local left
	left=$((DEADLINE - $(date +%s) - $3))
	LIMIT=$2 LIMIT_CUT=0
	if [ "$left" -lt "$LIMIT" ]; then
		LIMIT=$left LIMIT_CUT=1
	fi
	if [ "$LIMIT" -lt "$GUEST_MIN" ]; then
		say "VM stage over budget: ${LIMIT}s left for the $1 guest (budget ${BUDGET}s)"
		printf 'F\t%s/boot\tVM stage over budget: only %ss of the %ss budget left for this guest\n' \
			"$1" "$LIMIT" "$BUDGET" >>"$WORK/results"
		return 1
	fi
	say "$1 guest: timeout ${LIMIT}s$([ "$LIMIT_CUT" = 1 ] && echo " (what is left of the budget)")"
}

# over_budget NAME: after a guest ran, a timeout that was the budget's is a budget failure.
over_budget() {
	if [ "$LIMIT_CUT" = 1 ] && { [ "$VM_RC" = 124 ] || [ "$VM_RC" = 137 ]; }; then
		printf 'F\t%s/run\tVM stage over budget: the guest was stopped at the deadline (%ss budget)\n' \
			"$1" "$BUDGET" >>"$WORK/results"
	fi
}
vm_setup || fail_setup "cache lock"
host_tools "$which" || fail_setup "host packages"
t_build=$(now)
build_kraal || fail_setup "building kraal and its tests"
fetch_kernel || fail_setup "the guest kernel"
initramfs plain || fail_setup "the plain initramfs"
PLAIN_INITRD=$INITRD
payload || fail_setup "the payload"
accel
say "kernel $KVER, accel $ACCEL, prepared in $(secs_since "$t_build")s"

: >"$WORK/results"
timing=()
plain_reserve=0
if [ "$which" = all ]; then
	plain_reserve=$SYSTEMD_RESERVE
fi
for g in "${guests[@]}"; do
	case $g in
	plain)
		plain_initrd || fail_setup "the plain guest's initrd"
		systemd_image || fail_setup "the systemd image (the zones' root)"
		guest_limit plain "${KRAAL_VM_TIMEOUT_PLAIN:-540}" "$plain_reserve" || continue
		say "booting the plain cgroup v2 guest"
		# The systemd image, read-only, is the zones' root (guest/zone-cases.sh).
		boot plain "$LIMIT" -kernel "$KDIR/vmlinux" -initrd "$RUN_INITRD" \
			-drive "file=$SYSTEMD_IMG,if=virtio,format=raw,readonly=on" \
			-append "console=ttyS0 cgroup_no_v1=all panic=-1 quiet"
		tally plain
		over_budget plain
		tests_s=$(awk -v a="${BOOT_S:-0}" -v b="$RUN_S" 'BEGIN { printf "%.1f", b - a }')
		timing+=("plain: boot to /init $(s_or_never "$BOOT_S") (guest uptime $(s_or_never "$(awk '/^KVM-INIT/ { print $2; exit }' "$WORK/plain.report")")), tests ${tests_s}s, VM total ${RUN_S}s")
		;;
	systemd)
		t_img=$(now)
		systemd_image || fail_setup "the systemd image"
		initramfs systemd || fail_setup "the systemd guest's initramfs"
		systemd_disks || fail_setup "the systemd guest's disks"
		say "systemd image ready in $(secs_since "$t_img")s"
		guest_limit systemd "${KRAAL_VM_TIMEOUT_SYSTEMD:-540}" 0 || continue
		say "booting the systemd guest"
		boot systemd "$LIMIT" -kernel "$KDIR/vmlinux" -initrd "$INITRD" \
			-drive "file=$SYSTEMD_IMG,if=virtio,format=raw,snapshot=on" \
			-drive "file=$PAYLOAD_DISK,if=virtio,format=raw,readonly=on" \
			-append "console=ttyS0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 panic=-1 quiet"
		tally systemd
		over_budget systemd
		tests_s=$(awk -v a="${READY_S:-0}" -v b="$RUN_S" 'BEGIN { printf "%.1f", b - a }')
		timing+=("systemd: boot to the test unit $(s_or_never "$BOOT_S"), system running at $(s_or_never "$READY_S") ($(awk '/^KVM-NOTE Startup finished/ { sub(/^KVM-NOTE /, ""); print; exit }' "$WORK/systemd.report")), tests ${tests_s}s, VM total ${RUN_S}s")
		;;
	esac
	if ! grep -q '^KVM-INIT' "$WORK/$g.report"; then
		say "$g: the guest did not boot; last console lines:"
		tail -n 25 "$WORK/$g.console" | sed 's/^/  | /' >&2
	fi
done

total_s=$(secs_since "$t_all")
if awk -v t="$total_s" -v b="$BUDGET" 'BEGIN { exit !(t > b) }'; then
	printf 'F\tvm/stage\tVM stage over budget: %ss of the %ss budget\n' "$total_s" "$BUDGET" >>"$WORK/results"
fi
passed=$(grep -c '^P' "$WORK/results")
failed=$(grep -c '^F' "$WORK/results")
skipped=$(grep -c '^S' "$WORK/results")
echo
echo "== VM suite ($ACCEL, $GUEST_CPUS cpus, $GUEST_MEM, kernel $KVER), ${total_s}s in all (budget ${BUDGET}s)"
for t in "${timing[@]}"; do
	echo "   $t"
done
if [ "$skipped" != 0 ]; then
	echo "== skipped:"
	awk -F'\t' '$1 == "S" { print "   " $2 ": " $3 }' "$WORK/results"
fi
if [ "$failed" != 0 ]; then
	echo "== failed:"
	while IFS=$'\t' read -r kind name detail; do
		[ "$kind" = F ] || continue
		echo "   FAIL $name${detail:+: $detail}"
		details "${name%%/*}" "${name#*/}" | grep -v '^[[:space:]]*$' | sed 's/^/        /'
	done <"$WORK/results"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
