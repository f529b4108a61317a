#!/usr/bin/env bash
# The Python half of `make bench` (the Makefile runs `make bench-cpp` first), then the report
# that renders every JSON into docs/benchmarks.md with its plots. Each step is printed as it
# starts; the first that fails stops the run.
#
#   tools/bench.sh PYTHON [SUBINTERP_PYTHON]
#
# PYTHON (the dev venv's, with the bench extras) runs every benchmark but the CPU pools' and
# the memory scripts. SUBINTERP_PYTHON, a Python >= 3.12.4 with offload installed (the
# Makefile's SUBINTERP_PY), runs benchmarks/test_bench_cpu.py; without one PYTHON runs it and
# InterpreterPool is skipped, with the reason printed. Writes build/bench.json (calls, bulk,
# latency, channels), build/bench-cpu.json, build/bench-dask.json, build/memory-task.json,
# build/memory-item.json, then docs/benchmarks.md and docs/plots/*.png (build/bench-cpp.json
# comes from `make bench-cpp`).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:?usage: tools/bench.sh PYTHON [SUBINTERP_PYTHON]}
cpu_py=${2:-}

step() {
  echo "$*"
  "$@"
}

mkdir -p build
step "$py" -m pytest benchmarks -q --ignore=benchmarks/test_bench_cpu.py --ignore=benchmarks/test_bench_dask.py \
  --benchmark-json=build/bench.json
if [ -z "$cpu_py" ]; then
  echo "bench: SKIPPING InterpreterPool, no python3.12 (>= 3.12.4) or newer on PATH"
  cpu_py=$py
fi
step "$cpu_py" -m pytest benchmarks/test_bench_cpu.py -q -rs --benchmark-json=build/bench-cpu.json
step "$py" -m pytest benchmarks/test_bench_dask.py -q --benchmark-json=build/bench-dask.json
step "$py" benchmarks/memory_per_task.py --tasks 200000 --json build/memory-task.json
step "$py" benchmarks/memory_per_item.py --items 1000000 --json build/memory-item.json

report=(benchmarks/report.py build/bench.json --cpu build/bench-cpu.json --dask build/bench-dask.json
  --cpp build/bench-cpp.json --memory-task build/memory-task.json --memory-item build/memory-item.json
  --plots docs/plots)
echo "$py ${report[*]} > docs/benchmarks.md"
# Rendered aside first: a report that fails leaves the last docs/benchmarks.md as it was.
"$py" "${report[@]}" >build/benchmarks.md
mv build/benchmarks.md docs/benchmarks.md
echo "bench: docs/benchmarks.md and docs/plots/*.png"
