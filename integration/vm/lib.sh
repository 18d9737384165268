# shellcheck shell=bash disable=SC2034 # variables are for run.sh, which sources this
# Host-side building blocks of the VM suite (integration/vm/run.sh). Sourced, never
# run. Owns: the cache (kernel, initramfs images, the debootstrap'ed systemd image,
# the accelerator verdict), the per-run work dir, host packages, the payload (kraal,
# the test binaries, the guest scripts and plans, contrib/zone), booting a guest with
# a hard timeout while streaming its report, and turning that report into pass/fail
# lines.
#
# Nothing here installs a kernel on the host: linux-image-amd64 is fetched with
# `apt-get download` and unpacked with `dpkg -x` into the cache.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CRATE=$(cd "$VM_DIR/../.." && pwd)
GUEST=$VM_DIR/guest

if [ -n "${KRAAL_VM_CACHE:-}" ]; then
	CACHE=$KRAAL_VM_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
	CACHE=$XDG_CACHE_HOME/kraal-vm
else
	CACHE=/var/cache/kraal-vm
fi
# Modules taken from the kernel package: what the guests need to reach a disk, loop
# (the device tests open /dev/loop-control), and what a zone needs (overlay for its
# root, veth and bridge for its network). Part of the key.
KMODS="virtio_pci virtio_blk crc32c_generic ext4 loop overlay veth bridge"
# Packages the systemd image is debootstrap'ed with (part of its cache key). The image
# is also the zones' root (guest/zone-cases.sh); iproute2: zone.sh's veth and bridge.
SYSTEMD_PKGS=systemd,systemd-sysv,dbus,procps,kmod,jq,busybox-static,libseccomp2,iproute2
# contrib/zone/: what the zone cases run.
ZONE_FILES="zone.sh net-up net-down"
GUEST_MEM=${KRAAL_VM_MEM:-2G}
GUEST_CPUS=${KRAAL_VM_CPUS:-2}

say() { echo "vm: $*" >&2; }
now() { date +%s.%N; }
# secs_since T0: seconds since T0 (from `now`), one decimal.
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
sha_of() { cat "$@" | sha256sum | cut -c1-16; }

# ---- work dir and teardown ---------------------------------------------------

QEMU_PID=""
vm_teardown() {
	# Only the qemu (or its `timeout` wrapper) this run started, by pid.
	if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill "$QEMU_PID" 2>/dev/null
		wait "$QEMU_PID" 2>/dev/null
	fi
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		if [ "${KRAAL_VM_KEEP:-}" = 1 ]; then
			say "work dir kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	# Half-built cache entries of this run.
	rm -rf "$CACHE"/.tmp.$$.* 2>/dev/null
}

vm_setup() {
	mkdir -p "$CACHE"
	WORK=$(mktemp -d /tmp/kraal-vm.XXXXXX)
	# One run at a time: builds share the cache, and two TCG guests on two cores
	# would each run at half speed.
	exec 9>"$CACHE/.lock"
	if ! flock -w 1800 9; then
		say "another VM run holds $CACHE/.lock"
		return 1
	fi
}

# ---- host packages -------------------------------------------------------------

# need_cmds CMD:PKG...: installs the packages of missing commands.
need_cmds() {
	local missing=() cp
	for cp in "$@"; do
		command -v "${cp%%:*}" >/dev/null 2>&1 || missing+=("${cp#*:}")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt_install "${missing[@]}"
}

APT_UPDATED=""
apt_install() {
	local codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	if apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1; then
		return 0
	fi
	if [ -z "$APT_UPDATED" ]; then
		APT_UPDATED=1
		apt-get update -q >>"$WORK/apt.log" 2>&1
		apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1 && return 0
	fi
	# Where backports are configured, qemu-system must match a backported qemu.
	if [ -n "$codename" ] &&
		apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends -t "$codename-backports" "$@" >>"$WORK/apt.log" 2>&1; then
		return 0
	fi
	say "apt-get install $* failed:"
	tail -n 15 "$WORK/apt.log" >&2
	return 1
}

