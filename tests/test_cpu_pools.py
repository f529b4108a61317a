"""offload.InterpreterPool and offload.ProcessPool: what only the CPU pools do.

What every pool kind promises (calls, map and imap, cancellation, shutdown, bad input, life
cycle) is in the contract suites, test_contract_*.py, which run over these two kinds too.
Here: worker interpreters and processes (their state, their defaults, a worker that dies),
what pickling refuses and how it says so, and offload inside a worker.

Every test runs on both pools where both apply (InterpreterPool only on Python 3.12+). The work lives in
cpu_work.py, a module both kinds of worker can import. Nothing here synchronises by sleeping:
a worker signals "I started" by writing into a FIFO the test waits on (select, bounded), and
waits until the test creates a "release" file; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import platform
import select
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import cpu_work
from conftest import threads_named
from cpu_work import pid_exists
import offload

TIMEOUT = 30.0  # the bound of every wait; each normally takes milliseconds
HAS_INTERPRETERS = sys.version_info >= (3, 12)
NEEDS_INTERPRETERS = pytest.mark.skipif(
    not HAS_INTERPRETERS,
    reason=f"InterpreterPool needs Python >= 3.12 (own-GIL subinterpreters); "
    f"this is {platform.python_version()}",
)
KINDS = [pytest.param("interpreter", marks=NEEDS_INTERPRETERS), "process"]


def new_pool(kind: str, workers: Optional[int] = 2, **kwargs: Any) -> Any:
    if kind == "interpreter":
        with warnings.catch_warnings():
            # 3.12.0-3.12.3 warn about gh-119213 on every construction; tested once below.
            warnings.filterwarnings("ignore", message=".*gh-119213", category=RuntimeWarning)
            return offload.InterpreterPool(workers, **kwargs)
    return offload.ProcessPool(workers, **kwargs)


# --- cross-interpreter, cross-process signals ----------------------------------------------


class Started:
    """The read end of a FIFO a worker writes one byte into once it runs (cpu_work.block)."""

    def __init__(self, path: str) -> None:
        os.mkfifo(path)
        self.path = path
        # Opened first, non-blocking, so that the worker's non-blocking open for writing works.
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def wait(self, timeout: float = TIMEOUT) -> None:
        readable, _, _ = select.select([self.fd], [], [], timeout)
        assert readable, f"the worker did not start within {timeout} s"
        assert os.read(self.fd, 1) == b"x"

    def close(self) -> None:
        os.close(self.fd)


class Signals:
    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.count = 0
        self.started_fifos: List[Started] = []
        self.releases: List[str] = []

    def path(self, stem: str) -> str:
        self.count += 1
        return str(self.root / f"{stem}-{self.count}")

    def started(self) -> Started:
        s = Started(self.path("started"))
        self.started_fifos.append(s)
        return s

    def release_path(self) -> str:
        path = self.path("release")
        self.releases.append(path)
        return path

    @staticmethod
    def release(path: str) -> None:
        cpu_work.touch(path)

    def release_all(self) -> None:
        for path in self.releases:
            cpu_work.touch(path)

    def close(self) -> None:
        self.release_all()
        for s in self.started_fifos:
            s.close()


@pytest.fixture
def signals(tmp_path: Path) -> Iterator[Signals]:
    s = Signals(tmp_path / "signals")
    yield s
    s.close()


def block_a_worker(pool: Any, signals: Signals) -> "tuple[offload.Future[str], str]":
    """Submits a call that holds a worker until released; returns once it is running."""
    started = signals.started()
    release = signals.release_path()
    fut = pool.submit(cpu_work.block, started.path, release, TIMEOUT)
    started.wait()
    return fut, release


# --- pools ---------------------------------------------------------------------------------


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_pool(kind: str, signals: Signals) -> Iterator[Callable[..., Any]]:
    pools = []

    def make(workers: Optional[int] = 2, **kwargs: Any) -> Any:
        pool = new_pool(kind, workers, **kwargs)
        pools.append(pool)
        return pool

    yield make
    signals.release_all()  # no worker stays blocked, so shutting down cannot hang
    for pool in pools:
        pool.shutdown(wait=True)


@pytest.fixture
def pool(make_pool: Callable[..., Any]) -> Any:
    return make_pool(2)


@pytest.fixture
def solo(make_pool: Callable[..., Any]) -> Any:
    return make_pool(1)


@pytest.fixture
def run_async() -> Callable[[Callable[[], Any]], Any]:
    """Runs a coroutine function on a fresh asyncio loop (the tests that matter for loop
    integration use conftest's `arun`, which also runs on uvloop)."""

    def run(main: Callable[[], Any]) -> Any:
        return asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))

    return run


