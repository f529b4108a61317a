"""offload.Executor against the behaviour CPython's own executor tests pin down.

The same ground as CPython's Lib/test/test_concurrent_futures (executor, thread pool, wait,
as_completed, shutdown, initializer), in tests of our own. Where offload differs on purpose
(shutdown from a worker returns, a worker waiting on its own executor never deadlocks it),
the test says so and pins down what offload does instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import itertools
import logging
import os
import re
import sys
import threading
import time
import traceback
import weakref
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, Callable, Dict, Iterator, List

import pytest

import offload
from conftest import Gate, run_python

TIMEOUT = 30  # seconds; only ever reached when a test fails


@pytest.fixture
def executor() -> Iterator[offload.Executor]:
    ex = offload.Executor(max_workers=2, thread_name_prefix="compat")
    yield ex
    ex.shutdown(wait=True)


@pytest.fixture
def solo() -> Iterator[offload.Executor]:
    """One worker: a call blocked on a gate keeps every later call pending."""
    ex = offload.Executor(max_workers=1, thread_name_prefix="solo")
    yield ex
    ex.shutdown(wait=True)


def mul(x: int, y: int) -> int:
    return x * y


def capture(*args: Any, **kwargs: Any) -> Any:
    return args, kwargs


def failing_call() -> None:
    raise ValueError("raised in the worker")


class Token:
    """An object that can be weakly referenced."""

    def method(self, arg: Any) -> "Token":
        return Token()


def settled(state: str) -> "cf.Future[Any]":
    """A future made by hand in `state`: finished, failed, cancelled (not yet notified) or
    cancelled_and_notified (as a worker that found it cancelled leaves it)."""
    fut: cf.Future[Any] = cf.Future()
    if state == "finished":
        fut.set_result(42)
    elif state == "failed":
        fut.set_exception(OSError("failed by hand"))
    else:
        fut.cancel()
        if state == "cancelled_and_notified":
            assert not fut.set_running_or_notify_cancel()
    return fut


def wait_until(predicate: Callable[[], bool]) -> None:
    """Polls a state that offers nothing to wait on (shutdown() sets a flag, no event)."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.001)



# --------------------------------------------------------------------------------------------
# submit


def test_submit_passes_positional_and_keyword_arguments(executor) -> None:
    assert executor.submit(mul, 2, y=8).result(timeout=TIMEOUT) == 16
    # `fn` and `self` are free for the call's own keywords: submit's are positional-only.
    assert executor.submit(capture, 1, self=2, fn=3).result(timeout=TIMEOUT) == (
        (1,),
        {"self": 2, "fn": 3},
    )


@pytest.mark.parametrize(
    "kwargs", [{"fn": capture, "arg": 1}, {"arg": 1}, {}], ids=["fn-keyword", "no-fn", "nothing"]
)
def test_submit_requires_the_callable_positionally(executor, kwargs: Dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        executor.submit(**kwargs)


def test_submit_runs_the_call_on_a_worker_thread(executor) -> None:
    assert executor.submit(threading.get_ident).result(timeout=TIMEOUT) != threading.get_ident()


# --------------------------------------------------------------------------------------------
# map


def test_map_matches_the_builtin_map_over_several_iterables(executor) -> None:
    expected = list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10))) == expected
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == expected
    assert list(executor.map(pow, range(10), range(4))) == list(map(pow, range(10), range(4)))


def test_map_of_an_empty_iterable_yields_nothing(executor) -> None:
    assert list(executor.map(abs, [])) == []
    assert list(executor.map(pow, [], range(3), timeout=0)) == []


def test_map_raises_a_call_error_when_iteration_reaches_it(executor) -> None:
    results = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(results) == (0, 1)
    assert next(results) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout_raises_after_the_results_that_arrived(executor, gate: Gate) -> None:
    def call(i: int) -> int:
        if i == 2:
            gate.wait()
        return i * 10

    results: List[int] = []
    with pytest.raises(cf.TimeoutError):
        for value in executor.map(call, range(3), timeout=1):
            results.append(value)
    assert results == [0, 10]