host_tools() {
	need_cmds qemu-system-x86_64:qemu-system-x86 cpio:cpio \
		mke2fs:e2fsprogs debugfs:e2fsprogs jq:jq objcopy:binutils xz:xz-utils \
		depmod:kmod flock:util-linux timeout:coreutils ps:procps ||
		return 1
	[ -x /bin/busybox ] || apt_install busybox-static || return 1
	# Both guests need the systemd image: the systemd guest boots it, and it is the
	# zones' root in either guest. The plain guest runs zone.sh with these.
	need_cmds debootstrap:debootstrap bash:bash ip:iproute2 flock:util-linux \
		mountpoint:util-linux install:coreutils rm:coreutils
}

# ---- kernel ------------------------------------------------------------------------

# Sets KVER, KDIR (cache dir with vmlinux, modules/, config).
fetch_kernel() {
	local pkg ver key tmp vz off
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	if [ -z "$pkg" ]; then
		apt-get update -q >>"$WORK/apt.log" 2>&1
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	fi
	if [ -n "$pkg" ]; then
		ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
		key=${pkg}_${ver}_$(echo "$KMODS" | sha256sum | cut -c1-8)
	else
		# Offline: the newest kernel already cached.
		# shellcheck disable=SC2012 # newest first; the names are package versions
		key=$(ls -t "$CACHE/kernel" 2>/dev/null | head -n 1)
		[ -n "$key" ] || {
			say "cannot resolve linux-image-amd64 (apt-cache) and no kernel is cached"
			return 1
		}
		say "apt-cache cannot resolve linux-image-amd64: using the cached $key"
	fi
	KDIR=$CACHE/kernel/$key
	if [ ! -f "$KDIR/.done" ]; then
		say "fetching $pkg $ver (apt-get download + dpkg -x; not installed on the host)"
		tmp=$CACHE/.tmp.$$.kernel
		rm -rf "$tmp"
		mkdir -p "$tmp/x" "$tmp/out/modules"
		(cd "$tmp" && apt-get download "$pkg" >>"$WORK/apt.log" 2>&1) || {
			say "apt-get download $pkg failed"
			tail -n 5 "$WORK/apt.log" >&2
			return 1
		}
		dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/x" || return 1
		# shellcheck disable=SC2012 # one file, named by the package
		vz=$(ls "$tmp"/x/boot/vmlinuz-* | head -n 1)
		local kv=${vz##*/vmlinuz-}
		# The ELF inside the bzImage boots about twice as fast under TCG (no
		# decompression by an emulated CPU). Debian compresses it with xz.
		# shellcheck disable=SC2013 # byte offsets, one number a line
		for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vz" | cut -d: -f1); do
			tail -c +$((off + 1)) "$vz" | xz -dc >"$tmp/out/vmlinux" 2>/dev/null
			[ "$(head -c 4 "$tmp/out/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] && break
			rm -f "$tmp/out/vmlinux"
		done
		if [ ! -s "$tmp/out/vmlinux" ]; then
			say "no xz-compressed ELF found in $vz: booting the bzImage"
			cp "$vz" "$tmp/out/vmlinux"
		fi
		cp "$tmp"/x/boot/config-* "$tmp/out/config"
		echo "$kv" >"$tmp/out/release"
		# The modules of KMODS and what they need, in load order.
		depmod -b "$tmp/x" "$kv" || return 1
		# shellcheck disable=SC2086 # KMODS is a list
		modprobe -d "$tmp/x" -S "$kv" --show-depends -a $KMODS |
			awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' >"$tmp/modlist"
		[ -s "$tmp/modlist" ] || {
			say "modprobe --show-depends found none of $KMODS"
			return 1
		}
		: >"$tmp/out/modules/order"
		while read -r m; do
			cp "$m" "$tmp/out/modules/"
			basename "$m" >>"$tmp/out/modules/order"
		done <"$tmp/modlist"
		rm -rf "$KDIR"
		mkdir -p "$CACHE/kernel"
		mv "$tmp/out" "$KDIR"
		touch "$KDIR/.done"
		rm -rf "$tmp"
		# Older kernels are of no further use.
		for old in "$CACHE"/kernel/*; do
			[ "$old" = "$KDIR" ] || rm -rf "$old"
		done
	fi
	KVER=$(cat "$KDIR/release")
}

# ---- initramfs images --------------------------------------------------------------

# busybox_tree DIR: busybox with every applet linked, as /bin/busybox (the tests copy
# it into their rootfs from there), and the directories both inits expect.
busybox_tree() {
	local d=$1 a
	mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root}
	chmod 1777 "$d/tmp"
	cp /bin/busybox "$d/bin/busybox"
	for a in $(/bin/busybox --list-full); do
		# procps' ps comes with the payload: kraal ps runs `ps -ef` and ps -o.
		case $a in bin/busybox | */ps) continue ;; esac
		[ -e "$d/$a" ] || ln -s /bin/busybox "$d/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$d/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\n' >"$d/etc/group"
}

