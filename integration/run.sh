#!/usr/bin/env bash
# Runs the client suites (Podman, containerd, Docker) against kraal, one after
# the other, and ends with one line "N passed, M failed" (exit status 1 when M
# is not 0). Each suite installs its client from Debian when missing, starts
# the daemons it needs privately and tears everything down when it ends.
#
#   integration/run.sh [podman|containerd|docker|zone ...]   (default: all four)
#
# KRAAL_COMPARE=runc runs the same scenarios against runc, to tell kraal's
# failures from the environment's. kraal is built with `cargo build --release`
# unless $KRAAL names a binary. See integration/lib.sh for the other knobs
# (KRAAL_INT_ONLY, KRAAL_INT_TRACE, KRAAL_INT_KEEP, KRAAL_INT_TIMEOUT).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$(dirname "$here")

[ "$(id -u)" = 0 ] || { echo "run.sh: the client suites need root" >&2; exit 2; }

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(podman containerd docker zone)
for s in "${suites[@]}"; do
	[ -f "$here/$s.sh" ] || { echo "run.sh: no suite named $s (podman, containerd, docker, zone)" >&2; exit 2; }
done

# Build once here rather than in each suite.
if [ -z "${KRAAL:-}" ]; then
	(cd "$crate" && cargo build --release) || { echo "run.sh: cargo build --release failed"; echo "0 passed, 1 failed"; exit 1; }
	KRAAL=$crate/target/release/kraal
fi
export KRAAL

passed=0
failed=0
start=$SECONDS
for s in "${suites[@]}"; do
	out=$(mktemp)
	t0=$SECONDS
	bash "$here/$s.sh" | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^PASS ' "$out")
	f=$(grep -c '^FAIL ' "$out")
	# A suite that died without reporting its failure still fails the run.
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "FAIL $s: the suite exited with status $rc"
		f=1
	fi
	rm -f "$out"
	echo "($s took $((SECONDS - t0))s)"
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "(runtime: ${KRAAL_COMPARE:-kraal}, $((SECONDS - start))s)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