def map_timing_out(ex: cf.ThreadPoolExecutor, gate: Gate) -> List[str]:
    """What a one-worker executor ran of a map that timed out behind a blocked call."""
    ran: List[str] = []
    with ex:
        blocker = ex.submit(gate.wait)
        assert gate.entered.wait(TIMEOUT)
        results = ex.map(ran.append, ["second", "third"], timeout=0)
        with pytest.raises(cf.TimeoutError):
            next(results)
        gate.open()
        blocker.result(timeout=TIMEOUT)
    return ran


def test_map_that_times_out_cancels_its_calls_as_the_standard_library_does() -> None:
    stdlib = map_timing_out(cf.ThreadPoolExecutor(max_workers=1), Gate())
    assert map_timing_out(offload.Executor(max_workers=1), Gate()) == stdlib
    # Since 3.10.? (cf._base._result_or_cancel) the timed-out call is cancelled too; before,
    # only the calls behind it were.
    assert stdlib == ([] if hasattr(cf._base, "_result_or_cancel") else ["second"])


def test_map_submits_every_call_without_being_iterated(executor) -> None:
    finished: List[int] = []
    executor.map(finished.append, range(10))  # the iterator is dropped at once
    executor.shutdown(wait=True)
    assert sorted(finished) == list(range(10))


def test_map_yields_each_result_as_soon_as_it_is_ready(executor, gate: Gate) -> None:
    def call(i: int) -> int:
        if i == 1:
            gate.wait()
        return i

    results = executor.map(call, [0, 1])
    assert next(results) == 0  # while the second call is still blocked
    assert gate.entered.wait(TIMEOUT)
    gate.open()
    assert next(results) == 1


def test_map_iterator_keeps_no_reference_to_a_yielded_result(executor) -> None:
    for obj in executor.map(lambda _: Token(), range(10)):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None


def test_map_after_shutdown_raises_runtime_error(executor) -> None:
    executor.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.map(abs, [1])


# --------------------------------------------------------------------------------------------
# shutdown


def test_shutdown_waits_for_the_running_and_the_queued_calls(solo, gate: Gate) -> None:
    ran: List[int] = []
    running = solo.submit(gate.wait)
    queued = [solo.submit(ran.append, i) for i in range(5)]
    returned = threading.Event()

    def shut_down() -> None:
        solo.shutdown(wait=True)
        returned.set()

    closer = threading.Thread(target=shut_down)
    closer.start()
    wait_until(lambda: bool(solo._shutdown))
    assert not returned.is_set()  # held up by the call blocked on the gate
    assert not any(f.done() for f in queued)
    gate.open()
    closer.join(TIMEOUT)
    assert returned.is_set()
    assert running.done() and all(f.done() for f in queued)
    assert ran == [0, 1, 2, 3, 4]


def test_shutdown_without_wait_returns_and_the_queued_calls_still_run(solo, gate: Gate) -> None:
    running = solo.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    queued = solo.submit(mul, 6, 7)
    solo.shutdown(wait=False)
    assert not running.done() and not queued.done()
    with pytest.raises(RuntimeError, match="after shutdown"):
        solo.submit(mul, 1, 1)
    gate.open()
    assert running.result(timeout=TIMEOUT) is None
    assert queued.result(timeout=TIMEOUT) == 42


def test_shutdown_cancel_futures_cancels_the_queued_and_drops_their_references(
    solo, gate: Gate
) -> None:
    running = solo.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    args = [Token() for _ in range(5)]
    refs = [weakref.ref(a) for a in args]
    queued = [solo.submit(Token.method, a, None) for a in args]
    del args
    # Cancelling the last queued call releases the running one, so shutdown(wait=True)
    # returns only if it cancelled the queue before waiting for the workers.
    queued[-1].add_done_callback(lambda _: gate.open())
    solo.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) is None
    assert all(f.cancelled() for f in queued)
    with pytest.raises(cf.CancelledError):
        queued[0].result(timeout=0)
    # Cancelled calls hold nothing: their callables and arguments are gone already.
    assert all(r() is None for r in refs)


