"""offload.Executor: a ThreadPoolExecutor, as the standard library documents it.

test_executor_compat.py pins it down against what CPython's own executor tests check (map,
shutdown, wait, as_completed, initializers, worker counts); here is what they do not: that
it is a ThreadPoolExecutor for asyncio, and how its initializer is called and checked."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

import pytest

import offload
from conftest import native_thread_name


@pytest.fixture
def executor():
    ex = offload.Executor(max_workers=2, thread_name_prefix="ex")
    yield ex
    ex.shutdown(wait=True)


def test_is_a_thread_pool_executor(executor) -> None:
    assert isinstance(executor, cf.ThreadPoolExecutor)


def test_submit_returns_a_concurrent_future(executor) -> None:
    fut = executor.submit(pow, 2, 8)
    assert isinstance(fut, cf.Future)
    assert fut.result(timeout=30) == 256


def test_set_default_executor_routes_to_thread_and_run_in_executor(arun, executor) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(executor)
        a = await asyncio.to_thread(native_thread_name)
        b = await loop.run_in_executor(None, native_thread_name)
        return a, b

    a, b = arun(main)
    assert a.startswith("ex_") and b.startswith("ex_")


def test_initializer_runs_once_per_worker_with_its_arguments() -> None:
    calls = []
    lock = threading.Lock()

    def init(tag):
        with lock:
            calls.append((tag, threading.get_native_id()))

    all_busy = threading.Barrier(3, timeout=30)
    ex = offload.Executor(max_workers=3, initializer=init, initargs=("x",))
    # Three calls that wait for each other: each starts a worker (as ThreadPoolExecutor does).
    futures = [ex.submit(all_busy.wait) for _ in range(3)]
    [f.result(timeout=30) for f in futures]
    ex.submit(pow, 1, 1).result(timeout=30)  # a worker is free now: none more starts
    ex.shutdown(wait=True)
    assert [tag for tag, _ in calls] == ["x"] * 3
    assert len({tid for _, tid in calls}) == 3


def test_initializer_must_be_callable() -> None:
    with pytest.raises(TypeError):
        offload.Executor(initializer=42)  # type: ignore[arg-type]


