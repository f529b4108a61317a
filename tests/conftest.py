"""Shared fixtures: every asyncio test runs on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any, Awaitable, Callable, Iterator

import pytest

import offload

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


def native_thread_name() -> str:
    """The kernel's name of the calling thread (what top -H shows)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


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
