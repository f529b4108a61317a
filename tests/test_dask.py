"""offload.DaskPool against a real Dask cluster: a distributed.LocalCluster with two worker
processes of one thread each, started once for the module.

The work lives in dask_work.py, which the worker processes import. Nothing synchronises by
sleeping: a call signals that it started through a file the test polls, and the test watches
the scheduler's own task states (run_on_scheduler) to see what Dask did with a cancelled or
a retried call. Every test runs under a deadline, and calls that block are always released.

The scheduler here allows one failure per task (distributed.scheduler.allowed-failures=1,
Dask's default is 3): a call whose worker dies once runs again; one whose workers die twice
raises KilledWorker. The tests that kill workers come last, and wait for the nanny to
restart them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Set

import pytest

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install offload[dask])"
)
dask = pytest.importorskip("dask")

import dask_work  # noqa: E402
import offload  # noqa: E402

TIMEOUT = 30.0  # the bound of every wait; each normally takes well under a second
WORKERS = 2
ALLOWED_FAILURES = 1

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extras
    uvloop = None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        local = distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    try:
        yield local
    finally:
        local.close(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def observer(cluster: Any) -> Iterator[Any]:
    """A synchronous client of the test's own, to read the scheduler's state."""
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


def run(main: Callable[[], Awaitable[Any]], loop_kind: str = "asyncio") -> Any:
    """Runs ``main()`` on a fresh loop, within TIMEOUT."""
    if loop_kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    finally:  # as asyncio.run does
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Polls ``condition`` (a sync or async callable) until it is truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def states(observer: Any, prefix: str) -> Dict[str, str]:
    """The scheduler's tasks whose key starts with ``prefix``, and their states."""
    every = await asyncio.to_thread(observer.run_on_scheduler, dask_work.task_states)
    return {key: state for key, state in every.items() if key.startswith(prefix)}


def pids(path: Path) -> List[int]:
    """The pids that calls of dask_work.block wrote into ``path`` (one line per start)."""
    return [int(line) for line in path.read_text().split()] if path.exists() else []


class Blocker:
    """dask_work.block's two files; ``release()`` lets every blocked call finish, and is
    called on teardown at the latest."""

    def __init__(self, root: Path, name: str = "block") -> None:
        self.started = root / f"{name}-started"
        self.release_path = root / f"{name}-release"

    def args(self) -> tuple:
        return (str(self.started), str(self.release_path))

    def pids(self) -> List[int]:
        return pids(self.started)

    def release(self) -> None:
        self.release_path.touch()


@pytest.fixture
def blocker(tmp_path: Path) -> Iterator[Blocker]:
    b = Blocker(tmp_path)
    yield b
    b.release()


# -- results ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_run_map_imap_and_submit_return_the_results(cluster: Any, loop_kind: str) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            assert await pool.run(dask_work.square, 7) == 49
            assert await pool.map(dask_work.square, range(10)) == [x * x for x in range(10)]
            assert [x async for x in pool.imap(dask_work.square, range(5), window=2)] == [0, 1, 4, 9, 16]
            fut = pool.submit(dask_work.square, 9)
            assert isinstance(fut, offload.DaskFuture)
            assert await fut == 81
            assert fut.result(0) == 81
            assert await pool.map(dask_work.square, []) == []

    run(main, loop_kind)


