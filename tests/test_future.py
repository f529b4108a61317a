"""offload.Future: concurrent.futures semantics, awaitable from any loop.

Its contract as the future of submit (results, exceptions, timeouts, cancel(), running(),
done callbacks, await) runs over every pool kind in test_contract_calls.py and
test_contract_cancellation.py; its repr is test_citizenship.py's. Here: a raising callback
added to a done future, one future awaited from two loops at once, and done callbacks that
see a BaseException or raise one (logged on the "offload" logger; the worker goes on)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import List

import fault_work
import offload
from conftest import Gate
from fault_work import BASE_EXCEPTIONS
from pool_kinds import counters_add_up

TIMEOUT = 30.0  # the bound of every wait; each normally takes milliseconds


def test_raising_done_callback_is_logged_and_harmless(pool, caplog) -> None:
    fut = pool.submit(int, "5")
    fut.result(timeout=30)
    with caplog.at_level(logging.ERROR, logger="offload"):
        fut.add_done_callback(lambda f: 1 / 0)
    assert any(r.name == "offload" and r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert pool.submit(int, "6").result(timeout=30) == 6


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


def test_done_callbacks_see_a_base_exception_and_a_raising_callback_is_logged(
    one_worker, gate: Gate, base_name: str, caplog
) -> None:
    exc_type = BASE_EXCEPTIONS[base_name]
    seen: List[type] = []
    after_first = threading.Event()

    def callback(fut: offload.Future) -> None:
        seen.append(type(fut.exception()))
        raise exc_type("from the callback")

    def raise_after_gate() -> None:
        gate.wait()
        fault_work.raise_base(base_name)

    with caplog.at_level(logging.ERROR, logger="offload"):
        fut = one_worker.submit(raise_after_gate)
        fut.add_done_callback(callback)  # runs on the worker
        fut.add_done_callback(lambda _: after_first.set())  # runs after the first one's log
        gate.open()
        assert after_first.wait(TIMEOUT)
        fut.add_done_callback(callback)  # on a done future: runs here, raises nothing here
    assert seen == [exc_type, exc_type]
    logged = [r for r in caplog.records if r.name == "offload" and r.exc_info]
    assert [r.exc_info[0] for r in logged] == [exc_type, exc_type]
    assert one_worker.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32
    s = counters_add_up(one_worker)
    assert (s.submitted, s.completed, s.failed) == (2, 1, 1)
