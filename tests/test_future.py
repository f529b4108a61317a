"""offload.Future: concurrent.futures semantics, awaitable from any loop.

Its contract as the future of submit (results, exceptions, timeouts, cancel(), running(),
done callbacks, await) runs over every pool kind in test_contract_calls.py and
test_contract_cancellation.py; its repr is test_citizenship.py's. Here: a raising callback
added to a done future, and one future awaited from two loops at once."""

from __future__ import annotations

import asyncio
import logging
import threading

from conftest import Gate


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


