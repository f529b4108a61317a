"""Re-entry: a worker that waits on its own pool never deadlocks it.

A call made from a worker when no worker of the pool is free runs on that worker at once
(caller runs); a worker that waits with the GIL released (a future's result(), a channel) lets
one more worker run meanwhile (compensation). Either way the work it waits for gets done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, List


import offload

TIMEOUT = 30


def test_a_worker_waiting_for_a_call_it_submitted_to_its_full_pool(arun) -> None:
    with offload.Pool(workers=1) as pool:

        def outer() -> int:
            return pool.submit(pow, 2, 8).result(timeout=TIMEOUT) + 1

        assert pool.submit(outer).result(timeout=TIMEOUT) == 257


def test_a_nested_map_from_a_worker_of_a_full_pool(arun) -> None:
    with offload.Pool(workers=1) as pool:

        def outer(n: int) -> List[int]:
            return asyncio.run(pool.map(abs, range(-n, 0)))  # type: ignore[arg-type]

        assert pool.submit(outer, 3).result(timeout=TIMEOUT) == [3, 2, 1]

    async def main() -> Any:
        with offload.Pool(workers=2) as pool:

            def outer(n: int) -> int:
                return sum(asyncio.run(pool.map(abs, range(-n, 0))))  # type: ignore[arg-type]

            return await pool.map(outer, [3, 4, 5, 6])  # every worker nests at once

    assert arun(main) == [6, 10, 15, 21]


def test_a_run_waiting_for_a_call_queued_behind_it() -> None:
    with offload.Pool(workers=1) as pool:
        later: "concurrent.futures.Future[offload.Future[int]]" = concurrent.futures.Future()

        def first() -> int:
            return later.result(timeout=TIMEOUT).result(timeout=TIMEOUT) * 2  # waits for `second`

        a = pool.submit(first)
        later.set_result(pool.submit(pow, 3, 2))  # queued behind `first`, on a 1-worker pool
        assert a.result(timeout=TIMEOUT) == 18
        assert pool.stats().completed == 2


def test_a_worker_waiting_on_a_channel_fed_by_its_own_pool() -> None:
    ch: offload.Channel[int] = offload.Channel(0)
    with offload.Pool(workers=1) as pool:

        def consumer() -> int:
            producer = pool.submit(lambda: [ch.send_blocking(i, timeout=TIMEOUT) for i in range(3)])
            total = sum(ch.recv_blocking(timeout=TIMEOUT) for _ in range(3))
            producer.result(timeout=TIMEOUT)
            return total

        assert pool.submit(consumer).result(timeout=TIMEOUT) == 3


def test_an_executor_task_waiting_for_tasks_it_submitted() -> None:
    with offload.Executor(max_workers=2) as ex:

        def fan_out(n: int) -> int:
            return sum(f.result(timeout=TIMEOUT) for f in [ex.submit(pow, i, 2) for i in range(n)])

        both = [ex.submit(fan_out, 5), ex.submit(fan_out, 4)]  # both workers nest at once
        assert [f.result(timeout=TIMEOUT) for f in both] == [30, 14]


def test_the_default_pool_nested_through_asyncio_run_in_every_worker(arun) -> None:
    n = offload.default_pool().workers
    all_in = threading.Barrier(n, timeout=TIMEOUT)

    def outer(i: int) -> int:
        all_in.wait()  # every worker of the default pool is busy with an outer call
        return asyncio.run(offload.run(pow, i, 2))  # type: ignore[no-any-return]

    async def main() -> Any:
        return await asyncio.gather(*[offload.run(outer, i) for i in range(n)])

    assert arun(main) == [i * i for i in range(n)]


def test_threads_return_to_the_limit_after_compensation() -> None:
    with offload.Pool(workers=1) as pool:
        gate = threading.Event()

        def outer() -> int:
            inner = pool.submit(gate.wait, TIMEOUT)  # queued: the only worker is busy here
            gate.set()
            return int(inner.result(timeout=TIMEOUT))

        # While outer waits, a second worker runs `inner`; it leaves once idle.
        assert pool.submit(outer).result(timeout=TIMEOUT) == 1
        assert pool.stats().threads <= 2