def wait_for_exit(pid: int, timeout: float = TIMEOUT) -> bool:
    return bool(cpu_work.wait_for_exit(pid, timeout))


def bounded(awaitable: Any) -> Any:
    return asyncio.wait_for(awaitable, TIMEOUT)


def interpreter_count() -> Optional[int]:
    """How many interpreters exist in this process, where CPython lets us ask."""
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return len(module.list_all())
    return None


# --- construction --------------------------------------------------------------------------


@pytest.mark.skipif(HAS_INTERPRETERS, reason="this Python has own-GIL subinterpreters")
def test_interpreter_pool_before_312_raises_runtime_error_naming_process_pool() -> None:
    with pytest.raises(RuntimeError, match="3.12") as info:
        offload.InterpreterPool(1)
    assert "ProcessPool" in str(info.value)


@pytest.mark.skipif(
    not ((3, 12) <= sys.version_info < (3, 12, 4)), reason="only 3.12.0-3.12.3 have gh-119213"
)
def test_interpreter_pool_on_312_before_4_warns_about_gh_119213() -> None:
    with pytest.warns(RuntimeWarning, match="gh-119213") as record:
        pool = offload.InterpreterPool(1)
    pool.shutdown(wait=True)
    assert record[0].filename == __file__  # points at the caller


@pytest.mark.skipif(sys.version_info < (3, 12, 4), reason="needs a Python without gh-119213")
def test_interpreter_pool_on_a_fixed_python_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = offload.InterpreterPool(1)
    pool.shutdown(wait=True)


def test_defaults(make_pool: Callable[..., Any], kind: str) -> None:
    pool = make_pool(None)
    assert pool.workers == len(os.sched_getaffinity(0))
    assert pool.name == {"interpreter": "offload-sub", "process": "offload-proc"}[kind]
    # Thread names are cut at 15 bytes: the default leaves room for the worker index.
    assert len(f"{pool.name}-{pool.workers}") <= 15
    assert not pool.closed
    assert pool.submit(cpu_work.square, 7).result(timeout=TIMEOUT) == 49


def test_repr_shows_the_class_name_workers_and_state(make_pool: Callable[..., Any], kind: str) -> None:
    pool = make_pool(2, name="crunch")
    cls = {"interpreter": "InterpreterPool", "process": "ProcessPool"}[kind]
    assert repr(pool) == f"<offload.{cls} name='crunch' workers=2 running queued=0 busy=0>"
    pool.shutdown(wait=True)
    assert pool.closed
    assert repr(pool) == f"<offload.{cls} name='crunch' workers=2 shut down queued=0 busy=0>"


# --- calls ---------------------------------------------------------------------------------


def test_calls_run_in_a_worker_interpreter_or_process(run_async: Any, pool: Any, kind: str) -> None:
    async def main() -> Any:
        return await bounded(pool.run(cpu_work.in_subinterpreter)), await bounded(
            pool.run(cpu_work.getpid)
        )

    in_subinterpreter, pid = run_async(main)
    if kind == "interpreter":
        assert in_subinterpreter is True and pid == os.getpid()
    else:
        assert in_subinterpreter is False and pid != os.getpid()


def test_workers_do_not_share_the_callers_module_state(
    run_async: Any, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_work, "STATE", "changed in the caller")

    async def main() -> Any:
        return await bounded(pool.run(cpu_work.read_state))

    assert run_async(main) == "initial"


def test_a_worker_keeps_its_interpreter_or_process_between_calls(solo: Any) -> None:
    counts = [solo.submit(cpu_work.count_calls).result(timeout=TIMEOUT) for _ in range(3)]
    assert counts == [1, 2, 3]


