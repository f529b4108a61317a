"""The pool contract: every pool kind is an ``offload.PoolLike`` (mypy checks the signatures
in typed_usage.py; these check the objects), and a pool subclass's own ``run`` is the one
called."""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import Any, Callable, Iterator, List

import pytest

import offload


def interpreter_pool() -> Any:
    if sys.version_info < (3, 12):
        pytest.skip("InterpreterPool needs Python >= 3.12")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*gh-119213", category=RuntimeWarning)
        return offload.InterpreterPool(workers=1)


def dask_pool() -> Any:
    pytest.importorskip("distributed", reason="DaskPool needs offload[dask]")
    return offload.DaskPool()  # starts nothing until used


MAKERS = {
    "default": offload.default_pool,
    "thread": lambda: offload.Pool(workers=1),
    "interpreter": interpreter_pool,
    "process": lambda: offload.ProcessPool(workers=1),
    "dask": dask_pool,
}


@pytest.fixture(params=sorted(MAKERS))
def new_pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    pool = MAKERS[request.param]()
    yield pool
    if pool is not offload.default_pool():
        pool.shutdown(wait=True)


def test_every_pool_kind_is_pool_like(new_pool: Any) -> None:
    assert isinstance(new_pool, offload.PoolLike)


def test_an_executor_is_not_pool_like() -> None:
    with offload.Executor(max_workers=1) as executor:
        assert not isinstance(executor, offload.PoolLike)  # no run, imap, stats or closed


def test_the_futures_of_submit_are_future_like() -> None:
    with offload.Pool(workers=1) as pool:
        assert isinstance(pool.submit(pow, 2, 3), offload.FutureLike)
    assert not isinstance(object(), offload.FutureLike)


def test_a_pool_subclass_that_overrides_run_has_its_run_called(arun: Callable[..., Any]) -> None:
    ran: List[str] = []

    class Logged(offload.Pool):
        def run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            ran.append(fn.__name__)
            return super().run(fn, *args, **kwargs)

    async def main() -> List[Any]:
        async with Logged(workers=1) as pool:
            assert inspect.ismethod(pool.run)
            results = [await pool.run(pow, 2, 5)]
            results += [n async for n in pool.imap(abs, [-1, -2])]  # imap calls run
            return results

    assert arun(main) == [32, 1, 2]
    assert ran == ["pow", "abs", "abs"]


def test_a_pool_subclass_that_keeps_run_gets_the_native_run(arun: Callable[..., Any]) -> None:
    class Named(offload.Pool):
        pass

    async def main() -> int:
        async with Named(workers=1) as pool:
            assert not inspect.ismethod(pool.run)  # the native function: no Python frame
            return await pool.run(pow, 2, 5)  # type: ignore[no-any-return]

    assert arun(main) == 32
