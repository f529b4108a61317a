"""imap's windowed iteration (offload/_imap.py), which every pool kind runs over its own `run`:
what leaving it early does, pinned down on the thread pool, whose single worker makes the
order of calls exact.

The imap contract itself (order, backpressure, the default window, the first error, leaving
early while a call is awaited) runs over every pool kind in test_contract_map.py.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from conftest import Gate


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