def test_two_workers_run_calls_at_the_same_time(arun: Any, pool: Any, kind: str, signals: Signals) -> None:
    # Each call creates its file, then waits for the other's: run one after the other, the
    # first would raise TimeoutError after 10 s instead of returning.
    a, b = signals.path("a"), signals.path("b")

    async def main() -> Any:
        return await bounded(
            asyncio.gather(
                pool.run(cpu_work.rendezvous, a, b, 10.0), pool.run(cpu_work.rendezvous, b, a, 10.0)
            )
        )

    pids = arun(main)
    if kind == "process":
        assert pids[0] != pids[1] and os.getpid() not in pids  # two worker processes
    else:
        assert pids == [os.getpid(), os.getpid()]  # two interpreters in this process


def test_stats_show_queued_and_busy(solo: Any, signals: Signals) -> None:
    _, release = block_a_worker(solo, signals)
    queued = [solo.submit(cpu_work.square, i) for i in range(3)]
    s = solo.stats()
    assert (s.submitted, s.queued, s.busy) == (4, 3, 1)
    assert "queued=3 busy=1" in repr(solo)
    signals.release(release)
    assert [f.result(timeout=TIMEOUT) for f in queued] == [0, 1, 4]


# --- what cannot be sent: SendError at once ------------------------------------------------


def test_send_error_is_a_type_error() -> None:
    assert issubclass(offload.SendError, TypeError)


def test_an_unpicklable_argument_raises_send_error_naming_its_position(pool: Any) -> None:
    with pytest.raises(offload.SendError, match=r"argument 1 of cpu_work\.echo \(lock\)"):
        pool.submit(cpu_work.echo, 1, threading.Lock(), 3)
    with pytest.raises(offload.SendError, match=r"argument 0 .*\(function\)"):
        pool.submit(cpu_work.echo, lambda: 1)
    assert pool.stats().submitted == 0


def test_map_names_the_item_that_cannot_be_pickled(run_async: Any, pool: Any) -> None:
    async def main() -> None:
        with pytest.raises(offload.SendError, match=r"item 2 of .*identity \(lock\)"):
            pool.map(cpu_work.identity, [1, 2, threading.Lock()])  # raised here, not awaited

    run_async(main)
    assert pool.stats().submitted == 0


# --- what cannot be sent: SendError from the worker ----------------------------------------


def test_an_argument_the_worker_cannot_unpickle_raises_send_error_when_awaited(
    run_async: Any, pool: Any
) -> None:
    async def main() -> Any:
        fut = pool.run(cpu_work.len_of, cpu_work.LoadFails())  # pickling it works
        await bounded(fut)

    with pytest.raises(offload.SendError, match="could not be loaded in the worker") as info:
        run_async(main)
    assert "refuses to be unpickled" in str(info.value)
    assert isinstance(info.value.__cause__, offload.RemoteTraceback)
    assert "_refuse_to_load" in str(info.value.__cause__)


SINGLE_PHASE = [("_testsinglephase", "sum", (2, 3)), ("readline", "get_history_length", ())]


@pytest.mark.parametrize("module_name, attribute, args", SINGLE_PHASE)
def test_a_module_without_subinterpreter_support(
    run_async: Any, pool: Any, kind: str, module_name: str, attribute: str, args: tuple
) -> None:
    module = pytest.importorskip(module_name)
    fn = getattr(module, attribute)

    async def main() -> Any:
        fut = pool.run(fn, *args)  # sent by reference: fine until the worker imports it
        return await bounded(fut)

    if kind == "process":
        assert run_async(main) == fn(*args)  # worker processes import anything
        return
    with pytest.raises(offload.SendError) as info:
        run_async(main)
    message = str(info.value)
    assert module_name in message
    assert "does not support loading in subinterpreters" in message
    assert "ProcessPool" in message  # the way out


def test_a_result_the_caller_cannot_unpickle_raises_send_error(run_async: Any, pool: Any) -> None:
    async def main() -> Any:
        await bounded(pool.run(cpu_work.return_load_fails))

    with pytest.raises(offload.SendError, match="could not be unpickled in the caller"):
        run_async(main)


