"""Every kind of offload pool, for contract tests that run one suite over all of them, the way
CPython runs its executor tests over every executor.

  default        offload.run / offload.default_pool()
  thread         offload.Pool
  thread-uvloop  offload.Pool, its calls made from a uvloop loop (the contract suites only:
                 uvloop over every kind is test_contract_awaitables.py's)
  interpreter    offload.InterpreterPool (Python 3.12+)
  process        offload.ProcessPool
  dask           offload.DaskPool on a LocalCluster shared by the session (offload[dask])

A contract suite takes the module-scoped `kind` fixture (a Kind: a pool of the kind, made once
for the module, the loop its coroutines run on, and what the kind's documentation promises)
and, where a test needs them, `new_pool` (pools of the kind made for one test) and `blocker`
(holds workers of any kind until released). The work the suites send lives in cpu_work.py,
importable by worker interpreters, worker processes and Dask's workers.

Where the kinds' documentation promises differently, a test reads kind.promises (each field
says where the promise is written) and asserts what that kind promises: no test skips a kind
silently.
"""

from __future__ import annotations

import asyncio
import importlib.util
import concurrent.futures as cf
import logging
import os
import platform
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import cpu_work
import offload
from conftest import new_loop

KINDS = ["default", "thread", "interpreter", "process", "dask"]
CONTRACT_KINDS = ["default", "thread", "thread-uvloop", "interpreter", "process", "dask"]
WORKERS = 2
TIMEOUT = 30.0  # the bound of every wait in the contract suites; each normally takes milliseconds


def skip_reason(kind: str) -> Optional[str]:
    if kind == "interpreter" and sys.version_info < (3, 12):
        return f"InterpreterPool needs Python >= 3.12; this is {platform.python_version()}"
    if kind == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            return "dask.distributed is not installed (pip install offload[dask])"
    return None


_cluster: Any = None


def dask_cluster() -> Any:
    """One LocalCluster (two worker processes, one thread each), made on first use.

    No call of the contract suites is retried: a worker that dies fails its call at once
    (allowed-failures 0), which keeps the one test that loses a worker short.

    Its scheduler runs in this process. On CPython 3.13.0, creating subinterpreters while it
    runs crashes the process (free(): invalid pointer), with or without offload (reproduced
    with the _interpreters module alone): an InterpreterPool is never started while it is open
    (make_pool closes it first), and the suites list "dask" last so that it opens once a
    module's other kinds are done."""
    global _cluster
    if _cluster is None:
        import dask
        import distributed

        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            _cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.CRITICAL,  # calls fail on purpose: no log of each
            )
    return _cluster


def close_session() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.close()
        _cluster = None


def make_pool(kind: str, workers: int = WORKERS, name: Optional[str] = None) -> Any:
    """A pool of the kind (the default pool for "default"), from outside any loop; `name` names
    a native pool's threads. A DaskPool is not started: it belongs to the loop that starts it."""
    named = {} if name is None else {"name": name}
    kind = kind.split("-")[0]
    reason = skip_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    if kind == "default":
        return offload.default_pool()
    if kind == "thread":
        return offload.Pool(workers, **(named or {"name": "contract"}))
    if kind == "interpreter":
        close_session()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*gh-119213", category=RuntimeWarning)
            return offload.InterpreterPool(workers, **named)
    if kind == "process":
        return offload.ProcessPool(workers, **named)
    return offload.DaskPool(dask_cluster().scheduler_address)


def close_pool(pool: Any) -> None:
    """Closes a pool from outside its loop. A DaskPool's client belongs to the loop it started
    on: closed there if that loop still runs, else forgotten with it."""
    if pool is offload.default_pool():
        return
    if isinstance(pool, offload.DaskPool):
        loop = pool._loop
        if loop is not None and not loop.is_closed() and loop.is_running():
            pool.shutdown(wait=True)
        elif loop is not None and not loop.is_closed():
            loop.run_until_complete(pool.aclose())
        else:
            pool.shutdown(wait=False)
        return
    pool.shutdown(wait=True)


def counters_add_up(pool: Any) -> offload.PoolStats:
    """Closes `pool` (close_pool: a native pool's workers are joined, a DaskPool's close is
    waited for), so that its counters are final, checks that every call it accepted ended
    exactly one way, and returns the counters."""
    close_pool(pool)
    s = pool.stats()
    assert (s.queued, s.busy) == (0, 0), s
    assert s.submitted == s.completed + s.failed + s.cancelled, s
    return s  # type: ignore[no-any-return]


def _dask_reads_arguments() -> bool:
    """Whether the installed Dask reads a call's arguments as a task graph: before Dask's task
    spec (dask._task_spec, Dask 2024.12; Python 3.9 gets 2024.8 at most), a tuple whose first
    item is callable is run as a task, and arguments are hashed as candidate keys."""
    try:
        import dask._task_spec  # noqa: F401
    except ImportError:
        return importlib.util.find_spec("dask") is not None
    return False


