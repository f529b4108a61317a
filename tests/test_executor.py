"""offload.Executor: a ThreadPoolExecutor, as the standard library documents it."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

import pytest

import offload
from conftest import Gate, native_thread_name


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


def test_map_keeps_order(executor) -> None:
    assert list(executor.map(pow, [2, 3, 4], [3, 2, 1])) == [8, 9, 4]


def test_map_with_timeout_raises_when_a_call_blocks(executor, gate: Gate) -> None:
    with pytest.raises(cf.TimeoutError):
        list(executor.map(lambda _: gate.wait(), [1], timeout=0.05))


def test_shutdown_cancel_futures_cancels_pending(gate: Gate) -> None:
    ex = offload.Executor(max_workers=1)
    running = ex.submit(gate.wait)
    assert gate.entered.wait(30)
    pending = [ex.submit(pow, 2, i) for i in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in pending)
    gate.open()
    ex.shutdown(wait=True)
    assert running.done() and running.exception() is None


def test_submit_after_shutdown_raises(executor) -> None:
    executor.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(pow, 2, 2)


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


def test_failing_initializer_breaks_the_executor() -> None:
    def init():
        raise OSError("no database")

    ex = offload.Executor(max_workers=1, initializer=init)
    fut = ex.submit(pow, 2, 2)
    with pytest.raises(cf.thread.BrokenThreadPool):
        fut.result(timeout=30)
    with pytest.raises(cf.thread.BrokenThreadPool):
        ex.submit(pow, 2, 2)
    ex.shutdown()


def test_wait_and_as_completed_work_with_its_futures(executor) -> None:
    futures = [executor.submit(pow, 2, i) for i in range(10)]
    done, not_done = cf.wait(futures, timeout=30)
    assert len(done) == 10 and not not_done
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=30)) == [2**i for i in range(10)]


def test_max_workers_below_one_raises_value_error() -> None:
    with pytest.raises(ValueError):
        offload.Executor(max_workers=0)


def test_initializer_must_be_callable() -> None:
    with pytest.raises(TypeError):
        offload.Executor(initializer=42)  # type: ignore[arg-type]


def test_submit_rejects_a_non_callable(executor) -> None:
    with pytest.raises(TypeError, match="callable"):
        executor.submit(42)
