# offload: set-up, build and test in one command each, on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, builds the package, runs the demo
#   make test   same set-up, then the C++ tests (ctest) and the Python tests (pytest)

PYTHON   ?= python3
VENV     ?= .venv
BUILD    ?= build/cpp
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
APT_PACKAGES := g++ make pkg-config libabsl-dev libgtest-dev python3-dev python3-venv
PY       := $(VENV)/bin/python
# InterpreterPool needs Python >= 3.12; 3.12.0-3.12.3 can crash at exit after subinterpreters
# used some extension modules (CPython gh-119213). The first python3.X on PATH that is
# 3.12.4 or newer (or a pyenv one) runs the CPU-pool tests and benchmarks in its own venv, when
# $(PYTHON) is older.
AT_LEAST_3124 := import sys; sys.exit(sys.version_info < (3, 12, 4))
PYENV_PYTHONS := $(shell ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.*/bin/python3 2>/dev/null | sort -rV)
INTERP_PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 $(PYENV_PYTHONS); do \
  command -v $$p >/dev/null 2>&1 && $$p -c '$(AT_LEAST_3124)' 2>/dev/null && echo $$p && break; done)
INTERP_VENV ?= .venv-interp
IPY      := $(INTERP_VENV)/bin/python
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES  := $(shell find cpp python -type f \( -name '*.h' -o -name '*.cc' -o -name '*.py' -o -name '*.pyi' \) 2>/dev/null)

.PHONY: all demo docs wheel wheels test-wheel test test-all test-cpp test-python test-interpreters build build-cpp bench bench-cpp lint sanitize \
  sanitize-thread sanitize-address deps clean distclean

all: build

## System packages: installed only when one is missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(PY): | deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

## The package and its test extras, rebuilt when a source changes.
$(VENV)/.installed: $(PY) pyproject.toml CMakeLists.txt $(SOURCES)
	$(PY) -m pip install -q ".[test,dask]"
	$(PY) -m pip install -q cmake ninja
	@touch $@

build: deps $(VENV)/.installed

demo: build
	$(PY) -m offload.demo

## C++ core tests, built with the venv's cmake and ninja.
build-cpp: build
	$(VENV)/bin/cmake -S . -B $(BUILD) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja \
	  -DOFFLOAD_BUILD_TESTS=ON -DOFFLOAD_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	$(VENV)/bin/cmake --build $(BUILD) -j $(JOBS)

test-cpp: build-cpp
	$(VENV)/bin/ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-python: build
	$(PY) -m pytest tests -q

## The CPU-pool tests again on a Python with own-GIL subinterpreters, when $(PYTHON) has none,
## and CPython's own executor tests (tests/test_stdlib_suites.py), which 3.11 and 3.12 builds lack.
$(INTERP_VENV)/.installed: pyproject.toml CMakeLists.txt $(SOURCES) | deps
	$(INTERP_PYTHON) -m venv $(INTERP_VENV)
	$(IPY) -m pip install -q --upgrade pip
	$(IPY) -m pip install -q ".[test,dask]"
	@touch $@

test-interpreters: build
	@if $(PY) -c '$(AT_LEAST_3124)'; then \
	  echo "test-interpreters: $$($(PY) -V) already ran the InterpreterPool tests"; \
	elif [ -z "$(INTERP_PYTHON)" ]; then \
	  echo "test-interpreters: SKIPPED, no python3.12 (>= 3.12.4) or newer on PATH for InterpreterPool"; \
	else \
	  $(MAKE) --no-print-directory $(INTERP_VENV)/.installed && \
	  $(IPY) -m pytest $(wildcard tests/test_cpu_*.py) tests/test_stdlib_suites.py -q; \
	fi

test: test-cpp test-python test-interpreters

## `make test`, then the whole Python suite on every other CPython 3.9-3.13 found (python3.X on
## PATH, or pyenv's), each in its own venv under .venvs/ (tools/all_pythons.sh says how).
PY_VERSION = $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
test-all: test
	tools/all_pythons.sh $(filter-out $(PY_VERSION),3.9 3.10 3.11 3.12 3.13)

## Static checks: clang's thread-safety analysis of every ABSL_GUARDED_BY / *_LOCKS_REQUIRED
## in the core, its tests and the binding (warnings are errors), and mypy --strict on the package,
## the examples and tests/typed_usage.py.
lint: build
	@dpkg-query -W -f='$${Status}' clang 2>/dev/null | grep -q "ok installed" || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang)
	$(PY) -m pip install -q mypy pybind11
	CXX=clang++ $(VENV)/bin/cmake -S . -B build/lint -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja \
	  -DOFFLOAD_BUILD_TESTS=ON -DOFFLOAD_BUILD_PYTHON=ON -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -Dpybind11_DIR="$$($(PY) -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
	  -DCMAKE_CXX_FLAGS="-Wthread-safety -Wthread-safety-beta -Werror"
	$(VENV)/bin/cmake --build build/lint -j $(JOBS)
	$(PY) -m mypy --strict python/offload tests/typed_usage.py examples

## A manylinux wheel of offload with abseil bundled (auditwheel), in dist/; test-wheel installs
## it alone in a fresh venv and smoke-tests it with the system abseil hidden (tools/wheel/).
## WHEEL_PYTHON picks the Python; `make wheels` builds and checks one per pyenv Python >= 3.9.
WHEEL_PYTHON ?= $(PY)

wheel: deps $(PY)
	tools/wheel/build.sh $(WHEEL_PYTHON)

test-wheel: wheel
	tools/wheel/check.sh $(WHEEL_PYTHON)

