# Shared helpers for the client suites (podman.sh, containerd.sh, docker.sh).
# Sourced, never run. Owns: choosing the runtime under test (kraal, or runc with
# KRAAL_COMPARE=runc), the suite's private work dir, the teardown stack run on
# exit, scenario bookkeeping (PASS/FAIL lines and the closing tally), package
# installation, cgroup and mount cleanup, and the busybox image artefacts.
#
# Environment:
#   KRAAL            kraal binary to test (default: target/release/kraal, built if missing)
#   KRAAL_COMPARE    "runc": run the same scenarios against runc instead
#   KRAAL_INT_ONLY   extended regex: run only the scenarios whose name matches
#   KRAAL_INT_TRACE  1: record every runtime invocation (argv) in the work dir's
#                    runtime-calls.log and print it for failed scenarios
#   KRAAL_INT_KEEP   1: keep the work dir (logs, configs) after teardown
#   KRAAL_INT_TIMEOUT seconds any single client command may take (default 60)
#   KRAAL_INT_HOLD   1: before teardown, keep the daemons up (client wrappers in
#                    the work dir's bin/) until the work dir's "hold" file is removed

set -uo pipefail

INT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CRATE=$(dirname "$INT_DIR")
SUITE=${SUITE:?SUITE must be set before sourcing lib.sh}
CMD_TIMEOUT=${KRAAL_INT_TIMEOUT:-60}

# Daemons print to the terminal through our stderr; the tally goes to stdout.
say() { echo "$SUITE: $*" >&2; }

# ---- teardown stack --------------------------------------------------------

_cleanups=()
# on_exit CMD...: run CMD (eval'd) at exit, most recent first.
on_exit() { _cleanups+=("$*"); }

_run_cleanups() {
	local rc=$? i
	trap - EXIT INT TERM HUP
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[i]}" >>"${WORK:-/dev/null}/teardown.log" 2>&1 || true
	done
	return "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- work dir ----------------------------------------------------------------

