"""Contract: cancellation, on every pool kind (pool_kinds.py).

A call that has not started never runs once it is cancelled, however it is cancelled: the
awaiting task, the call itself, a timeout, Future.cancel(), a task awaiting the future of
submit, the task awaiting a map (before it started or while it runs). A running call cannot be
interrupted: where the kind promises it, offload.cancelled() turns true inside it;
DaskFuture.cancel() drops its result instead (pool_kinds.Promises). Leaving an imap early:
test_contract_map.py; shutdown(cancel_pending=True): test_contract_shutdown.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from pathlib import Path
from typing import Any, List

import pytest

import cpu_work
from pool_kinds import TIMEOUT, Blocker, Kind
from pool_kinds import _dask_pool_per_test, blocker, kind, new_pool  # noqa: F401 (fixtures)


def held(kind: Kind, blocker: Blocker) -> List[Any]:
    """Holds every worker of the kind's pool: what is called next waits in its queue."""
    return blocker.hold(kind.pool, kind.workers(kind.pool))


def released_and_settled(kind: Kind, blocker: Blocker, tmp_path: Path, function: str) -> None:
    """Lets the held calls go, once a cancelled call of `function` can no longer start, and
    returns once every call made before has ended or was dropped."""
    kind.scheduler_forgot(kind.pool, function)
    blocker.release()
    kind.settle(kind.pool, tmp_path / "settle")


async def awaited(fut: Any) -> Any:
    return await fut


@pytest.mark.parametrize("how", ["awaiting-task", "task-awaiting-submit", "call", "timeout"])
def test_a_call_cancelled_before_it_started_never_runs(
    kind: Kind, blocker: Blocker, tmp_path: Path, how: str
) -> None:
    marker = tmp_path / "never"
    run = kind.run(kind.pool)
    held(kind, blocker)
    cancelled_before = kind.pool.stats().cancelled

    async def main() -> None:
        if how in ("awaiting-task", "task-awaiting-submit"):
            if how == "awaiting-task":
                task = asyncio.ensure_future(run(cpu_work.touch, str(marker)))
            else:  # a task awaiting the future of submit cancels that future
                fut = kind.pool.submit(cpu_work.touch, str(marker))
                task = asyncio.ensure_future(awaited(fut))
            await asyncio.sleep(0)  # the task awaits its call
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            if how == "task-awaiting-submit":
                assert fut.cancelled()
        elif how == "call":
            call = run(cpu_work.touch, str(marker))
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        else:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(run(cpu_work.touch, str(marker)), 0.01)

    kind.on_loop(main)
    released_and_settled(kind, blocker, tmp_path, "touch")
    assert not marker.exists()
    assert kind.pool.stats().cancelled == cancelled_before + 1


def test_future_cancel_cancels_a_submitted_call_not_started(
    kind: Kind, blocker: Blocker, tmp_path: Path
) -> None:
    marker = tmp_path / "never"
    held(kind, blocker)
    fut = kind.pool.submit(cpu_work.touch, str(marker))
    assert fut.cancel() is True
    assert fut.cancelled() and fut.done()
    assert fut.cancel() is True  # still cancelled
    with pytest.raises(cf.CancelledError):
        fut.result(TIMEOUT)
    released_and_settled(kind, blocker, tmp_path, "touch")
    assert not marker.exists()


def test_cancelling_the_task_awaiting_a_map_stops_the_items_not_started(
    kind: Kind, blocker: Blocker, tmp_path: Path
) -> None:
    markers = [tmp_path / f"never-{i}" for i in range(20)]
    held(kind, blocker)

    async def main() -> None:
        task = asyncio.ensure_future(kind.pool.map(cpu_work.touch, [str(m) for m in markers]))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    kind.on_loop(main)
    released_and_settled(kind, blocker, tmp_path, "touch")
    assert [m.name for m in markers if m.exists()] == []


def test_cancelling_a_running_map_stops_the_items_not_started(
    kind: Kind, blocker: Blocker, tmp_path: Path
) -> None:
    # Every item blocks: the map holds every worker when its awaiting task is cancelled. The
    # items a worker already took run to their end (a native pool's workers take blocks of
    # items); no other item starts.
    items = [blocker.args()] * 100
    workers = kind.workers(kind.pool)

    async def main() -> None:
        task = asyncio.ensure_future(kind.pool.map(cpu_work.block_item, items))
        await asyncio.to_thread(blocker.wait_started, workers)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    kind.on_loop(main)
    released_and_settled(kind, blocker, tmp_path, "block_item")
    assert workers <= blocker.count_started() < len(items)


@pytest.mark.parametrize("how", ["future-cancel", "awaiting-task"])
def test_a_running_call_is_not_interrupted(kind: Kind, blocker: Blocker, tmp_path: Path, how: str) -> None:
    # It runs to its end. Where the kind promises it, offload.cancelled() is true inside it
    # once its cancellation was asked; in a worker interpreter, process or Dask worker it is
    # always false.
    log = tmp_path / "log"
    args = (*blocker.args()[:2], str(log), TIMEOUT)
    pool = kind.pool
    if how == "future-cancel":
        fut = pool.submit(cpu_work.block_then_note_cancelled, *args)
        blocker.wait_started()
        if kind.promises.running_cancel_refused:
            assert fut.cancel() is False and not fut.cancelled()
            blocker.release()
            assert fut.result(TIMEOUT) == str(kind.promises.sees_cancellation)
        else:  # DaskFuture: cancelled at once; the running call's result is dropped
            assert fut.cancel() is True and fut.cancelled()
            blocker.release()
    else:
        async def main() -> None:
            task = asyncio.ensure_future(kind.run(pool)(cpu_work.block_then_note_cancelled, *args))
            await asyncio.to_thread(blocker.wait_started)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        kind.on_loop(main)
        blocker.release()
    kind.settle(pool, tmp_path / "settle")
    assert log.read_text().split() == [str(kind.promises.sees_cancellation)]
