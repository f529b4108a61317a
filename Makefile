# offload: set-up, build and test in one command each, on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, builds the package, runs the demo
#   make test   same set-up, then the C++ tests (ctest) and the Python tests (pytest)
# Recipes longer than a few lines are scripts in tools/; each says how it works.

PYTHON   ?= python3
VENV     ?= .venv
BUILD    ?= build/cpp
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
APT_PACKAGES := g++ make pkg-config libabsl-dev libgtest-dev python3-dev python3-venv
PY       := $(VENV)/bin/python
SOURCES  := $(shell find cpp python -type f \( -name '*.h' -o -name '*.cc' -o -name '*.py' -o -name '*.pyi' \) 2>/dev/null)
# A CMake build tree of this project with the venv's cmake and ninja: add -B DIR and options.
CMAKE    := $(VENV)/bin/cmake -S . -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja

## The Python that runs the InterpreterPool work (its tests, its benchmarks, a second sanitizer
## round). InterpreterPool needs Python >= 3.12; 3.12.0-3.12.3 can crash at exit after
## subinterpreters used some extension modules (CPython gh-119213). SUBINTERP_PY is $(PY) when
## it is 3.12.4 or newer; else $(IPY), a venv $(INTERP_VENV) made from INTERP_PYTHON, the first
## python3.X on PATH (or pyenv's) that is (the `interp-venv` target makes it); else empty.
AT_LEAST_3124 := import sys; sys.exit(sys.version_info < (3, 12, 4))
PYENV_PYTHONS := $(shell ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.*/bin/python3 2>/dev/null | sort -rV)
INTERP_PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 $(PYENV_PYTHONS); do \
  command -v $$p >/dev/null 2>&1 && $$p -c '$(AT_LEAST_3124)' 2>/dev/null && echo $$p && break; done)
INTERP_VENV ?= .venv-interp
IPY      := $(INTERP_VENV)/bin/python
# Used in recipes only, once $(PY) exists; worked out at the first use, then kept.
PY_HAS_SUBINTERP = $(shell $(PY) -c '$(AT_LEAST_3124)' 2>/dev/null && echo yes)
SUBINTERP_PY = $(eval SUBINTERP_PY := $(if $(PY_HAS_SUBINTERP),$(PY),$(if $(INTERP_PYTHON),$(IPY))))$(SUBINTERP_PY)

.PHONY: all demo docs wheel wheels test-wheel test test-all test-cpp test-python test-slow test-interpreters \
  build build-cpp interp-venv bench bench-cpp lint sanitize sanitize-thread sanitize-address deps clean distclean

all: build

## System packages: installed only when one is missing (tools/apt_install.sh).
deps:
	@tools/apt_install.sh $(APT_PACKAGES)

## The virtual environments: $(VENV) from $(PYTHON), $(INTERP_VENV) from $(INTERP_PYTHON); the
## package and its test extras installed again when a source changes.
$(PY): BASE_PYTHON = $(PYTHON)
$(IPY): BASE_PYTHON = $(INTERP_PYTHON)
$(PY) $(IPY): | deps
	$(BASE_PYTHON) -m venv $(patsubst %/bin,%,$(@D))
	$@ -m pip install -q --upgrade pip

$(VENV)/.installed: EXTRA_PACKAGES = cmake ninja
$(VENV)/.installed $(INTERP_VENV)/.installed: %/.installed: %/bin/python pyproject.toml CMakeLists.txt $(SOURCES)
	$< -m pip install -q ".[test,dask]"
	$(if $(EXTRA_PACKAGES),$< -m pip install -q $(EXTRA_PACKAGES))
	@touch $@

build: deps $(VENV)/.installed

interp-venv: build
	@$(if $(filter $(IPY),$(SUBINTERP_PY)),$(MAKE) --no-print-directory $(INTERP_VENV)/.installed,:)

demo: build
	$(PY) -m offload.demo

## C++ core tests, built with the venv's cmake and ninja.
build-cpp: build
	$(CMAKE) -B $(BUILD) -DOFFLOAD_BUILD_TESTS=ON -DOFFLOAD_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	$(VENV)/bin/cmake --build $(BUILD) -j $(JOBS)

test-cpp: build-cpp
	$(VENV)/bin/ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

## The Python tests in two steps: all but the long soak and stress runs (marked `slow`), then
## those alone, bounded: past SLOW_TIMEOUT seconds pytest gets SIGINT (it prints where it was
## and fails the step), and SIGKILL a minute later, so that a hang cannot stall CI.
SLOW_TIMEOUT ?= 600

test-python: build
	$(PY) -m pytest tests -q -m "not slow"