OLD_DASK_ARGUMENTS = (
    "Dask < 2024.12 reads a call's arguments as a task graph (a tuple whose first item is "
    "callable runs as a task; arguments are hashed): DaskPool passes such arguments untouched "
    "from Dask 2024.12 on (docs/guides/dask.md, 'What can be sent')"
)


def skip_if_dask_reads_arguments(kind: "Kind") -> None:
    """For tests whose arguments or items are such tuples, or objects that refuse hashing."""
    if kind.name == "dask" and _dask_reads_arguments():
        pytest.skip(OLD_DASK_ARGUMENTS)


# -- what each kind promises, where the kinds differ --------------------------------------


@dataclass(frozen=True)
class Promises:
    context: bool
    """The call runs in a copy of the caller's contextvars context (Pool.run, as
    asyncio.to_thread). InterpreterPool, ProcessPool, DaskPool: "contextvars are not carried
    over" (their docstrings, docs/guides/choosing-a-pool.md, docs/guides/dask.md)."""
    local: bool
    """The call runs in this interpreter: its exception is raised as the call raised it, with its
    frames. Elsewhere it comes back with its type and message, the worker's traceback as text
    in __cause__, a RemoteTraceback (ProcessPool.run, DaskPool)."""
    sees_cancellation: bool
    """offload.cancelled() turns true inside a running call asked to stop (offload.cancelled).
    "offload.cancelled() is false in a worker interpreter / worker process / on a worker"."""
    by_name: bool
    """Functions travel by name: a lambda, a nested function or a function of an interactive
    __main__ is refused at once with SendError (choosing-a-pool.md, "What can be sent"). Dask
    pickles with cloudpickle: "lambdas and __main__ functions can be sent"."""
    pickled: bool
    """Arguments and results are pickled: what cannot be raises SendError naming it (CPU pools,
    DaskPool). A thread pool passes objects by reference."""
    own_pools: bool
    """Pools of the kind can be made and shut down. The default pool is the process's own: "lives
    as long as the process; shutting it down makes later offload.run calls raise" (lifecycle.md),
    which would refuse every later test of the run."""
    plain_with: bool
    """`with pool:` shuts it down on leaving. DaskPool: "Only async with ... There is no plain
    with" (closing a Dask client needs its loop)."""
    running_cancel_refused: bool
    """Future.cancel() of a running call returns False (offload.Future.cancel: "A running call
    cannot be interrupted"). DaskFuture.cancel() "returns True unless the future is done": the
    running call runs to its end on its worker and its result is dropped."""
    map_counted_per_item: bool
    """stats() counts a map as one call per item (DaskPool.stats); a native pool counts one call
    per worker that took part (PoolStats: "A map counts one call per worker that took part")."""
    map_fails_fast: bool
    """A failing map raises at the first failure that arrives and cancels the calls still pending
    (DaskPool.map). A native pool's map raises once its running blocks ended, "and no worker
    takes a further block" (Pool.map)."""


_THREADS = dict(context=True, local=True, sees_cancellation=True, by_name=False, pickled=False,
                plain_with=True, running_cancel_refused=True, map_counted_per_item=False,
                map_fails_fast=False)
_CPU = dict(_THREADS, context=False, local=False, sees_cancellation=False, by_name=True, pickled=True)
PROMISES: Dict[str, Promises] = {
    "default": Promises(**_THREADS, own_pools=False),
    "thread": Promises(**_THREADS, own_pools=True),
    "interpreter": Promises(**_CPU, own_pools=True),
    "process": Promises(**_CPU, own_pools=True),
    "dask": Promises(**dict(_CPU, by_name=False, plain_with=False, running_cancel_refused=False,
                            map_counted_per_item=True, map_fails_fast=True),
                     own_pools=True),
}

OWN_POOLS_SKIP = (
    "the default pool is the process's own: it cannot be made anew, and shut down it would refuse "
    "every later offload.run of this run (lifecycle.md); its Pool class is the thread kind's, and "
    "test_contract_shutdown.py::test_the_default_pool_once_shut_down_refuses_offload_run checks "
    "its shutdown in a fresh interpreter"
)


# What an error message must never be: pybind11's dispatch failure dump, or the text of a C++
# exception that escaped (it names no parameter and means nothing to a Python user).
UNCLEAR_MARKERS = (
    "incompatible function arguments",
    "incompatible constructor arguments",
    "Invoked with",
    "std::",
    "vector::",
    "bad_alloc",
)