# --- exceptions raised in the worker -------------------------------------------------------


def test_offloads_own_exceptions_raised_in_a_worker_come_back_as_themselves(solo: Any) -> None:
    error = solo.submit(cpu_work.raise_send_error, "from the worker").exception(timeout=TIMEOUT)
    assert type(error) is offload.SendError and str(error) == "from the worker"


@pytest.mark.parametrize(
    "fn, type_name",
    [
        (cpu_work.raise_unpicklable, "cpu_work.UnpicklableError"),  # pickling fails in the worker
        (cpu_work.raise_needs_two_args, "cpu_work.NeedsTwoArgs"),  # unpickling fails here
    ],
)
def test_an_exception_that_cannot_travel_becomes_remote_error(
    run_async: Any, pool: Any, fn: Any, type_name: str
) -> None:
    async def main() -> Any:
        await bounded(pool.run(fn, "the message"))

    with pytest.raises(offload.RemoteError) as info:
        run_async(main)
    error = info.value
    assert (error.type_name, error.message) == (type_name, "the message")
    assert str(error) == f"{type_name}: the message"
    assert isinstance(error.__cause__, offload.RemoteTraceback)
    assert type_name.split(".")[1] in str(error.__cause__)


def test_system_exit_in_a_worker_is_an_exception_of_the_call(solo: Any) -> None:
    before = solo.submit(cpu_work.count_calls).result(timeout=TIMEOUT)
    error = solo.submit(cpu_work.sys_exit, 3).exception(timeout=TIMEOUT)
    assert type(error) is SystemExit and error.code == 3
    # The worker (interpreter or process) survived it.
    assert solo.submit(cpu_work.count_calls).result(timeout=TIMEOUT) == before + 1


# --- shutdown ------------------------------------------------------------------------------


def test_shutdown_joins_the_worker_threads(kind: str, signals: Signals) -> None:
    pool = new_pool(kind, 3, name="joinme")
    paths = [signals.path("meet") for _ in range(3)]
    calls = [pool.submit(cpu_work.meet, path, paths, 10.0) for path in paths]
    [f.result(timeout=TIMEOUT) for f in calls]  # all three workers ran at once
    assert threads_named("joinme-") == 3
    pool.shutdown(wait=True)
    assert threads_named("joinme-") == 0


@NEEDS_INTERPRETERS
def test_interpreter_pool_shutdown_ends_its_interpreters() -> None:
    before = interpreter_count()
    if before is None:
        pytest.skip("this Python cannot list its interpreters")
    pool = new_pool("interpreter", 3)
    assert pool.submit(cpu_work.square, 2).result(timeout=TIMEOUT) == 4
    assert interpreter_count() == before + 3  # interpreters start with the pool
    pool.shutdown(wait=True)
    assert interpreter_count() == before


def _worker_pids(pool: Any, signals: Signals) -> List[int]:
    """The pids of both worker processes of a 2-worker pool (a rendezvous makes both run)."""
    a, b = signals.path("a"), signals.path("b")
    calls = [pool.submit(cpu_work.rendezvous, a, b, 10.0), pool.submit(cpu_work.rendezvous, b, a, 10.0)]
    pids = [f.result(timeout=TIMEOUT) for f in calls]
    assert len(set(pids)) == 2
    return pids


def test_process_pool_shutdown_stops_its_processes(signals: Signals) -> None:
    pool = offload.ProcessPool(2)
    pids = _worker_pids(pool, signals)
    assert all(pid_exists(pid) for pid in pids)
    pool.shutdown(wait=True)
    assert not any(pid_exists(pid) for pid in pids)
    assert not [p for p in multiprocessing.active_children() if p.pid in pids]


def test_process_pool_shutdown_without_wait_stops_its_processes_soon(signals: Signals) -> None:
    pool = offload.ProcessPool(2)
    pids = _worker_pids(pool, signals)
    pool.shutdown(wait=False)
    assert all(wait_for_exit(pid) for pid in pids)


