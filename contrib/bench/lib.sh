# shellcheck shell=bash
# Shared by run.sh and profile.sh (sourced, not run): tool installation, the release
# build, the bundles, the runtimes' command lines, and the private mount + cgroup
# namespace in which all three runtimes run on this hybrid host.
#
# The caller sets BENCH_PROG (its name for messages) and REPO (the crate root).

bench_log() { echo "$BENCH_PROG: $*" >&2; }
bench_die() {
	echo "$BENCH_PROG: error: $*" >&2
	exit 1
}

# Installs a Debian package when the file or command it provides is missing.
# apt-get waits for the dpkg lock (other sessions install packages too); stale
# package lists make the first attempt fail, so refresh them once and retry.
bench_need() { # command-or-path package
	local what=$1 pkg=$2
	if [[ $what == /* ]]; then [ -x "$what" ] && return 0; else command -v "$what" >/dev/null 2>&1 && return 0; fi
	[ "$(id -u)" = 0 ] || bench_die "$what is missing: install the $pkg package"
	bench_log "installing $pkg (for $what)"
	local apt=(apt-get -o DPkg::Lock::Timeout=900 install -y -q "$pkg")
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 ||
		{ apt-get -o DPkg::Lock::Timeout=900 update -q >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; } ||
		bench_die "apt-get install $pkg failed"
	if [[ $what == /* ]]; then [ -x "$what" ]; else command -v "$what" >/dev/null 2>&1; fi ||
		bench_die "$what is still missing after installing $pkg"
}

bench_need_common() {
	bench_need runc runc
	bench_need crun crun
	bench_need jq jq
	bench_need unshare util-linux
	bench_need /bin/busybox busybox-static
	# The rootfs has no libc: Debian's dynamically linked busybox would not run in it.
	if command -v file >/dev/null 2>&1 && ! file -L /bin/busybox | grep -q 'statically linked'; then
		bench_log "/bin/busybox is dynamically linked: installing busybox-static"
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q busybox-static >&2 ||
			bench_die "installing busybox-static failed"
	fi
	# shellcheck disable=SC2034 # used by the scripts that source this file
	# A python3 outside pyenv's shims: the shim costs a bash start per call.
	if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else
		bench_need python3 python3
		PY=$(command -v python3)
	fi
}

# Builds kraal in release mode and copies the binary into the work directory, so a
# rebuild by someone else in the shared target dir cannot swap it mid-measurement.
bench_build_kraal() { # destdir
	command -v cargo >/dev/null 2>&1 || bench_die "cargo not found: install a Rust toolchain"
	bench_log "building kraal (cargo build --release; may wait on the shared target dir's lock)"
	(cd "$REPO" && cargo build --release --quiet) || bench_die "cargo build --release failed"
	local bin=${CARGO_TARGET_DIR:-$REPO/target}/release/kraal
	[ -x "$bin" ] || bench_die "$bin missing after the build"
	cp "$bin" "$1/kraal"
	KRAAL=$1/kraal
	KRAAL_COMMIT=$(cd "$REPO" && git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	# Uncommitted edits in the crate are part of what was measured: say so.
	if [ -n "$(cd "$REPO" && git status --porcelain -- src Cargo.toml Cargo.lock build.rs 2>/dev/null)" ]; then
		KRAAL_COMMIT="$KRAAL_COMMIT+uncommitted"
	fi
}

# The base bundle: busybox rootfs from mkbundle.sh and its config.json, normalised
# once for all three runtimes. crun 1.8.1 refuses any ociVersion without "1.0" in it
# ("unknown version specified") and runc 1.1.5 speaks spec 1.0.2, so the config says
# 1.0.2; nothing else in kraal's default config is rejected by either (the check in
# bench_check_runtimes proves it on every run).
bench_make_base_bundle() { # dir
	local dir=$1
	KRAAL=$KRAAL bash "$REPO/contrib/mkbundle.sh" "$dir" -- /bin/true 2>/dev/null ||
		bench_die "contrib/mkbundle.sh $dir failed"
	jq '.ociVersion = "1.0.2"' "$dir/config.json" >"$dir/config.json.new" ||
		bench_die "normalising $dir/config.json failed"
	mv "$dir/config.json.new" "$dir/config.json"
	BASE_BUNDLE=$dir
}

# One bundle per container id, $BUNDLES/ID: the base config with its own args and a
# relative cgroupsPath, sharing the base rootfs by absolute path. Only these fields
# differ between the runtimes' bundles.
bench_bundle() { # id cgroup-parent args...
	local id=$1 parent=$2
	shift 2
	local dir=$BUNDLES/$id
	mkdir -p "$dir"
	jq --arg root "$BASE_BUNDLE/rootfs" --arg cg "$parent/$id" --argjson args "$(jq -cn '$ARGS.positional' --args -- "$@")" \
		'.root.path = $root | .linux.cgroupsPath = $cg | .process.args = $args' \
		"$BASE_BUNDLE/config.json" >"$dir/config.json" || bench_die "writing $dir/config.json failed"
}

# The command line of a runtime, with its own state root.
bench_rt() { # runtime
	case $1 in
	kraal) echo "$KRAAL --root $STATE/kraal" ;;
	crun) echo "$(command -v crun) --root $STATE/crun" ;;
	runc) echo "$(command -v runc) --root $STATE/runc" ;;
	*) bench_die "unknown runtime $1" ;;
	esac
}

bench_rt_version() { # runtime
	case $1 in
	kraal) echo "kraal $("$KRAAL" --version | awk 'NR==1{print $3}') (commit $KRAAL_COMMIT)" ;;
	crun) crun --version | awk 'NR==1{print "crun "$3}' ;;
	runc) runc --version | awk 'NR==1{print "runc "$3}' ;;
	esac
}

bench_binary() { # runtime
	case $1 in
	kraal) echo "$KRAAL" ;;
	*) command -v "$1" ;;
	esac
}

# ---- The private mount + cgroup namespace ----------------------------------------
#
# Debian's crun 1.8.1 refuses hybrid hosts whose cgroup2 hierarchy holds a controller
# (here hugetlb sits on cgroup2): it reads /sys/fs/cgroup/unified/cgroup.controllers
# and fails when that file is not empty. The outer script therefore makes a v2 child
# cgroup of its own, whose cgroup.controllers is empty (the v2 root enables nothing in
# cgroup.subtree_control), moves the process that becomes the namespace into it, and
# enters `unshare --mount --cgroup --propagation private`. Inside, a fresh tmpfs covers
# /sys/fs/cgroup and every hierarchy is mounted again with its own options: each v1
# mount attaches to the same hierarchy, rooted at the caller's own cgroup, and cgroup2
# is rooted at the new child. Nothing on the host is unmounted or changed, and a
# relative cgroupsPath lands under the caller's cgroups for every runtime (runc
# resolves it from its own cgroup, crun from the hierarchy root: in the namespace
# both are the same place).

# Prints "hybrid", "legacy" or "unified" for the host's layout.
bench_cgroup_layout() {
	local t
	t=$(stat -f -c %T /sys/fs/cgroup) || bench_die "stat -f /sys/fs/cgroup failed"
	case $t in
	cgroup2fs) echo unified ;;
	tmpfs)
		if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then echo hybrid; else echo legacy; fi
		;;
	*) bench_die "/sys/fs/cgroup is a $t, neither tmpfs (v1/hybrid) nor cgroup2" ;;
	esac
}

# The host path of the caller's own cgroup in the hierarchy mounted at $1 (v1 or v2),
# from /proc/self/cgroup: where the namespace's relative paths really land.
bench_host_cgroup_dir() { # mountpoint
	local mp=$1 opts line
	if [ "$(stat -f -c %T "$mp")" = cgroup2fs ]; then
		line=$(grep '^0::' /proc/self/cgroup) || return 1
		echo "$mp${line#0::}"
		return
	fi
	opts=$(awk -v mp="$mp" '$5 == mp { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i+3); exit } }' /proc/self/mountinfo)
	local o c
	while IFS=: read -r _ c path; do
		for o in ${c//,/ }; do
			if [[ ,$opts, == *",$o,"* ]]; then
				[ "$path" = / ] && path=
				echo "$mp$path"
				return
			fi
		done
	done </proc/self/cgroup
	return 1
}

# Run in the new namespace, before anything else: cover /sys/fs/cgroup and mount the
# hierarchies again. Reads the host's cgroup mounts from the copied mount table.
bench_ns_mount_cgroups() {
	local mounts
	# mount point, fs type, super options of every cgroup mount directly below /sys/fs/cgroup
	mounts=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
		t = $(i+1); if ((t == "cgroup" || t == "cgroup2") && $5 ~ "^/sys/fs/cgroup/[^/]+$") print $5, t, $(i+3) }' /proc/self/mountinfo)
	[ -n "$mounts" ] || bench_die "no cgroup hierarchies mounted below /sys/fs/cgroup"
	local links
	links=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type l -printf '%f %l\n')
	mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs /sys/fs/cgroup || bench_die "mounting a tmpfs on /sys/fs/cgroup in the namespace failed"
	local mp type opts
	while read -r mp type opts; do
		mkdir -p "$mp"
		if [ "$type" = cgroup2 ]; then
			mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$mp" || bench_die "mounting cgroup2 on $mp failed"
		else
			mount -t cgroup -o "nosuid,nodev,noexec,$opts" cgroup "$mp" || bench_die "mounting cgroup ($opts) on $mp failed"
		fi
	done <<<"$mounts"
	# cpu -> cpu,cpuacct style links where the host has them
	local name target
	while read -r name target; do
		[ -n "$name" ] && ln -s "$target" "/sys/fs/cgroup/$name"
	done <<<"$links"
	# cgroupfs files report size 0: read them, `test -s` says nothing.
	local ctl=
	[ -e /sys/fs/cgroup/unified/cgroup.controllers ] && ctl=$(cat /sys/fs/cgroup/unified/cgroup.controllers)
	[ -z "$ctl" ] || bench_die "cgroup2 in the namespace still lists controllers ($ctl): crun would refuse it"
}

# Outer side: the v2 child cgroup the namespace's process is moved into. Prints its
# host path (empty on a legacy host). Only the hybrid and legacy layouts are handled:
# on a pure cgroup2 host crun works without any of this, but relative cgroupsPaths
# would need a leaf of their own (the no-internal-process rule), which is not done yet.
bench_make_v2_child() { # name
	local layout
	layout=$(bench_cgroup_layout)
	case $layout in
	legacy) echo "" ;;
	hybrid)
		local own
		own=$(bench_host_cgroup_dir /sys/fs/cgroup/unified) || bench_die "no cgroup2 line in /proc/self/cgroup"
		local sub
		sub=$(cat "$own/cgroup.subtree_control") || bench_die "reading $own/cgroup.subtree_control failed"
		[ -z "$sub" ] || bench_die "$own enables controllers for its children ($sub): crun would refuse a child of it"
		mkdir "$own/$1" || bench_die "mkdir $own/$1 failed"
		echo "$own/$1"
		;;
	unified) bench_die "pure cgroup2 host: this script handles the hybrid and legacy layouts (relative cgroupsPaths on v2 need a leaf cgroup of their own per run; not implemented)" ;;
	esac
}

# Outer side, after the namespace is gone: end any process we started that is still in
# the v2 child (by PID, read from its cgroup.procs), remove the child, and remove the
# v1 cgroups below our own that carry this run's tag (the namespace removes them
# itself; this is for a namespace that was killed).
bench_outer_cleanup() { # v2child parent tag
	local v2=$1 parent=$2 tag=$3 pid d h mp
	if [ -n "$v2" ] && [ -d "$v2" ]; then
		for _ in 1 2 3 4 5; do
			local pids
			pids=$(find "$v2" -name cgroup.procs -exec cat {} + 2>/dev/null)
			[ -z "$pids" ] && break
			for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
			sleep 0.2
		done
		find "$v2" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
		rmdir "$v2" 2>/dev/null || bench_log "warning: could not remove $v2"
	fi
	for mp in /sys/fs/cgroup/*; do
		[ -L "$mp" ] && continue
		[ "$(stat -f -c %T "$mp" 2>/dev/null)" = cgroup2fs ] && continue
		h=$(bench_host_cgroup_dir "$mp") || continue
		[ -d "$h/$parent" ] || continue
		for d in "$h/$parent/$tag"*; do
			[ -d "$d" ] || continue
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null ||
				bench_log "warning: could not remove $d"
		done
		rmdir "$h/$parent" 2>/dev/null || true
	done
}

# bench_prepare_work NAME RESULTS_FILE: the work directory both scripts start from
# (set their EXIT/INT traps first): WORK, STATE, BUNDLES, RESULTS (empty), LOG,
# kraal built into $WORK/bin, the base bundle, the caller's write_meta output in
# $WORK/meta.json, and V2CHILD, the cgroup2 child for this run (kraal-NAME.$TAG).
bench_prepare_work() { # name results-file
	WORK=$(mktemp -d "/tmp/kraal-$1.XXXXXX")
	mkdir -p "$WORK/bin" "$WORK/state" "$WORK/bundles"
	bench_build_kraal "$WORK/bin"
	bench_make_base_bundle "$WORK/bundle"
	STATE=$WORK/state
	BUNDLES=$WORK/bundles
	RESULTS=$WORK/$2
	LOG=$WORK/runtimes.log
	: >"$RESULTS"
	write_meta "$WORK/meta.json"
	V2CHILD=$(bench_make_v2_child "kraal-$1.$TAG")
}