# cpio_of DIR OUT: an uncompressed newc archive (nothing to decompress under TCG).
cpio_of() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
}

# initramfs KIND (plain|systemd): sets INITRD to the cached image.
initramfs() {
	local kind=$1 key tmp
	local inputs=("$GUEST/init-$kind" /bin/busybox "$KDIR/modules/order")
	key=$(sha_of "${inputs[@]}")
	INITRD=$CACHE/initramfs-$kind-$key.cpio
	[ -f "$INITRD" ] && return 0
	say "building the $kind initramfs"
	tmp=$CACHE/.tmp.$$.initramfs-$kind
	rm -rf "$tmp"
	busybox_tree "$tmp"
	install -m 0755 "$GUEST/init-$kind" "$tmp/init"
	cp -r "$KDIR/modules" "$tmp/modules"
	cpio_of "$tmp" "$INITRD.new" && mv "$INITRD.new" "$INITRD"
	rm -rf "$tmp"
	for old in "$CACHE"/initramfs-"$kind"-*.cpio; do
		[ "$old" = "$INITRD" ] || rm -f "$old"
	done
	[ -f "$INITRD" ]
}

# ---- the systemd image ---------------------------------------------------------------

# Sets SYSTEMD_IMG: an ext4 image of a bookworm debootstrap with systemd as init and
# the test unit enabled. The debootstrap is cached on its own (about a minute), the
# image is rebuilt when the unit or this recipe changes.
systemd_image() {
	local suite dkey dboot ikey tmp size
	suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	dkey=$(echo "$suite $SYSTEMD_PKGS" | sha256sum | cut -c1-12)
	dboot=$CACHE/debootstrap-$suite-$dkey
	if [ ! -f "$dboot/.done" ]; then
		say "debootstrap $suite with systemd (once; about a minute)"
		tmp=$CACHE/.tmp.$$.debootstrap
		rm -rf "$tmp"
		if ! debootstrap --variant=minbase --include="$SYSTEMD_PKGS" "$suite" "$tmp" \
			http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1; then
			say "debootstrap failed:"
			tail -n 20 "$WORK/debootstrap.log" >&2
			rm -rf "$tmp"
			return 1
		fi
		rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
		rm -rf "$dboot"
		mv "$tmp" "$dboot"
		touch "$dboot/.done"
		for old in "$CACHE"/debootstrap-*; do
			[ "$old" = "$dboot" ] || rm -rf "$old"
		done
	fi
	ikey=$(cat "$GUEST/kraal-vm-tests.service" <(declare -f customize_image) <(echo "$dkey") | sha256sum | cut -c1-16)
	SYSTEMD_IMG=$CACHE/systemd-$ikey.img
	[ -f "$SYSTEMD_IMG" ] && return 0
	say "building the systemd image"
	tmp=$CACHE/.tmp.$$.sysimg
	rm -rf "$tmp"
	cp -a "$dboot" "$tmp"
	rm -f "$tmp/.done"
	customize_image "$tmp" || return 1
	size=$(($(du -sm "$tmp" | cut -f1) + 512))
	if ! mke2fs -q -t ext4 -L kraal-vm-root -d "$tmp" -F "$SYSTEMD_IMG.new" "${size}M" >"$WORK/mke2fs.log" 2>&1; then
		say "mke2fs -d failed: $(tail -n 3 "$WORK/mke2fs.log")"
		rm -f "$SYSTEMD_IMG.new"
		return 1
	fi
	mv "$SYSTEMD_IMG.new" "$SYSTEMD_IMG"
	rm -rf "$tmp"
	for old in "$CACHE"/systemd-*.img; do
		[ "$old" = "$SYSTEMD_IMG" ] || rm -f "$old"
	done
}