def test_shutdown_is_idempotent_in_every_combination(executor) -> None:
    fut = executor.submit(mul, 3, 3)
    executor.shutdown(wait=False)
    executor.shutdown(wait=True)
    executor.shutdown(wait=True, cancel_futures=True)
    executor.shutdown(wait=False, cancel_futures=True)
    assert fut.result(timeout=0) == 9
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(mul, 1, 1)


def test_shutdown_after_a_queued_call_was_cancelled_does_not_hang(solo, gate: Gate) -> None:
    blocker = solo.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    cancelled = solo.submit(int)
    assert cancelled.cancel()
    gate.open()
    closer = threading.Thread(target=solo.shutdown, kwargs={"wait": True})
    closer.start()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert blocker.done() and cancelled.cancelled()


def test_shutdown_from_a_worker_waits_for_the_other_workers_and_returns(
    executor, gate: Gate
) -> None:
    # CPython's ThreadPoolExecutor raises RuntimeError here ("cannot join current thread").
    # offload's worker waits for every other worker to finish its calls, then returns.
    other = executor.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)

    def shut_down_from_inside() -> bool:
        executor.shutdown(wait=True)
        with pytest.raises(RuntimeError, match="after shutdown"):
            executor.submit(mul, 1, 1)
        return other.done()

    inside = executor.submit(shut_down_from_inside)
    wait_until(lambda: bool(executor._shutdown))
    assert not inside.done()
    gate.open()
    assert inside.result(timeout=TIMEOUT) is True


def test_shutdown_without_wait_from_a_worker_returns_at_once(solo) -> None:
    assert solo.submit(solo.shutdown, wait=False).result(timeout=TIMEOUT) is None
    with pytest.raises(RuntimeError, match="after shutdown"):
        solo.submit(mul, 1, 1)


