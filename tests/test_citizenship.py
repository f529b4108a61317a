"""Good citizenship: worker threads as threading, logging and the kernel see them, repr() of
every public object, and unexpected errors on the "offload" logger."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Iterator, List, Set, Tuple

import pytest

import offload
from conftest import Gate, native_thread_name, run_python

TIMEOUT = 30


def identity() -> Tuple[str, str, bool, str]:
    """(threading's name, the kernel's name, whether threading lists this thread, its class)."""
    me = threading.current_thread()
    return me.name, native_thread_name(), me in threading.enumerate(), type(me).__name__


def listed_names() -> Set[str]:
    return {t.name for t in threading.enumerate()}



def test_workers_carry_their_names_in_threading_and_in_the_kernel() -> None:
    with offload.Pool(workers=2, name="citizen") as pool:
        seen = {pool.submit(identity).result(timeout=TIMEOUT) for _ in range(50)}
        for name, native, listed, _ in seen:
            assert re.fullmatch(r"citizen-[01]", name)
            assert native == name
            assert listed


def test_a_long_name_is_cut_for_the_kernel_only() -> None:
    with offload.Pool(workers=1, name="a-rather-long-pool-name") as pool:
        name, native, _, _ = pool.submit(identity).result(timeout=TIMEOUT)
    assert name == "a-rather-long-pool-name-0"
    assert native == "a-rather-long-0"  # the kernel keeps 15 bytes: the name is cut, not the index


def test_a_name_is_cut_for_the_kernel_at_a_character_boundary() -> None:
    with offload.Pool(workers=1, name="éééééééé") as pool:
        name, native, _, _ = pool.submit(identity).result(timeout=TIMEOUT)
    assert name == "éééééééé-0"
    assert native == "éééééé-0"  # 12 bytes of whole characters, then the index


def test_logging_names_the_worker_thread(caplog) -> None:
    log = logging.getLogger("offload.test.citizenship")
    with caplog.at_level(logging.INFO, logger=log.name):
        with offload.Pool(workers=1, name="logger") as pool:
            pool.submit(log.info, "from a worker").result(timeout=TIMEOUT)
    (record,) = [r for r in caplog.records if r.name == log.name]
    assert record.threadName == "logger-0"
    assert record.getMessage() == "from a worker"


def test_workers_are_listed_while_alive_and_withdrawn_once_they_exit(gate: Gate) -> None:
    before = listed_names()
    pool = offload.Pool(workers=2, name="listed")
    try:
        futures = [pool.submit(gate.wait) for _ in range(2)]
        assert gate.entered.wait(TIMEOUT)
        ran = pool.submit(threading.current_thread)  # queued behind the gate
        gate.open()
        assert ran.result(timeout=TIMEOUT).name in {"listed-0", "listed-1"}
        for f in futures:
            f.result(timeout=TIMEOUT)
        assert {"listed-0", "listed-1"} & listed_names()
    finally:
        pool.shutdown(wait=True)
    assert listed_names() == before  # no dead worker left behind


def test_the_same_worker_keeps_one_thread_object_across_calls() -> None:
    with offload.Pool(workers=1, name="same") as pool:
        threads = [pool.submit(threading.current_thread).result(timeout=TIMEOUT) for _ in range(5)]
    assert len({id(t) for t in threads}) == 1
    assert threads[0].name == "same-0"
    assert threads[0].ident is not None


def test_a_renamed_worker_keeps_its_new_name_for_threading() -> None:
    def rename() -> None:
        threading.current_thread().name = "renamed"

    with offload.Pool(workers=1, name="before") as pool:
        pool.submit(rename).result(timeout=TIMEOUT)
        assert pool.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT) == "renamed"


def test_default_pool_and_run_use_offload_names(arun) -> None:
    async def main() -> Tuple[str, str, bool, str]:
        return await offload.run(identity)

    name, native, listed, _ = arun(main)
    assert re.fullmatch(r"offload-\d+", name)
    assert native == name
    assert listed


def test_executor_names_threads_like_the_standard_library() -> None:
    with offload.Executor(max_workers=2, thread_name_prefix="Special") as ex:
        names = {ex.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
                 for _ in range(20)}
    assert names and all(re.fullmatch(r"Special_[01]", n) for n in names)


def test_executor_default_names_are_the_standard_librarys() -> None:
    with offload.Executor(max_workers=1) as a, offload.Executor(max_workers=1) as b:
        first = a.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
        second = b.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
        std = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        standard = std.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
        std.shutdown()
    for name in (first, second, standard):
        assert re.fullmatch(r"ThreadPoolExecutor-\d+_0", name)
    assert len({first, second, standard}) == 3  # one counter, shared with the standard library


def test_executor_threads_lists_its_workers_as_the_standard_library_does(gate: Gate) -> None:
    ex = offload.Executor(max_workers=3)
    try:
        assert ex._threads == set()
        blocked = [ex.submit(gate.wait) for _ in range(3)]
        workers = ex._threads  # filled by submit itself, as ThreadPoolExecutor's
        assert len(workers) == 3 and all(isinstance(t, threading.Thread) for t in workers)
        gate.open()
        [f.result(timeout=TIMEOUT) for f in blocked]
        assert all(t.is_alive() for t in workers)
    finally:
        gate.open()
        ex.shutdown(wait=True)
    for thread in workers:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert sorted(t.name for t in workers) == [f"{ex._thread_name_prefix}_{i}" for i in range(3)]


# --------------------------------------------------------------------------------------------
# A worker's Thread object lives and ends with the worker, as a thread threading started


def test_a_worker_thread_is_a_live_daemon_thread_while_its_worker_runs(
    one_worker: offload.Pool,
) -> None:
    thread = one_worker.submit(threading.current_thread).result(timeout=TIMEOUT)
    assert isinstance(thread, threading.Thread)
    assert thread.daemon  # never holds up interpreter exit: offload joins it at exit
    assert thread.is_alive()
    assert thread in threading.enumerate()
    thread.join(timeout=0.01)  # times out: the worker is still there
    assert thread.is_alive()
    assert re.fullmatch(rf"<WorkerThread\(solo-0, started daemon {thread.ident}\)>", repr(thread))


@pytest.mark.parametrize("kind", ["Pool", "Executor"])
def test_a_worker_thread_is_finished_and_joinable_once_its_worker_exited(kind: str) -> None:
    if kind == "Pool":
        runner: Any = offload.Pool(workers=2, name="ends")
    else:
        runner = offload.Executor(max_workers=2, thread_name_prefix="ends")
    threads = {runner.submit(threading.current_thread).result(timeout=TIMEOUT) for _ in range(20)}
    runner.shutdown(wait=True)
    assert threads
    for thread in threads:
        assert not thread.is_alive()
        thread.join(TIMEOUT)  # returns at once, timeout or not
        thread.join()
        assert thread not in threading.enumerate()
        assert "stopped" in repr(thread)


def test_join_waits_for_the_worker_to_exit(gate: Gate) -> None:
    pool = offload.Pool(workers=1, name="joined")
    try:
        worker = pool.submit(threading.current_thread).result(timeout=TIMEOUT)
        pool.submit(gate.wait)
        assert gate.entered.wait(TIMEOUT)
        joiner = threading.Thread(target=worker.join, daemon=True)  # join() with no timeout
        joiner.start()
        gate.open()
        pool.shutdown(wait=False)  # the worker finishes its call and exits on its own
        worker.join(TIMEOUT)
        assert not worker.is_alive()
        joiner.join(TIMEOUT)
        assert not joiner.is_alive()  # the waiting join() woke up too
    finally:
        pool.shutdown(wait=True)


def test_a_worker_cannot_join_or_start_itself_like_any_thread() -> None:
    def misuse() -> List[str]:
        me = threading.current_thread()
        errors = []
        for attempt in (me.join, me.start):
            try:
                attempt()
            except RuntimeError as e:
                errors.append(str(e))
        return errors

    with offload.Pool(workers=1, name="self") as pool:
        assert pool.submit(misuse).result(timeout=TIMEOUT) == [
            "cannot join current thread",
            "threads can only be started once",
        ]


def test_a_thread_reusing_a_dead_workers_ident_is_not_taken_for_it() -> None:
    with offload.Pool(workers=1, name="first") as pool:
        dead = pool.submit(threading.current_thread).result(timeout=TIMEOUT)
    # A new thread may get the dead worker's ident (glibc reuses a joined thread's), a new
    # offload worker as well as a thread threading starts.
    with offload.Pool(workers=1, name="second") as pool:
        worker = pool.submit(threading.current_thread).result(timeout=TIMEOUT)
        assert worker is not dead and worker.name == "second-0" and worker.is_alive()
        assert not dead.is_alive()
    seen: List[threading.Thread] = []
    started = threading.Thread(target=lambda: seen.append(threading.current_thread()))
    started.start()
    started.join(TIMEOUT)
    assert seen == [started]
    assert not dead.is_alive() and not worker.is_alive()
    assert dead not in threading.enumerate() and worker not in threading.enumerate()


def test_a_forked_child_sees_the_workers_of_its_parent_finished() -> None:
    result = run_python(
        """
        import os, threading, warnings, offload
        pool = offload.Pool(workers=1, name="parent")
        worker = pool.submit(threading.current_thread).result(timeout=30)
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pid = os.fork()
        if pid == 0:
            ok = not worker.is_alive() and worker not in threading.enumerate()
            worker.join(30)
            child = pool.submit(threading.current_thread).result(timeout=30)
            ok = ok and child is not worker and child.is_alive() and child.name == "parent-0"
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert worker.is_alive()
        pool.shutdown(wait=True)
        assert not worker.is_alive()
        print("child exited with", os.waitstatus_to_exitcode(status))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child exited with 0", result.stderr