def test_process_pool_starts_processes_on_first_use(signals: Signals) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    pool = offload.ProcessPool(2)
    try:
        # (a process of an earlier test may still be on its way out: only new ones count)
        assert {p.pid for p in multiprocessing.active_children()} - before == set()
        pid = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
        assert pid in {p.pid for p in multiprocessing.active_children()}
    finally:
        pool.shutdown(wait=True)


# --- offload inside a worker ---------------------------------------------------------------


def test_import_offload_works_inside_a_worker(run_async: Any, pool: Any, kind: str) -> None:
    async def main() -> Any:
        return await bounded(pool.run(cpu_work.probe_offload))

    facts = run_async(main)
    assert facts == {
        "in_subinterpreter": kind == "interpreter",
        "cancelled": False,
        "SendError_is_TypeError": True,
        "errors_are_the_real_classes": True,
        "WorkerDied_is_RuntimeError": True,
        "RemoteError_module": "offload",  # public classes present themselves as offload.X
        "RemoteTraceback_text": "tb text",
        "RemoteError_fields": ("T", "m"),
    }


@NEEDS_INTERPRETERS
def test_offload_in_a_worker_interpreter_has_stand_ins_that_raise() -> None:
    pool = new_pool("interpreter", 1)
    try:
        facts = pool.submit(cpu_work.probe_stand_ins).result(timeout=TIMEOUT)
    finally:
        pool.shutdown(wait=True)
    assert facts.pop("all_defined") == []  # every public name exists
    assert facts.pop("Future_subscript") == "no error"  # annotations like Future[int] work
    assert facts.pop("subclass") == "no error"  # a module may subclass offload.Pool
    assert facts.pop("subclass_instance").startswith("RuntimeError: offload.Pool cannot be used")
    for name, outcome in facts.items():
        assert outcome.startswith(f"RuntimeError: offload.{name} cannot be used inside an "
                                  "InterpreterPool worker"), (name, outcome)


# --- ProcessPool: worker deaths and start methods ------------------------------------------


def test_a_worker_that_exits_during_a_call_raises_worker_died(run_async: Any) -> None:
    pool = offload.ProcessPool(1)
    try:
        old = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
        error = pool.submit(cpu_work.die, 3).exception(timeout=TIMEOUT)
        assert isinstance(error, offload.WorkerDied) and isinstance(error, RuntimeError)
        assert "cpu_work.die" in str(error) and "exit code 3" in str(error)
        assert not pid_exists(old)  # reaped, not left a zombie
        new = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
        assert new != old
    finally:
        pool.shutdown(wait=True)
    assert (pool.stats().completed, pool.stats().failed) == (2, 1)


def test_a_worker_killed_during_a_call_raises_worker_died(arun: Any) -> None:
    async def main() -> Any:
        async with offload.ProcessPool(1) as pool:
            with pytest.raises(offload.WorkerDied, match="exit code -9"):
                await bounded(pool.run(cpu_work.kill_self))
            return await bounded(pool.run(cpu_work.square, 6))

    assert arun(main) == 36


def test_calls_queued_behind_a_dying_call_run_in_a_new_process(signals: Signals) -> None:
    pool = offload.ProcessPool(1)
    try:
        started = signals.started()
        old = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
        dying = pool.submit(cpu_work.signal_then_die, started.path, 5)
        started.wait()  # it runs: everything below is queued behind it
        queued = [pool.submit(cpu_work.getpid) for _ in range(3)]
        with pytest.raises(offload.WorkerDied, match="exit code 5"):
            dying.result(timeout=TIMEOUT)
        pids = {f.result(timeout=TIMEOUT) for f in queued}
        assert len(pids) == 1 and old not in pids
    finally:
        pool.shutdown(wait=True)


def test_a_map_with_a_dying_item_raises_worker_died_and_the_pool_recovers(run_async: Any) -> None:
    pool = offload.ProcessPool(2)

    async def main() -> Any:
        with pytest.raises(offload.WorkerDied):
            await bounded(pool.map(cpu_work.die_on_13, range(20)))
        return await bounded(pool.map(cpu_work.square, range(20)))

    try:
        assert run_async(main) == [x * x for x in range(20)]
    finally:
        pool.shutdown(wait=True)