# customize_image ROOT: what the debootstrap needs to boot headless to the test unit.
customize_image() {
	local r=$1 u
	echo kraal-vm >"$r/etc/hostname"
	printf '127.0.0.1 localhost\n127.0.1.1 kraal-vm\n' >"$r/etc/hosts"
	# A fixed machine id: an empty one would make every boot a "first boot".
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"
	echo >>"$r/etc/machine-id"
	echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$r/etc/fstab"
	ln -sf /lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"
	# /tmp on tmpfs: the tests build their bundles there.
	if [ -f "$r/usr/share/systemd/tmp.mount" ]; then
		cp "$r/usr/share/systemd/tmp.mount" "$r/etc/systemd/system/tmp.mount"
		mkdir -p "$r/etc/systemd/system/local-fs.target.wants"
		ln -sf /etc/systemd/system/tmp.mount "$r/etc/systemd/system/local-fs.target.wants/tmp.mount"
	fi
	# No logins on the consoles; the second serial port carries the report.
	for u in getty@tty1.service serial-getty@ttyS0.service serial-getty@ttyS1.service \
		console-getty.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
		e2scrub_reap.service fstrim.timer; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\n' >"$r/etc/systemd/journald.conf.d/kraal-vm.conf"
	install -m 0644 "$GUEST/kraal-vm-tests.service" "$r/etc/systemd/system/kraal-vm-tests.service"
	mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
	ln -sf /etc/systemd/system/kraal-vm-tests.service \
		"$r/etc/systemd/system/multi-user.target.wants/kraal-vm-tests.service"
}

# ---- payload ---------------------------------------------------------------------------

# build_kraal: the release binary (for the scenario scripts) and the test binaries
# (which run the debug kraal whose path cargo baked into them). Sets KRAAL_REL,
# KRAAL_DBG and TESTBIN_<name>.
build_kraal() {
	local json
	say "cargo build --release; cargo test --no-run"
	(cd "$CRATE" && cargo build --release >"$WORK/cargo-release.log" 2>&1) || {
		say "cargo build --release failed:"
		tail -n 30 "$WORK/cargo-release.log" >&2
		return 1
	}
	KRAAL_REL=$CRATE/target/release/kraal
	json=$WORK/cargo-test.json
	(cd "$CRATE" && cargo test --no-run --message-format=json >"$json" 2>"$WORK/cargo-test.log") || {
		say "cargo test --no-run failed:"
		tail -n 30 "$WORK/cargo-test.log" >&2
		return 1
	}
	KRAAL_DBG=$(jq -r 'select(.reason == "compiler-artifact" and .target.name == "kraal"
		and (.target.kind | index("bin")) and .profile.test == false) | .executable' "$json" | tail -n 1)
	[ -x "$KRAAL_DBG" ] || {
		say "no debug kraal binary in cargo's output"
		return 1
	}
	TESTBINS=$WORK/testbins
	jq -r 'select(.reason == "compiler-artifact" and (.target.kind | index("test"))
		and .executable != null) | "\(.target.name) \(.executable)"' "$json" >"$TESTBINS"
}

testbin() { awk -v n="$1" '$1 == n { print $2 }' "$TESTBINS" | tail -n 1; }

