"""offload as a drop-in, measured where asyncio.to_thread's patterns live. Run with `make bench`.

* ``test_paired_create_task_10000_vs_to_thread[<loop>]``: 10,000 calls each handed to
  ``asyncio.create_task`` (as TaskGroup and most applications do), then gathered:
  ``offload.run`` against ``asyncio.to_thread``.
* ``test_paired_from_thread_vs_best[<loop>]``: a worker calls a function on the loop and waits
  for its result, 500 times in a row: ``offload.from_thread.run_sync`` against
  ``asyncio.run_coroutine_threadsafe(...).result()`` and ``anyio.from_thread.run_sync``
  (the best of the two is the baseline).

Both are paired (harness.drive_paired): each baseline round runs just before each offload round.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Dict, List

import pytest

import offload
from harness import drive_paired

try:
    import anyio.from_thread
    import anyio.to_thread
except ImportError:  # pragma: no cover - anyio is in the bench extras
    anyio = None

TASKS = 10_000
CALLBACKS = 500


def f(x: int) -> int:
    return x


def create_tasks(submit: Callable[..., Any], n: int) -> Callable[[], Awaitable[List[Any]]]:
    async def main() -> List[Any]:
        tasks = [asyncio.create_task(submit(f, i)) for i in range(n)]
        return await asyncio.gather(*tasks)

    return main


@pytest.mark.benchmark(group="paired")
def test_paired_create_task_10000_vs_to_thread(benchmark: Any, loop: asyncio.AbstractEventLoop, loop_kind: str) -> None:
    benchmark.extra_info.update(loop=loop_kind, calls=TASKS)
    drive_paired(benchmark, loop, create_tasks(offload.run, TASKS), create_tasks(asyncio.to_thread, TASKS), rounds=7)
    assert loop.run_until_complete(create_tasks(offload.run, 100)()) == list(range(100))


async def _noop() -> int:
    return 0


def callbacks() -> Dict[str, Callable[[], Awaitable[Any]]]:
    """Each candidate: a worker thread calling back into the loop CALLBACKS times."""

    async def offload_run_sync() -> None:
        def worker() -> None:
            for _ in range(CALLBACKS):
                offload.from_thread.run_sync(int)

        await offload.run(worker)

    async def run_coroutine_threadsafe() -> None:
        loop = asyncio.get_running_loop()

        def worker() -> None:
            for _ in range(CALLBACKS):
                asyncio.run_coroutine_threadsafe(_noop(), loop).result()

        await asyncio.to_thread(worker)

    async def anyio_run_sync() -> None:
        def worker() -> None:
            for _ in range(CALLBACKS):
                anyio.from_thread.run_sync(int)

        await anyio.to_thread.run_sync(worker)

    found: Dict[str, Callable[[], Awaitable[Any]]] = {
        "offload": offload_run_sync, "run_coroutine_threadsafe": run_coroutine_threadsafe}
    if anyio is not None:
        found["anyio"] = anyio_run_sync
    return found


@pytest.mark.benchmark(group="paired")
def test_paired_from_thread_vs_best(benchmark: Any, loop: asyncio.AbstractEventLoop, loop_kind: str) -> None:
    candidates = callbacks()
    subject = candidates.pop("offload")
    benchmark.extra_info.update(loop=loop_kind, calls=CALLBACKS)
    loop.run_until_complete(subject())  # warm: the default pool's worker is started
    drive_paired(benchmark, loop, subject, candidates, rounds=15)
