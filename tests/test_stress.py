"""Bounded stress runs: threads and loops share one pool, with random cancellations, raising
calls and a shutdown racing the submits. Every call that was not cancelled is received
exactly once, every future settles, and the pool's counters add up."""

from __future__ import annotations

import asyncio
import functools
import random
import threading
from typing import Any, Dict, List, Set, Tuple

import pytest

import fault_work
import offload
from pool_kinds import counters_add_up

TIMEOUT = 30.0  # the bound of every wait; each normally takes milliseconds


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


# -- storms: every call that was not cancelled delivers exactly once, every future settles,
# -- and PoolStats adds up


def storm_call(tag: int, i: int) -> Tuple[int, int]:
    if i % 101 == 1:
        raise ValueError(tag, i)
    if i % 103 == 2:
        raise fault_work.CustomBase(tag, i)
    return tag, i


def test_submit_storm_from_eight_threads_and_a_loop_delivers_every_result_exactly_once(arun) -> None:
    pool = offload.Pool(2, name="storm")
    producers, per_producer, loop_calls = 8, 20_000, 20_000
    start = threading.Barrier(producers + 1, timeout=TIMEOUT)
    outcomes: Dict[int, Tuple[Dict[int, Any], Set[int]]] = {}
    errors: List[BaseException] = []

    def producer(tag: int) -> None:
        try:
            start.wait()
            futures = [pool.submit(storm_call, tag, i) for i in range(per_producer)]
            cancelled = {i for i in range(0, per_producer, 97) if futures[i].cancel()}
            seen: Dict[int, Any] = {}
            for i, fut in enumerate(futures):
                if fut.cancelled():
                    assert i in cancelled, f"future {i} cancelled by nobody"
                    continue
                try:
                    seen[i] = fut.result(timeout=TIMEOUT)
                except (ValueError, fault_work.CustomBase) as e:
                    seen[i] = (type(e), e.args)
            outcomes[tag] = (seen, cancelled)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=producer, args=(tag,)) for tag in range(producers)]
    for t in threads:
        t.start()

    async def main() -> Tuple[List[Any], int]:
        start.wait()
        runs = [pool.run(abs, -i) for i in range(loop_calls)]
        # Cancelling the loop's future is what cancelling its awaiting task does: a call that
        # has not started is skipped, a running one completes and its result is dropped.
        cancels = sum(run.cancel() for run in runs[::50])
        return await asyncio.gather(*runs, return_exceptions=True), cancels

    try:
        loop_results, loop_cancels = arun(main)
    finally:
        for t in threads:
            t.join(TIMEOUT)
    assert not errors, errors
    s = counters_add_up(pool)

    thread_cancelled = thread_failed = thread_results = 0
    for tag, (seen, cancelled) in outcomes.items():
        assert seen.keys().isdisjoint(cancelled)
        assert seen.keys() | cancelled == set(range(per_producer))  # each call: one outcome
        for i, outcome in seen.items():
            if i % 101 == 1:
                assert outcome == (ValueError, (tag, i))
            elif i % 103 == 2:
                assert outcome == (fault_work.CustomBase, (tag, i))
            else:
                assert outcome == (tag, i)
        thread_cancelled += len(cancelled)
        thread_failed += sum(1 for i in seen if i % 101 == 1 or i % 103 == 2)
        thread_results += len(seen)
    assert len(outcomes) == producers
    loop_received = 0
    for i, r in enumerate(loop_results):
        if isinstance(r, asyncio.CancelledError):
            assert i % 50 == 0
        else:
            assert r == i
            loop_received += 1
    assert loop_received == loop_calls - loop_cancels

    assert s.workers == 2
    assert s.submitted == producers * per_producer + loop_calls
    assert s.failed == thread_failed  # every loop call returns
    # A loop call cancelled after it started still completes (its result is dropped).
    assert thread_cancelled <= s.cancelled <= thread_cancelled + loop_cancels
    assert s.completed >= thread_results - thread_failed + loop_received


def test_concurrent_maps_with_failures_and_cancellations_each_end_one_way(arun) -> None:
    pool = offload.Pool(2, name="maps")
    maps, size = 200, 100
    rng = random.Random(7)
    failing = {m: rng.randrange(size) for m in range(maps) if m % 3 == 0}

    def item(m: int, i: int) -> Tuple[int, int]:
        if failing.get(m) == i:
            raise ValueError(m, i)
        return m, i

    async def main() -> List[Any]:
        loop_maps = [pool.map(functools.partial(item, m), range(size)) for m in range(maps)]
        for m in range(1, maps, 7):  # while the workers are on the first maps
            loop_maps[m].cancel()
        streams = []
        for k in range(4):  # a loop: Python < 3.11 refuses an async comprehension in a sync one
            streams.append(
                [r async for r in pool.imap(abs, range(-50, 0), ordered=bool(k % 2), window=7)]
            )
        return [await asyncio.gather(*loop_maps, return_exceptions=True), streams]

    results, streams = arun(main)
    for m, r in enumerate(results):
        if isinstance(r, asyncio.CancelledError):
            assert m % 7 == 1
        elif m in failing:  # one failing item: the map raises exactly its error
            assert isinstance(r, ValueError) and r.args == (m, failing[m])
        else:
            assert r == [(m, i) for i in range(size)]
    for k, stream in enumerate(streams):
        expected = [abs(x) for x in range(-50, 0)]
        assert (stream if k % 2 else sorted(stream, reverse=True)) == expected
    counters_add_up(pool)


def test_submits_racing_a_shutdown_that_cancels_pending_calls_lose_no_future() -> None:
    pool = offload.Pool(2, name="race")
    producers = 4
    halfway = threading.Event()
    futures: Dict[int, List[offload.Future[int]]] = {tag: [] for tag in range(producers)}
    refused: Dict[int, int] = {}
    errors: List[BaseException] = []

    def note(i: int) -> int:
        if i == 5000:
            halfway.set()
        return i

    def producer(tag: int) -> None:
        try:
            for i in range(20_000):
                try:
                    futures[tag].append(pool.submit(note, i))
                except RuntimeError as e:
                    assert "shut down" in str(e)
                    refused[tag] = i
                    return
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=producer, args=(tag,)) for tag in range(producers)]
    for t in threads:
        t.start()
    assert halfway.wait(TIMEOUT)
    pool.shutdown(wait=True, cancel_pending=True)
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    # Each producer submitted everything, or was refused from the shutdown on.
    assert all(tag in refused or len(futures[tag]) == 20_000 for tag in range(producers))
    everything = [fut for futs in futures.values() for fut in futs]
    assert all(fut.done() for fut in everything)  # none is left pending
    completed = cancelled = 0
    for futs in futures.values():
        for i, fut in enumerate(futs):
            if fut.cancelled():
                cancelled += 1
            else:
                assert fut.result(timeout=0) == i
                completed += 1
    s = counters_add_up(pool)
    assert s.submitted == len(everything)
    assert (s.completed, s.cancelled, s.failed) == (completed, cancelled, 0)


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
