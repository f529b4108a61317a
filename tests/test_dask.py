"""offload.DaskPool against a real Dask cluster: a distributed.LocalCluster with two worker
processes of one thread each, started once for the module.

What every pool kind promises (calls, map and imap, cancellation, shutdown, bad input) runs
over DaskPool too, in the contract suites (test_contract_*.py). Here: what only Dask does —
keys on the scheduler, pure calls, the pool's loop and client, counters of calls Dask
dropped, workers that die.

The work lives in dask_work.py, which the worker processes import. Nothing waits for an
event by sleeping: a call signals that it started through a file the test polls, a call
finishes when the test creates the file it waits for (so tests choose the order in which calls
finish), and the test watches the scheduler's own task states (run_on_scheduler) to see what
Dask did with a cancelled or a retried call. Every test runs under a deadline, and calls that
block are always released.

The scheduler here allows one failure per task (distributed.scheduler.allowed-failures=1,
Dask's default is 3): a call whose worker dies once runs again; one whose workers die twice
raises KilledWorker. The tests that kill workers come last, and wait for the nanny to
restart them.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import gc
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings
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
        close_test_cluster(local)


def close_test_cluster(local: Any) -> None:
    """Closes the tests' own cluster. distributed 2024.8 (the release Python 3.9 gets) can
    time out closing a cluster whose workers were restarted, as the worker-kill tests do; that
    is not offload's shutdown (tested on its own), so its worker processes are then ended
    here, with a warning, and no process is left behind."""
    try:
        local.close(timeout=TIMEOUT)
    except (TimeoutError, asyncio.TimeoutError) as error:
        leftover = [p for p in multiprocessing.active_children() if p.name.startswith("Dask Worker")]
        warnings.warn(f"LocalCluster.close timed out ({error!r}); ending {len(leftover)} worker processes")
        for process in leftover:
            process.kill()
            process.join(TIMEOUT)


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
    finally:  # as asyncio.run does, each step within TIMEOUT
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=TIMEOUT))
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), TIMEOUT))
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), TIMEOUT))
        finally:
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
def blockers(tmp_path: Path) -> Iterator[Callable[[str], Blocker]]:
    """blockers(name) makes a Blocker; all are released on teardown."""
    made: List[Blocker] = []

    def make(name: str) -> Blocker:
        made.append(Blocker(tmp_path, name))
        return made[-1]

    yield make
    for b in made:
        b.release()


@pytest.fixture
def blocker(blockers: Callable[[str], Blocker]) -> Blocker:
    return blockers("block")


# -- results ----------------------------------------------------------------------------------


def test_a_done_dask_future_can_be_read_on_the_pools_own_loop(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            fut = pool.submit(dask_work.square, 9)
            assert await fut == 81
            assert fut.result(0) == fut.result() == 81  # done: nothing to wait for
            assert fut.exception() is None
            s = pool.stats()
            assert s.workers == s.threads == WORKERS  # the cluster's worker threads

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


def test_a_call_leaves_no_key_on_the_cluster_once_it_ended(cluster: Any, observer: Any) -> None:
    prefixes = ("square-", "fail-", "fail_if_negative-")

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            kept: List[BaseException] = []  # the errors, and through them the callers' frames
            assert await pool.run(dask_work.square, 2) == 4
            assert await pool.submit(dask_work.square, 3) == 9
            assert [x async for x in pool.imap(dask_work.square, range(3))] == [0, 1, 4]
            with pytest.raises(ValueError) as raised:
                await pool.run(dask_work.fail, "run")
            kept.append(raised.value)
            with pytest.raises(ValueError) as raised:  # the siblings' results were in memory
                await pool.map(dask_work.fail_if_negative, [1, 2, -3, 4])
            kept.append(raised.value)
            gc.collect()

            async def none_left() -> bool:
                return not any([await states(observer, prefix) for prefix in prefixes])

            await wait_until(none_left, "every key released")
            assert all(isinstance(error.__cause__, offload.RemoteTraceback) for error in kept)

    run(main)


def test_stats_count_calls_cancelled_before_their_first_step(
    cluster: Any, observer: Any, blocker: Blocker
) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            call = pool.run(dask_work.block, *blocker.args())  # sent to Dask at once
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pool.run(dask_work.block, *blocker.args()), 0)
            gathered = asyncio.gather(*[pool.run(dask_work.block, *blocker.args()) for _ in range(3)])
            gathered.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gathered
            # A call's cancellation reaches its Dask task on the loop's next turn.
            await wait_until(
                lambda: (lambda s: (s.submitted, s.cancelled, s.queued) == (5, 5, 0))(pool.stats()),
                "every call counted cancelled",
            )
            await wait_until(lambda: _count_keys(observer, "block-", 0), "the keys forgotten")

        # before the pool started, nothing was sent: nothing is counted
        pool = offload.DaskPool(cluster.scheduler_address)
        call = pool.run(dask_work.square, 1)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        await pool.aclose()
        assert pool.stats() == offload.PoolStats(0, 0, 0, 0, 0, 0, 0, 0)

    run(main)


# -- errors -----------------------------------------------------------------------------------


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


@pytest.mark.parametrize("how", ["SystemExit", "KeyboardInterrupt"])
def test_system_exit_and_keyboard_interrupt_come_back_and_no_worker_dies(
    cluster: Any, observer: Any, how: str
) -> None:
    # A Dask worker takes both for its own end: the call would run on every worker in turn,
    # each process dying, until KilledWorker.
    workers = observer.run(os.getpid)  # {address: pid}

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            run_call, map_call = pool.run(dask_work.leave, how), pool.map(dask_work.leave, [how])
            for call in (run_call, map_call, pool.submit(dask_work.leave, how)):
                with pytest.raises(BaseException) as raised:
                    await call
                assert type(raised.value) is getattr(builtins, how)
                assert str(raised.value) == f"{how} from leave"
                cause = raised.value.__cause__
                assert isinstance(cause, offload.RemoteTraceback)
                assert "dask_work.py" in cause.text and "in leave" in cause.text
                assert cause.text.splitlines()[-1] == f"{how}: {how} from leave"
            assert await pool.run(dask_work.square, 3) == 9
            s = pool.stats()
            assert (s.submitted, s.failed, s.completed) == (4, 3, 1), s

    run(main)
    assert observer.run(os.getpid) == workers


def test_a_dask_future_among_the_arguments_is_its_value_on_the_worker(cluster: Any) -> None:
    # Dask reads a call's arguments (and a map's items) for futures: its dependencies.
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            [data] = await pool.client.scatter([[1, 2, 3]])
            assert await pool.run(len, data) == 3
            assert await pool.submit(sum, data) == 6
            assert await pool.map(len, [data, [4]]) == [3, 1]
            assert [n async for n in pool.imap(len, [data])] == [3]
            data.release()

    run(main)


def test_the_call_sent_to_a_worker_pickles_plainly_and_needs_no_offload_there(tmp_path: Path) -> None:
    # What DaskPool sends for a call, pickled with plain pickle (as Dask tries first: a
    # function pickled by value would cost a cloudpickle fall-back on every call), then loaded
    # and run where offload cannot be imported.
    from offload._dask import _ON_WORKER, _worker_call

    calls = {"pow": (_ON_WORKER, _worker_call(pow, (2, 5))),
             "exit": (_ON_WORKER, _worker_call(sys.exit, ("bye",)))}
    path = tmp_path / "calls.pickle"
    path.write_bytes(pickle.dumps(calls))
    code = (
        "import pickle, sys\n"
        "sys.modules['offload'] = None  # import offload raises ImportError\n"
        f"calls = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "run, namespace = calls['pow']\n"
        "print(run(namespace))\n"
        "run, namespace = calls['exit']\n"
        "try:\n"
        "    run(namespace)\n"
        "except Exception as error:  # not SystemExit: Dask would end the worker\n"
        "    print(type(error).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert (done.returncode, done.stdout.split()) == (0, ["32", "RuntimeError"]), done.stderr


def test_a_result_that_cannot_be_brought_back_counts_as_failed(cluster: Any) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            with pytest.raises(TypeError):  # the worker process cannot pickle a lock
                await pool.run(dask_work.make_lock)
            with pytest.raises(TypeError):
                await pool.map(dask_work.make_lock_for, [1, 2])
            s = pool.stats()
            assert (s.submitted, s.completed, s.failed, s.queued) == (3, 0, 3, 0), s

    run(main)


def test_a_start_that_fails_after_its_waiter_left_is_not_logged(cluster: Any) -> None:
    logged: List[Dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: logged.append(context))
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            pool = offload.DaskPool("tcp://127.0.0.1:1")  # nothing listens there
            before = asyncio.all_tasks()
            with pytest.raises(asyncio.TimeoutError):  # the caller gives up; the start goes on
                await asyncio.wait_for(pool.start(), 0.1)
            await wait_until(lambda: asyncio.all_tasks() <= before, "the start failed")
        gc.collect()
        assert not logged, logged
        with pytest.raises(OSError):  # the next call tries again
            with dask.config.set({"distributed.comm.timeouts.connect": "0.1s"}):
                await pool.start()
        await pool.aclose()

    run(main)


async def _some_in_state(observer: Any, prefix: str, state: str) -> bool:
    return state in (await states(observer, prefix)).values()


async def _no_pending(observer: Any, prefix: str) -> bool:
    """No task of ``prefix`` waits or runs (finished ones may still be held)."""
    return all(state in ("memory", "erred") for state in (await states(observer, prefix)).values())


def test_bad_arguments_raise_at_once(cluster: Any, observer: Any) -> None:
    # What every pool kind refuses (constructor arguments, callables, windows, calls after
    # shutdown): test_contract_bad_input.py and test_contract_shutdown.py.
    with pytest.raises(TypeError, match="takes none"):
        offload.DaskPool(observer, n_workers=2)

    async def main() -> None:
        # a synchronous client runs its own loop: refused with the way out
        with pytest.raises(RuntimeError, match="asynchronous=True"):
            await offload.DaskPool(observer).start()

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
            kept = []
            for call in (queued_call, running[0]):
                with pytest.raises(asyncio.CancelledError) as raised:
                    await call
                # The exception's traceback holds the frames that held the Dask futures: the
                # keys go because the pool dropped them, not because the futures were collected.
                kept.append(raised)
            await wait_until(
                lambda: _count_keys(observer, "block-", WORKERS - 1), "the cancelled keys forgotten"
            )
            blocker.release()
            assert await running[1] in blocker.pids()
            assert len(blocker.pids()) == WORKERS  # the queued call never started
            assert queued and pool.stats().cancelled == 2

    run(main)


def test_with_pure_true_cancelling_one_caller_leaves_the_others_their_call(
    cluster: Any, observer: Any, blocker: Blocker
) -> None:
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address, pure=True) as pool:
            # identical calls: one key, one run
            calls = [pool.run(dask_work.block, *blocker.args()) for _ in range(2)]
            shared = pool.submit(dask_work.block, *blocker.args())
            await wait_until(lambda: blocker.pids(), "the call started")
            calls[0].cancel()
            with pytest.raises(asyncio.CancelledError):
                await calls[0]
            assert await _count_keys(observer, "block-", 1)  # still wanted by the others
            blocker.release()
            [pid] = blocker.pids()
            assert await calls[1] == pid and await shared == pid
            s = pool.stats()
            assert (s.submitted, s.completed, s.cancelled) == (3, 2, 1), s
            await wait_until(lambda: _count_keys(observer, "block-", 0), "the key forgotten")

    run(main)


def test_a_call_cancelled_while_its_result_is_fetched_leaves_the_others_fetched_with_it(
    cluster: Any, blockers: Callable[[str], Blocker]
) -> None:
    # Dask's client fetches the results of calls that finish together in one request, which
    # the first of them awaited: cancelling that call cancelled the request, and every call
    # fetched with it (made later on the same pool, say) raised CancelledError, its result on
    # the cluster. Two identical calls of a pure=True pool share a key and wake together, so
    # they are fetched in one request, which a result that takes as long to send as the test
    # wants holds open. Three rounds: each cancels a different request.
    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address, pure=True) as pool:
            for value in range(3):
                sending = blockers(f"send-{value}")
                first, second = [pool.run(dask_work.send_slowly, value, *sending.args()) for _ in range(2)]
                await wait_until(lambda: sending.pids(), "the result being sent")
                first.cancel()
                sending.release()
                assert await second == value
                with pytest.raises(asyncio.CancelledError):
                    await first
            assert await pool.run(dask_work.square, 3) == 9
            s = pool.stats()  # a call dropped once its Dask task finished counts as completed
            assert (s.submitted, s.completed, s.cancelled, s.queued) == (7, 7, 0, 0), s

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
            with pytest.raises(concurrent.futures.TimeoutError):
                fut.result(0)  # waits for nothing: as any future
            await wait_until(lambda: blocker.pids(), "the call started")
            assert await asyncio.to_thread(fut.cancel)
            assert fut.cancelled()
            await wait_until(lambda: _count_keys(observer, "block-", 0), "the key forgotten")
            assert pool.stats().cancelled == 1

    run(main)


# -- backpressure -----------------------------------------------------------------------------


def test_leaving_imap_early_cancels_the_calls_in_flight(
    cluster: Any, observer: Any, blockers: Callable[[str], Blocker]
) -> None:
    window = 3
    quick, held = blockers("quick"), blockers("held")
    quick.release()
    pulled: List[int] = []

    def source() -> Iterator[Any]:
        for i in range(20):
            pulled.append(i)
            yield quick.args() if i == 0 else held.args()  # the first returns, the rest block

    async def main() -> None:
        async with offload.DaskPool(cluster.scheduler_address) as pool:
            async for pid in pool.imap(dask_work.block_on, source(), window=window):
                assert pid in quick.pids()
                break
            # the blocked calls were cancelled: Dask forgets them; nothing more was read
            await wait_until(
                lambda: _count_keys(observer, "block_on-", 0), "the calls left behind forgotten"
            )
            assert len(pulled) == window
            s = pool.stats()
            assert (s.submitted, s.completed, s.cancelled, s.queued) == (window, 1, window - 1, 0)

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
            with pytest.raises(RuntimeError, match="belongs to another event loop"):
                pool.imap(dask_work.square, [2])  # at the call, not at the first iteration
            with pytest.raises(RuntimeError, match="shutdown()"):
                await pool.aclose()
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


class HandOffHeld(asyncio.SelectorEventLoop):
    """A loop that holds call_soon_threadsafe from the thread named "held" until ``go`` is set
    (``held`` is set once it waits): a thread whose call submit() accepted is held just before
    it hands the call to the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.go = threading.Event()

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Any:
        if threading.current_thread().name == "held":
            self.held.set()
            assert self.go.wait(TIMEOUT)
        return super().call_soon_threadsafe(callback, *args, context=context)


