#!/usr/bin/env bash
# Builds the C++ tests and the extension with a sanitizer and runs them: `make sanitize`.
#
#   tools/sanitize/run.sh thread|address PYTHON [PYTHON...]
#
# thread   ThreadSanitizer. abseil is built from Debian 12's source of its LTS with the same
#          flags (Debian's libabsl is not instrumented, so TSan cannot see inside
#          absl::Mutex and reports false races). Suppressions: tools/sanitize/tsan.supp.
# address  AddressSanitizer + UndefinedBehaviorSanitizer, against the installed abseil.
#
# For each PYTHON (a venv's interpreter with the test extras installed) the extension is built
# for it, staged with the package sources in a directory put first on PYTHONPATH, and pytest
# runs the suite with the sanitizer runtime preloaded into the interpreter; subprocesses that
# the tests start inherit it. Every report goes to a log file: the run fails if any log exists,
# even when every test passed.
set -euo pipefail

kind=${1:?usage: run.sh thread|address PYTHON...}
shift
[ $# -gt 0 ] || { echo "run.sh: give at least one Python" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
venv_bin=${VENV_BIN:-$root/.venv/bin}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

case $kind in
thread)
  sanitize=thread
  runtime=$(g++ -print-file-name=libtsan.so)
  options_var=TSAN_OPTIONS
  # die_after_fork=0: the fork tests are deselected below, but a test's subprocess may still
  # fork (multiprocessing's forkserver) and must not be killed for it.
  # report_thread_leaks=0: from 3.13 every Python thread is joinable, and a daemon thread that
  # ended without being joined (distributed's, in Dask worker processes and clients) is reported
  # as a leak at exit. That is not a race; offload's own threads are counted by the tests
  # (test_soak, test_citizenship, the pool life-cycle tests).
  options="halt_on_error=0 die_after_fork=0 second_deadlock_stack=1 report_thread_leaks=0 suppressions=$root/tools/sanitize/tsan.supp"
  # ThreadSanitizer does not support starting threads in a child forked from a multi-threaded
  # process ("starting new threads after multi-threaded fork is not supported"): the fork
  # tests run in `make test` and (but one) under ASan instead.
  deselect=(-k "not fork")
  controls=("race:WARNING: ThreadSanitizer: data race")
  absl_src=$root/build/absl-src
  "$venv_bin/python" "$root/tools/sanitize/fetch_abseil.py" "$absl_src"
  extra=(-DOFFLOAD_ABSL_SOURCE="$absl_src" -DCMAKE_CXX_FLAGS=)
  ;;
address)
  sanitize=address,undefined
  # libstdc++ is preloaded too, so that ASan's interceptors see the C++ runtime that the
  # extension uses, not a copy resolved later (ASan checks the link order otherwise).
  runtime="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
  options_var=ASAN_OPTIONS
  # detect_leaks=0: CPython does not free everything at exit, by design. UBSan reports are
  # fatal (-fno-sanitize-recover below): they abort the process, which fails its test, and
  # go to stderr rather than to log_path.
  options="detect_leaks=0 verify_asan_link_order=0 abort_on_error=0"
  export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
  # GCC 12's libasan does not lock its allocator around fork() (LLVM added that in 2023,
  # llvm-project#75290): a child forked while a parent thread is inside malloc waits forever
  # on the allocator's lock. That is the whole point of this test (busy workers at the fork),
  # so it runs in `make test` only; the other fork tests run here.
  deselect=(-k "not test_fork_while_workers_are_busy")
  controls=("use-after-free:ERROR: AddressSanitizer: heap-use-after-free"
            "signed-overflow:runtime error: signed integer overflow")
  extra=(-DCMAKE_CXX_FLAGS=-fno-sanitize-recover=undefined)
  ;;
*)
  echo "run.sh: unknown sanitizer '$kind' (thread or address)" >&2
  exit 2
  ;;
