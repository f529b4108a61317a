"""Pool.imap: streaming results with a bounded number of calls in flight."""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading

import pytest

import offload
from conftest import Gate


def square(x: int) -> int:
    return x * x


def test_imap_yields_results_in_input_order(arun, pool) -> None:
    async def main():
        return [r async for r in pool.imap(square, range(500), window=8)]

    assert arun(main) == [x * x for x in range(500)]


def test_imap_unordered_yields_every_result(arun, pool) -> None:
    async def main():
        return [r async for r in pool.imap(square, range(500), ordered=False, window=8)]

    assert sorted(arun(main)) == [x * x for x in range(500)]


def test_imap_unordered_yields_results_as_they_complete(arun, pool, gate: Gate) -> None:
    def slow_first(x: int) -> int:
        if x == 0:
            gate.wait()
        return x

    async def main():
        seen = []
        async for r in pool.imap(slow_first, range(5), ordered=False, window=5):
            seen.append(r)
            if len(seen) == 4:
                gate.open()  # item 0 can finish only after the other four were yielded
        return seen

    seen = arun(main)
    assert seen[-1] == 0 and sorted(seen) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("ordered", [True, False])
def test_imap_reads_the_iterable_only_as_fast_as_results_are_consumed(arun, pool, ordered) -> None:
    pulled = 0

    def source():
        nonlocal pulled
        for i in itertools.count():  # endless
            pulled += 1
            yield i

    async def main():
        ahead = []
        consumed = 0
        async for _ in pool.imap(square, source(), ordered=ordered, window=6):
            consumed += 1
            ahead.append(pulled - consumed)
            if consumed == 300:
                break
        return ahead

    ahead = arun(main)
    assert max(ahead) <= 6  # never more than the window in flight
    assert pulled <= 300 + 6


@pytest.mark.parametrize("ordered", [True, False])
def test_imap_raises_the_first_error_and_stops_reading_the_input(arun, one_worker, ordered) -> None:
    ran = []
    lock = threading.Lock()

    def check(x: int) -> int:
        with lock:
            ran.append(x)
        if x == 2:
            raise ValueError("item 2")
        return x

    async def main():
        got = []
        with pytest.raises(ValueError, match="item 2"):
            async for r in one_worker.imap(check, range(1000), ordered=ordered, window=50):
                got.append(r)
        await one_worker.run(len, "")  # FIFO: every call left in the queue has been passed
        return got

    got = arun(main)
    if ordered:
        assert got == [0, 1]
    assert 2 not in got
    assert len(ran) <= 50 + 50  # at most a window past the failure, not the whole input


def test_breaking_out_of_imap_cancels_the_calls_in_flight(arun, one_worker, gate: Gate) -> None:
    started = []

    def item(x: int) -> int:
        started.append(x)
        if x == 1:
            gate.wait()
        return x

    async def main():
        agen = one_worker.imap(item, range(100), window=10)
        first = await agen.__anext__()
        await agen.aclose()  # what `break` does; calls 2..10 are still queued
        gate.open()
        await one_worker.run(len, "")
        return first

    assert arun(main) == 0
    assert started == [0, 1]


@pytest.mark.parametrize("ordered", [True, False])
def test_leaving_imap_early_leaves_no_failure_unretrieved(
    arun, one_worker, gate: Gate, ordered
) -> None:
    # Calls that failed after the consumer's last result belong to results it gave up: like
    # asyncio.gather's children, their exceptions are marked as seen, not logged by asyncio
    # as "Future exception was never retrieved" when their futures are collected.
    def first_only(x: int) -> int:
        if x:
            gate.wait()  # fail only once the first result was taken
            raise ValueError(f"item {x}")
        return x

    async def main():
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda _, context: reported.append(context))
        agen = one_worker.imap(first_only, range(6), ordered=ordered, window=6)
        first = await agen.__anext__()
        gate.open()
        await one_worker.run(len, "")  # FIFO: the five failures were delivered before this
        with pytest.raises(ValueError):  # the first failure ends the iteration; the four
            await agen.__anext__()  # others came in the same wake-up
        await agen.aclose()
        del agen
        gc.collect()
        await asyncio.sleep(0)  # a collected future reports from a callback
        return first, reported

    first, reported = arun(main)
    assert first == 0
    assert reported == []


def test_imap_validates_its_arguments(pool) -> None:
    with pytest.raises(TypeError, match="callable"):
        pool.imap(None, [1])
    with pytest.raises(ValueError, match="window"):
        pool.imap(square, [1], window=0)
    with pytest.raises(TypeError, match="window"):
        pool.imap(square, [1], window=2.5)
    with pytest.raises(TypeError):
        pool.imap(square, 5)
