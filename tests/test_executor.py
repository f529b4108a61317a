"""offload.Executor: a ThreadPoolExecutor, as the standard library documents it.

test_executor_compat.py pins it down against what CPython's own executor tests check (map,
shutdown, wait, as_completed, initializers, worker counts); here is what they do not: that
it is a ThreadPoolExecutor for asyncio, and how its initializer is called and checked; and
how it meets the faults every pool meets (docs/reliability.md, "Faults"): a BaseException
from a call, an initializer or a done callback reaches the caller or the log and the worker
goes on, and objects whose __eq__/__hash__ raise pass through untouched."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
from typing import Any, List, Optional, Tuple

import pytest

import fault_work
import offload
from conftest import Gate, native_thread_name
from fault_work import BASE_EXCEPTIONS, Hostile, HostileCallable, HostileError

TIMEOUT = 30.0  # the bound of every wait; each normally takes milliseconds


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


# -- faults: BaseExceptions from calls, initializers and callbacks; hostile objects -----------


def test_base_exception_from_executor_submit_and_map_reaches_the_caller(base_name: str) -> None:
    exc_type = BASE_EXCEPTIONS[base_name]
    with offload.Executor(max_workers=1) as ex:
        fut = ex.submit(fault_work.raise_base, base_name)
        with pytest.raises(exc_type):
            fut.result(timeout=TIMEOUT)
        assert type(fut.exception(timeout=TIMEOUT)) is exc_type
        with pytest.raises(exc_type):
            list(ex.map(fault_work.raise_base, [base_name, base_name], timeout=TIMEOUT))
        assert ex.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32


def test_base_exception_from_run_in_executor_reaches_the_awaiter(arun, base_name: str) -> None:
    exc_type = BASE_EXCEPTIONS[base_name]

    async def main() -> Tuple[Optional[BaseException], int]:
        loop = asyncio.get_running_loop()
        caught: Optional[BaseException] = None
        with offload.Executor(max_workers=1) as ex:
            try:
                await loop.run_in_executor(ex, fault_work.raise_base, base_name)
            except exc_type as e:
                caught = e
            return caught, await loop.run_in_executor(ex, pow, 2, 5)

    caught, after = arun(main)
    assert type(caught) is exc_type and after == 32


def test_an_executor_initializer_raising_a_base_exception_breaks_the_executor(base_name: str, caplog) -> None:
    with caplog.at_level(logging.CRITICAL, logger="offload"):
        ex = offload.Executor(max_workers=1, initializer=fault_work.raise_base, initargs=(base_name,))
        try:
            fut = ex.submit(pow, 2, 5)  # before or after the initializer failed
        except cf.thread.BrokenThreadPool:
            pass
        else:
            with pytest.raises(cf.thread.BrokenThreadPool):
                fut.result(timeout=TIMEOUT)
        finally:
            ex.shutdown(wait=True)
        with pytest.raises(cf.thread.BrokenThreadPool):
            ex.submit(pow, 2, 5)


def test_executor_done_callback_raising_a_base_exception_is_logged_and_the_worker_survives(
    gate: Gate, base_name: str, caplog
) -> None:
    exc_type = BASE_EXCEPTIONS[base_name]

    def callback(fut: "cf.Future[Any]") -> None:
        raise exc_type("from the callback")

    with caplog.at_level(logging.ERROR, logger="offload"):
        with offload.Executor(max_workers=1) as ex:
            fut = ex.submit(gate.wait)
            fut.add_done_callback(callback)
            gate.open()
            # concurrent.futures passes only Exception to its logger: a BaseException leaves
            # set_result on the worker, which logs it rather than lose it or die.
            assert fut.result(timeout=TIMEOUT) is None
            assert ex.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32
    (logged,) = [r for r in caplog.records if r.name == "offload" and r.exc_info]
    assert logged.exc_info[0] is exc_type
    assert "refused its outcome" in logged.getMessage()


def test_hostile_objects_pass_through_the_executor(arun) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        with offload.Executor(max_workers=2) as ex:
            return [
                ex.submit(fault_work.tag_of, Hostile(1)).result(timeout=TIMEOUT),
                ex.submit(HostileCallable(), Hostile(0)).result(timeout=TIMEOUT).tag,
                [h.tag for h in ex.map(fault_work.make_hostile, range(3), timeout=TIMEOUT)],
                (await loop.run_in_executor(ex, fault_work.make_hostile, 9)).tag,
                type(ex.submit(fault_work.raise_hostile, "x").exception(timeout=TIMEOUT)),
            ]

    assert arun(main) == [1, 1, [0, 1, 2], 9, HostileError]
