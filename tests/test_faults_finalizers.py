"""Finalizers of what offload drops: a result, an argument or a partial map result whose
__del__ raises is finalized where offload drops it -- on the loop's thread when an awaiter
was cancelled, on the worker when nobody waits any more, at once when a call is cancelled
before it started -- and its exception reaches sys.unraisablehook; the pool goes on.

That such a finalizer may call offload back is the re-entry contract:
test_contract_reentry.py.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from conftest import Gate, RaisesInDel, Unraisables, held_then, one_of_type
from pool_kinds import counters_add_up

TIMEOUT = 30.0  # the bound of every wait; each normally takes milliseconds


def test_a_result_dropped_by_a_cancelled_awaiter_is_finalized_on_the_loop_thread(
    arun, one_worker, gate: Gate, unraisables: Unraisables
) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(one_worker.run(held_then(gate, RaisesInDel)))
        assert await loop.run_in_executor(None, gate.entered.wait, TIMEOUT)
        task.cancel()  # the call runs on; its result has nowhere to go
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.open()
        assert await loop.run_in_executor(None, unraisables.wait_for, one_of_type(ValueError))
        return await one_worker.run(pow, 2, 5)

    loop_thread = threading.get_ident()
    assert arun(main) == 32
    (reported,) = unraisables.of_type(ValueError)
    assert reported.message == "__del__ of a dropped object"
    assert reported.thread_ident == loop_thread  # released in the drain, on the loop's thread


def test_a_future_collected_before_its_call_ends_drops_the_result_on_the_worker(
    one_worker, gate: Gate, unraisables: Unraisables
) -> None:
    fut = one_worker.submit(held_then(gate, RaisesInDel))
    del fut
    gc.collect()
    gate.open()
    assert unraisables.wait_for(one_of_type(ValueError))
    (reported,) = unraisables.of_type(ValueError)
    assert reported.native_name.startswith("solo")  # dropped on the pool's own worker
    assert one_worker.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32
    s = counters_add_up(one_worker)
    assert (s.submitted, s.completed, s.failed) == (2, 2, 0)


@pytest.mark.parametrize("how", ["future.cancel", "shutdown(cancel_pending=True)"])
def test_arguments_of_a_call_cancelled_before_it_started_are_released(
    one_worker, gate: Gate, unraisables: Unraisables, how: str
) -> None:
    blocker = one_worker.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    fut = one_worker.submit(print, RaisesInDel())  # the argument's only reference: the call
    if how == "future.cancel":
        assert fut.cancel() is True
        gate.open()
        assert blocker.result(timeout=TIMEOUT) is None
        assert one_worker.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32
    else:
        one_worker.shutdown(wait=False, cancel_pending=True)
        gate.open()
    assert unraisables.wait_for(one_of_type(ValueError))
    assert fut.cancelled()
    s = counters_add_up(one_worker)
    assert s.cancelled == 1


def test_a_partial_map_result_dropped_by_a_cancelled_awaiter_finalizes_what_ran(
    arun, one_worker, gate: Gate, unraisables: Unraisables
) -> None:
    def item(i: int) -> RaisesInDel:
        if i == 0:
            gate.wait()
        return RaisesInDel()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(one_worker.map(item, range(3)))
        assert await loop.run_in_executor(None, gate.entered.wait, TIMEOUT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.open()
        await one_worker.run(pow, 2, 5)  # FIFO on one worker: the map's task has ended

    arun(main)
    # Item 0 ran; the map then stopped (its awaiter was cancelled), so items 1 and 2 never
    # ran. The partial result list was released on the loop, and item 0's __del__ reported.
    assert unraisables.wait_for(one_of_type(ValueError))
    assert len(unraisables.of_type(ValueError)) == 1
    counters_add_up(one_worker)
