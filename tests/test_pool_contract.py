"""The pool contract: a pool subclass's own ``run`` is the one called."""

from __future__ import annotations

import inspect
from typing import Any, Callable, List

import offload


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