esac
cmake=(
  "$venv_bin/cmake" -G Ninja -DCMAKE_MAKE_PROGRAM="$venv_bin/ninja"
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOFFLOAD_SANITIZE="$sanitize" "${extra[@]}"
)

logs=$root/build/sanitize-$kind/reports
rm -rf "$logs"
mkdir -p "$logs"
export "$options_var=$options log_path=$logs/report"
[ "$kind" = address ] && UBSAN_OPTIONS="$UBSAN_OPTIONS log_path=$logs/report"

echo "== $kind: C++ tests"
cpp_build=$root/build/sanitize-$kind/cpp
"${cmake[@]}" -S "$root" -B "$cpp_build" \
  -DOFFLOAD_BUILD_TESTS=ON -DOFFLOAD_BUILD_PYTHON=OFF >/dev/null
"$venv_bin/cmake" --build "$cpp_build" -j "$jobs"
# The controls: known bugs that must be reported, or a clean run would prove nothing.
control_logs=$root/build/sanitize-$kind/controls
for control in "${controls[@]}"; do
  what=${control%%:*}
  expected=${control#*:}
  rm -rf "$control_logs"
  mkdir -p "$control_logs"
  if env "$options_var=$options log_path=$control_logs/report" UBSAN_OPTIONS="${UBSAN_OPTIONS:-} log_path=$control_logs/report" \
      "$cpp_build/sanitizer_control" "$what" 2>"$control_logs/stderr"; then
    echo "== $kind: the control '$what' exited cleanly: the sanitizer is not working" >&2
    exit 1
  fi
  # A fatal UBSan report (-fno-sanitize-recover) goes to stderr, not to log_path: in the
  # test runs it aborts the process, which fails the run anyway.
  grep -q "$expected" "$control_logs"/* || {
    echo "== $kind: the control '$what' was not reported as '$expected'" >&2
    exit 1
  }
  echo "== $kind: control '$what' reported as expected"
done

# Three rounds: the stress tests draw different interleavings each time.
"$venv_bin/ctest" --test-dir "$cpp_build" -j "$jobs" --output-on-failure --repeat until-fail:3

failed=""
for python in "$@"; do
  tag=$("$python" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
  echo "== $kind: Python tests on $("$python" -V)"
  "$python" -m pip install -q pybind11
  py_build=$root/build/sanitize-$kind/$tag
  "${cmake[@]}" -S "$root" -B "$py_build" \
    -DOFFLOAD_BUILD_TESTS=OFF -DOFFLOAD_BUILD_PYTHON=ON -DPython_EXECUTABLE="$python" \
    -Dpybind11_DIR="$("$python" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
  "$venv_bin/cmake" --build "$py_build" -j "$jobs"
  site=$py_build/site
  rm -rf "$site"
  mkdir -p "$site"
  cp -r "$root/python/offload" "$site/"
  cp "$py_build"/_core*.so "$site/offload/"
  # The real interpreter binary, not a shim script: the runtime is preloaded into it.
  real_python=$("$python" -c 'import sys; print(sys.executable)')
  (
    cd "$root/build"  # not the source tree: `import offload` must find the staged copy
    # OFFLOAD_SANITIZER tells the tests that measure memory (the soak) that the runtime's
    # own allocator makes RSS meaningless here; every count they check stays.
    PYTHONPATH=$site LD_PRELOAD=$runtime OFFLOAD_SANITIZER=$kind \
      "$real_python" -m pytest "$root/tests" -q -p no:cacheprovider "${deselect[@]}"
  ) || failed="$failed $tag"
done

if [ -n "$failed" ]; then
  echo "== $kind: pytest failed on:$failed" >&2
fi
if [ -n "$(ls -A "$logs")" ]; then
  echo "== $kind: sanitizer reports in $logs:" >&2
  for report in "$logs"/*; do echo "--- $report" >&2; cat "$report" >&2; done
  exit 1
fi
[ -z "$failed" ] || exit 1
echo "== $kind: clean (no sanitizer report)"