def test_a_failing_thread_hook_is_logged_and_leaves_nothing_behind(caplog, monkeypatch) -> None:
    def broken(name: str) -> None:
        raise RuntimeError("no thread object")

    monkeypatch.setattr("offload._threads.WorkerThread", broken)
    with caplog.at_level(logging.ERROR, logger="offload"):
        with offload.Pool(workers=1, name="unlisted") as pool:
            ident = pool.submit(threading.get_ident).result(timeout=TIMEOUT)
            # threading makes up a _DummyThread for the worker...
            assert pool.submit(threading.current_thread).result(timeout=TIMEOUT).ident == ident
    # ...which goes with the worker (before 3.13 threading would keep it forever).
    assert all(t.ident != ident for t in threading.enumerate())
    (record,) = offload_errors(caplog)
    assert "could not join the threading module" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


# --------------------------------------------------------------------------------------------
# Trace and profile functions reach the workers, as every thread threading starts


def marked_call() -> int:
    """A function whose frames the tracing tests look for."""
    return threading.get_ident()


def threading_hooks() -> Tuple[Any, Any]:
    if sys.version_info >= (3, 10):
        return threading.gettrace(), threading.getprofile()
    return threading._trace_hook, threading._profile_hook  # type: ignore[attr-defined]


@pytest.fixture
def restore_threading_hooks() -> Iterator[None]:
    """Puts back the trace and profile functions that threading gives new threads (a coverage
    or debugger run has its own)."""
    trace, profile = threading_hooks()
    yield
    threading.settrace(trace)
    threading.setprofile(profile)