test-slow: build
	timeout --foreground --signal=INT --kill-after=60 $(SLOW_TIMEOUT) $(PY) -m pytest tests -q -m slow || \
	  { status=$$?; [ $$status != 124 ] || echo "test-slow: stopped after SLOW_TIMEOUT=$(SLOW_TIMEOUT) s"; exit $$status; }

## The CPU-pool tests again on $(SUBINTERP_PY) when it is not $(PY), and CPython's own executor
## tests (tests/test_stdlib_suites.py), which 3.11 and 3.12 builds lack.
test-interpreters: interp-venv
	@case "$(SUBINTERP_PY)" in \
	"$(PY)") echo "test-interpreters: $$($(PY) -V) already ran the InterpreterPool tests" ;; \
	"") echo "test-interpreters: SKIPPED, no python3.12 (>= 3.12.4) or newer on PATH for InterpreterPool" ;; \
	*) $(IPY) -m pytest $(wildcard tests/test_cpu_*.py) tests/test_stdlib_suites.py -q ;; \
	esac

test: test-cpp test-python test-slow test-interpreters

## `make test`, then the whole Python suite on every other CPython 3.9-3.13 found (python3.X on
## PATH, or pyenv's), each in its own venv under .venvs/ (tools/all_pythons.sh says how).
PY_VERSION = $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
test-all: test
	tools/all_pythons.sh $(filter-out $(PY_VERSION),3.9 3.10 3.11 3.12 3.13)

## Static checks: clang's thread-safety analysis of every ABSL_GUARDED_BY / *_LOCKS_REQUIRED
## in the core, its tests and the binding (warnings are errors), and mypy --strict on the package,
## the examples and tests/typed_usage.py.
lint: build
	@tools/apt_install.sh clang
	$(PY) -m pip install -q mypy pybind11
	CXX=clang++ $(CMAKE) -B build/lint -DOFFLOAD_BUILD_TESTS=ON -DOFFLOAD_BUILD_PYTHON=ON \
	  -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR="$$($(PY) -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
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
	@tools/apt_install.sh python3-doc
	$(PY) -m pip install -q $(DOCS_PACKAGES)
	$(PY) -m sphinx -W --keep-going -q -b html -d build/docs/doctrees docs build/docs/html
	$(PY) -m sphinx -W --keep-going -q -b doctest -d build/docs/doctrees docs build/docs/doctest
	@echo "docs: build/docs/html/index.html"

## Sanitizers: the C++ tests and the whole pytest suite under ThreadSanitizer, then under
## AddressSanitizer + UndefinedBehaviorSanitizer, on $(PY) and on $(SUBINTERP_PY) when that is
## another Python. Any report fails the run (tools/sanitize/run.sh says how).
sanitize: sanitize-thread sanitize-address

sanitize-thread sanitize-address: interp-venv
	@VENV_BIN=$(abspath $(VENV))/bin JOBS=$(JOBS) tools/sanitize/run.sh $(@:sanitize-%=%) \
	  $(abspath $(PY) $(filter-out $(PY),$(SUBINTERP_PY)))

## Benchmarks: every scenario against its alternatives in the same run, rendered with PNG plots
## into docs/benchmarks.md (benchmarks/report.py). pytest-benchmark JSONs: build/bench.json
## (calls, bulk, latency, channels), build/bench-cpu.json (CPU pools, under $(SUBINTERP_PY);
## with none, InterpreterPool is skipped with the reason printed), build/bench-dask.json
## (DaskPool); memory per pending task and per buffered item; the C++ core (bench-cpp).
## About 15 minutes; tools/bench.sh lists the steps.
bench: bench-cpp interp-venv
	$(PY) -m pip install -q ".[bench]"
	tools/bench.sh $(PY) $(SUBINTERP_PY)

## C++ core benchmarks (Google Benchmark, cpp/bench/): offload's pool, futures and channel
## against a plain std::mutex + std::condition_variable baseline; JSON in build/bench-cpp.json,
## the tables in build/bench-cpp.md.
BENCH_CPP_ARGS ?=
bench-cpp: build
	@tools/apt_install.sh libbenchmark-dev
	$(CMAKE) -B build/bench-cpp -DOFFLOAD_BUILD_BENCHMARKS=ON -DOFFLOAD_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release
	$(VENV)/bin/cmake --build build/bench-cpp -j $(JOBS)
	build/bench-cpp/core_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
	  --benchmark_out=build/bench-cpp.json --benchmark_out_format=json $(BENCH_CPP_ARGS)
	$(PY) benchmarks/cpp_report.py build/bench-cpp.json > build/bench-cpp.md

clean:
	rm -rf build dist

distclean: clean
	rm -rf $(VENV) $(INTERP_VENV) .venvs
