"""offload against the alternatives, per call and in bulk. Run with `make bench`.

Names follow `<scenario>[<loop>]`; docs/benchmarks.md is rendered from the JSON by report.py
as ratios against the baseline of the same group and loop, measured in the same run.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import time

import pytest

import offload

try:
    import anyio.to_thread
except ImportError:  # pragma: no cover
    anyio = None


def f(x: int) -> int:
    return x


# A GIL-releasing call of about 50 us: sha256 of a block sized at import to take that long.
def _calibrate_block() -> bytes:
    size = 1 << 16
    while True:
        block = b"x" * size
        start = time.perf_counter()
        for _ in range(20):
            hashlib.sha256(block)
        if (time.perf_counter() - start) / 20 >= 50e-6 or size > 1 << 24:
            return block
        size *= 2


BLOCK = _calibrate_block()


def hash_block(_: int) -> bytes:
    return hashlib.sha256(BLOCK).digest()


def floor_gather(n: int):
    """The asyncio floor: n loop futures resolved with call_soon and gathered, no threads."""

    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(n)]
        for i, fut in enumerate(futures):
            loop.call_soon(fut.set_result, i)
        return await asyncio.gather(*futures)

    return main


def gather_of(submit, fn, n: int):
    async def main():
        return await asyncio.gather(*[submit(fn, i) for i in range(n)])

    return main


def executor_gather(executor, fn, n: int):
    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*[loop.run_in_executor(executor, fn, i) for i in range(n)])

    return main


def anyio_gather(fn, n: int):
    async def main():
        return await asyncio.gather(*[anyio.to_thread.run_sync(fn, i) for i in range(n)])

    return main


def mapped(pool, fn, items):
    async def main():
        return await pool.map(fn, items)

    return main


def sequential(submit, fn, n: int):
    async def main():
        for i in range(n):
            await submit(fn, i)

    return main


def collect_garbage() -> None:
    """Before every round: each round starts from the same heap, whatever ran before it (a
    full collection left over from an earlier scenario would otherwise land in a later one)."""
    gc.collect()


def drive(benchmark, loop, make, rounds: int, check=None):
    result = benchmark.pedantic(
        lambda: loop.run_until_complete(make()), setup=collect_garbage, rounds=rounds, warmup_rounds=1)
    if check is not None:
        assert result == check


# -- gather of 10,000 trivial calls -------------------------------------------------------

N = 10_000
EXPECTED = list(range(N))


@pytest.mark.benchmark(group="gather-10000")
def test_gather_10000_floor(benchmark, loop):
    drive(benchmark, loop, floor_gather(N), rounds=15, check=EXPECTED)


@pytest.mark.benchmark(group="gather-10000")
def test_gather_10000_offload_run(benchmark, loop):
    drive(benchmark, loop, gather_of(offload.run, f, N), rounds=15, check=EXPECTED)


@pytest.mark.benchmark(group="gather-10000")
def test_gather_10000_to_thread(benchmark, loop):
    drive(benchmark, loop, gather_of(asyncio.to_thread, f, N), rounds=3, check=EXPECTED)


@pytest.mark.benchmark(group="gather-10000")
def test_gather_10000_run_in_executor(benchmark, default_loop, tpe):
    drive(benchmark, default_loop, executor_gather(tpe, f, N), rounds=3, check=EXPECTED)


@pytest.mark.skipif(anyio is None, reason="anyio is not installed")
@pytest.mark.benchmark(group="gather-10000")
def test_gather_10000_anyio(benchmark, default_loop):
    drive(benchmark, default_loop, anyio_gather(f, N), rounds=3, check=EXPECTED)


# -- map of 10,000 trivial calls ----------------------------------------------------------


@pytest.mark.benchmark(group="map-10000")
def test_map_10000_offload_pool_map(benchmark, default_loop):
    pool = offload.default_pool()
    drive(benchmark, default_loop, mapped(pool, f, range(N)), rounds=30, check=EXPECTED)


@pytest.mark.benchmark(group="map-10000")
def test_map_10000_to_thread(benchmark, default_loop):
    drive(benchmark, default_loop, gather_of(asyncio.to_thread, f, N), rounds=3, check=EXPECTED)


@pytest.mark.benchmark(group="map-10000")
def test_map_10000_executor_map(benchmark, tpe):
    result = benchmark.pedantic(
        lambda: list(tpe.map(f, range(N))), setup=collect_garbage, rounds=3, warmup_rounds=1)
    assert result == EXPECTED


# -- one call at a time --------------------------------------------------------------------

SEQ = 200


@pytest.mark.benchmark(group="round-trip-200")
def test_round_trip_offload_run(benchmark, loop):
    drive(benchmark, loop, sequential(offload.run, f, SEQ), rounds=10)


@pytest.mark.benchmark(group="round-trip-200")
def test_round_trip_to_thread(benchmark, loop):
    drive(benchmark, loop, sequential(asyncio.to_thread, f, SEQ), rounds=10)


@pytest.mark.benchmark(group="round-trip-200")
def test_round_trip_run_in_executor(benchmark, default_loop, tpe):
    async def main():
        lp = asyncio.get_running_loop()
        for i in range(SEQ):
            await lp.run_in_executor(tpe, f, i)

    drive(benchmark, default_loop, lambda: main(), rounds=10)


# -- small bursts ----------------------------------------------------------------------------


@pytest.mark.benchmark(group="burst-100")
def test_burst_100_offload_run(benchmark, default_loop):
    drive(benchmark, default_loop, gather_of(offload.run, f, 100), rounds=200, check=list(range(100)))


@pytest.mark.benchmark(group="burst-100")
def test_burst_100_to_thread(benchmark, default_loop):
    drive(benchmark, default_loop, gather_of(asyncio.to_thread, f, 100), rounds=100, check=list(range(100)))


# -- 1,000 calls of ~50 us of GIL-releasing work ---------------------------------------------


@pytest.mark.benchmark(group="gather-1000-50us")
def test_gather_1000_50us_offload_run(benchmark, default_loop):
    drive(benchmark, default_loop, gather_of(offload.run, hash_block, 1000), rounds=10)


@pytest.mark.benchmark(group="gather-1000-50us")
def test_gather_1000_50us_to_thread(benchmark, default_loop):
    drive(benchmark, default_loop, gather_of(asyncio.to_thread, hash_block, 1000), rounds=10)


@pytest.mark.benchmark(group="gather-1000-50us")
def test_gather_1000_50us_offload_pool_map(benchmark, default_loop):
    pool = offload.default_pool()
    drive(benchmark, default_loop, mapped(pool, hash_block, range(1000)), rounds=10)


# -- paired measurements for the goals ---------------------------------------------------------
# On a noisy machine, two scenarios measured one after the other can see different conditions.
# These tests alternate: before each timed offload round, the baseline runs once, timed by
# hand, in the same loop. The report takes each goal's ratio from these pairs.


def drive_paired(benchmark, loop, make_offload, make_baseline, rounds: int) -> None:
    baseline_times = []

    def setup() -> None:
        gc.collect()
        start = time.perf_counter()
        loop.run_until_complete(make_baseline())
        baseline_times.append(time.perf_counter() - start)
        gc.collect()

    benchmark.pedantic(lambda: loop.run_until_complete(make_offload()), setup=setup,
                       rounds=rounds, warmup_rounds=1)
    baseline_times.sort()
    benchmark.extra_info["baseline_median"] = baseline_times[len(baseline_times) // 2]


@pytest.mark.benchmark(group="paired")
def test_paired_gather_10000_vs_floor(benchmark, loop):
    drive_paired(benchmark, loop, gather_of(offload.run, f, N), floor_gather(N), rounds=25)


@pytest.mark.benchmark(group="paired")
def test_paired_round_trip_vs_to_thread(benchmark, loop):
    drive_paired(benchmark, loop, sequential(offload.run, f, SEQ), sequential(asyncio.to_thread, f, SEQ),
                 rounds=15)
