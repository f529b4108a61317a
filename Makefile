# offload: set-up, build and test in one command each, on a fresh Debian/Ubuntu machine.
#   make demo   installs what is missing, builds the package, runs the demo
#   make test   same set-up, then the C++ tests (ctest) and the Python tests (pytest)

PYTHON   ?= python3
VENV     ?= .venv
BUILD    ?= build/cpp
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
APT_PACKAGES := g++ make pkg-config libabsl-dev libgtest-dev python3-dev python3-venv
PY       := $(VENV)/bin/python
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES  := $(shell find cpp python -type f \( -name '*.h' -o -name '*.cc' -o -name '*.py' -o -name '*.pyi' \) 2>/dev/null)

.PHONY: all demo test test-cpp test-python build build-cpp bench lint deps clean distclean

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
	$(PY) -m pip install -q ".[test]"
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

test: test-cpp test-python

## Static checks: clang's thread-safety analysis of every ABSL_GUARDED_BY / *_LOCKS_REQUIRED
## in the core and its tests (warnings are errors), and mypy --strict on the package.
lint: build
	@dpkg-query -W -f='$${Status}' clang 2>/dev/null | grep -q "ok installed" || \
	  (DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang)
	CXX=clang++ $(VENV)/bin/cmake -S . -B build/lint -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja \
	  -DOFFLOAD_BUILD_TESTS=ON -DOFFLOAD_BUILD_PYTHON=OFF \
	  -DCMAKE_CXX_FLAGS="-Wthread-safety -Wthread-safety-beta -Werror"
	$(VENV)/bin/cmake --build build/lint -j $(JOBS)
	$(PY) -m pip install -q mypy
	$(PY) -m mypy --strict python/offload

## Benchmarks (pytest-benchmark); results in build/bench.json and docs/benchmarks.md.
bench: build
	$(PY) -m pip install -q ".[bench]"
	@mkdir -p build
	$(PY) -m pytest benchmarks -q --benchmark-json=build/bench.json
	$(PY) benchmarks/report.py build/bench.json > docs/benchmarks.md

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV)
