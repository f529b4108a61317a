"""Memory per pending task: a million queued calls, offload against the standard library.

    .venv/bin/python benchmarks/memory_per_task.py [--tasks N] [--json PATH] [--cases a,b]

Each case runs in a fresh interpreter, twice: once for RSS and times, once under tracemalloc
(which slows allocation and adds its own memory, so its run is not timed). In each, a pool of
ONE worker is blocked on an Event, N calls of a trivial function are queued behind it, and
the memory they hold is measured while all N are pending; then the worker is released and
every result is counted (the N results must all arrive, with the right values).

What one "pending task" holds, per case:

* ``offload Pool.submit``: an ``offload.Future`` (Python wrapper + native future) and the
  native job (callable, argument tuple, context) in the pool's queue.
* ``offload Pool.run``: what ``pool.run(fn, i)`` returns, awaited later: the loop's own
  ``asyncio.Future`` plus the native job. ``asyncio.ensure_future`` of it is the same object,
  so no Task is involved.
* ``offload Pool.run in a Task``: the same wrapped in a Task (a coroutine awaiting it), as
  code that spawns one task per call does; the fair comparison with ``asyncio.to_thread``,
  which is a coroutine and needs a Task to start.
* ``offload Executor.submit``: offload's ``concurrent.futures`` face: a
  ``concurrent.futures.Future`` plus the native job.
* ``ThreadPoolExecutor.submit``: a ``concurrent.futures.Future`` plus the ``_WorkItem`` in the
  executor's ``SimpleQueue``.
* ``asyncio.to_thread``: a Task running the ``to_thread`` coroutine, its ``functools.partial``
  and context copy, the executor's ``concurrent.futures.Future`` and ``_WorkItem``, and the
  ``asyncio.Future`` chained to it (the loop's default executor is a one-worker
  ``ThreadPoolExecutor`` for this case).

Columns: bytes per pending task from RSS and from tracemalloc (Python allocations only:
offload's native jobs are invisible to it, so its figure is lower than its RSS one by design),
the RSS ratio to ``ThreadPoolExecutor.submit``, the time to queue the N calls and to drain
them once released, the peak RSS (VmHWM), the RSS left after the drain (results and futures
dropped, ``gc.collect()`` done: mostly memory malloc keeps for reuse) and after
``malloc_trim(0)`` hands that back (what remains would be a leak). RSS is taken after the N
submissions, with no collection in between: each case pays for its own garbage collector
work, as in a real program.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Dict, Optional

from memory_harness import Case, MemoryBenchmark, Meter, Row


def identity(x: int) -> int:
    return x


class Blocked:
    """Keeps a one-worker pool's only worker busy until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def block(self) -> None:
        self.started.set()
        if not self.release.wait(600):
            raise RuntimeError("never released")


# ----------------------------------------------------------------------------------------------
# The cases: each queues n calls of identity(i) behind a blocked worker, measures, releases,
# and counts every result.


