"""Contract: what offload hands out works wherever an asyncio.to_thread coroutine works.

Every pattern below runs over every pool kind (pool_kinds.py), for `run` and for `map`, on the
default loop and on uvloop. In a running loop a call is a Call: the loop's future, which is
also a coroutine; with no running loop it is a coroutine that starts the call when first
awaited, on whatever loop awaits it. The future of `submit` (offload.Future, DaskFuture),
awaitable from any loop, is a coroutine for asyncio too: it goes through the same patterns.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from typing import Any, Awaitable, Callable, Iterator

import pytest

import cpu_work
import offload
import pool_kinds
from conftest import new_loop
from pool_kinds import close_pool, make_pool

TIMEOUT = 60.0
MakeCall = Callable[[], Awaitable[Any]]


@pytest.fixture(scope="module", autouse=True)
def _dask_cluster_closed_at_the_end() -> Iterator[None]:
    yield
    pool_kinds.close_session()


@pytest.fixture(scope="module", params=pool_kinds.KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Module-scoped, so that pytest runs the tests kind by kind: the Dask cluster (last) never
    runs while InterpreterPools start (see pool_kinds.dask_cluster)."""
    return str(request.param)


@pytest.fixture
def pool(kind: str) -> Iterator[Any]:
    made = make_pool(kind)
    try:
        yield made
    finally:
        close_pool(made)


@pytest.fixture(params=["run", "map"])
def call(request: pytest.FixtureRequest, pool: Any) -> "tuple[MakeCall, Any]":
    """(a function that makes one call's awaitable, what awaiting it gives)."""
    if request.param == "run":
        run = offload.run if pool is offload.default_pool() else pool.run
        return (lambda: run(cpu_work.square, 7)), 49
    return (lambda: pool.map(cpu_work.square, [1, 2, 3])), [1, 4, 9]