def test_every_worker_can_die_and_be_replaced(run_async: Any, signals: Signals) -> None:
    pool = offload.ProcessPool(2)

    async def main() -> Any:
        results = await bounded(
            asyncio.gather(*[pool.run(cpu_work.die, 1) for _ in range(6)], return_exceptions=True)
        )
        assert all(isinstance(r, offload.WorkerDied) for r in results), results
        return await bounded(pool.map(cpu_work.square, range(10)))

    try:
        assert run_async(main) == [x * x for x in range(10)]
        pids = _worker_pids(pool, signals)
    finally:
        pool.shutdown(wait=True)
    assert not any(pid_exists(pid) for pid in pids)


def _multiprocessing_process(pid: int) -> Any:
    [process] = [p for p in multiprocessing.active_children() if p.pid == pid]
    return process


def test_a_worker_killed_while_idle_is_replaced_once_multiprocessing_saw_it_die() -> None:
    pool = offload.ProcessPool(1)
    try:
        old = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
        process = _multiprocessing_process(old)
        os.kill(old, signal.SIGKILL)
        # The process's sentinel is ready once multiprocessing can tell it is gone.
        assert select.select([process.sentinel], [], [], TIMEOUT)[0]
        new = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
        assert new != old
    finally:
        pool.shutdown(wait=True)
    assert pool.stats().failed == 0


def test_a_call_after_an_idle_worker_exited_never_fails() -> None:
    pool = offload.ProcessPool(1)
    failures = []
    try:
        for _ in range(60):  # with is_alive() alone as the check, 20-35% of these calls failed
            old = pool.submit(cpu_work.getpid).result(timeout=TIMEOUT)
            os.kill(old, signal.SIGKILL)
            assert wait_for_exit(old)  # the process is gone before the next call is made
            error = pool.submit(cpu_work.getpid).exception(timeout=TIMEOUT)
            if error is not None:
                if not isinstance(error, offload.WorkerDied):  # not the known bug
                    raise RuntimeError(f"unexpected error: {error!r}") from error
                failures.append(error)
                break
    finally:
        pool.shutdown(wait=True)
    assert failures == []


def test_process_pool_workers_ignore_sigint(signals: Signals) -> None:
    # Ctrl-C reaches the whole process group: the parent decides, the workers carry on.
    pool = offload.ProcessPool(1, name="sigint-test")
    try:
        fut, release = block_a_worker(pool, signals)
        [pid] = [p.pid for p in multiprocessing.active_children() if p.name.startswith("sigint-test-")]
        assert pid is not None
        os.kill(pid, signal.SIGINT)  # interrupts the worker's sleep: KeyboardInterrupt if handled
        signals.release(release)
        assert fut.result(timeout=TIMEOUT) == "released"
        assert pool.submit(cpu_work.getpid).result(timeout=TIMEOUT) == pid
    finally:
        pool.shutdown(wait=True)


def test_process_pool_with_a_spawn_context(run_async: Any) -> None:
    pool = offload.ProcessPool(2, mp_context=multiprocessing.get_context("spawn"))

    async def main() -> Any:
        squares = await bounded(pool.map(cpu_work.square, range(8)))
        with pytest.raises(offload.WorkerDied):
            await bounded(pool.run(cpu_work.die, 2))
        return squares, await bounded(pool.run(cpu_work.getpid))

    try:
        squares, pid = run_async(main)
    finally:
        pool.shutdown(wait=True)
    assert squares == [x * x for x in range(8)]
    assert not pid_exists(pid)


def test_worker_process_names_start_with_the_pool_name() -> None:
    with offload.ProcessPool(1, name="crunch") as pool:
        assert pool.submit(cpu_work.process_name).result(timeout=TIMEOUT).startswith("crunch-")


def test_a_process_pool_call_may_start_processes_of_its_own() -> None:
    # Workers are not daemonic (daemonic processes may not have children).
    pool = offload.ProcessPool(1)
    try:
        assert pool.submit(cpu_work.run_in_child_process, 7).result(timeout=60) == 7
    finally:
        pool.shutdown(wait=True)
