#!/usr/bin/env bash
# Installs the Debian packages kraal needs to build and to run its tests.
# Idempotent; skips apt when everything is already there.
set -euo pipefail
# golang-github-containers-common ships /usr/share/containers/seccomp.json, the
# Docker/Podman default seccomp profile tests/seccomp.rs runs containers under.
pkgs=(busybox-static libseccomp-dev pkg-config iproute2 jq procps util-linux dbus uidmap gcc libc6-dev
  golang-github-containers-common)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "deps.sh: cargo not found: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
