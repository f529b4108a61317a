"""Contract: shutdown, on every pool kind (pool_kinds.py).

shutdown(wait, cancel_pending) follows concurrent.futures.Executor.shutdown: intake stops at
once, queued calls run unless cancel_pending, wait=True returns once the running calls ended,
a second call is harmless, and every entry point refuses work afterwards; `with` and
`async with` shut the pool down on leaving. Where a kind differs (DaskPool has no plain
`with`, and cancel_pending drops its running calls too), the test asserts that kind's promise.
The default pool lives as long as the process: its shutdown is tested in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import cpu_work
import offload
from conftest import run_python
from pool_kinds import TIMEOUT, Blocker, Kind, close_pool
from pool_kinds import _dask_pool_per_test, blocker, kind, new_pool  # noqa: F401 (fixtures)

SHUT_DOWN = "shut down"


@pytest.mark.parametrize("cancel_pending", [False, True], ids=["queued-run", "cancel_pending"])
def test_shutdown_lets_queued_calls_run_unless_cancel_pending(
    kind: Kind, new_pool: Any, blocker: Blocker, tmp_path: Path, cancel_pending: bool
) -> None:
    pool = new_pool(1)
    log = tmp_path / "log"
    running = blocker.hold(pool, kind.workers(pool))
    # The pool's loop is kept busy meanwhile: a DaskPool hands a call submitted from another
    # thread to its loop, which takes it in only after shutdown() returned.
    loop_free = threading.Event()
    kind.loop.call_soon_threadsafe(loop_free.wait, TIMEOUT)
    try:
        queued = [pool.submit(cpu_work.append_line, str(log), str(i)) for i in range(3)]
        pool.shutdown(wait=False, cancel_pending=cancel_pending)
    finally:
        loop_free.set()
    assert pool.closed
    blocker.release()
    close_pool(pool)  # waits for the workers (a DaskPool: for its close)
    if not cancel_pending:
        assert [f.result(0) for f in running] == ["released"] * len(running)
        assert sorted(f.result(0) for f in queued) == ["0", "1", "2"]
        return
    assert all(f.cancelled() for f in queued)
    assert not log.exists()
    if kind.promises.running_cancel_refused:  # "Running calls always finish"
        assert [f.result(0) for f in running] == ["released"] * len(running)
    else:  # DaskPool: aclose(cancel_pending=True) "cancels the calls in flight"
        assert all(f.cancelled() for f in running)


def test_shutdown_with_wait_returns_once_the_running_calls_ended(
    kind: Kind, new_pool: Any, blocker: Blocker
) -> None:
    pool = new_pool()
    running = blocker.hold(pool, kind.workers(pool))
    closing = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
    closing.start()
    closing.join(0.05)
    assert closing.is_alive()  # still waiting for the held calls
    blocker.release()
    closing.join(TIMEOUT)
    assert not closing.is_alive()
    assert all(f.done() for f in running)
    pool.shutdown(wait=True)  # again: harmless
    assert pool.closed


@pytest.mark.parametrize("route", ["run", "submit", "map", "imap"])
def test_every_entry_point_refuses_work_after_shutdown(kind: Kind, new_pool: Any, route: str) -> None:
    pool = new_pool()
    assert pool.submit(cpu_work.square, 2).result(TIMEOUT) == 4
    close_pool(pool)
    pool.shutdown(wait=True)  # again: harmless

    async def main() -> None:
        with pytest.raises(RuntimeError, match=SHUT_DOWN):
            if route == "run":
                pool.run(cpu_work.square, 1)
            elif route == "submit":
                pool.submit(cpu_work.square, 1)
            elif route == "map":
                pool.map(cpu_work.square, [1])
            else:  # at the call, or at the latest when the iteration starts
                await pool.imap(cpu_work.square, [1]).__anext__()

    kind.on_loop(main)
    with pytest.raises(RuntimeError, match=SHUT_DOWN):
        pool.submit(cpu_work.square, 1)  # from a thread too


def test_with_shuts_the_pool_down_on_leaving(kind: Kind, new_pool: Any) -> None:
    pool = new_pool()
    if not kind.promises.plain_with:  # DaskPool: "There is no plain with"
        with pytest.raises((TypeError, AttributeError)):
            with pool:
                pass
        assert not pool.closed
        return
    with pool as entered:
        assert entered is pool
        assert pool.submit(cpu_work.square, 3).result(TIMEOUT) == 9
        assert not pool.closed
    assert pool.closed
    with pytest.raises(RuntimeError, match=SHUT_DOWN):
        pool.submit(cpu_work.square, 1)


def test_async_with_shuts_the_pool_down_without_blocking_the_loop(
    kind: Kind, new_pool: Any, blocker: Blocker
) -> None:
    pool = new_pool()
    progressed = []

    async def other() -> None:
        progressed.append("the loop ran meanwhile")
        blocker.release()  # lets the held call, and so the shutdown, finish

    async def main() -> Any:
        async with pool as entered:
            assert entered is pool
            held = pool.submit(cpu_work.block, *blocker.args())
            await asyncio.to_thread(blocker.wait_started)
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, other())
        return held

    held = kind.on_loop(main)
    assert pool.closed and progressed == ["the loop ran meanwhile"]
    assert held.result(TIMEOUT) == "released"


def test_repr_tells_a_running_pool_from_one_shut_down(kind: Kind, new_pool: Any) -> None:
    pool = new_pool()
    assert "running" in repr(pool) and SHUT_DOWN not in repr(pool)
    close_pool(pool)
    assert SHUT_DOWN in repr(pool)


def test_the_default_pool_once_shut_down_refuses_offload_run() -> None:
    # "The default pool behind offload.run lives as long as the process; shutting it down
    # makes later offload.run calls raise RuntimeError" (lifecycle.md): in a fresh interpreter.
    result = run_python(
        """
        import asyncio, offload
        async def main():
            print(await offload.run(pow, 2, 5), flush=True)
            offload.default_pool().shutdown(wait=True)
            try:
                offload.run(pow, 2, 6)
            except RuntimeError as error:
                print("refused:", error, flush=True)
        asyncio.run(main())
        print("closed:", offload.default_pool().closed)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "32", "refused: offload: cannot submit to a pool that was shut down", "closed: True"]


def test_stats_count_the_calls_shutdown_cancelled(kind: Kind, new_pool: Any, blocker: Blocker) -> None:
    pool = new_pool(1)
    running = blocker.hold(pool, kind.workers(pool))

    async def submit() -> Any:  # on the pool's loop: accepted before the shutdown begins
        return [pool.submit(cpu_work.square, i) for i in range(3)]

    queued = kind.on_loop(submit)
    pool.shutdown(wait=False, cancel_pending=True)
    blocker.release()
    close_pool(pool)
    assert all(f.cancelled() for f in queued)
    s = pool.stats()
    assert (s.submitted, s.failed) == (len(running) + len(queued), 0)
    if kind.promises.running_cancel_refused:  # "Running calls always finish"
        assert (s.completed, s.cancelled) == (len(running), len(queued))
    else:
        # DaskPool: aclose(cancel_pending=True) "cancels the calls in flight", on the pool's
        # loop, after shutdown(wait=False) returned here: a running call released meanwhile may
        # end first. Either way it is counted once; the queued ones are cancelled.
        assert s.completed + s.cancelled == len(running) + len(queued)
        assert s.completed <= len(running)
    assert (s.queued, s.busy) == (0, 0)
