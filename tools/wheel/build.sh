#!/usr/bin/env bash
# Builds a binary wheel of offload for one Python and repairs it with auditwheel: `make wheel`.
#
#   tools/wheel/build.sh [PYTHON]      (default: $PYTHON, else .venv/bin/python)
#
# 1. `pip wheel .` builds the extension from scratch (build isolation: scikit-build-core and
#    pybind11 come from PyPI) in build/wheel/cpXY/cmake, not in the dev install's build dir.
#    Nothing is installed into PYTHON itself.
# 2. `auditwheel show` tells the lowest manylinux tag that the symbol versions the extension
#    and abseil use allow (glibc, libstdc++); `auditwheel repair` copies the libabsl_*.so
#    files into the wheel (offload.libs/, renamed with a hash so they cannot clash with
#    another copy of abseil) and points the extension's RPATH at them, so the wheel installs
#    and runs on a machine without abseil.
# The result goes to dist/, replacing this Python's previous wheel. tools/wheel/check.sh tests it.
set -euo pipefail
# shellcheck source=tools/wheel/common.sh
source "$(dirname "$0")/common.sh"

say "offload wheel for $TAG: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (python -m ensurepip)"
rm -rf "$WORK/raw" "$WORK/cmake"
rm -f "$DIST"/offload-*-"$TAG"-"$TAG"-*.whl
ensure_tools

say "building the wheel (clean CMake build in $WORK/cmake)"
"$PYTHON" -m pip wheel . --no-deps --disable-pip-version-check -w "$WORK/raw" \
  --config-settings=build-dir="$WORK/cmake"
raw=$(echo "$WORK"/raw/offload-*.whl)
[ -f "$raw" ] || die "pip wrote no single wheel to $WORK/raw: $raw"

say "auditwheel show $raw"
auditwheel show "$raw"
# sym_tag: the lowest tag the symbol versions allow. (The overall tag of the raw wheel is
# linux_x86_64 until abseil, which no manylinux policy provides, is bundled.)
plat=$(auditwheel show --json "$raw" | "$TOOLS/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["sym_tag"])')
case $plat in
manylinux_*) ;;
*) die "the extension uses symbol versions too new for any manylinux tag (auditwheel: $plat)" ;;
esac

say "auditwheel repair --plat $plat"
mkdir -p "$DIST"
auditwheel repair --plat "$plat" -w "$DIST" "$raw"
wheel=$(repaired_wheel)

bundled=$("$TOOLS/bin/python" -c 'import sys, zipfile
print(sum(n.startswith("offload.libs/libabsl_") for n in zipfile.ZipFile(sys.argv[1]).namelist()))' "$wheel")
say "built $wheel: $(du -k "$wheel" | cut -f1) KiB, $bundled abseil libraries bundled, ${SECONDS}s"
