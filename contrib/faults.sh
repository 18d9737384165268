#!/usr/bin/env bash
# Fault-injection tests (tests/faults.rs): kraal built with the `failpoints` feature,
# SIGKILLed at each stage of create, a lost state dir, parallel create/start/delete
# loops for about a minute, a full state root, and the fds of a running `kraal run`;
# each checks that nothing is left behind. Run as root: contrib/faults.sh [TEST-FILTER].
#
# Recovering a container whose state dir is gone (kraal no longer knows the id, so
# `delete --force` has nothing to act on): its cgroup is linux.cgroupsPath, resolved
# like kraal does (relative paths from kraal's own cgroup, see /proc/self/cgroup) in
# every hierarchy under /sys/fs/cgroup. In each such directory kill every pid listed
# in cgroup.procs (SIGKILL; with a pid namespace killing the init is enough), then
# rmdir the directory once cgroup.procs is empty. tests/faults.rs lost_state_dir does
# exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
# Its own target dir: the failpoints build never replaces target/debug/kraal, which
# other test runs use.
export CARGO_TARGET_DIR="$PWD/target/failpoints"
cargo test --features failpoints --test faults -- --test-threads=2 "$@"
