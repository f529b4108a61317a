#!/usr/bin/env bash
# The Python test suite on every CPython from 3.9 to 3.13 found on this machine: python3.X on
# PATH and pyenv's versions, one interpreter per minor version (the newest patch). Each gets a
# virtual environment in .venvs/<version>, where the package and its test extras are installed,
# again only when a source changed since. Usage: tools/all_pythons.sh [VERSION...] (e.g. 3.9).
# Versions not found are listed at the end; any failure fails the run, after every version ran.
set -uo pipefail
cd "$(dirname "$0")/.."

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(3.9 3.10 3.11 3.12 3.13)
sources=(pyproject.toml CMakeLists.txt cpp python)

# The interpreter for a minor version: python3.X on PATH, else pyenv's newest 3.X.Y.
find_python() {
  local version=$1 candidate
  for candidate in "python$version" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python3 2>/dev/null | sort -rV); do
    if command -v "$candidate" >/dev/null 2>&1 &&
        [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

passed=() failed=() missing=()
for version in "${wanted[@]}"; do
  if ! python=$(find_python "$version"); then
    missing+=("$version")
    continue
  fi
  venv=.venvs/$version
  echo "=== Python $version: $python ($("$python" -V 2>&1))"
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" && "$venv/bin/python" -m pip install -q --upgrade pip || {
      failed+=("$version (venv)"); continue; }
  fi
  stamp=$venv/.installed
  if [ ! -f "$stamp" ] || [ -n "$(find "${sources[@]}" -newer "$stamp" -type f -print -quit)" ]; then
    echo "    installing offload and its test extras into $venv"
    "$venv/bin/python" -m pip install -q ".[test,dask]" && touch "$stamp" || {
      failed+=("$version (install)"); continue; }
  fi
  if "$venv/bin/python" -m pytest tests -q; then
    passed+=("$version")
  else
    failed+=("$version")
  fi
done

echo
echo "all Pythons: passed: ${passed[*]:-none}; failed: ${failed[*]:-none}; not found: ${missing[*]:-none}"
[ ${#failed[@]} -eq 0 ] && [ ${#passed[@]} -gt 0 ]