# Short path: unix socket paths (daemons, shims, console sockets) must stay
# under 108 bytes.
WORK=$(mktemp -d "/tmp/ki-$SUITE.XXXXXX")
chmod 0711 "$WORK"
mkdir -p "$WORK/logs" "$WORK/bin"
# Clients drop files in their current directory (conmon writes an `oom` marker when a
# container is OOM-killed): run from the work dir, which goes at the end.
cd "$WORK" || exit 1
_remove_work() {
	if [ "${KRAAL_INT_KEEP:-}" = 1 ]; then
		echo "$SUITE: work dir kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
on_exit _remove_work
# Unique tag for names, cgroups and bridges of this run.
# shellcheck disable=SC2034 # used by the suites
TAG=ki$$

# ---- results -----------------------------------------------------------------

PASSED=0
FAILED=0

# scenario NAME FUNCTION: runs FUNCTION in a subshell with its output in
# logs/NAME.log; FUNCTION reports a failure with `bail REASON` (or any non-zero
# exit). Prints PASS/FAIL and, on failure, the log's tail on stderr.
scenario() {
	local name=$1 fn=$2 log rc reason
	if [ -n "${KRAAL_INT_ONLY:-}" ] && ! [[ $name =~ $KRAAL_INT_ONLY ]]; then
		return 0
	fi
	log=$WORK/logs/$name.log
	local calls_before=0
	[ -f "$WORK/runtime-calls.log" ] && calls_before=$(wc -l <"$WORK/runtime-calls.log")
	local t0=$SECONDS
	("$fn") >"$log" 2>&1 </dev/null
	rc=$?
	if [ "$rc" = 0 ]; then
		PASSED=$((PASSED + 1))
		echo "PASS $name ($((SECONDS - t0))s)"
		return 0
	fi
	FAILED=$((FAILED + 1))
	reason=$(sed -n 's/^REASON: //p' "$log" | tail -n 1)
	[ -n "$reason" ] || reason="exit status $rc (see the log below)"
	echo "FAIL $name: $reason"
	{
		echo "---- $name: last lines of its log"
		tail -n 25 "$log" | sed 's/^/    /'
		if [ -f "$WORK/runtime-calls.log" ]; then
			echo "---- $name: runtime invocations"
			tail -n +"$((calls_before + 1))" "$WORK/runtime-calls.log" | tail -n 30 | sed 's/^/    /'
		fi
	} >&2
	return 0
}

# bail REASON: ends the current scenario as failed.
bail() {
	echo "REASON: $*"
	exit 1
}

# setup_failed REASON: the suite could not start; counts as one failure.
setup_failed() {
	FAILED=$((FAILED + 1))
	echo "FAIL $SUITE-setup: $*"
	finish
}

finish() {
	if [ "${KRAAL_INT_HOLD:-}" = 1 ]; then
		: >"$WORK/hold"
		say "holding: clients in $WORK/bin; rm $WORK/hold to tear down"
		while [ -e "$WORK/hold" ]; do sleep 1; done
	fi
	echo "$SUITE [${RT_NAME:-?}]: $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
	exit
}

# ---- running commands ----------------------------------------------------------

# expect_rc WANT CMD...: runs CMD (with timeout), output to the log; bails
# unless it exits with WANT. Leaves the output in $OUT.
expect_rc() {
	local want=$1 rc
	shift
	echo "+ $*"
	OUT=$(timeout -k 5 "$CMD_TIMEOUT" "$@" 2>&1)
	rc=$?
	printf '%s\n' "$OUT"
	[ "$rc" = "$want" ] && return 0
	local cmd=${*#"$WORK/bin/"}
	bail "'${cmd:0:90}' exited $rc, want $want: $(printf '%s' "$OUT" | tail -n 2 | tr '\n' ' ' | cut -c1-300)"
}

# contains TEXT NEEDLE WHAT: bails unless TEXT contains NEEDLE.
contains() {
	case $1 in
	*"$2"*) return 0 ;;
	esac
	bail "$3: want \"$2\" in output \"$(printf '%s' "$1" | tr '\n' ' ' | cut -c1-200)\""
}

# has_line TEXT LINE WHAT: bails unless one line of TEXT is exactly LINE.
has_line() {
	printf '%s\n' "$1" | tr -d '\r' | grep -qxF -- "$2" && return 0
	bail "$3: want a line \"$2\" in output \"$(printf '%s' "$1" | tr '\n' ' ' | cut -c1-200)\""
}

# wait_until SECONDS CMD...: polls CMD (eval'd) every 0.2s until it succeeds.
wait_until() {
	local limit=$1 end
	shift
	end=$((SECONDS + limit))
	while [ "$SECONDS" -lt "$end" ]; do
		eval "$*" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# ---- packages ------------------------------------------------------------------

# need_cmd CMD PACKAGE: installs PACKAGE from Debian unless CMD exists.
need_cmd() {
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] || { echo "$1 is missing and we are not root to install $2" >&2; return 1; }
	say "installing $2"
	# Package scripts would start system-wide daemons (docker, containerd) on
	# hosts without systemd; forbid that for the length of the install.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
	fi
	local rc=0
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2"; } >"$WORK/logs/apt-$2.log" 2>&1 || rc=$?
	[ -z "$made_policy" ] || rm -f "$policy"
	if [ "$rc" != 0 ]; then
		tail -n 5 "$WORK/logs/apt-$2.log" >&2
		return 1
	fi
	command -v "$1" >/dev/null 2>&1
}

# remove_if_new PATH: at exit, removes PATH if it does not exist now (a
# client creates it as a side effect we cannot redirect).
remove_if_new() {
	[ -e "$1" ] && return 0
	on_exit "rm -rf '$1'"
}

# ---- the runtime under test -------------------------------------------------------

_find_kraal() {
	if [ -n "${KRAAL:-}" ]; then
		[ -x "$KRAAL" ] || { echo "KRAAL=$KRAAL is not executable" >&2; return 1; }
		echo "$KRAAL"
		return 0
	fi
	local k=$CRATE/target/release/kraal
	if [ ! -x "$k" ]; then
		say "building kraal (cargo build --release)"
		(cd "$CRATE" && cargo build --release) >&2 || return 1
	fi
	echo "$k"
}

# Sets RT (absolute path the clients are given) and RT_NAME (kraal|runc).
# The binary is copied into the work dir so a rebuild during the run does not
# change what is tested.
select_runtime() {
	local real
	KRAAL_BIN=$(_find_kraal) || return 1
	case ${KRAAL_COMPARE:-} in
	"")
		RT_NAME=kraal
		cp "$KRAAL_BIN" "$WORK/bin/kraal"
		real=$WORK/bin/kraal
		;;
	runc)
		RT_NAME=runc
		need_cmd runc runc || return 1
		real=$(command -v runc)
		;;
	*)
		echo "KRAAL_COMPARE=${KRAAL_COMPARE} is not supported (only runc)" >&2
		return 1
		;;
	esac
	RT=$real
	if [ "${KRAAL_INT_TRACE:-}" = 1 ]; then
		# Same base name as the real binary: clients key behaviour on it.
		mkdir -p "$WORK/bin/traced"
		RT=$WORK/bin/traced/$RT_NAME
		cat >"$RT" <<-EOF
			#!/bin/sh
			echo "\$(date +%T.%N) \$*" >>"$WORK/runtime-calls.log"
			exec "$real" "\$@"
		EOF
		chmod 0755 "$RT"
	fi
	export RT RT_NAME
}

