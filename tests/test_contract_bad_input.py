"""Contract: bad input, on every pool kind (pool_kinds.py).

Every public argument of run, submit, map, imap, shutdown and the constructors, given a wrong
type or value, gets a TypeError or ValueError (SendError, a TypeError, for what cannot travel)
whose message names the problem, before anything reaches a worker; never pybind11's dispatch
dump or a C++ exception's text. test_faults_input.py drives the thread pool's arguments with
hypothesis over a far broader set of values.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any, Callable, List, Tuple

import pytest

import cpu_work
import fault_work
import offload
from pool_kinds import TIMEOUT, Kind, assert_clear
from pool_kinds import _dask_pool_per_test, blocker, kind, new_pool  # noqa: F401 (fixtures)

NOT_CALLABLE = [None, 42, "square", b"x", [cpu_work.square], fault_work.Hostile()]
NOT_ITERABLE = [None, 42, 1.5, cpu_work.square]


@pytest.mark.parametrize("value", NOT_CALLABLE, ids=lambda v: type(v).__name__)
def test_every_entry_point_refuses_what_is_not_callable(kind: Kind, value: Any) -> None:
    pool = kind.pool
    before = pool.stats().submitted
    with pytest.raises(TypeError) as raised:
        pool.submit(value)
    assert_clear(raised.value, "callable")

    async def main() -> None:
        calls: List[Callable[[], Any]] = [
            lambda: kind.run(pool)(value), lambda: pool.map(value, [1]), lambda: pool.imap(value, [1])]
        for call in calls:
            with pytest.raises(TypeError) as raised:
                call()
            assert_clear(raised.value, "callable")

    kind.on_loop(main)
    assert pool.stats().submitted == before


@pytest.mark.parametrize("value", NOT_ITERABLE, ids=lambda v: type(v).__name__)
def test_map_and_imap_refuse_what_is_not_iterable(kind: Kind, value: Any) -> None:
    async def main() -> None:
        for call in (lambda: kind.pool.map(cpu_work.square, value), lambda: kind.pool.imap(cpu_work.square, value)):
            with pytest.raises(TypeError) as raised:
                call()
            assert_clear(raised.value, "iterable")

    kind.on_loop(main)


@pytest.mark.parametrize(
    "window, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("2", TypeError), (True, TypeError)]
)
def test_imap_refuses_a_window_that_is_not_a_positive_int(kind: Kind, window: Any, error: type) -> None:
    async def main() -> None:
        with pytest.raises(error) as raised:
            kind.pool.imap(cpu_work.square, [1], window=window)
        assert_clear(raised.value, "window")

    kind.on_loop(main)


@pytest.mark.parametrize("wait, cancel_pending", [(1, ""), ("yes", None), ([], [0])])
def test_shutdown_takes_its_flags_for_their_truth(kind: Kind, new_pool: Any, wait: Any, cancel_pending: Any) -> None:
    pool = new_pool()
    assert pool.submit(cpu_work.square, 3).result(TIMEOUT) == 9
    pool.shutdown(wait=wait, cancel_pending=cancel_pending)
    pool.shutdown(wait=True)
    assert pool.closed


def constructions(kind: Kind) -> List[Tuple[Callable[[], Any], type, Tuple[str, ...]]]:
    """(a construction with one bad argument, the error it must raise, the names it may name)."""
    if kind.base == "default":
        return [(lambda: offload.default_pool(2), TypeError, ("argument", "positional"))]
    if kind.base == "dask":
        return [
            (lambda: offload.DaskPool(42), TypeError, ("DaskPool takes",)),
            (lambda: offload.DaskPool(pure=1), TypeError, ("pure",)),
        ]
    make = {"thread": offload.Pool, "interpreter": offload.InterpreterPool, "process": offload.ProcessPool}[kind.base]
    cases: List[Tuple[Callable[[], Any], type, Tuple[str, ...]]] = [
        (lambda: make(0), ValueError, ("workers",)),
        (lambda: make(-1), ValueError, ("workers",)),
        (lambda: make(2**63), ValueError, ("workers",)),
        (lambda: make(1.5), TypeError, ("workers",)),
        (lambda: make("2"), TypeError, ("workers",)),
        (lambda: make(True), TypeError, ("workers",)),
        (lambda: make(1, name=3), TypeError, ("name",)),
        (lambda: make(1, name="worker-\ud800"), ValueError, ("name",)),
    ]
    if kind.base == "process":
        cases.append((lambda: make(1, mp_context="spawn"), TypeError, ("mp_context",)))
    return cases


def test_constructors_refuse_bad_arguments_naming_them(kind: Kind) -> None:
    for construct, error, names in constructions(kind):
        with pytest.raises(error) as raised:
            construct()
        assert_clear(raised.value, *names)


@pytest.mark.parametrize("timeout, error", [("1", TypeError), (float("nan"), ValueError), (True, TypeError)])
def test_future_result_refuses_a_timeout_that_is_not_a_number(kind: Kind, timeout: Any, error: type) -> None:
    fut = kind.pool.submit(cpu_work.square, 4)
    assert fut.result(TIMEOUT) == 16
    for method in (fut.result, fut.exception):
        with pytest.raises(error) as raised:
            method(timeout=timeout)
        assert_clear(raised.value, "timeout")


# -- what cannot travel to a worker -----------------------------------------------------------


def _nested() -> Callable[[Any], Any]:
    def nested(x: Any) -> Any:
        return x

    return nested


def _in_main() -> Callable[[Any], Any]:
    namespace: dict = {"__name__": "__main__"}
    exec("def in_main(x):\n    return x\n", namespace)
    return namespace["in_main"]  # type: ignore[no-any-return]


FUNCTIONS = {"lambda": lambda: (lambda x: x), "nested": _nested, "__main__": _in_main}


@pytest.mark.parametrize("what", list(FUNCTIONS))
@pytest.mark.parametrize("route", ["submit", "run", "map", "imap"])
def test_a_function_workers_cannot_import_is_refused_where_functions_travel_by_name(
    kind: Kind, what: str, route: str
) -> None:
    fn = FUNCTIONS[what]()
    pool = kind.pool
    before = pool.stats().submitted

    async def call() -> Any:
        if route == "submit":
            return await pool.submit(fn, 7)
        if route == "run":
            return await kind.run(pool)(fn, 7)
        if route == "map":
            return (await pool.map(fn, [7]))[0]
        return [r async for r in pool.imap(fn, [7])][0]

    async def main() -> Any:
        if not kind.promises.by_name:  # threads call it; Dask sends it by value (cloudpickle)
            return await call()
        with pytest.raises(offload.SendError) as raised:  # before anything reaches a worker
            await call()
        return str(raised.value)

    outcome = kind.on_loop(main)
    if not kind.promises.by_name:
        assert outcome == 7
        return
    assert ("__main__" if what == "__main__" else "lambda") in outcome
    assert pool.stats().submitted == before


@pytest.mark.parametrize("where", ["argument", "keyword", "item"])
def test_what_cannot_be_pickled_is_named_where_calls_are_pickled(kind: Kind, where: str) -> None:
    lock = threading.Lock()
    pool = kind.pool
    before = pool.stats().submitted

    async def call() -> Any:
        if where == "argument":
            return await pool.submit(cpu_work.echo, 1, lock)
        if where == "keyword":
            return await kind.run(pool)(cpu_work.echo, 1, guard=lock)
        return await pool.map(cpu_work.identity, [1, lock])

    async def main() -> Any:
        if not kind.promises.pickled:
            return await call()
        with pytest.raises(offload.SendError) as raised:  # at the call, or when awaited
            await call()
        return str(raised.value)

    outcome = kind.on_loop(main)
    if not kind.promises.pickled:  # passed by reference: the very object arrives
        got = {"argument": lambda: outcome[0][1], "keyword": lambda: outcome[1]["guard"], "item": lambda: outcome[1]}
        assert got[where]() is lock
        return
    expected = {"argument": "argument 1 of cpu_work.echo (lock)", "keyword": "keyword argument 'guard' of cpu_work.echo",
                "item": "item 1 of cpu_work.identity (lock)"}[where]
    assert expected in outcome
    assert pool.stats().submitted == before


def _closure() -> Callable[[Any], Any]:
    factor = 1

    def closure(x: Any) -> Any:
        return x * factor

    return closure


@pytest.mark.parametrize("what", ["lambda", "nested", "closure", "__main__"])
@pytest.mark.parametrize("route", ["submit", "run", "map"])
def test_a_function_workers_cannot_import_is_refused_at_the_call_saying_what_can_be_sent(
    kind: Kind, what: str, route: str
) -> None:
    # Refused by the call itself, not when awaited, with the way out in the message.
    fn = _closure() if what == "closure" else FUNCTIONS[what]()
    pool = kind.pool
    before = pool.stats().submitted

    def call() -> Any:
        if route == "submit":
            return pool.submit(fn, 7)
        if route == "run":
            return kind.run(pool)(fn, 7)
        return pool.map(fn, [7])

    async def main() -> Any:
        if not kind.promises.by_name:  # threads call it; Dask sends it by value (cloudpickle)
            return await call()
        with pytest.raises(offload.SendError) as raised:
            call()
        return str(raised.value)

    outcome = kind.on_loop(main)
    if not kind.promises.by_name:
        assert outcome == ([7] if route == "map" else 7)
        return
    if what == "__main__":
        assert "__main__" in outcome
    else:
        assert "lambda" in outcome and "nested" in outcome, outcome  # what cannot be sent
    assert pool.stats().submitted == before


DASK_UNPICKLABLE_RESULT_BUG = (
    "BUG: DaskPool: a result the worker cannot pickle fails the call with Dask's own TypeError "
    "('Could not serialize object of type generator'), not SendError, and with no worker "
    "traceback, where the process pools raise SendError naming it when the call is awaited "
    "(choosing-a-pool.md, 'What can be sent'; pool_kinds.Promises.pickled: 'what cannot be "
    "raises SendError naming it')"
)


@pytest.mark.parametrize("route", ["run", "submit"])
def test_a_result_that_cannot_be_pickled_raises_send_error_when_awaited(
    kind: Kind, route: str, request: pytest.FixtureRequest
) -> None:
    if kind.base == "dask":
        request.applymarker(pytest.mark.xfail(strict=True, reason=DASK_UNPICKLABLE_RESULT_BUG))
    pool = kind.pool

    async def main() -> Any:
        call = kind.run(pool) if route == "run" else pool.submit
        if not kind.promises.pickled:  # passed by reference: the generator itself arrives
            return list(await call(cpu_work.return_generator))
        with pytest.raises(offload.SendError) as raised:
            await call(cpu_work.return_generator)
        return raised.value

    outcome = kind.on_loop(main)
    if not kind.promises.pickled:
        assert outcome == [0, 1, 2]
        return
    assert "generator" in str(outcome)
    assert isinstance(outcome.__cause__, offload.RemoteTraceback)


def test_a_refused_callable_is_named_by_its_type(kind: Kind) -> None:
    pool = kind.pool
    with pytest.raises(TypeError, match=r"\bint\b"):
        pool.submit(42)

    async def main() -> None:
        for call in (lambda: kind.run(pool)(b"x"), lambda: pool.map(b"x", [1]), lambda: pool.imap(b"x", [1])):
            with pytest.raises(TypeError, match=r"\bbytes\b"):
                call()

    kind.on_loop(main)
