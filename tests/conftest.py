"""Shared fixtures: every asyncio test runs on the default loop and on uvloop.

Rules every test file follows:

- Tests are grouped by contract, not by pool: what every pool kind promises is a contract
  suite (test_contract_*.py), run over every kind by pool_kinds.py; a component's own tests
  (test_channel*.py, test_executor*.py, test_cpu_pools.py, test_dask.py...) check what only
  that component does.
- A test that exposes a bug is kept and marked ``xfail(strict=True)`` with a reason starting
  with "BUG:", which says what happens and which documented promise it breaks; strict, so that
  the fix makes it fail until the marker goes.
- Nothing synchronises by sleeping: workers are held by the Gate below, by events, or by the
  files and FIFOs of pool_kinds.Blocker, and every wait has a deadline.

The fault model (what offload must survive: BaseExceptions from calls, raising and re-entrant
finalizers, hostile objects, storms, bad arguments, interpreter exit) is listed with the tests
that inject each fault in docs/reliability.md, "Faults".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any, Awaitable, Callable, Iterator, List, NamedTuple

import pytest

import offload
from fault_work import BASE_EXCEPTIONS

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extras
    uvloop = None

LOOPS = ["asyncio", "uvloop"]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def arun(loop_kind: str) -> Iterator[Callable[[Callable[[], Awaitable[Any]]], Any]]:
    """arun(main) runs the coroutine function `main` to completion on a fresh loop of the
    parametrised kind and returns its result."""
    loops = []

    def run(main: Callable[[], Awaitable[Any]]) -> Any:
        loop = new_loop(loop_kind)
        loops.append(loop)
        try:
            return loop.run_until_complete(main())
        finally:
            # As asyncio.run does: async generators left suspended (an imap left by `break`)
            # are closed on this loop, not finalized later without one.
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    yield run


@pytest.fixture
def pool() -> Iterator[offload.Pool]:
    p = offload.Pool(workers=2, name="test")
    yield p
    p.shutdown(wait=True)


@pytest.fixture
def one_worker() -> Iterator[offload.Pool]:
    p = offload.Pool(workers=1, name="solo")
    yield p
    p.shutdown(wait=True)


class Gate:
    """A threading.Event that blocks worker threads, released at the latest on teardown so a
    failing test never leaves workers stuck."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.entered = threading.Event()

    def wait(self) -> None:
        self.entered.set()
        assert self.event.wait(30), "gate never opened"

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open()


@pytest.fixture(params=list(BASE_EXCEPTIONS))
def base_name(request: pytest.FixtureRequest) -> str:
    """The name of each BaseException subclass a call may raise (fault_work.BASE_EXCEPTIONS)."""
    return str(request.param)


# -- finalizers: objects offload drops, and what their __del__ reports ------------------------


class Reported(NamedTuple):
    """One exception sys.unraisablehook received (no reference to it is kept)."""

    type: type
    message: str
    thread_ident: int
    native_name: str


class Unraisables:
    """Collects what sys.unraisablehook receives, on any thread; a test waits for it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.reported: List[Reported] = []

    def hook(self, unraisable: Any) -> None:
        error = unraisable.exc_value
        with self._cond:
            self.reported.append(
                Reported(type(error), str(error), threading.get_ident(), native_thread_name())
            )
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[List[Reported]], bool], timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.reported), timeout)

    def of_type(self, error_type: type) -> List[Reported]:
        with self._cond:
            return [r for r in self.reported if r.type is error_type]


@pytest.fixture
def unraisables(monkeypatch: pytest.MonkeyPatch) -> Unraisables:
    collector = Unraisables()
    monkeypatch.setattr(sys, "unraisablehook", collector.hook)
    return collector


def one_of_type(error_type: type) -> Callable[[List[Reported]], bool]:
    return lambda reported: any(r.type is error_type for r in reported)


class RaisesInDel:
    """A result whose finalizer raises."""

    def __del__(self) -> None:
        raise ValueError("__del__ of a dropped object")


class ActsInDel:
    """An object whose finalizer runs `act` (which re-enters offload)."""

    def __init__(self, act: Callable[[], object]) -> None:
        self.act = act

    def __del__(self) -> None:
        self.act()


class Plain:
    """A result that can be weakly referenced."""


def held_then(gate: Gate, make: Callable[[], Any]) -> Callable[[], Any]:
    """A call that waits at the gate, then returns make()."""

    def call() -> Any:
        gate.wait()
        return make()

    return call


def native_thread_name() -> str:
    """The kernel's name of the calling thread (what top -H shows)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


def threads_named(prefix: str) -> int:
    """How many threads of this process have a kernel name starting with `prefix`."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                count += f.read().startswith(prefix)
        except FileNotFoundError:  # the thread exited meanwhile
            pass
    return count


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


# Python's own Ctrl-C handler, even when the test run ignores SIGINT (as a background job of a
# shell does): the programs that tests start are sent SIGINT on purpose.
_SIGINT_HANDLED = "import signal as _s; _s.signal(_s.SIGINT, _s.default_int_handler); del _s\n"


def run_python(code: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    """Runs ``code`` (dedented) in a fresh interpreter; its output and exit status."""
    return subprocess.run(
        [sys.executable, "-c", _SIGINT_HANDLED + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Closes the Dask cluster the contract suites share (pool_kinds.dask_cluster), if open."""
    pool_kinds = sys.modules.get("pool_kinds")
    if pool_kinds is not None:
        pool_kinds.close_session()
