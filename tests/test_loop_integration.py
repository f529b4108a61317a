"""How results reach the loop: batched wake-ups, the fallback for loops without add_reader."""

from __future__ import annotations

import asyncio
import threading

import offload
from offload._core import notifier_for


def test_a_burst_of_results_is_delivered_with_few_wakeups(arun, one_worker) -> None:
    gate = threading.Event()

    async def main():
        notifier = notifier_for(asyncio.get_running_loop())
        blocker = one_worker.run(gate.wait, 30)
        burst = [one_worker.run(pow, i, 2) for i in range(1000)]
        before = notifier.stats()
        gate.set()  # one worker then completes all 1001 calls back to back
        await blocker
        results = await asyncio.gather(*burst)
        after = notifier.stats()
        return results, after["added"] - before["added"], after["wakes"] - before["wakes"]

    results, added, wakes = arun(main)
    assert results == [i * i for i in range(1000)]
    assert added == 1001
    assert wakes < 100  # one per burst that found the loop asleep, not one per result


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that, like Windows' proactor loop, cannot watch file descriptors."""

    def add_reader(self, *args, **kwargs):
        raise NotImplementedError


def test_a_loop_without_add_reader_is_woken_with_call_soon_threadsafe() -> None:
    loop = NoReaderLoop()
    try:
        async def main():
            return await asyncio.gather(*[offload.run(pow, i, 3) for i in range(500)])

        assert loop.run_until_complete(main()) == [i**3 for i in range(500)]
        assert notifier_for(loop).fd == -1
    finally:
        loop.close()


def test_notifier_is_per_loop_and_reused(arun) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        await offload.run(pow, 2, 2)
        return notifier_for(loop) is notifier_for(loop)

    assert arun(main) is True
