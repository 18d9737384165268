#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests with real containers, and the
# leak check. Run as root on a Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
cargo build --release
cargo test -- --test-threads=4
# kraal SIGKILLed at each create stage, lost state, parallel loops, full state root.
bash contrib/faults.sh
# Real clients (Podman, containerd, Docker) driving the release build.
bash integration/run.sh
bash contrib/leakcheck.sh
# Pure cgroup v2 and systemd guests (qemu, TCG): the v2 and systemd paths for real.
bash integration/vm/run.sh all