def test_context_manager_returns_the_executor_and_shuts_it_down_on_exit() -> None:
    with offload.Executor(max_workers=5) as ex:
        assert isinstance(ex, offload.Executor)
        assert list(ex.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        late = ex.submit(mul, 2, 3)
    assert late.done() and late.result() == 6
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(mul, 1, 1)


def test_context_manager_shuts_down_when_the_body_raises() -> None:
    with pytest.raises(KeyError):
        with offload.Executor(max_workers=2) as ex:
            fut = ex.submit(mul, 4, 4)
            raise KeyError("body")
    assert fut.result(timeout=0) == 16
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(mul, 1, 1)


def test_executor_dropped_without_shutdown_still_runs_its_calls() -> None:
    ex = offload.Executor(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    assert list(results) == [abs(v) for v in range(-5, 5)]


# --------------------------------------------------------------------------------------------
# interpreter exit, each in a fresh interpreter

# A call that is still running when the main thread has finished: threading releases the
# main thread's join as the interpreter starts to exit, before the atexit hooks run.
OUTLIVE_MAIN = """
    import threading, offload
    def outlive_main():
        threading.main_thread().join()
        print("running call finished", flush=True)
"""


def test_interpreter_exit_runs_the_running_and_the_queued_calls() -> None:
    result = run_python(
        OUTLIVE_MAIN
        + """
    executor = offload.Executor(max_workers=1)
    executor.submit(outlive_main)
    for i in range(3):
        executor.submit(print, "queued", i, flush=True)
    print("main exits", flush=True)
    """
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == [
        "main exits", "running call finished", "queued 0", "queued 1", "queued 2"]


def test_interpreter_exit_after_shutdown_without_wait_runs_the_calls() -> None:
    result = run_python(
        OUTLIVE_MAIN
        + """
    executor = offload.Executor(max_workers=1)
    executor.submit(outlive_main)
    executor.submit(print, "queued", flush=True)
    executor.shutdown(wait=False)
    print("main exits", flush=True)
    """
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == ["main exits", "running call finished", "queued"]


def test_interpreter_exit_after_cancel_futures_without_wait() -> None:
    result = run_python(
        OUTLIVE_MAIN
        + """
    started = threading.Event()
    def started_then_outlive_main():
        started.set()
        outlive_main()
    executor = offload.Executor(max_workers=1)
    executor.submit(started_then_outlive_main)
    queued = [executor.submit(print, "never", flush=True) for _ in range(3)]
    started.wait(30)
    executor.shutdown(wait=False, cancel_futures=True)
    print("queued cancelled:", all(f.cancelled() for f in queued), flush=True)
    """
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == ["queued cancelled: True", "running call finished"]


def test_submit_from_an_atexit_hook_after_offloads_own_is_refused() -> None:
    result = run_python(
        """
        import atexit
        def late():
            try:
                executor.submit(print, "ran", flush=True)
            except RuntimeError as error:
                print("refused:", error, flush=True)
        atexit.register(late)  # before offload's hook, so it runs after it
        import offload
        executor = offload.Executor(max_workers=2)
        executor.submit(print, "before exit", flush=True).result(timeout=30)
        """
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == [
        "before exit", "refused: cannot schedule new futures after shutdown"]


# --------------------------------------------------------------------------------------------
# references


def test_no_stale_reference_to_a_finished_call(executor) -> None:
    token, arg = Token(), Token()
    collected = {"callable": threading.Event(), "arg": threading.Event()}
    weakref.finalize(token, collected["callable"].set)
    weakref.finalize(arg, collected["arg"].set)
    fut = executor.submit(token.method, arg)
    del token, arg
    result = fut.result(timeout=TIMEOUT)
    collected["result"] = threading.Event()
    weakref.finalize(result, collected["result"].set)
    del fut, result  # the future was the last holder of the result
    for what, event in collected.items():
        assert event.wait(TIMEOUT), f"the {what} of a finished call was kept"


def test_no_stale_reference_to_a_discarded_future(executor) -> None:
    token = Token()
    collected = threading.Event()
    weakref.finalize(token, collected.set)
    executor.submit(token.method, None)  # the future is dropped at once
    del token
    assert collected.wait(TIMEOUT)


# --------------------------------------------------------------------------------------------
# concurrent.futures.wait


def test_wait_first_completed_returns_the_first_to_finish(executor, gate: Gate) -> None:
    cancelled = settled("cancelled")
    quick = executor.submit(mul, 21, 2)
    blocked = executor.submit(gate.wait)
    done, not_done = cf.wait([cancelled, quick, blocked], return_when=cf.FIRST_COMPLETED)
    assert done == {quick}
    assert not_done == {cancelled, blocked}


def test_wait_first_completed_with_some_already_finished(executor, gate: Gate) -> None:
    finished, notified = settled("finished"), settled("cancelled_and_notified")
    blocked = executor.submit(gate.wait)
    done, not_done = cf.wait([finished, notified, blocked], return_when=cf.FIRST_COMPLETED)
    assert done == {finished, notified}
    assert not_done == {blocked}


def test_wait_first_exception_returns_at_the_failure(executor, gate: Gate) -> None:
    succeeded = executor.submit(mul, 2, 21)
    succeeded.result(timeout=TIMEOUT)
    blocked = executor.submit(gate.wait)
    failed = executor.submit(divmod, 21, 0)
    done, not_done = cf.wait(
        [succeeded, failed, blocked, settled("cancelled")], return_when=cf.FIRST_EXCEPTION
    )
    assert done == {succeeded, failed}
    assert len(not_done) == 2 and blocked in not_done
    assert isinstance(failed.exception(timeout=0), ZeroDivisionError)


def test_wait_first_exception_with_one_already_failed(executor, gate: Gate) -> None:
    failed = settled("failed")
    blocked = executor.submit(gate.wait)
    done, not_done = cf.wait([failed, blocked], return_when=cf.FIRST_EXCEPTION)
    assert done == {failed} and not_done == {blocked}


def test_wait_all_completed(executor) -> None:
    by_hand = [settled("finished"), settled("failed"), settled("cancelled_and_notified")]
    calls = [executor.submit(divmod, 2, 0), executor.submit(mul, 2, 21)]
    done, not_done = cf.wait(by_hand + calls, return_when=cf.ALL_COMPLETED)
    assert done == set(by_hand + calls) and not_done == set()


def test_wait_timeout_leaves_the_blocked_call_pending(executor, gate: Gate) -> None:
    by_hand = [settled("finished"), settled("failed"), settled("cancelled_and_notified")]
    blocked = executor.submit(gate.wait)
    done, not_done = cf.wait(by_hand + [blocked], timeout=0.05, return_when=cf.ALL_COMPLETED)
    assert done == set(by_hand) and not_done == {blocked}


def test_wait_counts_a_future_given_twice_once(executor) -> None:
    fut = executor.submit(mul, 1, 2)
    done, not_done = cf.wait([fut, fut], return_when=cf.ALL_COMPLETED)
    assert done == {fut} and not_done == set()


def test_wait_for_many_calls_released_together(executor) -> None:
    release = threading.Event()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        futures = {executor.submit(release.wait, TIMEOUT) for _ in range(100)}
        release.set()
        done, not_done = cf.wait(futures, timeout=TIMEOUT, return_when=cf.ALL_COMPLETED)
    finally:
        sys.setswitchinterval(previous)
    assert done == futures and not not_done


# --------------------------------------------------------------------------------------------
# concurrent.futures.as_completed


def test_as_completed_yields_every_future_once(executor) -> None:
    by_hand = [settled("finished"), settled("failed"), settled("cancelled_and_notified")]
    calls = [executor.submit(mul, 2, 21), executor.submit(mul, 7, 6)]
    yielded = list(cf.as_completed(by_hand + calls, timeout=TIMEOUT))
    assert len(yielded) == 5 and set(yielded) == set(by_hand + calls)
    assert [f.result() for f in calls] == [42, 42]


@pytest.mark.parametrize("timeout", [0, 0.05])
def test_as_completed_timeout_after_yielding_the_finished(executor, gate: Gate, timeout) -> None:
    by_hand = {settled("finished"), settled("failed"), settled("cancelled_and_notified")}
    blocked = executor.submit(gate.wait)
    yielded = set()
    with pytest.raises(cf.TimeoutError, match=re.escape("1 (of 4) futures unfinished")):
        for fut in cf.as_completed(by_hand | {blocked}, timeout=timeout):
            yielded.add(fut)
    assert yielded == by_hand


def test_as_completed_yields_a_repeated_future_once(executor) -> None:
    fut = executor.submit(mul, 3, 3)
    assert list(cf.as_completed(itertools.repeat(fut, 3), timeout=TIMEOUT)) == [fut]


# --------------------------------------------------------------------------------------------
# futures of calls: states, callbacks, exceptions


def test_future_states_from_pending_to_finished(solo, gate: Gate) -> None:
    ran: List[int] = []
    running = solo.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    pending = solo.submit(ran.append, 1)
    assert not pending.running() and not pending.done() and not pending.cancelled()
    assert running.running() and not running.done()
    assert running.cancel() is False  # a running call cannot be cancelled
    assert pending.cancel() is True
    assert pending.cancelled() and pending.done() and not pending.running()
    with pytest.raises(cf.CancelledError):
        pending.result(timeout=0)
    gate.open()
    assert running.result(timeout=TIMEOUT) is None
    assert running.done() and not running.running() and not running.cancelled()
    assert running.cancel() is False
    solo.shutdown(wait=True)
    assert ran == []  # the cancelled call never ran


def test_done_callback_runs_on_the_worker_that_finishes_the_call(executor, gate: Gate) -> None:
    def call() -> int:
        gate.wait()
        return threading.get_ident()

    fut = executor.submit(call)
    calls: List[Any] = []
    called = threading.Event()

    def callback(f: "cf.Future[int]") -> None:
        calls.append((f, threading.get_ident()))
        called.set()

    fut.add_done_callback(callback)
    assert gate.entered.wait(TIMEOUT)
    assert not called.is_set()
    gate.open()
    assert called.wait(TIMEOUT)
    assert calls == [(fut, fut.result())]


def test_done_callback_added_late_runs_at_once_in_the_caller(executor) -> None:
    fut = executor.submit(mul, 2, 2)
    fut.result(timeout=TIMEOUT)
    calls: List[Any] = []
    fut.add_done_callback(lambda f: calls.append((f, threading.get_ident())))
    assert calls == [(fut, threading.get_ident())]


def test_done_callback_of_a_call_cancelled_by_shutdown(solo, gate: Gate) -> None:
    solo.submit(gate.wait)
    assert gate.entered.wait(TIMEOUT)
    queued = solo.submit(mul, 1, 1)
    seen: List[bool] = []
    queued.add_done_callback(lambda f: seen.append(f.cancelled()))
    solo.shutdown(wait=False, cancel_futures=True)
    assert seen == [True]
    gate.open()


def test_raising_done_callback_is_logged_and_the_worker_goes_on(
    executor, caplog: pytest.LogCaptureFixture
) -> None:
    def callback(_: Any) -> None:
        raise LookupError("raised in a done callback")

    release = threading.Event()
    fut = executor.submit(release.wait, TIMEOUT)
    fut.add_done_callback(callback)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        release.set()
        assert fut.result(timeout=TIMEOUT) is True
        assert executor.submit(mul, 5, 5).result(timeout=TIMEOUT) == 25
        executor.shutdown(wait=True)  # the callback ran before its worker exits
    (record,) = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert record.exc_info is not None and record.exc_info[0] is LookupError


def test_call_error_keeps_its_traceback(executor) -> None:
    fut = executor.submit(failing_call)
    error = fut.exception(timeout=TIMEOUT)
    assert isinstance(error, ValueError)
    assert [frame.name for frame in traceback.extract_tb(error.__traceback__)][-1] == "failing_call"
    with pytest.raises(ValueError, match="raised in the worker") as raised:
        fut.result(timeout=0)
    assert raised.value is error
    assert "in failing_call" in "".join(traceback.format_exception(type(error), error, error.__traceback__))


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_base_exception_in_a_call_fails_only_its_future(executor, error) -> None:
    def call() -> None:
        raise error

    assert executor.submit(call).exception(timeout=TIMEOUT) is error
    assert executor.submit(mul, 6, 7).result(timeout=TIMEOUT) == 42


# --------------------------------------------------------------------------------------------
# initializer


def test_initializer_prepares_every_worker_before_its_calls() -> None:
    local = threading.local()

    def init(value: str) -> None:
        local.value = value

    both = threading.Barrier(2, timeout=TIMEOUT)

    def call() -> Any:
        both.wait()  # one call on each worker
        return getattr(local, "value", "uninitialized"), threading.get_ident()

    with offload.Executor(max_workers=2, initializer=init, initargs=("initialized",)) as ex:
        results = [f.result(timeout=TIMEOUT) for f in [ex.submit(call), ex.submit(call)]]
    assert [value for value, _ in results] == ["initialized", "initialized"]
    assert len({ident for _, ident in results}) == 2


def test_failing_initializer_fails_the_queued_calls_then_refuses_submit(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    def init() -> None:
        gate.wait()
        raise ValueError("error in initializer")

    ex = offload.Executor(max_workers=2, initializer=init)
    try:
        queued = [ex.submit(mul, i, i) for i in range(4)]  # accepted: not broken yet
        assert gate.entered.wait(TIMEOUT)  # workers start, as in the standard library, on submit
        assert not ex._broken
        with caplog.at_level(logging.ERROR):
            gate.open()
            for fut in queued:
                with pytest.raises(BrokenThreadPool):
                    fut.result(timeout=TIMEOUT)
        assert ex._broken  # as ThreadPoolExecutor's, for code that polls it
        with pytest.raises(BrokenThreadPool) as refused:
            ex.submit(mul, 1, 1)
        assert isinstance(refused.value, cf.BrokenExecutor)
    finally:
        ex.shutdown(wait=True)
    # Logged as ThreadPoolExecutor logs it: CRITICAL, on "concurrent.futures".
    logged = [r for r in caplog.records if r.name == "concurrent.futures" and r.exc_info]
    assert logged and all(isinstance(r.exc_info[1], ValueError) for r in logged)


# --------------------------------------------------------------------------------------------
# workers: count, names, reuse


@pytest.mark.parametrize("cpus", [1, 4, 100, None])
def test_default_max_workers_matches_thread_pool_executor(monkeypatch, cpus) -> None:
    # cpu_count is what 3.11 sizes by; from 3.13 it is process_cpu_count, which differs from
    # cpu_count under an affinity mask: give them different values to tell them apart.
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    if hasattr(os, "process_cpu_count"):
        monkeypatch.setattr(os, "process_cpu_count", lambda: cpus)
    else:
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    expected = cf.ThreadPoolExecutor()._max_workers
    assert expected == min(32, (cpus or 1) + 4)
    ex = offload.Executor()
    try:
        assert ex._max_workers == expected
    finally:
        ex.shutdown(wait=True)


@pytest.mark.parametrize("bad", [0, -1])
def test_max_workers_below_one_is_a_value_error(bad: int) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        offload.Executor(max_workers=bad)


def test_max_workers_bounds_the_calls_running_at_once(gate: Gate) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    three_running = threading.Semaphore(0)

    def call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        three_running.release()
        gate.wait()
        with lock:
            running -= 1

    ex = offload.Executor(max_workers=3)
    try:
        futures = [ex.submit(call) for _ in range(9)]
        for _ in range(3):
            assert three_running.acquire(timeout=TIMEOUT)
        assert sum(f.running() for f in futures) == 3
        assert not any(f.running() or f.done() for f in futures[3:])
        gate.open()
        for f in futures:
            f.result(timeout=TIMEOUT)
    finally:
        gate.open()
        ex.shutdown(wait=True)
    assert peak == 3


def test_thread_names_are_the_prefix_and_the_worker_index() -> None:
    five = threading.Barrier(5, timeout=TIMEOUT)

    def name() -> str:
        five.wait()  # holds each worker until all five have a call
        return threading.current_thread().name

    with offload.Executor(max_workers=5, thread_name_prefix="SpecialPool") as ex:
        names = {f.result(timeout=TIMEOUT) for f in [ex.submit(name) for _ in range(5)]}
    assert names == {f"SpecialPool_{i}" for i in range(5)}


def test_workers_leave_threading_enumerate_when_shut_down() -> None:
    three = threading.Barrier(3, timeout=TIMEOUT)

    def call() -> None:
        three.wait()

    ex = offload.Executor(max_workers=3, thread_name_prefix="leaving")
    for f in [ex.submit(call) for _ in range(3)]:
        f.result(timeout=TIMEOUT)
    listed = [t for t in threading.enumerate() if t.name.startswith("leaving_")]
    assert len(listed) == 3
    ex.shutdown(wait=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("leaving_")]


def test_sequential_calls_reuse_idle_workers() -> None:
    four = threading.Barrier(4, timeout=TIMEOUT)

    def warm() -> int:
        four.wait()  # one call on each worker: every worker has now run Python
        return threading.get_ident()

    with offload.Executor(max_workers=4) as ex:
        workers = {f.result(TIMEOUT) for f in [ex.submit(warm) for _ in range(4)]}
        active = threading.active_count()
        idents = {ex.submit(threading.get_ident).result(TIMEOUT) for _ in range(50)}
        assert threading.active_count() == active
    assert len(workers) == 4 and idents <= workers


# --------------------------------------------------------------------------------------------
# asyncio's default executor


def test_loop_shutdown_default_executor_shuts_it_down(arun) -> None:
    ex = offload.Executor(max_workers=2)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ex)
        result = await loop.run_in_executor(None, mul, 6, 7)
        await loop.shutdown_default_executor()
        return result

    assert arun(main) == 42
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(mul, 1, 1)


@pytest.mark.parametrize("executor", ["offload.Executor", "concurrent.futures.ThreadPoolExecutor"])
def test_submit_after_the_main_thread_finished_is_refused(executor: str) -> None:
    # Once the interpreter is shutting down (threading's shutdown began: the main thread has
    # finished), ThreadPoolExecutor.submit raises; offload.Executor does the same.
    result = run_python(
        f"""
        import concurrent.futures, threading, offload
        ex = {executor}(max_workers=2)
        def late():
            threading.main_thread().join()
            try:
                ex.submit(pow, 2, 2)
                print("accepted", flush=True)
            except RuntimeError as error:
                print("refused:", error, flush=True)
        threading.Thread(target=late).start()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused: cannot schedule new futures after interpreter shutdown"