def assert_clear(error: BaseException, *names: str) -> None:
    """`error` is a TypeError or ValueError whose message names one of `names` (the bad
    parameter) and does not leak pybind11's or C++'s own words."""
    assert isinstance(error, (TypeError, ValueError)), f"{type(error).__name__}: {error}"
    message = str(error)
    assert any(name in message for name in names), f"{names} not named in: {message}"
    for marker in UNCLEAR_MARKERS:
        assert marker not in message, f"unclear message: {message}"


class Kind:
    """One kind under contract: a pool of it (made once for a module), the loop its coroutines
    run on, and what its documentation promises.

    The loop runs in a thread of its own for the module: the test's thread blocks on futures
    (result(), shutdown(wait=True)) as any other thread would, and a DaskPool, which belongs to
    the loop it started on, serves the whole module."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.base = name.split("-")[0]
        self.promises = PROMISES[self.base]
        reason = skip_reason(self.base)
        if reason is not None:
            pytest.skip(reason)
        self.loop = new_loop("uvloop" if name.endswith("-uvloop") else "asyncio")
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"{name}-loop", daemon=True)
        self._thread.start()
        self.pool = self.make(WORKERS)

    def make(self, workers: int, name: Optional[str] = None) -> Any:
        """A pool of the kind, ready for calls from any thread (a DaskPool started on the loop)."""
        pool = make_pool(self.base, workers, name)
        if isinstance(pool, offload.DaskPool):
            self.on_loop(pool.start)
        return pool

    def close(self) -> None:
        try:
            close_pool(self.pool)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(TIMEOUT)
            self.loop.close()

    def on_loop(self, main: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> Any:
        """Runs main() on the kind's loop, within `timeout`; returns what it returns.

        main() is the task's own coroutine, wrapped in nothing: a GeneratorExit that a call
        raised reaches its frame (one thrown into an outer coroutine would close the inner
        ones instead, as CPython closes a generator's delegate)."""
        future = asyncio.run_coroutine_threadsafe(main(), self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except cf.TimeoutError:
            future.cancel()
            raise

    def run(self, pool: Any) -> Callable[..., Any]:
        """The kind's `run`: offload.run for the default pool (on the kind's loop)."""
        return offload.run if pool is offload.default_pool() else pool.run

    @staticmethod
    def workers(pool: Any) -> int:
        """How many calls run at once: a DaskPool's worker threads in the cluster."""
        return pool.stats().workers if isinstance(pool, offload.DaskPool) else pool.workers

    def scheduler_forgot(self, pool: Any, function: str) -> None:
        """Returns once a DaskPool's scheduler has taken in every message its client sent so far
        and holds no task of `function`, and no worker holds one that could still start: a call
        it released can then never start. At once for the other kinds, whose queue a cancelled
        call leaves at once.

        A client's messages reach the scheduler in order: a task submitted now (and released)
        is known to the scheduler only after everything sent before it. The scheduler forgets
        a released task at once; a worker it had sent the task to (to wait there for a free
        thread) only once the scheduler's message reaches it, and until then would start it
        as soon as its thread is free."""
        if not isinstance(pool, offload.DaskPool):
            return
        prefix = f"{function}-"

        async def forgotten() -> None:
            flush = pool.client.submit(cpu_work.identity, None, key=f"flush-{uuid.uuid4()}", pure=False)
            try:
                deadline = time.monotonic() + TIMEOUT
                while True:  # neither the scheduler nor a worker offers anything to wait on
                    states = await pool.client.run_on_scheduler(_task_states)
                    held = [key for key in states if key.startswith(prefix)]
                    if flush.key in states and not held:
                        startable = await pool.client.run(_startable_tasks)  # {worker: keys}
                        held = [key for keys in startable.values() for key in keys if key.startswith(prefix)]
                        if not held:
                            return
                    assert time.monotonic() < deadline, f"the cluster still holds {held}"
                    await asyncio.sleep(0.01)
            finally:
                flush.release()

        self.on_loop(forgotten)

    def settle(self, pool: Any, root: Path) -> None:
        """Returns once every call submitted to `pool` before has ended or was dropped: one call
        per worker, all running at once (cpu_work.meet), so every worker has finished what it ran
        before, and calls start in the order they were submitted. On Dask, call
        scheduler_forgot first: a worker runs one call at a time, and a cancelled call the
        scheduler still holds could take a worker before the probe calls."""
        root.mkdir(exist_ok=True)
        if isinstance(pool, offload.DaskPool):
            self._settle_dask(pool, root)
            return
        count = self.workers(pool)
        paths = [str(root / f"meet-{time.monotonic_ns()}-{i}") for i in range(count)]
        futures = [pool.submit(cpu_work.meet, path, paths, TIMEOUT) for path in paths]
        for future in futures:
            future.result(TIMEOUT)

    def _settle_dask(self, pool: Any, root: Path) -> None:
        """settle() on Dask: one probe call pinned to each worker (through the pool's client).
        Left to the scheduler, both could go to the worker that finished first, the other
        still looking busy, and wait there for each other until TIMEOUT."""

        async def meet_on_every_worker() -> None:
            workers = await pool.client.run_on_scheduler(_worker_addresses)
            paths = [str(root / f"meet-{time.monotonic_ns()}-{i}") for i in range(len(workers))]
            futures = [
                pool.client.submit(cpu_work.meet, path, paths, TIMEOUT, workers=[worker], pure=False)
                for worker, path in zip(workers, paths)
            ]
            try:
                await pool.client.gather(futures)
            finally:
                for future in futures:
                    future.release()

        self.on_loop(meet_on_every_worker)

    def fresh_dask_pool(self) -> Iterator[None]:
        """For each test, a DaskPool of its own on the kind's loop (30 ms to connect), closed
        when the test ends: the close waits for the calls the test left in flight, which would
        otherwise hold a worker of the shared cluster into the next test."""
        if self.base != "dask":
            yield
            return
        module_pool, self.pool = self.pool, self.make(WORKERS)
        try:
            yield
        finally:
            test_pool, self.pool = self.pool, module_pool
            close_pool(test_pool)


def _task_states(dask_scheduler: Any) -> Dict[str, str]:
    """Run on a Dask scheduler: every task it holds, and its state."""
    return {str(key): task.state for key, task in dask_scheduler.tasks.items()}


def _worker_addresses(dask_scheduler: Any) -> List[str]:
    """Run on a Dask scheduler: the addresses of its workers."""
    return [str(address) for address in dask_scheduler.workers]


def _startable_tasks(dask_worker: Any) -> List[str]:
    """Run on a Dask worker: the tasks it holds that have not started, and could."""
    startable = ("waiting", "ready", "constrained")
    return [str(key) for key, task in dask_worker.state.tasks.items() if task.state in startable]


class Blocker:
    """Holds workers of any kind: a call of cpu_work.block (args() are its arguments) writes a
    byte into a FIFO read here when it starts, and returns once release() created its release
    file. Released at the latest when the test ends."""

    def __init__(self, root: Path) -> None:
        root.mkdir(exist_ok=True)
        self.started_path = str(root / "started")
        os.mkfifo(self.started_path)
        # Opened first, non-blocking, so that a worker's non-blocking open for writing works.
        self._fd = os.open(self.started_path, os.O_RDONLY | os.O_NONBLOCK)
        # A writer of our own keeps the FIFO from reading as ended between the calls' writes.
        self._writer = os.open(self.started_path, os.O_WRONLY | os.O_NONBLOCK)
        self.release_path = str(root / "release")
        self.started = 0

    def args(self) -> Tuple[str, str, float]:
        return (self.started_path, self.release_path, TIMEOUT)

    def wait_started(self, count: int = 1) -> None:
        """Returns once `count` more calls started."""
        import select

        goal = self.started + count
        deadline = time.monotonic() + TIMEOUT
        while self.started < goal:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self._fd], [], [], left)[0], "a blocked call never started"
            self.started += len(os.read(self._fd, goal - self.started))

    def hold(self, pool: Any, count: int) -> List[Any]:
        """Submits `count` blocking calls and returns their futures once all of them run."""
        futures = [pool.submit(cpu_work.block, *self.args()) for _ in range(count)]
        self.wait_started(count)
        return futures

    def count_started(self) -> int:
        """How many calls started so far (reads what is there, waits for nothing)."""
        import select

        while select.select([self._fd], [], [], 0)[0]:
            self.started += len(os.read(self._fd, 64))
        return self.started

    def release(self) -> None:
        cpu_work.touch(self.release_path)

    def close(self) -> None:
        self.release()
        os.close(self._writer)
        os.close(self._fd)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=CONTRACT_KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[Kind]:
    """Module-scoped, so that pytest runs a module's tests kind by kind: the Dask cluster (last)
    never runs while InterpreterPools start (see dask_cluster)."""
    made = Kind(str(request.param))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(autouse=True)
def _dask_pool_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    if "kind" not in request.fixturenames:
        yield
        return
    yield from request.getfixturevalue("kind").fresh_dask_pool()


@pytest.fixture
def blocker(tmp_path: Path) -> Iterator[Blocker]:
    made = Blocker(tmp_path / "blocker")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def new_pool(kind: Kind, blocker: Blocker) -> Iterator[Callable[..., Any]]:
    """new_pool(workers=2): a pool of the kind for this test, shut down when it ends (after the
    blocker let its calls go). Skips the default kind, stating why (OWN_POOLS_SKIP)."""
    made: List[Any] = []

    def make(workers: int = WORKERS) -> Any:
        if not kind.promises.own_pools:
            pytest.skip(OWN_POOLS_SKIP)
        made.append(kind.make(workers))
        return made[-1]

    yield make
    blocker.release()
    for pool in made:
        close_pool(pool)
