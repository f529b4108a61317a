"""A bounded stress run: threads and two loops share one pool, with random cancellations.
Every call that was not cancelled is received exactly once, and the pool's counters add up."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

import offload


def identity(x):
    return x


def test_threads_and_loops_with_cancellations_lose_and_duplicate_nothing() -> None:
    pool = offload.Pool(2, name="stress")
    per_producer = 3000
    received: dict = {}
    lock = threading.Lock()
    errors: list = []

    def thread_producer(tag: int) -> None:
        rng = random.Random(tag)
        futures = [pool.submit(identity, (tag, i)) for i in range(per_producer)]
        cancelled = sum(fut.cancel() for fut in futures if rng.random() < 0.2)
        got = [fut.result(timeout=60) for fut in futures if not fut.cancelled()]
        # A future is cancelled only if its call never started: the rest all delivered.
        assert len(got) + cancelled == per_producer
        assert got == [(tag, i) for i, fut in enumerate(futures) if not fut.cancelled()]
        with lock:
            received[tag] = got

    def loop_producer(tag: int) -> None:
        async def main():
            rng = random.Random(tag)
            tasks = [asyncio.ensure_future(pool.run(identity, (tag, i))) for i in range(per_producer)]
            await asyncio.sleep(0)
            for t in tasks:
                if rng.random() < 0.2:
                    t.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            for i, r in enumerate(done):  # each task got its own result, or was cancelled
                assert r == (tag, i) or isinstance(r, asyncio.CancelledError), r
            return [r for r in done if not isinstance(r, BaseException)]

        got = asyncio.run(main())
        with lock:
            received[tag] = got

    def guarded(target, tag):
        try:
            target(tag)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(thread_producer, t)) for t in (1, 2)]
    threads += [threading.Thread(target=guarded, args=(loop_producer, t)) for t in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    pool.shutdown(wait=True)
    everything = [r for got in received.values() for r in got]
    assert len(everything) == len(set(everything))  # nothing duplicated
    s = pool.stats()
    assert s.submitted == 4 * per_producer
    assert s.submitted == s.completed + s.failed + s.cancelled  # nothing lost
    assert s.failed == 0
    # A loop task may be cancelled after its call completed (the result is then dropped, as
    # with asyncio.to_thread), so completed calls are at least the results received.
    assert len(everything) <= s.completed


def _walk_everything(stop: threading.Event, walks: list) -> None:
    """What a memory profiler or a leak hunter does: walk every object the gc tracks, and
    every container in it (iteration, len, repr of items), and look up referrers."""
    import gc

    while not stop.is_set():
        for obj in gc.get_objects():
            try:
                if isinstance(obj, (list, tuple, set, frozenset, dict)):
                    for item in list(obj.items() if isinstance(obj, dict) else obj):
                        type(item)
                    len(obj)
                    gc.get_referents(obj)
            except RuntimeError:  # a dict or set changed size while walked: not ours to judge
                pass
        walks.append(1)


@pytest.mark.slow  # fifteen rounds of everything under a walker: a long run, `make test-slow`
def test_a_gc_walk_during_pools_maps_channels_and_selects_crashes_nothing(arun) -> None:
    # Issue 16, item 1: a container that other threads fill while the gc can see it (the
    # result list of a map) crashed a walker. Every kind of offload work runs here while a
    # thread walks the gc's objects; the results are checked, and the walker must have walked.
    stop = threading.Event()
    walks: list = []
    walker = threading.Thread(target=_walk_everything, args=(stop, walks))
    walker.start()
    try:
        with offload.Pool(4, name="walked") as pool:

            async def main() -> None:
                ch: offload.Channel[int] = offload.Channel(8)
                other: offload.Channel[int] = offload.Channel(0)
                for round_ in range(15):
                    items = list(range(2000))
                    assert await pool.map(identity, items) == items
                    assert await asyncio.gather(*[pool.run(identity, i) for i in range(500)]) == list(range(500))
                    assert [x async for x in pool.imap(identity, range(300), ordered=False)] is not None

                    async def produce() -> None:
                        for i in range(200):
                            await ch.send(i)

                    async def consume() -> int:
                        total = 0
                        for _ in range(200):
                            op, value = await offload.select(ch.recv_op(), other.recv_op())
                            total += value
                        return total

                    _, total = await asyncio.gather(produce(), consume())
                    assert total == sum(range(200))
                    futures = [pool.submit(identity, i) for i in range(300)]
                    assert [f.result(timeout=60) for f in futures] == list(range(300))

            arun(main)
    finally:
        stop.set()
        walker.join(60)
    assert walks, "the walker never finished a walk"