@pytest.mark.parametrize("cancel_pending", [False, True], ids=["runs", "cancel_pending"])
def test_a_call_submit_accepted_outlives_a_shutdown_that_overtakes_its_hand_off(
    cluster: Any, cancel_pending: bool
) -> None:
    # submit() from another thread decides at once, and the call reaches the pool's loop
    # later: a shutdown that starts closing first waits for it, and runs it (or cancels it).
    loop = HandOffHeld()
    thread = threading.Thread(target=loop.run_forever, name="pool-loop")
    thread.start()
    pool = offload.DaskPool(cluster.scheduler_address)
    try:
        asyncio.run_coroutine_threadsafe(pool.start(), loop).result(TIMEOUT)
        submitted: List[Any] = []
        submitter = threading.Thread(target=lambda: submitted.append(pool.submit(dask_work.square, 7)), name="held")
        submitter.start()
        assert loop.held.wait(TIMEOUT)  # accepted, not handed yet
        closing = threading.Thread(target=pool.shutdown, kwargs={"cancel_pending": cancel_pending})
        closing.start()
        closing.join(0.5)
        assert closing.is_alive()  # the close waits for the call submit() accepted
        loop.go.set()
        submitter.join(TIMEOUT)
        closing.join(TIMEOUT)
        assert not closing.is_alive() and pool.client.status == "closed"
        [future] = submitted
        if cancel_pending:
            assert future.cancelled() and pool.stats().submitted == 0  # never sent
        else:
            assert future.result(0) == 49
    finally:
        loop.go.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def test_submit_refuses_a_pool_whose_loop_is_not_running(cluster: Any) -> None:
    loop = asyncio.new_event_loop()  # run only by run_until_complete: stopped in between
    try:
        starting = offload.DaskPool(cluster.scheduler_address).start()
        pool = loop.run_until_complete(asyncio.wait_for(starting, TIMEOUT))
        with pytest.raises(RuntimeError, match="event loop is not running"):
            pool.submit(dask_work.square, 3)  # nothing would send it: refused, not left waiting
        with pytest.raises(RuntimeError, match="event loop is not running"):
            pool.shutdown()
        assert pool.stats().submitted == 0
        loop.run_until_complete(asyncio.wait_for(pool.aclose(), TIMEOUT))
        assert pool.client.status == "closed"
    finally:
        loop.close()


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


def test_a_close_cancelled_with_its_loop_task_is_tried_again(cluster: Any, blocker: Blocker) -> None:
    async def main() -> None:
        pool = await offload.DaskPool(cluster.scheduler_address).start()
        call = pool.run(dask_work.block, *blocker.args())
        before = asyncio.all_tasks()
        pool.shutdown(wait=False)  # closes in a loop task, which waits for the call
        [closing] = asyncio.all_tasks() - before
        await asyncio.sleep(0)  # one loop iteration: the close takes its first step
        closing.cancel()  # as a loop that shuts down does
        await asyncio.wait([closing])
        assert pool.closed and "shutting down" in repr(pool) and pool.client.status == "running"
        blocker.release()
        await pool.aclose()  # tries again
        assert "shut down" in repr(pool) and pool.client.status == "closed"
        assert await call == blocker.pids()[0]

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
