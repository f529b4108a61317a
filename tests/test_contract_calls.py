"""Contract: call semantics, on every pool kind (pool_kinds.py).

What a call gives back: its result, its arguments as given, its exception with its type,
message and traceback (through run, submit, map and imap), BaseException subclasses included;
the caller's contextvars where the kind carries them; done callbacks; objects that must never
be compared or hashed, untouched; counters that add up. Where a kind promises differently, the
test asserts that kind's promise (pool_kinds.Promises).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import threading
import traceback
from typing import Any, List

import pytest

import cpu_work
import fault_work
import offload
from fault_work import BASE_EXCEPTIONS, Hostile, HostileCallable, HostileError
from pool_kinds import TIMEOUT, Blocker, Kind, close_pool, counters_add_up, skip_if_dask_reads_arguments
from pool_kinds import _dask_pool_per_test, blocker, kind, new_pool  # noqa: F401 (fixtures)

ROUTES = ["run", "submit", "await-submit", "map", "imap"]


def raised_by(kind: Kind, route: str, fn: Any, arg: Any) -> BaseException:
    """What a call of fn(arg) raised, through `route`."""
    pool = kind.pool
    if route == "submit":
        error = pool.submit(fn, arg).exception(TIMEOUT)
        assert error is not None
        return error

    async def main() -> BaseException:
        try:
            if route == "run":
                await kind.run(pool)(fn, arg)
            elif route == "await-submit":
                await pool.submit(fn, arg)
            elif route == "map":
                await pool.map(fn, [arg])
            else:
                [r async for r in pool.imap(fn, [arg], ordered=False)]
        except BaseException as error:  # returned to the test's thread
            return error
        raise AssertionError("the call raised nothing")

    return kind.on_loop(main)  # type: ignore[no-any-return]


# -- results and arguments --------------------------------------------------------------------


def test_run_passes_positional_and_keyword_arguments_as_given(kind: Kind) -> None:
    run = kind.run(kind.pool)

    async def main() -> Any:
        # Keywords named like the pools' and Dask's own parameters reach the function too.
        return (
            await run(cpu_work.add, 1, 2, scale=3),
            await run(cpu_work.echo, 1, "two", [3], key={"k": (4, 5)}, fn="f", workers=2, pure=True),
        )

    assert kind.on_loop(main) == (
        9, ((1, "two", [3]), {"key": {"k": (4, 5)}, "fn": "f", "workers": 2, "pure": True}))


def test_many_gathered_calls_each_get_their_own_result(kind: Kind) -> None:
    run = kind.run(kind.pool)

    async def main() -> List[Any]:
        return await asyncio.gather(*[run(cpu_work.add, i, 1) for i in range(100)])

    assert kind.on_loop(main) == [i + 1 for i in range(100)]


def test_submit_returns_a_future_that_threads_and_loops_wait_for(kind: Kind) -> None:
    fut = kind.pool.submit(cpu_work.add, 2, b=3, scale=10)
    assert fut.result(TIMEOUT) == 50
    assert fut.exception(TIMEOUT) is None
    assert fut.done() and not fut.cancelled()

    async def main() -> Any:
        return await fut, await fut  # any number of times

    assert kind.on_loop(main) == (50, 50)


def test_result_with_a_timeout_raises_timeout_error_and_leaves_the_call_alone(
    kind: Kind, blocker: Blocker
) -> None:
    [fut] = blocker.hold(kind.pool, 1)
    with pytest.raises(cf.TimeoutError):
        fut.result(timeout=0.01)
    assert not fut.done() and not fut.cancelled()
    blocker.release()
    assert fut.result(TIMEOUT) == "released"


@pytest.mark.parametrize("timeout", [float("inf"), 1e300], ids=["inf", "huge"])
def test_result_with_a_timeout_beyond_any_clock_waits_without_limit(
    kind: Kind, blocker: Blocker, timeout: float
) -> None:
    # concurrent.futures raises OverflowError for a wait longer than the clock can count.
    [fut] = blocker.hold(kind.pool, 1)
    outcome: List[Any] = []
    waiter = threading.Thread(target=lambda: outcome.extend([fut.exception(timeout), fut.result(timeout)]))
    waiter.start()
    waiter.join(0.05)
    assert waiter.is_alive()  # waiting, not refused
    blocker.release()
    waiter.join(TIMEOUT)
    assert outcome == [None, "released"]


def test_a_done_callback_runs_once_with_the_future_and_at_once_when_done(kind: Kind) -> None:
    seen: List[Any] = []
    called = threading.Event()

    def callback(future: Any) -> None:
        seen.append(future)
        called.set()

    fut = kind.pool.submit(cpu_work.square, 5)
    fut.add_done_callback(callback)
    assert called.wait(TIMEOUT)
    assert fut.result(TIMEOUT) == 25
    fut.add_done_callback(seen.append)  # done: runs here, now
    assert seen == [fut, fut]


# -- exceptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_an_exception_keeps_its_type_message_and_traceback(kind: Kind, route: str) -> None:
    error = raised_by(kind, route, cpu_work.raise_value_error, "boom")
    assert type(error) is ValueError and str(error) == "boom"
    if kind.promises.local:
        frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
        assert "_deep_in_the_worker" in frames, frames
    else:
        cause = error.__cause__
        assert isinstance(cause, offload.RemoteTraceback)
        assert "_deep_in_the_worker" in cause.text and "cpu_work.py" in cause.text
        assert cause.text.splitlines()[-1] == "ValueError: boom"


def test_an_exception_keeps_its_own_state(kind: Kind) -> None:
    error = kind.pool.submit(cpu_work.raise_custom, "bad input", 7).exception(TIMEOUT)
    assert type(error) is cpu_work.CustomError
    assert (error.message, error.code, str(error)) == ("bad input", 7, "bad input (code 7)")


def test_a_cause_chained_by_the_call_is_kept(kind: Kind) -> None:
    error = raised_by(kind, "run", cpu_work.raise_with_cause, "outer")
    assert type(error) is RuntimeError and str(error) == "outer"
    if kind.promises.local:
        assert isinstance(error.__cause__, KeyError)
    else:  # the worker's whole chain, as text
        text = error.__cause__.text
        assert "KeyError: 'the inner cause'" in text and "direct cause" in text


@pytest.mark.parametrize("name", list(BASE_EXCEPTIONS))
@pytest.mark.parametrize("route", ["submit", "run", "map", "imap"])
def test_a_base_exception_reaches_the_caller_and_the_worker_goes_on(
    kind: Kind, name: str, route: str
) -> None:
    # Dask takes SystemExit and KeyboardInterrupt for its worker dying: DaskPool carries them
    # back as any exception, and no worker dies (the cluster allows no failure: pool_kinds).
    error = raised_by(kind, route, fault_work.raise_base, name)
    assert type(error) is BASE_EXCEPTIONS[name], repr(error)
    assert str(error) == f"{name} from the call"
    assert kind.pool.submit(pow, 2, 5).result(TIMEOUT) == 32


def test_stop_iteration_is_delivered_as_runtime_error_to_a_loop(kind: Kind) -> None:
    # An asyncio future cannot hold StopIteration: a loop gets RuntimeError from it, as a task
    # whose coroutine raised it does.
    error = raised_by(kind, "run", next, iter([]))
    assert type(error) is RuntimeError and type(error.__cause__) is StopIteration


def test_hostile_objects_pass_through_every_route_untouched(kind: Kind) -> None:
    # Objects whose __eq__ and __hash__ raise: no pool compares or hashes arguments, keyword
    # arguments, results, callables, items or exceptions.
    skip_if_dask_reads_arguments(kind)
    pool, run = kind.pool, kind.run(kind.pool)
    hostile = Hostile(5)
    assert pool.submit(fault_work.tag_of, hostile).result(TIMEOUT) == 5
    assert pool.submit(fault_work.tag_of, item=hostile).result(TIMEOUT) == 5
    assert pool.submit(HostileCallable(), 1, a=hostile).result(TIMEOUT).tag == 2
    assert type(pool.submit(fault_work.raise_hostile, "x").exception(TIMEOUT)) is HostileError

    async def main() -> List[Any]:
        out: List[Any] = [await run(fault_work.tag_of, hostile)]
        out.append((await run(HostileCallable(), hostile, k=hostile)).tag)
        out.append((await pool.submit(fault_work.make_hostile, 4)).tag)
        out.append(await pool.map(fault_work.tag_of, [Hostile(i) for i in range(3)]))
        out.append([h.tag for h in await pool.map(HostileCallable(), [hostile, hostile])])
        out.append([h.tag async for h in pool.imap(fault_work.make_hostile, [7, 8])])
        unordered = pool.imap(fault_work.tag_of, [Hostile(1), Hostile(2)], ordered=False)
        out.append(sorted([tag async for tag in unordered]))
        for call in (lambda: run(fault_work.raise_hostile, "x"), lambda: pool.map(fault_work.raise_hostile, ["x"])):
            with pytest.raises(HostileError):
                await call()
        return out

    assert kind.on_loop(main) == [5, 2, 4, [0, 1, 2], [1, 1], [7, 8], [1, 2]]


# -- context --------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["run", "submit", "map"])
def test_contextvars_reach_the_call_where_the_kind_carries_them(kind: Kind, route: str) -> None:
    pool, run = kind.pool, kind.run(kind.pool)

    async def main() -> Any:
        cpu_work.VAR.set("caller")  # in this task's context only
        if route == "run":
            seen = await run(cpu_work.read_var_then_set, "set by the call")
        elif route == "submit":
            seen = await pool.submit(cpu_work.read_var_then_set, "set by the call")
        else:
            [seen] = await pool.map(cpu_work.read_var_then_set, ["set by the call"])
        return seen, cpu_work.VAR.get()

    seen, after = kind.on_loop(main)
    assert after == "caller"  # a call never changes its caller's context
    if kind.promises.context:
        assert seen == "caller"
    else:  # the worker's own context, which earlier calls in that worker may have set
        assert seen in ("default", "set by the call")


def test_a_submit_from_a_thread_carries_that_threads_context(kind: Kind) -> None:
    def submit() -> Any:
        cpu_work.VAR.set("thread")
        return kind.pool.submit(cpu_work.read_var_then_set, "set by the call").result(TIMEOUT)

    seen = contextvars.copy_context().run(submit)
    assert seen == "thread" if kind.promises.context else seen in ("default", "set by the call")


def test_offload_cancelled_is_false_in_a_call_nobody_cancelled(kind: Kind) -> None:
    async def main() -> Any:
        return await kind.run(kind.pool)(offload.cancelled)

    assert kind.on_loop(main) is False
    assert offload.cancelled() is False  # and outside any call


# -- counters -------------------------------------------------------------------------------


def test_stats_count_each_call_by_how_it_ended(kind: Kind, new_pool: Any) -> None:
    pool = new_pool(2)
    run = kind.run(pool)

    async def main() -> List[Any]:
        calls = [run(cpu_work.fail_if_3_or_7, i) for i in (1, 2, 3, 4, 7)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        results.append(await pool.map(cpu_work.square, range(4)))
        return results

    results = kind.on_loop(main)
    assert [isinstance(r, ValueError) for r in results] == [False, False, True, False, True, False]
    assert pool.submit(cpu_work.square, 3).result(TIMEOUT) == 9
    close_pool(pool)  # the counters are final once the pool is shut down
    s = pool.stats()
    if kind.promises.map_counted_per_item:
        map_calls = 4
    else:
        map_calls = s.submitted - 6
        assert 1 <= map_calls <= 2  # one per worker that took part
    assert (s.workers, s.submitted, s.completed, s.failed, s.cancelled) == (2, 6 + map_calls, 4 + map_calls, 2, 0)
    assert (s.queued, s.busy) == (0, 0)


# -- the future of submit -------------------------------------------------------------------

DASK_STOP_ITERATION_BUG = (
    "BUG: DaskPool: a call raising StopIteration fails its DaskFuture with RuntimeError("
    "'coroutine raised StopIteration'): the call runs as a loop task, which turns the "
    "StopIteration into RuntimeError (PEP 479), where the future of every other kind's "
    "submit holds the StopIteration itself, as a concurrent.futures.Future can (only an "
    "asyncio future cannot: test_stop_iteration_is_delivered_as_runtime_error_to_a_loop), "
    "against DaskFuture.result(): 'raises its exception'"
)


@pytest.mark.parametrize("error", [ValueError, StopIteration], ids=lambda e: e.__name__)
def test_a_submit_future_raises_the_calls_exception_and_returns_it_from_exception(
    kind: Kind, error: type, request: pytest.FixtureRequest
) -> None:
    if error is StopIteration and kind.base == "dask":
        request.applymarker(pytest.mark.xfail(strict=True, reason=DASK_STOP_ITERATION_BUG))
    if error is ValueError:
        fut = kind.pool.submit(cpu_work.raise_value_error, "via submit")
    else:
        fut = kind.pool.submit(next, iter([]))
    raised = fut.exception(TIMEOUT)
    assert type(raised) is error
    with pytest.raises(error) as again:
        fut.result(TIMEOUT)
    assert again.value is raised
    assert fut.done() and not fut.cancelled()


def test_running_tells_a_running_call_from_a_queued_one(kind: Kind, new_pool: Any, blocker: Blocker) -> None:
    # DaskFuture.running() "is always false: a Dask client is not told when a task starts".
    pool = new_pool(1)
    running = blocker.hold(pool, kind.workers(pool))
    queued = pool.submit(cpu_work.square, 3)
    assert [f.running() for f in running] == [kind.base != "dask"] * len(running)
    assert not any(f.done() for f in running)
    assert not queued.running() and not queued.done()
    blocker.release()
    assert queued.result(TIMEOUT) == 9
    assert not queued.running()


def test_submit_returns_the_future_its_kind_documents(kind: Kind) -> None:
    # offload.Future for the native pools (Pool.submit, InterpreterPool, ProcessPool), a
    # DaskFuture (a concurrent.futures.Future) for DaskPool: both are offload.FutureLike.
    fut = kind.pool.submit(cpu_work.square, 12)
    documented = offload.DaskFuture if kind.base == "dask" else offload.Future
    assert type(fut) is documented
    assert isinstance(fut, offload.FutureLike)
    assert fut.result(TIMEOUT) == 144


# -- BaseException subclasses: the caller gets them, the worker goes on, the counters add up ---


@pytest.mark.parametrize("name", list(BASE_EXCEPTIONS))
def test_base_exception_from_submit_reaches_result_and_exception(kind: Kind, new_pool: Any, name: str) -> None:
    exc_type = BASE_EXCEPTIONS[name]
    pool = new_pool(1)
    fut = pool.submit(fault_work.raise_base, name)
    with pytest.raises(exc_type, match="from the call"):
        fut.result(TIMEOUT)
    assert type(fut.exception(TIMEOUT)) is exc_type
    assert fut.done() and not fut.cancelled()
    assert pool.submit(pow, 2, 5).result(TIMEOUT) == 32  # the worker survived
    s = counters_add_up(pool)
    assert (s.submitted, s.completed, s.failed, s.cancelled) == (2, 1, 1, 0)


@pytest.mark.parametrize("name", list(BASE_EXCEPTIONS))
@pytest.mark.parametrize("route", ["submit", "run"])
def test_base_exception_reaches_a_coroutine_awaiting_submit_or_run(
    kind: Kind, new_pool: Any, name: str, route: str
) -> None:
    exc_type = BASE_EXCEPTIONS[name]
    pool = new_pool(1)
    start = getattr(pool, route)  # the future of submit or the call of run: both awaitable

    async def main() -> Any:
        caught = None
        try:
            await start(fault_work.raise_base, name)
        except exc_type as e:
            caught = e
        return caught, await start(pow, 2, 5)

    caught, after = kind.on_loop(main)
    assert type(caught) is exc_type and after == 32
    s = counters_add_up(pool)
    assert (s.submitted, s.completed, s.failed) == (2, 1, 1)


# -- objects whose __eq__ and __hash__ raise, through imap ------------------------------------


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_hostile_results_and_errors_pass_through_imap(kind: Kind, ordered: bool) -> None:
    pool = kind.pool

    async def main() -> Any:
        tags = [h.tag async for h in pool.imap(fault_work.make_hostile, range(4), ordered=ordered)]
        with pytest.raises(HostileError, match="^x$"):
            [r async for r in pool.imap(fault_work.raise_hostile, ["x"], ordered=ordered)]
        return tags

    tags = kind.on_loop(main)
    assert (tags if ordered else sorted(tags)) == [0, 1, 2, 3]
