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

import argparse
import asyncio
import concurrent.futures
import ctypes
import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any, Awaitable, Callable, Dict, List, Optional

PAGE = os.sysconf("SC_PAGE_SIZE")
BASELINE = "tpe_submit"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss() -> int:
    """VmHWM: the highest RSS this process reached."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def malloc_trim() -> bool:
    """Asks glibc's malloc to give the memory it keeps for reuse back to the system."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    trim(0)
    return True


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


class Meter:
    """Memory and time around the queueing and the drain of N calls (or, with unit="item", of
    N items buffered in a queue: memory_per_item.py)."""

    def __init__(self, traced: bool, unit: str = "task") -> None:
        self.traced = traced
        self.unit = unit
        self.out: Dict[str, float] = {}

    def before(self) -> None:
        gc.collect()
        self.rss0 = rss()
        self.traced0 = tracemalloc.get_traced_memory()[0] if self.traced else 0
        self.t0 = time.perf_counter()

    def pending(self, n: int) -> None:
        self.out["submit_s"] = time.perf_counter() - self.t0
        self.out[f"rss_per_{self.unit}"] = (rss() - self.rss0) / n
        if self.traced:
            self.out[f"traced_per_{self.unit}"] = (tracemalloc.get_traced_memory()[0] - self.traced0) / n

    def released(self) -> None:
        self.t1 = time.perf_counter()

    def drained(self) -> None:
        self.out["drain_s"] = time.perf_counter() - self.t1

    def after(self, results: int, expected_sum: int, total: int) -> None:
        if total != expected_sum:
            raise AssertionError(f"results sum to {total}, expected {expected_sum}")
        self.out["results"] = results
        gc.collect()
        self.out["rss_after_drain"] = rss()
        self.out["rss_peak"] = peak_rss()
        self.out["rss_start"] = self.rss0
        # What is left once malloc returns what it keeps for reuse: nothing should remain.
        self.out["rss_after_trim"] = rss() if malloc_trim() else float("nan")


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


CASES: Dict[str, Callable[[int, Meter], None]] = {
    "offload_submit": case_offload_submit,
    "offload_run": case_offload_run,
    "offload_run_task": case_offload_run_task,
    "offload_executor": case_offload_executor,
    "tpe_submit": case_tpe_submit,
    "to_thread": case_to_thread,
}
LABELS = {
    "offload_submit": "offload `Pool.submit`",
    "offload_run": "offload `Pool.run` (loop future)",
    "offload_run_task": "offload `Pool.run` in a Task",
    "offload_executor": "offload `Executor.submit`",
    "tpe_submit": "`ThreadPoolExecutor.submit`",
    "to_thread": "`asyncio.to_thread` (Task)",
}


def child(case: str, n: int, traced: bool) -> None:
    if traced:
        tracemalloc.start()
    meter = Meter(traced)
    CASES[case](n, meter)
    if meter.out.get("results") != n:
        raise AssertionError(f"{case}: {meter.out.get('results')} results, expected {n}")
    print(json.dumps(meter.out), flush=True)


def run_child(case: str, n: int, traced: bool) -> Dict[str, float]:
    argv = [sys.executable, os.path.abspath(__file__), "--child", case, "--tasks", str(n)]
    if traced:
        argv.append("--traced")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{case} (traced={traced}) failed:\n{proc.stdout}\n{proc.stderr}")
    out: Dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return out


def mib(x: float) -> str:
    return f"{x / 2**20:,.0f} MiB"


def table(n: int, rows: Dict[str, Dict[str, float]]) -> str:
    base = rows.get(BASELINE, {}).get("rss_per_task")
    lines = [
        "| case | tasks | bytes/pending task (RSS) | bytes/task (tracemalloc) | RSS vs ThreadPoolExecutor "
        "| time to submit | time to drain | peak RSS | RSS after drain (vs before) | after malloc_trim |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, r in rows.items():
        ratio = f"{r['rss_per_task'] / base:.2f}x" if base else "n/a"
        after = f"{mib(r['rss_after_drain'])} ({(r['rss_after_drain'] - r['rss_start']) / 2**20:+,.0f})"
        trimmed = f"{mib(r['rss_after_trim'])} ({(r['rss_after_trim'] - r['rss_start']) / 2**20:+,.0f})"
        lines.append(
            f"| {LABELS[case]} | {int(r['results']):,} | {r['rss_per_task']:,.0f} "
            f"| {r.get('traced_per_task', float('nan')):,.0f} | {ratio} | {r['submit_s']:.2f} s "
            f"| {r['drain_s']:.2f} s | {mib(r['rss_peak'])} | {after} | {trimmed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated, among: " + ", ".join(CASES)
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tasks, args.traced)
        return

    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {sorted(unknown)}")
    rows: Dict[str, Dict[str, float]] = {}
    for case in cases:
        print(f"{case}: {args.tasks:,} tasks ...", file=sys.stderr, flush=True)
        row = run_child(case, args.tasks, traced=False)
        row["traced_per_task"] = run_child(case, args.tasks, traced=True)["traced_per_task"]
        rows[case] = row
    import platform

    import offload

    print(f"Memory per pending task: {args.tasks:,} calls queued behind one blocked worker "
          f"(Python {platform.python_version()}, offload {offload.__version__}, {os.cpu_count()} CPUs)\n")
    print(table(args.tasks, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tasks": args.tasks, "python": platform.python_version(), "cases": rows,
                       "labels": {case: LABELS[case] for case in rows}}, f, indent=2)


if __name__ == "__main__":
    main()
