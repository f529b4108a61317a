#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages named that are missing, with sudo unless run as root, and
# does nothing (no apt-get update either) when every one is installed: `make deps`, and the
# targets that need one more package (lint: clang, docs: python3-doc, bench-cpp:
# libbenchmark-dev).
#
#   tools/apt_install.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
[ ${#missing[@]} -gt 0 ] || exit 0

as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo)
echo "Installing system packages: ${missing[*]}"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
