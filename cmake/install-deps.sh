#!/usr/bin/env bash
# Installs the Debian 12 packages taskhost builds and tests with, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits 1.
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config
      libcaf-dev libboost-dev libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev
      libsqlite3-dev libjemalloc-dev libcli11-dev libhowardhinnant-date-dev libssl-dev
      googletest libgtest-dev libgmock-dev libbenchmark-dev curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the test that drives taskhost with the official @trigger.dev/sdk. Checked as
# commands: a machine may have them from elsewhere than Debian's packages.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "taskhost needs these Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
