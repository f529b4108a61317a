"""offload.Future: concurrent.futures semantics, awaitable from any loop."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading

import pytest

import offload
from conftest import Gate


def test_result_times_out_while_the_call_runs(one_worker, gate: Gate) -> None:
    fut = one_worker.submit(gate.wait)
    with pytest.raises(cf.TimeoutError):
        fut.result(timeout=0.01)
    gate.open()
    assert fut.result(timeout=30) is None


def test_exception_returns_the_raised_exception(pool) -> None:
    fut = pool.submit(int, "x")
    assert isinstance(fut.exception(timeout=30), ValueError)
    with pytest.raises(ValueError):
        fut.result()
    assert pool.submit(int, "3").exception(timeout=30) is None


def test_cancel_before_start_cancels(one_worker, gate: Gate) -> None:
    one_worker.submit(gate.wait)
    fut = one_worker.submit(int, "1")
    assert not fut.running() and not fut.done()
    assert fut.cancel() is True
    assert fut.cancelled() and fut.done()
    assert fut.cancel() is True  # still cancelled
    with pytest.raises(cf.CancelledError):
        fut.result()


def test_cancel_while_running_returns_false_and_requests_a_stop(one_worker) -> None:
    started = threading.Event()

    def loop_until_cancelled() -> str:
        started.set()
        for _ in range(30_000):
            if offload.cancelled():
                return "stopped"
            started.wait(0.001)
        return "never asked"

    fut = one_worker.submit(loop_until_cancelled)
    assert started.wait(30)
    assert fut.running()
    assert fut.cancel() is False
    assert fut.result(timeout=30) == "stopped"
    assert not fut.cancelled()


def test_done_callback_runs_once_with_the_future(pool) -> None:
    seen = []
    called = threading.Event()
    fut = pool.submit(int, "5")

    def callback(f):
        seen.append(f)
        called.set()

    fut.add_done_callback(callback)
    assert called.wait(30)
    assert seen == [fut] and fut.result() == 5


def test_done_callback_on_a_done_future_runs_at_once(pool) -> None:
    fut = pool.submit(int, "5")
    fut.result(timeout=30)
    seen = []
    fut.add_done_callback(seen.append)
    assert seen == [fut]


def test_raising_done_callback_is_logged_and_harmless(pool, caplog) -> None:
    fut = pool.submit(int, "5")
    fut.result(timeout=30)
    with caplog.at_level(logging.ERROR, logger="offload"):
        fut.add_done_callback(lambda f: 1 / 0)
    assert any(r.name == "offload" and r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert pool.submit(int, "6").result(timeout=30) == 6


def test_await_returns_the_result(arun, pool) -> None:
    async def main():
        return await pool.submit(pow, 2, 10)

    assert arun(main) == 1024


def test_await_of_a_done_future(arun, pool) -> None:
    fut = pool.submit(pow, 3, 3)
    fut.result(timeout=30)

    async def main():
        return await fut, await fut

    assert arun(main) == (27, 27)


def test_await_raises_the_calls_exception(arun, pool) -> None:
    async def main():
        await pool.submit(int, "nope")

    with pytest.raises(ValueError):
        arun(main)


def test_one_future_awaited_from_two_loops_in_two_threads(one_worker, gate: Gate) -> None:
    fut = one_worker.submit(lambda: gate.wait() or "shared")
    results = []
    waiting = threading.Barrier(3, timeout=30)

    def waiter():
        async def main():
            waiting.wait()
            return await fut

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    waiting.wait()
    gate.open()
    for t in threads:
        t.join(30)
    assert results == ["shared", "shared"]


def test_cancelling_the_awaiting_task_cancels_a_future_not_started(arun, one_worker, gate: Gate) -> None:
    one_worker.submit(gate.wait)
    fut = one_worker.submit(int, "1")

    async def main():
        task = asyncio.ensure_future(_await(fut))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    arun(main)
    assert fut.cancelled()


async def _await(fut):
    return await fut


def test_result_from_a_plain_thread(pool) -> None:
    fut = pool.submit(sum, range(100))
    out = []
    t = threading.Thread(target=lambda: out.append(fut.result(timeout=30)))
    t.start()
    t.join(30)
    assert out == [4950]


def test_repr_shows_the_state(one_worker, gate: Gate) -> None:
    running = one_worker.submit(gate.wait)
    assert gate.entered.wait(30)
    pending = one_worker.submit(int, "1")
    assert "running" in repr(running) and "pending" in repr(pending)
    pending.cancel()
    assert "cancelled" in repr(pending)
    gate.open()
    running.result(timeout=30)
    assert "finished" in repr(running)
