"""offload.run: the asyncio.to_thread drop-in, on the default pool.

What a call gives back (arguments, results, exceptions, contextvars, cancellation, lazy calls
with no running loop) is the contract of every pool kind, the default pool's included:
test_contract_calls.py, test_contract_cancellation.py, test_contract_awaitables.py. Here: where
offload.run runs its calls, and loops in several threads sharing the default pool."""

from __future__ import annotations

import asyncio
import threading

import offload
from conftest import native_thread_name


def add(a: int, b: int = 0, *, c: int = 0) -> int:
    return a + b + c


def test_run_executes_on_a_named_worker_thread(arun) -> None:
    caller = threading.get_ident()

    async def main():
        return await offload.run(lambda: (threading.get_ident(), native_thread_name()))

    ident, name = arun(main)
    assert ident != caller
    assert name.startswith("offload-")


def test_two_loops_in_two_threads_get_their_own_results() -> None:
    results: dict = {}
    errors: list = []

    def thread_main(tag: int) -> None:
        async def main():
            return await asyncio.gather(*[offload.run(add, i, tag) for i in range(2000)])

        try:
            results[tag] = asyncio.run(main())
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(t,)) for t in (1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {tag: [i + tag for i in range(2000)] for tag in (1000, 2000)}