@pytest.mark.parametrize("hook", ["settrace", "setprofile"])
def test_threading_trace_and_profile_functions_reach_the_workers(
    hook: str, restore_threading_hooks: None
) -> None:
    seen: List[int] = []

    def watch(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is marked_call.__code__:
            seen.append(threading.get_ident())

    getattr(threading, hook)(watch)
    with offload.Pool(workers=1, name="traced") as pool:
        idents = [pool.submit(marked_call).result(timeout=TIMEOUT) for _ in range(3)]
    assert seen == idents  # each call seen once, on the worker


@pytest.mark.skipif(sys.version_info < (3, 12), reason="threading.settrace_all_threads is 3.12+")
def test_settrace_all_threads_reaches_running_and_new_workers_once() -> None:
    # In a fresh interpreter: settrace_all_threads also sets the test runner's own threads.
    result = run_python(
        """
        import sys, threading, offload
        def marked_call():
            return threading.get_ident()
        seen = []
        def watch(frame, event, arg):
            if event == "call" and frame.f_code is marked_call.__code__:
                seen.append(threading.get_ident())
        running = offload.Pool(workers=1, name="running")
        running.submit(pow, 2, 2).result(timeout=30)  # this worker has run Python already
        fresh = offload.Pool(workers=1, name="fresh")  # this one has not
        for set_all in (threading.settrace_all_threads, threading.setprofile_all_threads):
            set_all(watch)
            idents = [pool.submit(marked_call).result(timeout=30) for pool in (running, fresh)]
            set_all(None)
            assert seen == idents, (seen, idents)
            seen.clear()
            fresh.shutdown(wait=True)
            fresh = offload.Pool(workers=1, name="fresh")
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok"]


@pytest.mark.parametrize("core", ["ctrace", "pytrace"])
def test_coverage_measures_code_that_only_a_worker_runs(core: str, tmp_path: Path) -> None:
    # coverage.py (a test extra) reaches threads through threading.settrace(); its C tracer
    # and its Python one (which asks threading.current_thread()) are both checked.
    program = tmp_path / "program.py"
    program.write_text(
        textwrap.dedent(
            """
            import asyncio, offload

            def on_a_worker(x):
                y = x * 2
                return y + 1

            async def main():
                return await offload.run(on_a_worker, 1)

            with offload.Pool(workers=1) as pool:
                assert pool.submit(on_a_worker, 2).result(timeout=30) == 5
            assert asyncio.run(main()) == 3
            """
        )
    )
    env = {**os.environ, "COVERAGE_CORE": core}
    data = str(tmp_path / ".coverage")
    for args in (["run", f"--data-file={data}", str(program)],
                 ["json", f"--data-file={data}", "-o", str(tmp_path / "coverage.json")]):
        done = subprocess.run([sys.executable, "-m", "coverage", *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "coverage.json").read_text())
    # The program's own file (offload's sources are measured too when they are not installed in
    # site-packages, as under make sanitize, which stages them).
    measured = report["files"]["program.py"]
    body = [i for i, line in enumerate(program.read_text().splitlines(), 1)
            if line.strip() in ("y = x * 2", "return y + 1")]
    assert body and set(body) <= set(measured["executed_lines"]), measured
    assert measured["missing_lines"] == []


# --------------------------------------------------------------------------------------------
# repr


def test_pool_repr_shows_name_size_state_and_load(gate: Gate) -> None:
    pool = offload.Pool(workers=1, name="shown")
    try:
        assert repr(pool) == "<offload.Pool name='shown' workers=1 running queued=0 busy=0>"
        pool.submit(gate.wait)
        assert gate.entered.wait(TIMEOUT)
        queued = pool.submit(pow, 2, 2)
        assert repr(pool) == "<offload.Pool name='shown' workers=1 running queued=1 busy=1>"
        gate.open()
        queued.result(timeout=TIMEOUT)
    finally:
        pool.shutdown(wait=True)
    assert repr(pool) == "<offload.Pool name='shown' workers=1 shut down queued=0 busy=0>"


def test_future_repr_shows_each_state(gate: Gate, one_worker: offload.Pool) -> None:
    running = one_worker.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    pending = one_worker.submit(pow, 2, 2)
    assert repr(running) == "<offload.Future state=running>"
    assert repr(pending) == "<offload.Future state=pending>"
    assert pending.cancel()
    assert repr(pending) == "<offload.Future state=cancelled>"
    gate.open()
    running.result(timeout=TIMEOUT)
    assert repr(running) == "<offload.Future state=finished returned NoneType>"
    failed = one_worker.submit(int, "x")
    assert isinstance(failed.exception(timeout=TIMEOUT), ValueError)
    assert repr(failed) == "<offload.Future state=finished raised ValueError>"


def test_channel_repr_shows_capacity_state_and_contents() -> None:
    ch: offload.Channel[int] = offload.Channel(2)
    ch.send_nowait(1)
    assert repr(ch) == (
        "<offload.Channel capacity=2 open buffered=1 waiting_senders=0 waiting_receivers=0>"
    )
    ch.close()
    assert repr(ch).startswith("<offload.Channel capacity=2 closed buffered=1")
    assert repr(offload.Channel(None)).startswith("<offload.Channel capacity=unbounded open")
    assert repr(ch.recv_op()) == f"<offload.Operation recv on {ch!r}>"


def test_executor_repr_shows_its_state() -> None:
    ex = offload.Executor(max_workers=3)
    assert repr(ex).startswith("<offload.Executor max_workers=3 running")
    ex.shutdown(wait=True)
    assert repr(ex).startswith("<offload.Executor max_workers=3 shut down")


def test_stats_reprs_are_dataclass_reprs(one_worker: offload.Pool) -> None:
    one_worker.submit(pow, 2, 2).result(timeout=TIMEOUT)
    stats = one_worker.stats()
    assert repr(stats).startswith("PoolStats(workers=1, submitted=1, completed=1")
    assert repr(offload.Channel(1).stats()).startswith("ChannelStats(")


# --------------------------------------------------------------------------------------------
# Unexpected errors: on logging.getLogger("offload"), never lost


def offload_errors(caplog) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "offload" and r.levelno >= logging.ERROR]


def test_a_raising_done_callback_is_logged_with_its_traceback(caplog, one_worker) -> None:
    def callback(fut: Any) -> None:
        raise LookupError("in the callback")

    with caplog.at_level(logging.ERROR, logger="offload"):
        fut = one_worker.submit(pow, 2, 3)
        fut.add_done_callback(callback)
        assert fut.result(timeout=TIMEOUT) == 8
        one_worker.shutdown(wait=True)  # the callback ran before the worker exited
    (record,) = offload_errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is LookupError
    assert "done callback" in record.getMessage()
    assert record.exc_info[2] is not None  # with its traceback


def test_a_failing_executor_initializer_is_logged_as_the_standard_library_logs_it(caplog) -> None:
    def init() -> None:
        raise OSError("no driver")

    with caplog.at_level(logging.ERROR):
        ex = offload.Executor(max_workers=1, initializer=init)
        failed = ex.submit(pow, 2, 2)  # starts the worker, whose initializer fails
        ex.shutdown(wait=True)
    assert isinstance(failed.exception(timeout=30), concurrent.futures.BrokenExecutor)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]  # once, not twice
    assert (record.name, record.levelno) == ("concurrent.futures", logging.CRITICAL)
    assert record.exc_info is not None and record.exc_info[0] is OSError
    assert record.getMessage() == "Exception in initializer:"


def test_a_loop_future_that_refuses_its_result_is_logged(caplog, one_worker) -> None:
    class Stubborn(asyncio.Future):  # type: ignore[type-arg]
        def set_result(self, result: Any) -> None:
            raise RuntimeError("refused")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stubborn: "asyncio.Future[Any]" = Stubborn(loop=loop)
        fut = one_worker.submit(pow, 2, 3)
        fut._core.deliver_to(offload._core.notifier_for(loop), stubborn)  # as await does
        while not offload_errors(caplog):
            await asyncio.sleep(0.001)

    with caplog.at_level(logging.ERROR, logger="offload"):
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    (record,) = offload_errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "refused its outcome" in record.getMessage()


def test_logging_that_fails_falls_back_to_the_unraisable_hook(monkeypatch, one_worker) -> None:
    reported: List[Any] = []
    done = threading.Event()

    def hook(unraisable: Any) -> None:
        reported.append((type(unraisable.exc_value), unraisable.object))
        done.set()

    def broken_error(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("logging is broken")

    monkeypatch.setattr("sys.unraisablehook", hook)
    monkeypatch.setattr(logging.getLogger("offload"), "error", broken_error)
    fut = one_worker.submit(pow, 2, 3)
    fut.add_done_callback(lambda f: 1 / 0)
    assert done.wait(TIMEOUT)
    ((exc_type, obj),) = reported
    assert exc_type is RuntimeError  # what failed: logging, naming the error it carried
    assert isinstance(obj, ZeroDivisionError)