# copy_libs ROOT BIN...: the shared libraries of BINs, at their own paths under ROOT.
copy_libs() {
	local root=$1 lib
	shift
	for lib in $(ldd "$@" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }' | sort -u); do
		mkdir -p "$root$(dirname "$lib")"
		[ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
	done
}

# payload: $WORK/payload/vm with the scripts, plans and stripped binaries.
# Plans: see guest/suite.sh. KRAAL_VM_PLAN_PLAIN / KRAAL_VM_PLAN_SYSTEMD (files)
# replace the defaults.
payload() {
	local p=$WORK/payload/vm name bin
	mkdir -p "$p/tests"
	for f in suite.sh cases-lib.sh v2-cases.sh v2sd-cases.sh systemd-cases.sh zone-cases.sh systemd-entry; do
		install -m 0755 "$GUEST/$f" "$p/$f"
	done
	# zone.sh and its network hooks (guest/zone-cases.sh runs them as they ship).
	mkdir -p "$p/zone"
	for f in $ZONE_FILES; do
		[ -f "$CRATE/contrib/zone/$f" ] || {
			say "contrib/zone/$f is missing"
			return 1
		}
		install -m 0755 "$CRATE/contrib/zone/$f" "$p/zone/$f"
	done
	# Debug info is most of a test binary's size, and panics keep file:line without it.
	objcopy --strip-debug "$KRAAL_DBG" "$p/kraal"
	objcopy --strip-debug "$KRAAL_REL" "$p/kraal-release"
	echo "$KRAAL_DBG" >"$p/kraal-path"
	for name in cgroups lifecycle exec; do
		bin=$(testbin "$name")
		[ -n "$bin" ] || {
			say "no test binary for tests/$name.rs"
			return 1
		}
		# The tests run the kraal cargo named at build time: it must be where they look.
		grep -qaF "$KRAAL_DBG" "$bin" || {
			say "$bin does not name $KRAAL_DBG"
			return 1
		}
		objcopy --strip-debug "$bin" "$p/tests/$name"
	done
	local notify_skip="--skip notify_socket_readiness_is_forwarded"
	local notify_why="rust:exec::notify_socket_readiness_is_forwarded: compiles its helper with gcc at run time; the guest has no compiler"
	if [ -n "${KRAAL_VM_PLAN_PLAIN:-}" ]; then
		cp "$KRAAL_VM_PLAN_PLAIN" "$p/plan-plain"
	else
		cat >"$p/plan-plain" <<-PLAN
			cases v2-cases.sh
			cases zone-cases.sh
			rust lifecycle
			rust exec $notify_skip
			skip $notify_why
			rust cgroups $(printf -- '--skip %s ' "${CGROUPS_V1_ONLY[@]}")
			skip rust:cgroups: ${#CGROUPS_V1_ONLY[@]} tests written for v1 files (device lists, freezer, memory.oom_control, pids on v1, v1 weights, v1-shaped limits, per-hierarchy dirs) are not run on v2; v2-cases.sh checks the same behaviours against the v2 files (docs/testing.md maps each to its case)
		PLAN
	fi
	if [ -n "${KRAAL_VM_PLAN_SYSTEMD:-}" ]; then
		cp "$KRAAL_VM_PLAN_SYSTEMD" "$p/plan-systemd"
	else
		cat >"$p/plan-systemd" <<-PLAN
			cases systemd-cases.sh
			cases v2sd-cases.sh
			cases zone-cases.sh
			rust lifecycle
			rust exec $notify_skip
			skip $notify_why
		PLAN
	fi
}

# tests/cgroups.rs tests that need v1 files, skipped in the plain guest (docs/testing.md
# names the v2 case that replaces each).
CGROUPS_V1_ONLY=(device_list_is_in_the_cgroup device_list_update_denies_then_allows_a_device
	pause_freezes_and_resume_continues memory_limit_oom_kills_and_events_reports_it
	pids_limit_stops_a_fork_bomb update_changes_a_running_container weight_files_of_this_kernel
	limits_are_written_to_the_cgroup_files a_resource_the_host_lacks_fails_create_cleanly
	delete_leaves_no_cgroup_dir)

# Host tools the busybox guest lacks: zone.sh is bash and wants iproute2's ip (busybox
# ip ignores `peer name`), util-linux's flock and mountpoint, coreutils' install and
# rm (--one-file-system). They go to /usr/local/bin, ahead of busybox's applets in the
# guest's PATH.
PLAIN_TOOLS="bash ip flock mountpoint install rm"

# plain_initrd: the cached initramfs plus this run's payload as a second cpio, with
# the shared libraries and tools the busybox guest lacks. Sets RUN_INITRD.
plain_initrd() {
	local s=$WORK/payload-plain t
	mkdir -p "$s"
	cp -al "$WORK/payload/vm" "$s/vm"
	mkdir -p "$s$(dirname "$KRAAL_DBG")"
	ln "$s/vm/kraal" "$s$KRAAL_DBG"
	mkdir -p "$s/usr/bin" "$s/usr/local/bin"
	cp -L "$(command -v ps)" "$s/usr/bin/ps"
	cp -L "$(command -v jq)" "$s/usr/bin/jq"
	for t in $PLAIN_TOOLS; do
		cp -L "$(command -v "$t")" "$s/usr/local/bin/$t" || return 1
	done
	copy_libs "$s" "$s/vm/kraal" "$s/vm/kraal-release" "$s"/vm/tests/* "$s/usr/bin/ps" "$s/usr/bin/jq" \
		"$s"/usr/local/bin/*
	cpio_of "$s" "$WORK/payload.cpio" || return 1
	RUN_INITRD=$WORK/initrd-plain.cpio
	cat "$INITRD" "$WORK/payload.cpio" >"$RUN_INITRD"
}

# systemd_disks: the payload as an ext4 image. Sets PAYLOAD_DISK. The guest boots the
# cached image itself with snapshot=on: qemu keeps its writes in a throwaway overlay
# (under $TMPDIR, the work dir), so no qemu-img is needed. Debian's qemu-system-x86
# and a backported qemu-utils cannot be installed together, and apt resolves that by
# removing qemu-utils.
systemd_disks() {
	PAYLOAD_DISK=$WORK/payload.img
	local size=$(($(du -sm "$WORK/payload" | cut -f1) + 64))
	mke2fs -q -t ext4 -L kraal-payload -d "$WORK/payload" -F "$PAYLOAD_DISK" "${size}M" >"$WORK/mke2fs-payload.log" 2>&1 || {
		say "mke2fs of the payload failed: $(tail -n 3 "$WORK/mke2fs-payload.log")"
		return 1
	}
}

# ---- booting -------------------------------------------------------------------------------

# accel: "kvm" when a probe guest boots under KVM here, else "tcg". The verdict is
# cached per host kernel and qemu; KRAAL_VM_ACCEL forces one.
accel() {
	if [ -n "${KRAAL_VM_ACCEL:-}" ]; then
		ACCEL=$KRAAL_VM_ACCEL
		return 0
	fi
	local key verdict
	key=$( (uname -r; qemu-system-x86_64 --version | head -n 1; grep -m1 'model name' /proc/cpuinfo) | sha256sum | cut -c1-12)
	verdict=$CACHE/accel-$key
	if [ ! -f "$verdict" ]; then
		ACCEL=tcg
		if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
			say "probing KVM (once per host)"
			local log=$WORK/kvm-probe.log
			timeout -k 5 25 qemu-system-x86_64 -accel kvm -nodefaults -nic none -m 512M -smp 1 \
				-nographic -no-reboot -kernel "$KDIR/vmlinux" -initrd "$PLAIN_INITRD" \
				-append "console=ttyS0 panic=-1 quiet kraal.probe" -serial "file:$log" \
				</dev/null >/dev/null 2>&1
			grep -q KVM-PROBE-OK "$log" 2>/dev/null && ACCEL=kvm
		fi
		echo "$ACCEL" >"$verdict"
	fi
	ACCEL=$(cat "$verdict")
}

# boot NAME TIMEOUT QEMU-ARGS...: boots a guest whose report comes on its second
# serial port, prints the report as it arrives, and sets BOOT_S (host seconds until
# KVM-INIT), READY_S (until KVM-BOOTED, systemd guest), RUN_S (whole VM), VM_RC.
# The report is in $WORK/NAME.report, the console in $WORK/NAME.console.
boot() {
	local name=$1 limit=$2
	shift 2
	local rep=$WORK/$name.report con=$WORK/$name.console raw=$WORK/$name.raw
	: >"$raw"
	: >"$con"
	local t0 shown=0 total
	t0=$(now)
	BOOT_S="" READY_S=""
	TMPDIR=$WORK timeout -k 10 "$limit" qemu-system-x86_64 -accel "$ACCEL" -nodefaults -nic none \
		-m "$GUEST_MEM" -smp "$GUEST_CPUS" -nographic -no-reboot \
		-serial "file:$con" -serial "file:$raw" "$@" </dev/null >"$WORK/$name.qemu" 2>&1 &
	QEMU_PID=$!
	while :; do
		local alive=1
		kill -0 "$QEMU_PID" 2>/dev/null || alive=0
		# Whole lines only: the guest may be half-way through one.
		tr -d '\r' <"$raw" >"$rep"
		total=$(wc -l <"$rep")
		if [ "$total" -gt "$shown" ]; then
			sed -n "$((shown + 1)),${total}p" "$rep" | sed "s/^/[$name] /"
			if [ -z "$BOOT_S" ] && sed -n "$((shown + 1)),${total}p" "$rep" | grep -q '^KVM-INIT'; then
				BOOT_S=$(secs_since "$t0")
			fi
			if [ -z "$READY_S" ] && sed -n "$((shown + 1)),${total}p" "$rep" | grep -q '^KVM-BOOTED'; then
				READY_S=$(secs_since "$t0")
			fi
			shown=$total
		fi
		[ $alive = 1 ] || break
		sleep 0.25
	done
	wait "$QEMU_PID"
	VM_RC=$?
	QEMU_PID=""
	RUN_S=$(secs_since "$t0")
	# A last line without its newline still counts.
	tr -d '\r' <"$raw" >"$rep"
	[ -z "$(tail -c 1 "$rep")" ] || echo >>"$rep"
	total=$(wc -l <"$rep")
	[ "$total" -le "$shown" ] || sed -n "$((shown + 1)),${total}p" "$rep" | sed "s/^/[$name] /"
	if [ "$VM_RC" = 124 ] || [ "$VM_RC" = 137 ]; then
		say "$name: the VM hit its ${limit}s timeout"
	elif [ "$VM_RC" != 0 ]; then
		say "$name: qemu exited $VM_RC: $(tail -n 5 "$WORK/$name.qemu")"
	fi
}

# ---- the report --------------------------------------------------------------------------

# Skips the suite expects, as "guest/name" in the results: the planned ones. Any
# other SKIP (a case that found something missing, an ignored Rust test) counts as a
# failure, unless KRAAL_VM_ALLOW_SKIPS=1 (a local run on a guest that lacks something).
SKIP_ALLOWED="plain/rust:exec::notify_socket_readiness_is_forwarded
	systemd/rust:exec::notify_socket_readiness_is_forwarded plain/rust:cgroups"

# tally NAME: reads $WORK/NAME.report; appends "P|F|S<TAB>name<TAB>detail" lines to
# $WORK/results. Nothing passes by saying nothing: a guest that did not boot or did
# not finish fails; so does a Rust step that ran no test or died before reporting all
# of them, a `cases` step that printed no `CASES N`, enumerated 0 cases, or did not
# report exactly N results, and a skip not in SKIP_ALLOWED.
tally() {
	local name=$1
	awk -v g="$name" -v vmrc="$VM_RC" -v allowed="$SKIP_ALLOWED" -v anyskip="${KRAAL_VM_ALLOW_SKIPS:-}" '
	BEGIN { na = split(allowed, a, /[ \t\n]+/); for (i = 1; i <= na; i++) if (a[i] != "") ok_skip[a[i]] = 1 }
	function out(k, n, d,    full) {
		full = g "/" n
		if (k == "S" && !(full in ok_skip) && anyskip != "1") {
			k = "F"; d = "skipped, and not an expected skip (integration/vm/lib.sh SKIP_ALLOWED): " d
		}
		printf "%s\t%s\t%s\n", k, full, d
	}
	/^KVM-INIT/ { init = 1 }
	/^KVM-END/ { ended = 1 }
	/^KVM-FATAL/ { out("F", "guest", substr($0, 11)) }
	/^KVM-SKIP / { sub(/^KVM-SKIP /, ""); i = index($0, ": ")
		if (i) out("S", substr($0, 1, i - 1), substr($0, i + 2)); else out("S", $0, ""); next }
	/^KVM-BEGIN / { step = $2; open_step[step] = 1; kind = step; sub(/:.*/, "", kind)
		nrun = -1; nseen = 0; nfail = 0; ncases = -1; nres = 0; next }
	/^KVM-EXIT / {
		s = $2; rc = $3; delete open_step[s]
		if (kind == "rust" && nrun < 0)
			out("F", s, "no libtest output (exit " rc ")")
		else if (kind == "rust" && nrun == 0)
			out("F", s, "ran 0 tests (exit " rc ")")
		else if (kind == "rust" && nseen < nrun)
			out("F", s, "only " nseen " of " nrun " tests reported (exit " rc ")")
		else if (kind == "cases" && ncases < 0)
			out("F", s, "printed no CASES line, so nothing says how many cases it has (exit " rc ")")
		else if (kind == "cases" && ncases == 0)
			out("F", s, "enumerated 0 cases (exit " rc ")")
		else if (kind == "cases" && nres != ncases)
			out("F", s, "reported " nres " results for " ncases " cases (exit " rc ")")
		else if (rc != 0 && nfail == 0)
			out("F", s, "exited " rc " without reporting a failure (crash or timeout)")
		step = ""; next }
	step != "" && kind == "rust" && /^running [0-9]+ tests?$/ { nrun = $2; next }
	step != "" && kind == "rust" && /^test .* \.\.\. (ok|FAILED|ignored)$/ {
		n = $0; sub(/^test /, "", n); sub(/ \.\.\. [a-zA-Z]+$/, "", n)
		r = $NF; nseen++
		if (r == "ok") out("P", step "::" n, "")
		else if (r == "FAILED") { out("F", step "::" n, ""); nfail++ }
		else out("S", step "::" n, "ignored")
		next }
	step != "" && kind == "cases" && /^CASES [0-9]+$/ { ncases = $2; next }
	step != "" && kind == "cases" && /^(PASS|FAIL|SKIP) / {
		n = $2; sub(/:$/, "", n); nres++
		if ($1 == "PASS") out("P", n, "")
		else if ($1 == "FAIL") { out("F", n, ""); nfail++ }
		else { d = $0; sub(/^SKIP [^ ]* /, "", d); out("S", n, d) }
		next }
	END {
		for (s in open_step) out("F", s, "did not finish (the guest stopped or timed out)")
		if (!init) out("F", "boot", "the guest never reached its test runner (VM exit " vmrc "); see the console log")
		else if (!ended) out("F", "run", "the guest did not finish its run (no KVM-END; VM exit " vmrc ")")
	}' "$WORK/$name.report" >>"$WORK/results"
}

# details NAME TEST: the lines that explain one failure (a Rust panic, a case's ASSERT).
details() {
	local name=$1 t=$2 rep=$WORK/$1.report
	[ -f "$rep" ] || return 0
	case $t in
	rust:*::*)
		local tn=${t#*::}
		awk -v h="---- $tn stdout ----" '
			$0 == h { on = 1; next }
			on && (/^---- .* stdout ----$/ || /^failures:$/) { exit }
			on { print }' "$rep" | grep -v '^note: run with' | grep -v '^$' | head -n 12
		;;
	*)
		local lines
		lines=$(awk -v n="$t" '
			$1 == "FAIL" && $2 == n { on = 1; next }
			on && /^    / { sub(/^    /, ""); print; next }
			on { exit }' "$rep")
		if echo "$lines" | grep -q 'ASSERT'; then
			echo "$lines" | sed -n '/ASSERT/,$p' | head -n 8
		else
			echo "$lines" | tail -n 6
		fi
		;;
	esac
}
