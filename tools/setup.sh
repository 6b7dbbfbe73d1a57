#!/usr/bin/env bash
# One command that sets everything up on a fresh Debian 12 machine (as root): the programs the lab
# runs for real (OpenSSH, Ceph's RADOS Gateway, Prometheus, Alertmanager, compressors, ping), then
# the npm dependencies. Idempotent. Usage: bash tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  openssh-server openssh-client iputils-ping iproute2 procps util-linux
  zstd gzip lzop bzip2 tar jq time
  ceph-mon ceph-osd radosgw ceph-common
  prometheus prometheus-alertmanager prometheus-node-exporter
)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "Installing: ${missing[*]}"
  apt-get update -qq
  # Daemons are started by the lab itself, never by the package scripts.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
command -v terraform >/dev/null || echo "warning: terraform is not on PATH; the state tests need terraform >= 1.11" >&2

npm ci --no-audit --no-fund
echo "Set up. Run the tests with: npm test"