def test_keyword_arguments_reach_the_function_even_named_like_dask_options(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            # client.submit has options named key, workers, priority...: they must not eat them
            assert await pool.run(dask_work.add, 1, 2, key="!") == "3!"
            assert await pool.submit(dask_work.add, 5, key="?") == "5?"

    run(main)


def test_map_keeps_the_input_order_when_calls_finish_out_of_order(cluster: Any) -> None:
    items = [(0, 0.3), (1, 0.0), (2, 0.2), (3, 0.0), (4, 0.1), (5, 0.0)]

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            assert await pool.map(dask_work.sleep_then, items) == [0, 1, 2, 3, 4, 5]
            unordered = [x async for x in pool.imap(dask_work.sleep_then, items, ordered=False)]
            assert sorted(unordered) == [0, 1, 2, 3, 4, 5]
            assert unordered != [0, 1, 2, 3, 4, 5]  # 0 sleeps longest of all

    run(main)


def test_pure_false_runs_identical_calls_again_and_pure_true_shares_their_key(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            a, b = await asyncio.gather(pool.run(dask_work.token, 8), pool.run(dask_work.token, 8))
            assert a != b
        async with offload.DaskPool(cluster.scheduler_address, pure=True) as pool:
            a, b = await asyncio.gather(pool.run(dask_work.token, 8), pool.run(dask_work.token, 8))
            assert a == b  # one key: Dask ran it once

    run(main)


def test_contextvars_are_not_carried_to_the_workers(cluster: Any) -> None:
    async def main() -> None:
        dask_work.VAR.set("caller")  # in this test's task only
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            assert await pool.run(dask_work.read_var) == "default"

    run(main)


def test_stats_count_every_call_by_how_it_ended(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            assert pool.stats().workers == WORKERS
            await pool.run(dask_work.square, 2)
            await pool.map(dask_work.square, range(3))
            with pytest.raises(ValueError):
                await pool.run(dask_work.fail, "x")
        assert pool.stats() == offload.PoolStats(
            workers=WORKERS, submitted=5, completed=4, failed=1, cancelled=0, queued=0, busy=0
        )

    run(main)


# -- errors -----------------------------------------------------------------------------------


def test_an_exception_comes_back_with_its_type_message_and_remote_traceback(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            with pytest.raises(ValueError, match="^boom$") as raised:
                await pool.run(dask_work.fail, "boom")
            cause = raised.value.__cause__
            assert isinstance(cause, offload.RemoteTraceback)
            assert "dask_work.py" in cause.text and "in fail" in cause.text
            assert cause.text.splitlines()[-1] == "ValueError: boom"
            with pytest.raises(ValueError, match="^in a thread$") as raised:
                await asyncio.to_thread(pool.submit(dask_work.fail, "in a thread").result, TIMEOUT)
            assert isinstance(raised.value.__cause__, offload.RemoteTraceback)

    run(main)


def test_map_raises_a_failure_with_its_traceback_and_cancels_the_rest(
    cluster: Any, observer: Any, blocker: Blocker
) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            # the first call fails at once; the others wait in Dask's queue or block
            items = [None, *([blocker.args()] * 6)]
            with pytest.raises(ValueError, match="^first$") as raised:
                await pool.map(dask_work.fail_or_block, items)
            assert isinstance(raised.value.__cause__, offload.RemoteTraceback)
            # the pending calls were cancelled: the scheduler forgets them
            await wait_until(lambda: _no_pending(observer, "fail_or_block-"), "cancelled items")
            s = pool.stats()
            assert (s.submitted, s.failed, s.completed + s.cancelled, s.queued) == (7, 1, 6, 0)
            blocker.release()

    run(main)


async def _no_pending(observer: Any, prefix: str) -> bool:
    """No task of ``prefix`` waits or runs (finished ones may still be held)."""
    return all(state in ("memory", "erred") for state in (await states(observer, prefix)).values())


def test_bad_arguments_raise_at_once(cluster: Any, observer: Any) -> None:
    with pytest.raises(TypeError, match="DaskPool takes"):
        offload.DaskPool(42)
    with pytest.raises(TypeError, match="pure must be a bool"):
        offload.DaskPool(cluster.scheduler_address, pure=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes none"):
        offload.DaskPool(observer, n_workers=2)

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            with pytest.raises(TypeError, match="expected a callable"):
                pool.run(42)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="expected a callable"):
                pool.submit(42)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="window"):
                pool.imap(dask_work.square, [1], window=0)
        # a synchronous client runs its own loop: refused with the way out
        with pytest.raises(RuntimeError, match="asynchronous=True"):
            await offload.DaskPool(observer).start()
        with pytest.raises(RuntimeError, match="shut down"):
            pool.run(dask_work.square, 1)

    run(main)


def test_without_distributed_the_error_names_the_extra() -> None:
    # In a child process: hiding distributed here would break the cluster's own threads.
    program = (
        "import sys\n"
        "sys.modules['distributed'] = None  # `import distributed` now fails\n"
        "import offload\n"
        "try:\n"
        "    offload.DaskPool()\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "pip install offload[dask]" in done.stdout, done.stdout


# -- cancellation -----------------------------------------------------------------------------


def test_cancelling_the_awaiting_task_cancels_the_dask_future(
    cluster: Any, observer: Any, blocker: Blocker
) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            running = [pool.run(dask_work.block, *blocker.args()) for _ in range(WORKERS)]
            await wait_until(lambda: len(blocker.pids()) == WORKERS, "both workers busy")
            busy = set(await states(observer, "block-"))
            queued_call = pool.run(dask_work.block, *blocker.args())
            queued = await wait_until(
                lambda: _new_keys(observer, "block-", busy), "the third call on the scheduler"
            )
            # cancel the queued call and one running call: Dask forgets both
            queued_call.cancel()
            running[0].cancel()
            for call in (queued_call, running[0]):
                with pytest.raises(asyncio.CancelledError):
                    await call
            await wait_until(
                lambda: _count_keys(observer, "block-", WORKERS - 1), "the cancelled keys forgotten"
            )
            blocker.release()
            assert await running[1] in blocker.pids()
            assert len(blocker.pids()) == WORKERS  # the queued call never started
            assert queued and pool.stats().cancelled == 2

    run(main)


async def _new_keys(observer: Any, prefix: str, known: Set[str]) -> Set[str]:
    return set(await states(observer, prefix)) - known


async def _count_keys(observer: Any, prefix: str, count: int) -> bool:
    return len(await states(observer, prefix)) == count


def test_cancelling_a_dask_future_from_another_thread(cluster: Any, observer: Any, blocker: Blocker) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            fut = pool.submit(dask_work.block, *blocker.args())
            with pytest.raises(RuntimeError, match="would block the event loop"):
                fut.result(TIMEOUT)  # on the pool's own loop thread
            await wait_until(lambda: blocker.pids(), "the call started")
            assert await asyncio.to_thread(fut.cancel)
            assert fut.cancelled()
            await wait_until(lambda: _count_keys(observer, "block-", 0), "the key forgotten")
            assert pool.stats().cancelled == 1

    run(main)


# -- backpressure -----------------------------------------------------------------------------


def test_imap_keeps_at_most_window_calls_in_flight(cluster: Any, observer: Any) -> None:
    window = 3
    pulled: List[int] = []

    def source() -> Iterator[int]:
        for i in range(24):
            pulled.append(i)
            yield i

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            results, most_ahead, most_on_scheduler = [], 0, 0
            async for value in pool.imap(dask_work.square, source(), window=window):
                results.append(value)
                most_ahead = max(most_ahead, len(pulled) - len(results))
                in_flight = [s for s in (await states(observer, "square-")).values() if s != "memory"]
                most_on_scheduler = max(most_on_scheduler, len(in_flight))
            assert results == [i * i for i in range(24)]
            assert most_ahead <= window, most_ahead
            assert most_on_scheduler <= window, most_on_scheduler
            # leaving early cancels what is in flight; nothing more is read
            pulled.clear()
            async for value in pool.imap(dask_work.square, source(), window=window):
                break
            assert len(pulled) <= window + 1
            await wait_until(lambda: _no_pending(observer, "square-"), "the calls left behind cancelled")

    run(main)


def test_imap_default_window_is_four_per_worker_thread(cluster: Any) -> None:
    pulled: List[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            pulled.append(i)
            yield i

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            async for _ in pool.imap(dask_work.square, source()):
                assert len(pulled) <= 4 * WORKERS + 1
                break

    run(main)


# -- loops and threads ------------------------------------------------------------------------


def test_a_pool_belongs_to_its_loop_and_submit_works_from_other_loops_and_threads(cluster: Any) -> None:
    pool_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=pool_loop.run_forever, name="pool-loop")
    thread.start()
    pool = offload.DaskPool(cluster.scheduler_address)
    try:
        with pytest.raises(RuntimeError, match="has not started"):
            pool.submit(dask_work.square, 1)  # from elsewhere, before its loop started it
        asyncio.run_coroutine_threadsafe(pool.start(), pool_loop).result(TIMEOUT)

        async def main() -> None:  # on another loop, in this thread
            with pytest.raises(RuntimeError, match="belongs to another event loop"):
                pool.run(dask_work.square, 2)
            assert await pool.submit(dask_work.square, 3) == 9
            assert await asyncio.to_thread(lambda: pool.submit(dask_work.square, 4).result(TIMEOUT)) == 16

        run(main)
        pool.shutdown(wait=True)  # from a thread that is not the pool's loop: waits
        assert pool.client.status == "closed"
        with pytest.raises(RuntimeError, match="shut down"):
            pool.submit(dask_work.square, 5)
    finally:
        pool_loop.call_soon_threadsafe(pool_loop.stop)
        thread.join(TIMEOUT)
        pool_loop.close()


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_closes_the_client_and_cluster_the_pool_created() -> None:
    async def main() -> None:
        async with offload.DaskPool(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as pool:
            worker_pid = await pool.run(os.getpid)
            assert worker_pid != os.getpid()
            client, cluster = pool.client, pool.client.cluster
            with pytest.raises(RuntimeError, match="aclose"):
                pool.shutdown()  # wait=True cannot wait on the loop's own thread
        assert pool.closed and client.status == "closed"
        assert cluster.status.name == "closed"
        assert not _alive(worker_pid)
        assert "shut down" in repr(pool)

    run(main)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[-1][0] != "Z"


def test_shutdown_leaves_a_borrowed_client_open(cluster: Any) -> None:
    async def main() -> None:
        client = await distributed.Client(cluster.scheduler_address, asynchronous=True, set_as_default=False)
        try:
            async with offload.DaskPool(client) as pool:
                assert pool.client is client
                assert await pool.run(dask_work.square, 3) == 9
            assert client.status == "running"
            assert await client.submit(dask_work.square, 4) == 16
        finally:
            await client.close()

    run(main)


def test_a_cluster_object_run_by_another_loop_is_reached_by_its_address(cluster: Any) -> None:
    async def main() -> None:
        # the module's cluster is synchronous: its loop runs in a thread of its own
        async with offload.DaskPool(cluster) as pool:
            assert pool.client.asynchronous  # on this loop
            assert await pool.run(dask_work.square, 6) == 36
        assert pool.client.status == "closed" and cluster.status.name == "running"

    run(main)


def test_aclose_waits_for_calls_in_flight(cluster: Any, blocker: Blocker) -> None:
    async def main() -> None:
        pool = await offload.DaskPool(cluster.scheduler_address).start()
        call = pool.run(dask_work.block, *blocker.args())
        await wait_until(lambda: blocker.pids(), "the call started")
        closing = asyncio.ensure_future(pool.aclose())
        await wait_until(lambda: pool.closed, "the shutdown began")
        with pytest.raises(RuntimeError, match="shut down"):
            pool.run(dask_work.square, 1)
        assert not closing.done() and pool.client.status == "running"
        blocker.release()
        await closing
        assert await call == blocker.pids()[0]
        assert pool.client.status == "closed"

    run(main)


def test_aclose_cancel_pending_cancels_the_calls_in_flight(
    cluster: Any, observer: Any, blocker: Blocker
) -> None:
    async def main() -> None:
        pool = await offload.DaskPool(cluster.scheduler_address).start()
        calls = [pool.run(dask_work.block, *blocker.args()) for _ in range(3)]
        await wait_until(lambda: blocker.pids(), "a call started")
        await pool.aclose(cancel_pending=True)
        for call in calls:
            assert call.cancelled()
        await wait_until(lambda: _count_keys(observer, "block-", 0), "the keys forgotten")
        assert pool.stats().cancelled == 3

    run(main)


# -- dying workers (last: the nanny restarts the killed workers) -------------------------------


def test_a_call_whose_worker_is_killed_runs_again_on_another(cluster: Any, blocker: Blocker) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            call = pool.run(dask_work.block, *blocker.args())
            [victim] = await wait_until(lambda: blocker.pids(), "the call started")
            os.kill(victim, signal.SIGKILL)
            # one failure is allowed: Dask runs the call again, on a live worker
            await wait_until(lambda: len(blocker.pids()) == 2, "the call ran again")
            blocker.release()
            survivor = await call
            assert survivor != victim and survivor == blocker.pids()[1]
            await pool.client.wait_for_workers(WORKERS, timeout=TIMEOUT)

    run(main)


def test_a_call_that_kills_every_worker_raises_killed_worker(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            with pytest.raises(distributed.KilledWorker):
                await pool.run(dask_work.kill_own_worker)
            assert pool.stats().failed == 1
            await pool.client.wait_for_workers(WORKERS, timeout=TIMEOUT)
            assert await pool.run(dask_work.square, 5) == 25  # the restarted workers work

    run(main)
