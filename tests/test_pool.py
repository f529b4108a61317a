"""offload.Pool and the default pool: their size, their threads' names, and a blocked call that
holds nothing back.

What every pool kind promises (calls, map, cancellation, shutdown, bad input, stats, repr) runs
over Pool and the default pool in the contract suites, test_contract_*.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import offload
from conftest import Gate, native_thread_name


def square(x: int) -> int:
    return x * x


def test_default_worker_count_is_the_standard_librarys_for_blocking_work() -> None:
    expected = concurrent.futures.ThreadPoolExecutor()._max_workers  # min(32, cpus + 4)
    with offload.Pool() as p:
        assert p.workers == expected
        assert p.stats().threads == 0  # none started before a call needs one
    assert offload.default_pool().workers == expected


def test_the_default_pool_runs_as_many_blocking_calls_at_once_as_to_thread(arun) -> None:
    # Calls that wait for each other (a barrier, a request needing another's answer) finish as
    # with asyncio.to_thread, whose default executor has the same size.
    n = offload.default_pool().workers
    barrier = threading.Barrier(n, timeout=30)

    async def main():
        return await asyncio.gather(*[offload.run(barrier.wait) for _ in range(n)])

    assert sorted(arun(main)) == list(range(n))


def test_default_pool_is_one_lazily_created_pool() -> None:
    assert offload.default_pool() is offload.default_pool()


def test_worker_threads_are_named_after_the_pool(gate: Gate) -> None:
    barrier = threading.Barrier(3, timeout=30)

    def name() -> str:
        barrier.wait()  # both workers at once
        return native_thread_name()

    with offload.Pool(2, name="grid") as p:
        futures = [p.submit(name), p.submit(name)]
        barrier.wait()
        assert sorted(f.result(timeout=30) for f in futures) == ["grid-0", "grid-1"]


def test_a_blocked_call_does_not_hold_back_calls_queued_behind_it(pool, gate: Gate) -> None:
    blocked = pool.submit(gate.wait)
    assert gate.entered.wait(30)
    quick = [pool.submit(square, i) for i in range(20)]
    # All finish on the other worker while the first call still blocks.
    assert [f.result(timeout=30) for f in quick] == [i * i for i in range(20)]
    assert not blocked.done()
    gate.open()
    assert blocked.result(timeout=30) is None
