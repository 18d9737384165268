#!/usr/bin/env bash
# Installs what kraal needs, builds it, makes a busybox bundle and runs a container.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
cargo build --release
export KRAAL="$PWD/target/release/kraal"
bundle=$(mktemp -d /tmp/kraal-quickstart.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
bash contrib/mkbundle.sh "$bundle" -- sh -c 'echo "hello from $(hostname), pid $$ in its own namespaces"; id; ls /'
"$KRAAL" run --bundle "$bundle" "quickstart-$$"