wheels: deps
	@for p in $(PYENV_PYTHONS); do $$p -c 'import sys; sys.exit(sys.version_info < (3, 9))' || continue; \
	  tools/wheel/build.sh $$p && tools/wheel/check.sh $$p || exit 1; done

## The documentation site in build/docs/html (Sphinx with furo and MyST, see docs/conf.py),
## warnings as errors; then Sphinx's doctest builder runs every example on it, docstrings too.
DOCS_PACKAGES := "sphinx>=7" "furo>=2024.1" "myst-parser>=2"
docs: build
	@dpkg-query -W -f='$${Status}' python3-doc 2>/dev/null | grep -q "ok installed" || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-doc)
	$(PY) -m pip install -q $(DOCS_PACKAGES)
	$(PY) -m sphinx -W --keep-going -q -b html -d build/docs/doctrees docs build/docs/html
	$(PY) -m sphinx -W --keep-going -q -b doctest -d build/docs/doctrees docs build/docs/doctest
	@echo "docs: build/docs/html/index.html"

## Sanitizers: the C++ tests and the whole pytest suite under ThreadSanitizer, then under
## AddressSanitizer + UndefinedBehaviorSanitizer, on $(PYTHON) and (when found) on the Python
## with own-GIL subinterpreters. Any report fails the run (tools/sanitize/run.sh says how).
SANITIZE_PYTHONS = $(abspath $(PY)) $(if $(INTERP_PYTHON),$(abspath $(IPY)))

sanitize: sanitize-thread sanitize-address

sanitize-thread sanitize-address: build
	@if ! $(PY) -c '$(AT_LEAST_3124)' && [ -n "$(INTERP_PYTHON)" ]; then \
	  $(MAKE) --no-print-directory $(INTERP_VENV)/.installed; fi
	@if $(PY) -c '$(AT_LEAST_3124)'; then pythons=$(abspath $(PY)); else pythons="$(SANITIZE_PYTHONS)"; fi; \
	VENV_BIN=$(abspath $(VENV))/bin JOBS=$(JOBS) tools/sanitize/run.sh $(@:sanitize-%=%) $$pythons

## Benchmarks: every scenario against its alternatives in the same run, rendered with PNG plots
## into docs/benchmarks.md (benchmarks/report.py). pytest-benchmark JSONs: build/bench.json
## (calls, bulk, latency, channels), build/bench-cpu.json (CPU pools: under $(PY) when it is
## Python >= 3.12.4, else under $(INTERP_VENV); with neither, InterpreterPool is skipped with
## the reason printed), build/bench-dask.json (DaskPool); memory per pending task and per
## buffered item; the C++ core (bench-cpp). About 15 minutes.
bench: build bench-cpp
	$(PY) -m pip install -q ".[bench]"
	@mkdir -p build
	$(PY) -m pytest benchmarks -q --ignore=benchmarks/test_bench_cpu.py --ignore=benchmarks/test_bench_dask.py \
	  --benchmark-json=build/bench.json
	@if ! $(PY) -c '$(AT_LEAST_3124)' && [ -n "$(INTERP_PYTHON)" ]; then \
	  $(MAKE) --no-print-directory $(INTERP_VENV)/.installed; fi
	@if $(PY) -c '$(AT_LEAST_3124)'; then cpu_py=$(PY); \
	elif [ -n "$(INTERP_PYTHON)" ]; then cpu_py=$(IPY); \
	else echo "bench: SKIPPING InterpreterPool, no python3.12 (>= 3.12.4) or newer on PATH"; cpu_py=$(PY); fi; \
	echo "$$cpu_py -m pytest benchmarks/test_bench_cpu.py -q -rs --benchmark-json=build/bench-cpu.json"; \
	$$cpu_py -m pytest benchmarks/test_bench_cpu.py -q -rs --benchmark-json=build/bench-cpu.json
	$(PY) -m pytest benchmarks/test_bench_dask.py -q --benchmark-json=build/bench-dask.json
	$(PY) benchmarks/memory_per_task.py --tasks 200000 --json build/memory-task.json
	$(PY) benchmarks/memory_per_item.py --items 1000000 --json build/memory-item.json
	$(PY) benchmarks/report.py build/bench.json --cpu build/bench-cpu.json --dask build/bench-dask.json \
	  --cpp build/bench-cpp.json --memory-task build/memory-task.json --memory-item build/memory-item.json \
	  --plots docs/plots > docs/benchmarks.md
	@echo "bench: docs/benchmarks.md and docs/plots/*.png"

## C++ core benchmarks (Google Benchmark, cpp/bench/): offload's pool, futures and channel
## against a plain std::mutex + std::condition_variable baseline; JSON in build/bench-cpp.json,
## the tables in build/bench-cpp.md.
BENCH_CPP_ARGS ?=
bench-cpp: build
	@dpkg-query -W -f='$${Status}' libbenchmark-dev 2>/dev/null | grep -q "ok installed" || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libbenchmark-dev)
	$(VENV)/bin/cmake -S . -B build/bench-cpp -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja \
	  -DOFFLOAD_BUILD_BENCHMARKS=ON -DOFFLOAD_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release
	$(VENV)/bin/cmake --build build/bench-cpp -j $(JOBS)
	build/bench-cpp/core_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
	  --benchmark_out=build/bench-cpp.json --benchmark_out_format=json $(BENCH_CPP_ARGS)
	$(PY) benchmarks/cpp_report.py build/bench-cpp.json > build/bench-cpp.md

clean:
	rm -rf build dist

distclean: clean
	rm -rf $(VENV) $(INTERP_VENV) .venvs
