#!/usr/bin/env bash
# Fuzzes config.json parsing and validation (fuzz/fuzz_targets/config.rs) for a bounded
# time: contrib/fuzz.sh [SECONDS] (default 60). Needs cargo-fuzz (installed if missing)
# and runs its nightly-only flags on the stable toolchain through RUSTC_BOOTSTRAP=1.
#
# The seed corpus fuzz/corpus/config/ is only read; what the fuzzer learns goes to
# target/fuzz/corpus/config/ (kept between runs), crashes to target/fuzz/artifacts/.
# Exits non-zero when the target crashed, with the input that did it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target/fuzz"
work="$CARGO_TARGET_DIR/corpus/config"
artifacts="$CARGO_TARGET_DIR/artifacts/config/"
mkdir -p "$work" "$artifacts"
cd fuzz
# libFuzzer's own -max_total_time ends the run; `timeout` only guards against a hang
# in the build or in libFuzzer itself.
status=0
timeout --kill-after=30 "$((secs + 900))" \
  cargo fuzz run config "$work" corpus/config -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -dict=config.dict -artifact_prefix="$artifacts" -print_final_stats=1 || status=$?
# cargo-fuzz makes its default artifact dir even when told to use another one.
rmdir artifacts/config artifacts 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: the config target failed (exit $status); inputs in $artifacts:" >&2
  ls -1 "$artifacts" >&2 || true
  echo "reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo fuzz run config FILE)" >&2
fi
exit "$status"
