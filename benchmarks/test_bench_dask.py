"""offload.DaskPool against the asynchronous Dask client it drives, on a LocalCluster of worker
processes (one thread each). Run on its own (it starts Dask clusters):

    python -m pytest benchmarks/test_bench_dask.py -q --benchmark-json=build/bench-dask.json

Scenarios (one pytest-benchmark group each):

  dask-round-trip-20   20 trivial calls one at a time: `await pool.run(tiny, i)` against
                       `await client.submit(tiny, i, pure=False)` on the same client (2 workers).
                       Goal: DaskPool adds less than 10% (time ratio <= 1.10, paired run).
  dask-burst-200       200 trivial calls at once: a gather of `pool.run` against a gather of
                       `client.submit`, and `pool.map` against `client.gather(client.map(...))`.
  dask-spin-16x50ms    16 calls of ~50 ms of pure-Python work (bench_cpu_work.spin, holds the
                       GIL): `pool.map` on a cluster of 1 and of 2 workers, against a serial
                       loop and `offload.ProcessPool(2).map` on this machine.

The goal is judged on paired runs (`test_dask_paired_*`): before each timed DaskPool round,
the client round runs once, timed by hand, on the same loop (drive_paired, as in
test_bench_calls.py). A Dask call takes milliseconds of wall time, mostly waiting on the
network and on the client's 10 ms message batching, so the paired runs also record the CPU
time of the loop's thread per call for each side (`extra_info["loop_cpu_per_call"]`): the
cost offload adds, which the noisy wall time hides. Each benchmark drives one persistent
default asyncio loop, on which the client was created; the clusters start once per module,
and their workers have answered calls before anything is timed.

    python benchmarks/report_dask.py build/bench-dask.json     # the figures as Markdown
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install offload[dask])"
)

import bench_cpu_work  # noqa: E402
import offload  # noqa: E402
from test_bench_calls import drive, drive_paired  # noqa: E402

SEQ = 20
BURST = 200
SPIN_CALLS, SPIN_SECONDS = 16, 0.05
tiny = bench_cpu_work.tiny


class Session:
    """A loop, an asynchronous client on it connected to a cluster, and a DaskPool on that
    client: both sides of a comparison use the same connection."""

    def __init__(self, cluster: Any) -> None:
        self.loop = asyncio.new_event_loop()

        async def connect() -> Any:
            # By address, in a coroutine: the client runs on this loop (one made from the
            # cluster object would run on the cluster's own loop thread).
            return await distributed.Client(
                cluster.scheduler_address, asynchronous=True, set_as_default=False)

        self.client = self.loop.run_until_complete(connect())
        self.pool = offload.DaskPool(self.client)

        async def warm_up() -> None:  # every worker has imported the work and answered
            await self.pool.map(tiny, range(4 * len(cluster.workers)))

        self.loop.run_until_complete(warm_up())

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture(scope="module")
def clusters() -> Iterator[Callable[[int], Any]]:
    """clusters(n): a LocalCluster of n worker processes, started on first use."""
    started: Dict[int, Any] = {}

    def get(workers: int) -> Any:
        if workers not in started:
            started[workers] = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        return started[workers]

    yield get
    for cluster in started.values():
        cluster.close()


@pytest.fixture
def two(clusters: Callable[[int], Any]) -> Iterator[Session]:
    session = Session(clusters(2))
    yield session
    session.close()


@pytest.fixture
def one(clusters: Callable[[int], Any]) -> Iterator[Session]:
    session = Session(clusters(1))
    yield session
    session.close()


def sequential_pool(pool: Any) -> Callable[[], Any]:
    async def main() -> None:
        for i in range(SEQ):
            await pool.run(tiny, i)

    return main


def sequential_client(client: Any) -> Callable[[], Any]:
    async def main() -> None:
        for i in range(SEQ):
            await client.submit(tiny, i, pure=False)

    return main


def burst_pool(pool: Any) -> Callable[[], Any]:
    async def main() -> List[int]:
        return list(await asyncio.gather(*[pool.run(tiny, i) for i in range(BURST)]))

    return main


def burst_client(client: Any) -> Callable[[], Any]:
    async def main() -> List[int]:
        return list(await asyncio.gather(*[client.submit(tiny, i, pure=False) for i in range(BURST)]))

    return main


# -- per-call overhead -----------------------------------------------------------------------


@pytest.mark.benchmark(group="dask-round-trip-20")
def test_dask_round_trip_client(benchmark: Any, two: Session) -> None:
    drive(benchmark, two.loop, sequential_client(two.client), rounds=15)


@pytest.mark.benchmark(group="dask-round-trip-20")
def test_dask_round_trip_daskpool(benchmark: Any, two: Session) -> None:
    drive(benchmark, two.loop, sequential_pool(two.pool), rounds=15)


def loop_cpu_per_call(benchmark: Any, loop: asyncio.AbstractEventLoop, make_pool: Callable[[], Any],
                      make_client: Callable[[], Any], calls: int, repeats: int = 9) -> None:
    """Records the CPU time of the loop's thread per call, for each side (median of rounds
    that alternate): the client-side cost that offload adds, which the wall time of a Dask
    call (milliseconds, noisy) hides. time.thread_time counts this thread only: not the
    scheduler's thread (the LocalCluster runs in this process) nor the workers."""
    times: Dict[str, List[float]] = {"daskpool": [], "client": []}
    for _ in range(repeats):
        for side, make in (("client", make_client), ("daskpool", make_pool)):
            start = time.thread_time()
            loop.run_until_complete(make())
            times[side].append((time.thread_time() - start) / calls)
    benchmark.extra_info["loop_cpu_per_call"] = {side: statistics.median(t) for side, t in times.items()}


