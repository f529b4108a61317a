#!/usr/bin/env bash
# Tests the wheel that tools/wheel/build.sh put in dist/ for one Python: `make test-wheel`.
#
#   tools/wheel/check.sh [PYTHON]      (default: $PYTHON, else .venv/bin/python)
#
# 1. `auditwheel show`: the wheel has a manylinux tag and needs no libabsl from the system
#    (every one is bundled in offload.libs/).
# 2. A fresh venv (build/wheel/cpXY/venv) gets that wheel alone: --no-index --no-deps, so
#    nothing can be built from source.
# 3. With the system's abseil hidden, `ldd` resolves every libabsl of the installed extension
#    to offload.libs/, and tools/wheel/smoke.py runs from a directory outside the repository
#    (python -I: the source tree cannot be imported). Hiding: in a private mount namespace
#    (unshare; root, or an unprivileged user namespace), each libabsl_*.so* file the dynamic
#    loader could find is covered by an empty file, so loading it fails ("file too short").
#    The mounts die with the namespace: the machine is left untouched. Where no namespace can
#    be made, the smoke test runs with abseil visible and relies on its /proc/self/maps check,
#    and says so.
set -euo pipefail
# shellcheck source=tools/wheel/common.sh
source "$(dirname "$0")/common.sh"

wheel=$(repaired_wheel)
ensure_tools
mkdir -p "$WORK"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

say "auditwheel show $wheel"
auditwheel show "$wheel"
auditwheel show --json "$wheel" >"$scratch/show.json"
"$TOOLS/bin/python" - "$scratch/show.json" "$wheel" <<'EOF'
import json, sys, zipfile

show = json.load(open(sys.argv[1]))
names = zipfile.ZipFile(sys.argv[2]).namelist()
bundled = sorted(n for n in names if n.startswith("offload.libs/libabsl_"))
external = sorted(show["external_libs"])
problems = []
if not show["overall_tag"].startswith("manylinux_"):
    problems.append(f"platform tag {show['overall_tag']}, not manylinux")
if any(lib.startswith("libabsl") for lib in external):
    problems.append(f"libabsl needed from the system: {external}")
if not bundled:
    problems.append("no libabsl_* in offload.libs/")
print(f"tag {show['overall_tag']}; {len(bundled)} abseil libraries bundled; "
      f"system libraries used: {', '.join(sorted(show['versioned_symbols']))}")
for problem in problems:
    print(f"FAIL: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

say "installing the wheel alone into a fresh $WORK/venv"
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
venv_python=$REPO/$WORK/venv/bin/python
"$venv_python" -m pip install -q --disable-pip-version-check --no-index --no-deps "$wheel"
core=$(echo "$REPO/$WORK"/venv/lib/python*/site-packages/offload/_core*.so)
[ -f "$core" ] || die "the installed wheel has no offload/_core*.so: $core"

# Every libabsl_*.so* file of the system that the dynamic loader could find: its cache and the
# usual directories, symlinks resolved.
{
  ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true
} | awk '$1 ~ /^libabsl_/ {print $NF}' >"$scratch/candidates"
find /lib /usr/lib /usr/local/lib /lib/*-linux-gnu /usr/lib/*-linux-gnu /usr/local/lib/*-linux-gnu \
  -maxdepth 1 -name 'libabsl_*.so*' 2>/dev/null >>"$scratch/candidates" || true
while IFS= read -r path; do
  if path=$(readlink -f "$path") && [ -f "$path" ]; then echo "$path"; fi
done <"$scratch/candidates" | sort -u >"$scratch/system-absl"
: >"$scratch/empty"

if [ "$(id -u)" = 0 ]; then
  namespace=(unshare --mount --propagation private)
else
  namespace=(unshare --user --map-root-user --mount --propagation private)
fi
if [ ! -s "$scratch/system-absl" ]; then
  say "no system abseil on this machine: nothing to hide"
  absl_state=absent
  without_system_absl() { "$@"; }
elif "${namespace[@]}" true 2>/dev/null; then
  say "hiding $(wc -l <"$scratch/system-absl") system libabsl files in a private mount namespace"
  absl_state=hidden
  without_system_absl() {
    # shellcheck disable=SC2016  # $1, $2, $@ are the inner shell's
    "${namespace[@]}" -- bash -c 'set -eu
      while IFS= read -r path; do mount --bind "$1" "$path"; done <"$2"
      shift 2
      exec "$@"' hide "$scratch/empty" "$scratch/system-absl" "$@"
  }
else
  say "WARNING: cannot make a mount namespace (${namespace[*]}): the system abseil stays" \
    "visible; only the /proc/self/maps check of smoke.py shows where abseil came from"
  absl_state=visible
  without_system_absl() { "$@"; }
fi

say "ldd ${core#"$REPO"/} (system abseil: $absl_state)"
without_system_absl ldd "$core" >"$scratch/ldd"
grep -v 'libabsl_' "$scratch/ldd" || true
echo "	+ $(grep -c '/offload.libs/libabsl_' "$scratch/ldd" || true) libabsl_* => .../site-packages/offload.libs/"
if grep -q 'not found' "$scratch/ldd" || grep 'libabsl' "$scratch/ldd" | grep -qv '/offload.libs/'; then
  cat "$scratch/ldd"
  die "the installed extension does not resolve every libabsl to offload.libs/"
fi

say "smoke test from $scratch (system abseil: $absl_state)"
cp tools/wheel/smoke.py "$scratch/"
(
  cd "$scratch"
  without_system_absl env -u LD_LIBRARY_PATH -u LD_PRELOAD -u PYTHONPATH \
    OFFLOAD_SMOKE_SYSTEM_ABSL=$absl_state "$venv_python" -I smoke.py
)
say "wheel check passed: $wheel (${SECONDS}s)"
