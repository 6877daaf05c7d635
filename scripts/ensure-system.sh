#!/usr/bin/env bash
# Install the Debian packages BCX needs that this machine lacks. Idempotent: it installs
# nothing when everything is present, and runs apt-get update at most once.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || need+=(redis-server)
have redis-benchmark || need+=(redis-tools)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv python3-pip)
for extra in ${BCX_EXTRA_PACKAGES:-}; do
  IFS=: read -r cmd pkg <<<"$extra"
  have "$cmd" || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bcx: missing Debian packages: ${need[*]}" >&2
  echo "bcx: run as root (or: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "bcx: installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
