"""Good citizenship: worker threads as threading, logging and the kernel see them, repr() of
every public object, and unexpected errors on the "offload" logger."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any, List, Set, Tuple

import pytest

import offload
from conftest import Gate, native_thread_name

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
    assert native == name[:15]  # the kernel keeps 15 bytes


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


def test_executor_default_names_are_numbered_per_executor() -> None:
    with offload.Executor(max_workers=1) as a, offload.Executor(max_workers=1) as b:
        first = a.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
        second = b.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
    assert re.fullmatch(r"offload-exec-\d+_0", first)
    assert re.fullmatch(r"offload-exec-\d+_0", second)
    assert first != second


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


def test_a_failing_initializer_is_logged(caplog) -> None:
    def init() -> None:
        raise OSError("no driver")

    with caplog.at_level(logging.ERROR, logger="offload"):
        ex = offload.Executor(max_workers=1, initializer=init)
        ex.shutdown(wait=True)
    (record,) = offload_errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is OSError
    assert "initializer" in record.getMessage()


def test_a_loop_future_that_refuses_its_result_is_logged(caplog, one_worker) -> None:
    class Stubborn(asyncio.Future):  # type: ignore[type-arg]
        def set_result(self, result: Any) -> None:
            raise RuntimeError("refused")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stubborn: "asyncio.Future[Any]" = Stubborn(loop=loop)
        fut = one_worker.submit(pow, 2, 3)
        fut._core.deliver_to(offload._loop.notifier_for(loop), stubborn)  # as await does
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