@pytest.mark.benchmark(group="dask-paired")
def test_dask_paired_round_trip(benchmark: Any, two: Session) -> None:
    pool, client = sequential_pool(two.pool), sequential_client(two.client)
    drive_paired(benchmark, two.loop, pool, client, rounds=25)
    loop_cpu_per_call(benchmark, two.loop, pool, client, SEQ)


@pytest.mark.benchmark(group="dask-burst-200")
def test_dask_burst_200_client(benchmark: Any, two: Session) -> None:
    drive(benchmark, two.loop, burst_client(two.client), rounds=10, check=list(range(BURST)))


@pytest.mark.benchmark(group="dask-burst-200")
def test_dask_burst_200_daskpool(benchmark: Any, two: Session) -> None:
    drive(benchmark, two.loop, burst_pool(two.pool), rounds=10, check=list(range(BURST)))


@pytest.mark.benchmark(group="dask-burst-200")
def test_dask_burst_200_client_map(benchmark: Any, two: Session) -> None:
    async def main() -> List[int]:
        return list(await two.client.gather(two.client.map(tiny, range(BURST), pure=False)))

    drive(benchmark, two.loop, lambda: main(), rounds=10, check=list(range(BURST)))


@pytest.mark.benchmark(group="dask-burst-200")
def test_dask_burst_200_daskpool_map(benchmark: Any, two: Session) -> None:
    async def main() -> List[int]:
        return await two.pool.map(tiny, range(BURST))

    drive(benchmark, two.loop, lambda: main(), rounds=10, check=list(range(BURST)))


@pytest.mark.benchmark(group="dask-paired")
def test_dask_paired_burst_200(benchmark: Any, two: Session) -> None:
    pool, client = burst_pool(two.pool), burst_client(two.client)
    drive_paired(benchmark, two.loop, pool, client, rounds=15)
    loop_cpu_per_call(benchmark, two.loop, pool, client, BURST)


# -- throughput of 50 ms calls ----------------------------------------------------------------


@pytest.fixture(scope="module")
def spin_items() -> List[int]:
    n = bench_cpu_work.calibrate_spin(SPIN_SECONDS)
    return [n + i for i in range(SPIN_CALLS)]


def spin_map(session: Session, items: List[int]) -> Callable[[], Any]:
    async def main() -> List[int]:
        return await session.pool.map(bench_cpu_work.spin, items)

    return main


@pytest.mark.benchmark(group="dask-spin-16x50ms")
def test_dask_spin_serial(benchmark: Any, spin_items: List[int]) -> None:
    benchmark.pedantic(lambda: [bench_cpu_work.spin(n) for n in spin_items], rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="dask-spin-16x50ms")
def test_dask_spin_daskpool_1_worker(benchmark: Any, one: Session, spin_items: List[int]) -> None:
    drive(benchmark, one.loop, spin_map(one, spin_items), rounds=5)


@pytest.mark.benchmark(group="dask-spin-16x50ms")
def test_dask_spin_daskpool_2_workers(benchmark: Any, two: Session, spin_items: List[int]) -> None:
    drive(benchmark, two.loop, spin_map(two, spin_items), rounds=5)


@pytest.mark.benchmark(group="dask-spin-16x50ms")
def test_dask_spin_process_pool_2_workers(benchmark: Any, spin_items: List[int]) -> None:
    loop = asyncio.new_event_loop()
    pool = offload.ProcessPool(2)
    try:
        async def main(items: List[int]) -> List[int]:
            return await pool.map(bench_cpu_work.spin, items)

        loop.run_until_complete(main([1000] * 4))  # both processes up
        drive(benchmark, loop, lambda: main(spin_items), rounds=5)
    finally:
        pool.shutdown()
        loop.close()
