"""offload against the alternatives, per call, in bulk and in latency. Run with `make bench`.

Three families, each measured against its alternatives in the same run; docs/benchmarks.md is
rendered from the JSON by report.py, as ratios to the best alternative:

* ``test_calls[<loop>-<work>-<burst>-<candidate>]``: bursts of 1 (one call awaited at a time),
  100 and 10,000 (a gather), of a trivial function and of ~50 us of GIL-releasing work
  (sha256), on the default loop and on uvloop; the candidates are ``offload.run``,
  ``asyncio.to_thread``, ``loop.run_in_executor`` on a ``ThreadPoolExecutor`` and
  ``anyio.to_thread.run_sync``.
* ``test_bulk[<work>-<candidate>]``: many items at once: ``pool.map`` and ``pool.imap``
  against a gather of ``to_thread`` and ``ThreadPoolExecutor.map``.
* ``test_latency[<loop>-<candidate>]``: the distribution of one round trip (p50, p90, p99),
  from thousands of single calls awaited one after another, each timed alone.

The paired tests at the end back the goals: the baseline runs, timed by hand, before every
timed offload round, so both see the same machine conditions.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict, List, Optional

import pytest

import offload
from harness import drive, drive_paired

try:
    import anyio.to_thread
except ImportError:  # pragma: no cover - anyio is in the bench extras
    anyio = None


def f(x: int) -> int:
    return x


# A GIL-releasing call of about 50 us: sha256 of a block sized at import to take that long.
def _calibrate_block() -> bytes:
    size = 1 << 12
    while True:
        block = b"x" * size
        start = time.perf_counter()
        for _ in range(50):
            hashlib.sha256(block)
        if (time.perf_counter() - start) / 50 >= 50e-6 or size > 1 << 24:
            return block
        size = size * 5 // 4


BLOCK = _calibrate_block()


def hash_block(_: int) -> bytes:
    return hashlib.sha256(BLOCK).digest()


WORK = {"trivial": f, "50us": hash_block}
Submit = Callable[..., Awaitable[Any]]
LOOPS = ["asyncio", "uvloop"]
CANDIDATES = ["offload", "to_thread", "executor", "anyio"]
BURSTS = [1, 100, 10_000]
SEQUENTIAL = 200  # a burst of 1: this many calls, one awaited after the other, per round


def submitter(candidate: str, tpe: ThreadPoolExecutor) -> Submit:
    """The candidate's way to run fn(x) off the loop and await it."""
    if candidate == "offload":
        return offload.run
    if candidate == "to_thread":
        return asyncio.to_thread
    if candidate == "executor":
        def in_executor(fn: Callable[[int], Any], x: int) -> Awaitable[Any]:
            return asyncio.get_running_loop().run_in_executor(tpe, fn, x)

        return in_executor
    if candidate == "anyio":
        if anyio is None:
            pytest.skip("anyio is not installed")
        return anyio.to_thread.run_sync
    raise AssertionError(candidate)


def floor_gather(n: int) -> Callable[[], Awaitable[List[int]]]:
    """The asyncio floor: n loop futures resolved with call_soon and gathered, no threads."""

    async def main() -> List[int]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(n)]
        for i, fut in enumerate(futures):
            loop.call_soon(fut.set_result, i)
        return await asyncio.gather(*futures)

    return main


def gather_of(submit: Submit, fn: Callable[[int], Any], n: int) -> Callable[[], Awaitable[List[Any]]]:
    async def main() -> List[Any]:
        return await asyncio.gather(*[submit(fn, i) for i in range(n)])

    return main


def sequential(submit: Submit, fn: Callable[[int], Any], n: int) -> Callable[[], Awaitable[List[Any]]]:
    async def main() -> List[Any]:
        return [await submit(fn, i) for i in range(n)]

    return main


def rounds_for(candidate: str, work: str, burst: int) -> int:
    """Enough rounds for a stable median in a bounded time: the slow candidates' 10,000-call
    rounds take about a second each."""
    if burst == 10_000:
        return 15 if candidate == "offload" else 3
    if burst == 100:
        return 60
    return 10 if work == "50us" else 15


@pytest.mark.parametrize("candidate", CANDIDATES)
@pytest.mark.parametrize("burst", BURSTS)
@pytest.mark.parametrize("work", list(WORK))
def test_calls(benchmark: Any, loop: asyncio.AbstractEventLoop, loop_kind: str, tpe: ThreadPoolExecutor,
               work: str, burst: int, candidate: str) -> None:
    submit = submitter(candidate, tpe)
    fn = WORK[work]
    calls = SEQUENTIAL if burst == 1 else burst
    benchmark.group = f"calls-{work}-{burst}-{loop_kind}"
    benchmark.extra_info.update(calls=calls, loop=loop_kind, work=work, burst=burst, candidate=candidate)
    make = sequential(submit, fn, calls) if burst == 1 else gather_of(submit, fn, calls)
    check = list(range(calls)) if work == "trivial" else None
    drive(benchmark, loop, make, rounds_for(candidate, work, burst), check)