def _thread_case(n: int, meter: Meter, pool: Any) -> None:
    """A thread case: `pool.submit` of n calls, kept as the futures it returns."""
    gate = Blocked()
    pool.submit(gate.block)
    gate.started.wait()
    meter.before()
    futures = [pool.submit(identity, i) for i in range(n)]
    meter.pending(n)
    meter.released()
    gate.release.set()
    futures[-1].result()  # calls start in order, on one worker: the last one ends last
    meter.drained()
    results = sum(1 for f in futures if f.done() and not f.cancelled())
    total = sum(f.result() for f in futures)
    del futures
    meter.after(results, n * (n - 1) // 2, total)
    pool.shutdown()


def case_offload_submit(n: int, meter: Meter) -> None:
    import offload

    _thread_case(n, meter, offload.Pool(1))


def case_offload_executor(n: int, meter: Meter) -> None:
    import offload

    _thread_case(n, meter, offload.Executor(1))


def case_tpe_submit(n: int, meter: Meter) -> None:
    _thread_case(n, meter, concurrent.futures.ThreadPoolExecutor(1))


async def _await(aw: Awaitable[int]) -> int:
    return await aw


def _loop_case(n: int, meter: Meter, start: Callable[[Any, int], "asyncio.Future[int]"],
               make_pool: Callable[[], Any], block: Callable[[Any, Blocked], object],
               setup: Optional[Callable[[asyncio.AbstractEventLoop, Any], None]] = None,
               settle: bool = False) -> None:
    """A loop case: `start(pool, i)` returns what is kept per call (a future or a Task);
    with `settle`, the loop runs once more so that every Task has taken its first step (for
    to_thread: reached the executor) before the memory is measured."""

    async def main() -> None:
        pool = make_pool()
        if setup is not None:
            setup(asyncio.get_running_loop(), pool)
        gate = Blocked()
        block(pool, gate)
        gate.started.wait()  # blocks the loop a moment; nothing else runs yet
        meter.before()
        pending = [start(pool, i) for i in range(n)]
        if settle:
            await asyncio.sleep(0)
        meter.pending(n)
        meter.released()
        gate.release.set()
        await pending[-1]
        for p in pending:  # the last one came last; these are done, awaiting costs nothing
            if not p.done():
                await p
        meter.drained()
        results = sum(1 for p in pending if p.done() and not p.cancelled())
        total = sum(p.result() for p in pending)
        del pending
        meter.after(results, n * (n - 1) // 2, total)
        if hasattr(pool, "shutdown"):
            pool.shutdown()

    asyncio.run(main())


def case_offload_run(n: int, meter: Meter) -> None:
    import offload

    _loop_case(
        n, meter,
        start=lambda pool, i: asyncio.ensure_future(pool.run(identity, i)),  # the future itself
        make_pool=lambda: offload.Pool(1),
        block=lambda pool, gate: pool.submit(gate.block),
    )


def case_offload_run_task(n: int, meter: Meter) -> None:
    import offload

    _loop_case(
        n, meter,
        start=lambda pool, i: asyncio.ensure_future(_await(pool.run(identity, i))),  # a Task
        make_pool=lambda: offload.Pool(1),
        block=lambda pool, gate: pool.submit(gate.block),
        settle=True,  # each Task has started and waits on its future, as to_thread's do
    )


def case_to_thread(n: int, meter: Meter) -> None:
    def setup(loop: asyncio.AbstractEventLoop, pool: Any) -> None:
        loop.set_default_executor(pool)

    _loop_case(
        n, meter,
        start=lambda pool, i: asyncio.ensure_future(asyncio.to_thread(identity, i)),
        make_pool=lambda: concurrent.futures.ThreadPoolExecutor(1),
        block=lambda pool, gate: pool.submit(gate.block),
        setup=setup,
        settle=True,
    )


CASES = {
    "offload_submit": Case(case_offload_submit, "offload `Pool.submit`"),
    "offload_run": Case(case_offload_run, "offload `Pool.run` (loop future)"),
    "offload_run_task": Case(case_offload_run_task, "offload `Pool.run` in a Task"),
    "offload_executor": Case(case_offload_executor, "offload `Executor.submit`"),
    "tpe_submit": Case(case_tpe_submit, "`ThreadPoolExecutor.submit`"),
    "to_thread": Case(case_to_thread, "`asyncio.to_thread` (Task)"),
}
BASELINE = "tpe_submit"  # the RSS ratio column divides by its bytes per task


def baseline(rows: Dict[str, Row]) -> Optional[float]:
    return rows.get(BASELINE, {}).get("rss_per_task")


BENCHMARK = MemoryBenchmark(
    __file__, "task", held="pending", what="calls queued behind one blocked worker", cases=CASES,
    ratio_base=baseline, ratio_title="RSS vs ThreadPoolExecutor",
)

if __name__ == "__main__":
    BENCHMARK.main(__doc__)