def on_fresh_loop(loop_kind: str, pool: Any, main: Callable[[], Awaitable[Any]]) -> Any:
    """Runs main() on a new loop of the kind, closes a DaskPool that started on it, closes it."""
    loop = new_loop(loop_kind)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    finally:
        if isinstance(pool, offload.DaskPool) and pool._loop is loop:
            loop.run_until_complete(pool.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- in a running loop --------------------------------------------------------------------


async def awaited(make: MakeCall) -> Any:
    return await make()


async def create_task(make: MakeCall) -> Any:
    return await asyncio.create_task(make())  # type: ignore[arg-type]


async def loop_create_task(make: MakeCall) -> Any:
    return await asyncio.get_running_loop().create_task(make())  # type: ignore[arg-type]


async def task_group(make: MakeCall) -> Any:
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.TaskGroup needs Python 3.11")
    async with asyncio.TaskGroup() as group:
        task = group.create_task(make())  # type: ignore[arg-type]
    return task.result()


async def ensure_future(make: MakeCall) -> Any:
    return await asyncio.ensure_future(make())


async def gather(make: MakeCall) -> Any:
    first, second = await asyncio.gather(make(), make())
    assert first == second
    return first


async def wait_for(make: MakeCall) -> Any:
    return await asyncio.wait_for(make(), TIMEOUT)


async def timeout(make: MakeCall) -> Any:
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout needs Python 3.11")
    async with asyncio.timeout(TIMEOUT):
        return await make()


async def shield(make: MakeCall) -> Any:
    return await asyncio.shield(make())


async def as_completed(make: MakeCall) -> Any:
    (first,) = list(asyncio.as_completed([make()]))
    return await first


async def wait_on_tasks(make: MakeCall) -> Any:
    done, pending = await asyncio.wait([asyncio.create_task(make())])  # type: ignore[arg-type]
    assert not pending
    return done.pop().result()


IN_LOOP = [awaited, create_task, loop_create_task, task_group, ensure_future, gather, wait_for,
           timeout, shield, as_completed, wait_on_tasks]


@pytest.mark.parametrize("pattern", IN_LOOP, ids=lambda p: p.__name__)
def test_in_a_running_loop(pattern: Any, call: Any, pool: Any, loop_kind: str) -> None:
    make, expected = call
    assert on_fresh_loop(loop_kind, pool, lambda: pattern(make)) == expected


# -- with no running loop: the call starts on the loop that first awaits it -------------------


def asyncio_run(make: MakeCall, loop_kind: str, pool: Any) -> Any:
    if isinstance(pool, offload.DaskPool):
        if sys.version_info < (3, 11):
            pytest.skip("a DaskPool started by asyncio.run can be closed there only with asyncio.Runner (3.11)")
        factory = (lambda: new_loop(loop_kind))
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(make())  # type: ignore[arg-type]
            runner.run(pool.aclose())
        return result
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(make())  # type: ignore[arg-type]
    return asyncio.run(make())  # type: ignore[arg-type]


def run_until_complete(make: MakeCall, loop_kind: str, pool: Any) -> Any:
    loop = new_loop(loop_kind)
    try:
        result = loop.run_until_complete(make())
        if isinstance(pool, offload.DaskPool):
            loop.run_until_complete(pool.aclose())
        return result
    finally:
        loop.close()


def run_coroutine_threadsafe(make: MakeCall, loop_kind: str, pool: Any) -> Any:
    loop = new_loop(loop_kind)
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        result = asyncio.run_coroutine_threadsafe(make(), loop).result(TIMEOUT)  # type: ignore[arg-type]
        if isinstance(pool, offload.DaskPool):
            asyncio.run_coroutine_threadsafe(pool.aclose(), loop).result(TIMEOUT)
        return result
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(TIMEOUT)
        loop.close()


def made_without_a_loop_awaited_in_one(make: MakeCall, loop_kind: str, pool: Any) -> Any:
    pending = make()  # nothing runs yet

    async def main() -> Any:
        return await pending

    return on_fresh_loop(loop_kind, pool, main)


NO_LOOP = [asyncio_run, run_until_complete, run_coroutine_threadsafe, made_without_a_loop_awaited_in_one]


@pytest.mark.parametrize("pattern", NO_LOOP, ids=lambda p: p.__name__)
def test_with_no_running_loop(pattern: Any, call: Any, pool: Any, loop_kind: str) -> None:
    make, expected = call
    assert pattern(make, loop_kind, pool) == expected


# -- the future of submit: a coroutine for asyncio too (AwaitedAsCoroutine) -------------------


@pytest.mark.parametrize("pattern", IN_LOOP, ids=lambda p: p.__name__)
def test_the_future_of_submit_in_a_running_loop(pattern: Any, pool: Any, loop_kind: str) -> None:
    make = lambda: pool.submit(cpu_work.square, 7)  # noqa: E731
    assert on_fresh_loop(loop_kind, pool, lambda: pattern(make)) == 49


@pytest.mark.parametrize("pattern", NO_LOOP, ids=lambda p: p.__name__)
def test_the_future_of_submit_with_no_running_loop(pattern: Any, pool: Any, loop_kind: str) -> None:
    if isinstance(pool, offload.DaskPool):
        pytest.skip(
            "a DaskPool's submit from outside its loop needs the pool started and its loop "
            "running (DaskPool.submit): test_contract_calls.py submits from a thread"
        )
    make = lambda: pool.submit(cpu_work.square, 7)  # noqa: E731
    assert pattern(make, loop_kind, pool) == 49


def test_nothing_is_submitted_before_a_lazy_call_is_awaited(call: Any, pool: Any, loop_kind: str) -> None:
    make, expected = call
    if isinstance(pool, offload.DaskPool):
        before = pool.stats().submitted
    else:
        before = pool.stats().submitted
    pending = make()
    assert asyncio.iscoroutine(pending) and not asyncio.isfuture(pending)
    assert pool.stats().submitted == before

    async def main() -> Any:
        return await pending

    assert on_fresh_loop(loop_kind, pool, main) == expected
    assert pool.stats().submitted > before


def test_a_lazy_call_never_awaited_warns_and_never_runs(call: Any, pool: Any) -> None:
    make, _ = call
    before = pool.stats().submitted
    with pytest.warns(RuntimeWarning, match="was never awaited"):
        pending = make()
        del pending
        import gc

        gc.collect()
    assert pool.stats().submitted == before


def test_a_call_of_a_running_loop_is_its_future_and_a_coroutine(call: Any, pool: Any, loop_kind: str) -> None:
    make, expected = call

    async def main() -> Any:
        made = make()
        assert asyncio.isfuture(made) and asyncio.iscoroutine(made)
        assert isinstance(made, asyncio.Future) and isinstance(made, offload.Call)
        assert made.get_loop() is asyncio.get_running_loop()
        return await made

    assert on_fresh_loop(loop_kind, pool, main) == expected


# -- asyncio.wait: refuses coroutines (3.11+), so it refuses calls too ----------------------


def test_asyncio_wait_takes_calls_as_it_takes_coroutines(call: Any, pool: Any, loop_kind: str) -> None:
    """asyncio.wait refuses anything create_task accepts: a decision of asyncio's (3.11+), which
    to_thread's coroutines meet too. Before 3.11 it accepts them with a DeprecationWarning."""
    make, expected = call

    async def main() -> Any:
        if sys.version_info >= (3, 11):
            call = make()
            with pytest.raises(TypeError, match="coroutines is forbidden"):
                await asyncio.wait([call])
            return await call  # the call itself was not harmed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done, _ = await asyncio.wait([make()])
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)
        return done.pop().result()

    assert on_fresh_loop(loop_kind, pool, main) == expected
