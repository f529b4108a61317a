"""Benchmark fixtures. pytest-benchmark has no async support: each benchmark drives one
persistent loop with run_until_complete (asyncio.run per round would cost ~140 us itself)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def make_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def loop(loop_kind: str) -> Iterator[asyncio.AbstractEventLoop]:
    lp = make_loop(loop_kind)
    yield lp
    lp.run_until_complete(lp.shutdown_default_executor())
    lp.close()


@pytest.fixture
def default_loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = make_loop("asyncio")
    yield lp
    lp.run_until_complete(lp.shutdown_default_executor())
    lp.close()


@pytest.fixture(scope="session")
def tpe() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor() as ex:
        yield ex