# -- bulk: many items in one call -------------------------------------------------------------

BULK = {"trivial": 10_000, "50us": 1_000}
BULK_CANDIDATES = ["pool_map", "pool_imap", "to_thread_gather", "executor_map"]


def bulk(candidate: str, fn: Callable[[int], Any], n: int,
         tpe: ThreadPoolExecutor) -> Callable[[], Awaitable[List[Any]]]:
    pool = offload.default_pool()

    async def pool_map() -> List[Any]:
        return await pool.map(fn, range(n))

    async def pool_imap() -> List[Any]:
        return [r async for r in pool.imap(fn, range(n))]

    async def executor_map() -> List[Any]:
        # From a coroutine, the standard library's bulk call must leave the loop: one
        # run_in_executor of the whole blocking map (its workers run the items).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: list(tpe.map(fn, range(n))))

    return {
        "pool_map": pool_map,
        "pool_imap": pool_imap,
        "to_thread_gather": gather_of(asyncio.to_thread, fn, n),
        "executor_map": executor_map,
    }[candidate]


@pytest.mark.parametrize("candidate", BULK_CANDIDATES)
@pytest.mark.parametrize("work", list(WORK))
def test_bulk(benchmark: Any, default_loop: asyncio.AbstractEventLoop, tpe: ThreadPoolExecutor,
              work: str, candidate: str) -> None:
    n = BULK[work]
    benchmark.group = f"bulk-{work}"
    benchmark.extra_info.update(calls=n, work=work, candidate=candidate)
    rounds = 3 if candidate == "to_thread_gather" else 15
    check = list(range(n)) if work == "trivial" else None
    drive(benchmark, default_loop, bulk(candidate, WORK[work], n, tpe), rounds, check)


# -- latency: one round trip at a time ----------------------------------------------------------

LATENCY_CALLS = 3_000
PERCENTILES = (50, 90, 99)


def percentile(sorted_values: List[float], p: float) -> float:
    """The p-th percentile by the nearest-rank method."""
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_latency(benchmark: Any, loop: asyncio.AbstractEventLoop, loop_kind: str,
                 tpe: ThreadPoolExecutor, candidate: str) -> None:
    submit = submitter(candidate, tpe)
    samples: List[float] = []

    async def timed_calls() -> None:
        clock = time.perf_counter
        for i in range(LATENCY_CALLS):
            start = clock()
            await submit(f, i)
            samples.append(clock() - start)

    loop.run_until_complete(sequential(submit, f, 200)())  # warm: threads started, caches hot
    samples.clear()
    gc.collect()
    benchmark.pedantic(lambda: loop.run_until_complete(timed_calls()), rounds=1, iterations=1)
    samples.sort()
    benchmark.group = f"latency-{loop_kind}"
    benchmark.extra_info.update(
        loop=loop_kind, candidate=candidate, calls=len(samples),
        percentiles={str(p): percentile(samples, p) for p in PERCENTILES},
        # every 10th sample of the sorted distribution: enough for a CDF plot
        cdf=samples[::10],
    )


# -- paired measurements for the goals ---------------------------------------------------------
# On a noisy machine, two scenarios measured one after the other can see different conditions.
# These tests alternate: before each timed offload round, the baseline runs once, timed by
# hand, in the same loop. The report takes each goal's ratio from these pairs.

N = 10_000
SEQ = 200


@pytest.mark.benchmark(group="paired")
def test_paired_gather_10000_vs_floor(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    drive_paired(benchmark, loop, gather_of(offload.run, f, N), floor_gather(N), rounds=25)


@pytest.mark.benchmark(group="paired")
def test_paired_round_trip_vs_to_thread(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    drive_paired(benchmark, loop, sequential(offload.run, f, SEQ), sequential(asyncio.to_thread, f, SEQ),
                 rounds=15)


def test_every_candidate_returns_the_right_results(default_loop: asyncio.AbstractEventLoop,
                                                   tpe: ThreadPoolExecutor) -> None:
    """Not a benchmark: every scenario's candidates compute the same thing."""
    expected: Dict[str, Any] = {}
    for name, fn in WORK.items():
        expected[name] = [fn(i) for i in range(20)]
        for candidate in CANDIDATES:
            submit = submitter(candidate, tpe)
            assert default_loop.run_until_complete(gather_of(submit, fn, 20)()) == expected[name]
            assert default_loop.run_until_complete(sequential(submit, fn, 20)()) == expected[name]
        for candidate in BULK_CANDIDATES:
            assert default_loop.run_until_complete(bulk(candidate, fn, 20, tpe)()) == expected[name]