# ---- cgroups ------------------------------------------------------------------------

# Prints "MOUNTPOINT OWN_PATH" for each cgroup hierarchy mounted here: where
# this shell's cgroup is in it. Relative cgroupsPath values resolve from there
# (runc's rule, which kraal follows).
cgroup_hierarchies() {
	awk '
		FNR == NR {
			n = split($0, f, ":")
			path = f[3]; for (i = 4; i <= n; i++) path = path ":" f[i]
			if (f[2] == "") own["cgroup2"] = path
			else { m = split(f[2], c, ","); for (i = 1; i <= m; i++) own[c[i]] = path }
			next
		}
		{
			for (i = 1; i <= NF; i++) if ($i == "-") break
			fstype = $(i + 1); opts = $(i + 3); mp = $5
			if (fstype == "cgroup2") { if ("cgroup2" in own) print mp, own["cgroup2"]; next }
			if (fstype != "cgroup") next
			m = split(opts, o, ",")
			for (j = 1; j <= m; j++) if (o[j] in own) { print mp, own[o[j]]; break }
		}' /proc/self/cgroup /proc/self/mountinfo
}

# cgroup_cleanup NAME: removes the cgroup NAME (relative, as given to the
# clients as cgroup parent) and everything below it, in every hierarchy, both
# below our own cgroup and below the hierarchy root.
cgroup_cleanup() {
	local name=$1 mp own base
	[ -n "$name" ] || return 0
	case $name in *..*) return 1 ;; esac
	while read -r mp own; do
		case $name in
		/*) set -- "$mp" ;;
		*) set -- "$mp${own%/}/" "$mp/" ;;
		esac
		for base in "$@"; do
			[ -d "$base$name" ] || continue
			find "$base$name" -depth -type d -exec rmdir {} \; 2>/dev/null
		done
	done < <(cgroup_hierarchies)
	# Ancestors cgroup_uniform_parent saw missing (deepest first).
	if [ -f "$WORK/cgroup-ancestors" ]; then
		sort -r "$WORK/cgroup-ancestors" | while read -r d; do rmdir "$d" 2>/dev/null; done
	fi
}

# cgroup_uniform_parent NAME: an absolute cgroup path NAME beneath this
# shell's memory cgroup (its cgroup2 one on a pure v2 host), the same in every
# hierarchy. For clients that assume one path for all controllers (podman
# stats) on hosts where a shell's v1 cgroups differ per controller. Notes the
# ancestors it makes in the other hierarchies so cgroup_cleanup removes them.
cgroup_uniform_parent() {
	local own mp d abs
	own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' /proc/self/cgroup)
	[ -n "$own" ] || own=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
	[ -n "$own" ] || return 1
	abs=${own%/}/$1
	: >"$WORK/cgroup-ancestors"
	while read -r mp _; do
		d=$(dirname "$abs")
		while [ "$d" != / ] && [ ! -d "$mp$d" ]; do
			echo "$mp$d" >>"$WORK/cgroup-ancestors"
			d=$(dirname "$d")
		done
	done < <(cgroup_hierarchies)
	echo "$abs"
}

# cgroup_dir CONTROLLER NAME: the directory of cgroup NAME (absolute, or
# relative to this shell's cgroup) in CONTROLLER's v1 hierarchy, or in the
# unified one when CONTROLLER is cgroup2.
cgroup_dir() {
	local mp own
	while read -r mp own; do
		# "FSTYPE,SUPER_OPTIONS": cgroup2 names the unified hierarchy.
		case ,$(awk -v m="$mp" '$5 == m { for (i = 1; i <= NF; i++) if ($i == "-") { print $(i + 1) "," $(i + 3); exit } }' /proc/self/mountinfo), in
		*,"$1",*)
			case $2 in
			/*) echo "$mp$2" ;;
			*) echo "$mp${own%/}/$2" ;;
			esac
			return 0
			;;
		esac
	done < <(cgroup_hierarchies)
	return 1
}

# ---- mounts and processes -------------------------------------------------------

# umount_under DIR: unmounts everything mounted below DIR, deepest first.
umount_under() {
	local d=$1 m
	awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

# kill_pidfile FILE: SIGKILLs the process whose pid FILE holds, if FILE exists.
kill_pidfile() {
	local pid
	[ -s "$1" ] || return 0
	pid=$(cat "$1")
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	kill -KILL "$pid" 2>/dev/null || true
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if PID is still there after SECONDS.
stop_pid() {
	local pid=$1 limit=$2 end
	kill -TERM "$pid" 2>/dev/null || return 0
	end=$((SECONDS + limit))
	while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_socket PATH SECONDS PID: waits for PATH to be a socket while PID lives.
wait_socket() {
	local end=$((SECONDS + $2))
	while [ "$SECONDS" -lt "$end" ]; do
		[ -S "$1" ] && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# ---- the image ------------------------------------------------------------------------

# podman_private_conf RUNTIME NETWORK_LINES: writes $WORK/containers.conf and
# $WORK/storage.conf that keep Podman private to $WORK: contrib/clients/containers.conf
# (the runtime table, runtime_supports_json) with RUNTIME as kraal's path, cgroupfs,
# file events and locks, k8s-file logs, vfs storage; NETWORK_LINES (the [network]
# table's keys) are added to netavark's backend and config dir. Makes the dirs.
podman_private_conf() {
	local rt=$1 net_lines=${2:-}
	mkdir -p "$WORK"/{root,runroot,tmp,net}
	cat >"$WORK/engine.conf" <<-EOF
		runtime = "kraal"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		events_logfile_path = "$WORK/tmp/events.log"
		lock_type = "file"
		tmp_dir = "$WORK/tmp"
	EOF
	echo 'log_driver = "k8s-file"' >"$WORK/containers.part.conf"
	sed -e "s|/usr/local/bin/kraal|$rt|" -e '/^# runtime = "kraal"$/d' \
		-e '/^\[engine\]$/r '"$WORK/engine.conf" -e '/^\[containers\]$/r '"$WORK/containers.part.conf" \
		"$CRATE/contrib/clients/containers.conf" >"$WORK/containers.conf"
	printf '[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "%s"\n%s' "$WORK/net" "$net_lines" >>"$WORK/containers.conf"
	printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$WORK/root" "$WORK/runroot" >"$WORK/storage.conf"
}

# make_rootfs_tar: $WORK/rootfs.tar, a busybox-static rootfs made by contrib/mkbundle.sh.
make_rootfs_tar() {
	KRAAL=$KRAAL_BIN bash "$CRATE/contrib/mkbundle.sh" "$WORK/bundle" >"$WORK/logs/mkbundle.log" 2>&1 || return 1
	tar -C "$WORK/bundle/rootfs" --numeric-owner -cf "$WORK/rootfs.tar" . || return 1
	rm -rf "$WORK/bundle"
}

# make_oci_archive NAME OUT: an OCI image layout archive (tar) of rootfs.tar,
# one gzip layer, named NAME through the io.containerd.image.name annotation.
make_oci_archive() {
	local name=$1 out=$2 lay=$WORK/oci blobs layer cfg man ldig lsize diffid cdig csize mdig msize
	blobs=$lay/blobs/sha256
	mkdir -p "$blobs"
	layer=$WORK/layer.tar.gz
	gzip -n -c "$WORK/rootfs.tar" >"$layer" || return 1
	diffid=$(sha256sum "$WORK/rootfs.tar" | cut -d' ' -f1)
	ldig=$(sha256sum "$layer" | cut -d' ' -f1)
	lsize=$(stat -c %s "$layer")
	mv "$layer" "$blobs/$ldig"
	cfg=$(jq -cn --arg d "sha256:$diffid" '{
		architecture: "amd64", os: "linux",
		config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"], WorkingDir: "/"},
		rootfs: {type: "layers", diff_ids: [$d]},
		history: [{created_by: "kraal integration: busybox-static rootfs"}]}')
	printf '%s' "$cfg" >"$WORK/cfg.json"
	cdig=$(sha256sum "$WORK/cfg.json" | cut -d' ' -f1)
	csize=$(stat -c %s "$WORK/cfg.json")
	mv "$WORK/cfg.json" "$blobs/$cdig"
	man=$(jq -cn --arg c "sha256:$cdig" --argjson cs "$csize" --arg l "sha256:$ldig" --argjson ls "$lsize" '{
		schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
		layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]}')
	printf '%s' "$man" >"$WORK/man.json"
	mdig=$(sha256sum "$WORK/man.json" | cut -d' ' -f1)
	msize=$(stat -c %s "$WORK/man.json")
	mv "$WORK/man.json" "$blobs/$mdig"
	jq -n --arg m "sha256:$mdig" --argjson ms "$msize" --arg n "$name" '{
		schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
		manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
			platform: {architecture: "amd64", os: "linux"},
			annotations: {"io.containerd.image.name": $n, "org.opencontainers.image.ref.name": ($n | sub(".*:"; ""))}}]}' \
		>"$lay/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
	tar -C "$lay" -cf "$out" oci-layout index.json blobs || return 1
	rm -rf "$lay"
}

# ---- terminals ------------------------------------------------------------------------

# pty_shell RC CMD...: runs CMD (a client starting `sh` in a container with a tty) on
# a fresh pty, types `tty`, `echo $((6*7))`, `stty size` and `exit RC`, and checks the
# exit code, that the shell has a pty and that its output came back. Sets OUT.
pty_shell() {
	local want=$1 rc
	shift
	OUT=$(in_pty $'tty\necho $((6*7))\nstty size\nexit '"$want"$'\n' "$@" 2>&1)
	rc=$?
	printf '%s\n' "$OUT"
	[ "$rc" = "$want" ] || bail "$(basename "$1") ${2:-} exited $rc, want $want: $(printf '%s' "$OUT" | tail -n 2 | tr '\r\n' '  ')"
	contains "$OUT" /dev/pts/ "a pty inside the container"
	contains "$OUT" 42 "shell output through the pty"
}

# in_pty INPUT CMD...: runs CMD on a fresh pty (util-linux script), typing
# INPUT after a second; prints the terminal's output, returns CMD's status.
in_pty() {
	local input=$1 cmd
	shift
	printf -v cmd '%q ' "$@"
	echo "+ (pty) $cmd"
	{ sleep 1; printf '%s' "$input"; sleep 1; } |
		timeout -k 5 "$CMD_TIMEOUT" script -qefc "$cmd" /dev/null
}
