"""offload.Pool: construction, submit/run/map, shutdown, stats."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

import offload
from conftest import Gate, native_thread_name


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_below_one_raise_value_error(workers) -> None:
    with pytest.raises(ValueError, match="workers"):
        offload.Pool(workers)


@pytest.mark.parametrize("workers", [1.5, "2", True])
def test_workers_of_the_wrong_type_raise_type_error(workers) -> None:
    with pytest.raises(TypeError, match="workers"):
        offload.Pool(workers)


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="name"):
        offload.Pool(1, name=3)  # type: ignore[arg-type]


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


def test_submit_returns_an_offload_future_with_the_result(pool) -> None:
    fut = pool.submit(square, 12)
    assert isinstance(fut, offload.Future)
    assert fut.result(timeout=30) == 144


def test_map_returns_an_ordered_list(arun, pool) -> None:
    async def main():
        return await pool.map(square, range(1000))

    assert arun(main) == [x * x for x in range(1000)]


def test_map_of_an_empty_iterable_is_an_empty_list(arun, pool) -> None:
    async def main():
        return await pool.map(square, [])

    assert arun(main) == []


def test_map_consumes_a_generator(arun, pool) -> None:
    async def main():
        return await pool.map(square, (x for x in range(10)))

    assert arun(main) == [x * x for x in range(10)]


def test_map_raises_the_lowest_indexed_failure(arun, one_worker) -> None:
    def check(x: int) -> int:
        if x in (3, 7):
            raise ValueError(f"item {x}")
        return x

    async def main():
        await one_worker.map(check, range(10))

    with pytest.raises(ValueError, match="item 3"):
        arun(main)


def test_map_rejects_a_non_callable(arun, pool) -> None:
    async def main():
        pool.map(None, [1])

    with pytest.raises(TypeError):
        arun(main)


def test_cancelling_a_map_stops_items_not_started(arun, one_worker, gate: Gate) -> None:
    ran = []

    def item(x: int) -> None:
        ran.append(x)
        if x == 0:
            gate.wait()

    async def main():
        task = asyncio.ensure_future(one_worker.map(item, range(2000)))
        await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.open()
        await one_worker.run(len, "")  # the worker has moved past the map

    arun(main)
    assert 1 <= len(ran) < 2000


@pytest.mark.parametrize("call", ["run", "submit", "map"])
def test_calls_after_shutdown_raise_runtime_error(arun, call) -> None:
    p = offload.Pool(1)
    p.shutdown()

    async def main():
        if call == "run":
            p.run(square, 1)
        elif call == "submit":
            p.submit(square, 1)
        else:
            p.map(square, [1])

    with pytest.raises(RuntimeError, match="shut down"):
        arun(main)


def test_with_block_shuts_the_pool_down() -> None:
    with offload.Pool(1) as p:
        assert p.submit(square, 3).result(timeout=30) == 9
        assert not p.closed
    assert p.closed


def test_async_with_shuts_down_without_blocking_the_loop(arun, gate: Gate) -> None:
    progressed = []

    async def other() -> None:
        progressed.append("other ran")
        gate.open()  # lets the slow call, and so the shutdown, finish

    async def main():
        async with offload.Pool(1) as p:
            p.submit(gate.wait)
            await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 30)
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, other())
        return p.closed

    assert arun(main) is True
    assert progressed == ["other ran"]


def test_shutdown_cancel_pending_cancels_queued_futures_and_lets_the_running_one_finish(gate: Gate) -> None:
    p = offload.Pool(1)
    running = p.submit(lambda: gate.wait() or "done")
    assert gate.entered.wait(30)
    queued = [p.submit(square, i) for i in range(5)]
    p.shutdown(wait=False, cancel_pending=True)
    assert all(f.cancelled() for f in queued)
    gate.open()
    p.shutdown(wait=True)
    assert running.result(timeout=30) == "done"
    assert p.stats().cancelled == 5


def test_shutdown_wait_waits_for_running_calls(gate: Gate) -> None:
    p = offload.Pool(1)
    fut = p.submit(gate.wait)
    assert gate.entered.wait(30)
    threading.Timer(0.05, gate.open).start()
    p.shutdown(wait=True)
    assert fut.done()


def test_stats_add_up_after_a_known_workload(arun, pool) -> None:
    def maybe_fail(x: int) -> int:
        if x % 4 == 0:
            raise ValueError
        return x

    async def main():
        results = await asyncio.gather(*[pool.run(maybe_fail, i) for i in range(100)], return_exceptions=True)
        return sum(isinstance(r, ValueError) for r in results)

    failures = arun(main)
    # A worker does its bookkeeping just after it delivered a result: wait until it is idle.
    deadline = time.monotonic() + 10
    while (s := pool.stats()).busy and time.monotonic() < deadline:
        time.sleep(0.001)
    assert failures == 25
    assert (s.submitted, s.completed, s.failed, s.cancelled) == (100, 75, 25, 0)
    assert (s.queued, s.busy, s.workers) == (0, 0, 2)


def test_repr_shows_name_workers_and_state(pool) -> None:
    r = repr(pool)
    assert "name='test'" in r and "workers=2" in r and "running" in r
    pool.shutdown()
    assert "shut down" in repr(pool)


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
