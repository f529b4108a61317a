"""``python -m offload.demo``: offload against ``asyncio.to_thread``, on this machine, now.

Each scenario runs the same asyncio program twice, once with the standard library's answer
(``asyncio.to_thread``; for the pipeline, a thread feeding an ``asyncio.Queue`` through
``loop.call_soon_threadsafe``) and once with offload, checks that both produce the same
results, and prints the times and the speed-up. It takes well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import sys
import threading
import time
import zlib
from functools import partial
from typing import Awaitable, Callable, List, Sequence, Tuple

import offload


def tiny(x: int) -> int:
    return x + 1


def digest_and_compress(blob: bytes) -> Tuple[str, int]:
    """A realistic blocking step: both calls release the GIL on large buffers."""
    return hashlib.sha256(blob).hexdigest(), len(zlib.compress(blob, 6))


def score(text: bytes, rounds: int) -> int:
    """Pure-Python CPU work (holds the GIL throughout): a rolling hash over the text."""
    h = 0
    for _ in range(rounds):
        for byte in text:
            h = (h * 31 + byte) & 0xFFFFFFFF
    return h


def cpu_pool() -> "offload.InterpreterPool | offload.ProcessPool":
    """A GIL per worker: subinterpreters where they are dependable (3.12.4+), else processes."""
    if sys.version_info >= (3, 12, 4):
        return offload.InterpreterPool(name="demo-interp")
    return offload.ProcessPool(name="demo-process")


def make_blobs(count: int, size: int) -> List[bytes]:
    rng = random.Random(1234)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(512)]
    blobs = []
    for _ in range(count):
        parts: List[bytes] = []
        length = 0
        while length < size:
            w = rng.choice(words)
            parts.append(w)
            length += len(w) + 1
        blobs.append(b" ".join(parts)[:size])
    return blobs


class Progress:
    """One self-rewriting status line on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        bar = "#" * (20 * self.done // self.total)
        line = f"[{bar:<20}] {self.done}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r" + line[:100].ljust(100))
            if self.done == self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


async def timed(make: Callable[[], Awaitable[object]], repeat: int) -> Tuple[float, object]:
    """The best of `repeat` runs (seconds) and the last result."""
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await make()
        best = min(best, time.perf_counter() - start)
    return best, result


async def round_trips(run: Callable[..., Awaitable[int]], count: int) -> List[float]:
    latencies = []
    for i in range(count):
        start = time.perf_counter()
        await run(tiny, i)
        latencies.append(time.perf_counter() - start)
    return latencies


def records(count: int) -> List[bytes]:
    """What a blocking reader thread produces: small records (a log, a socket, a driver)."""
    return [b"record %d" % i for i in range(count)]


async def pipeline_stdlib(items: List[bytes]) -> int:
    """A reader thread feeding a coroutine, the standard library's way: one
    call_soon_threadsafe per item into an asyncio.Queue (None ends the stream)."""
    loop = asyncio.get_running_loop()
    queue: "asyncio.Queue[bytes | None]" = asyncio.Queue()

    def reader() -> None:
        for item in items:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader).start()
    total = 0
    while (item := await queue.get()) is not None:
        total += len(item)
    return total


async def pipeline_offload(items: List[bytes]) -> int:
    """The same through an offload.Channel: the reader waits (GIL released) when it is full."""
    channel: "offload.Channel[bytes]" = offload.Channel(capacity=1024)

    def reader() -> None:
        for item in items:
            channel.send_blocking(item)
        channel.close()

    threading.Thread(target=reader).start()
    total = 0
    async for item in channel:
        total += len(item)
    return total


async def scenarios(quick: bool) -> List[Tuple[str, float, float, str]]:
    """(name, to_thread seconds, offload seconds, unit note) for each scenario."""
    pool = offload.default_pool()
    n_tiny = 2_000 if quick else 10_000
    blobs = make_blobs(60 if quick else 300, 256 * 1024)
    small = make_blobs(1_000 if quick else 5_000, 4 * 1024)
    repeat = 1 if quick else 3
    progress = Progress(8)
    rows = []

    baseline, expected = await timed(
        lambda: asyncio.gather(*[asyncio.to_thread(tiny, i) for i in range(n_tiny)]), repeat)
    ours, got = await timed(lambda: asyncio.gather(*[offload.run(tiny, i) for i in range(n_tiny)]), repeat)
    assert got == expected
    rows.append((f"{n_tiny:,} tiny calls, gather(run(...))", baseline, ours, "total"))
    progress.step("tiny calls")

    ours, got = await timed(lambda: pool.map(tiny, range(n_tiny)), repeat)
    assert got == expected
    rows.append((f"{n_tiny:,} tiny calls, pool.map", baseline, ours, "total"))
    progress.step("pool.map")

    baseline, expected = await timed(
        lambda: asyncio.gather(*[asyncio.to_thread(digest_and_compress, b) for b in blobs]), repeat)
    ours, got = await timed(lambda: pool.map(digest_and_compress, blobs), repeat)
    assert got == expected
    rows.append((f"sha256 + zlib of {len(blobs)} x 256 KiB blobs, map", baseline, ours, "total"))
    progress.step("hash + compress")

    ours_gather, got = await timed(
        lambda: asyncio.gather(*[offload.run(digest_and_compress, b) for b in blobs]), repeat)
    assert got == expected
    rows.append(("  same, gather(run(...))", baseline, ours_gather, "total"))
    progress.step("hash + compress, gather")

    baseline, expected = await timed(
        lambda: asyncio.gather(*[asyncio.to_thread(digest_and_compress, b) for b in small]), repeat)
    ours, got = await timed(
        lambda: asyncio.gather(*[offload.run(digest_and_compress, b) for b in small]), repeat)
    assert got == expected
    rows.append((f"sha256 + zlib of {len(small):,} x 4 KiB blobs, gather", baseline, ours, "total"))
    progress.step("small blobs")

    stream = records(20_000 if quick else 200_000)
    baseline, expected = await timed(lambda: pipeline_stdlib(stream), repeat)
    ours, got = await timed(lambda: pipeline_offload(stream), repeat)
    assert got == expected
    rows.append((f"thread -> coroutine pipeline, {len(stream):,} items *", baseline, ours, "total"))
    progress.step("pipeline")

    texts = make_blobs(8 if quick else 32, 16 * 1024)
    rounds = 2 if quick else 8
    # Workers import functions by module and name: take them from the importable module, also
    # when this file runs as __main__ (python -m offload.demo).
    from offload import demo as importable

    with cpu_pool() as cpu:
        await cpu.map(importable.tiny, range(2 * cpu.workers))  # start workers before timing
        baseline, expected = await timed(
            lambda: asyncio.gather(*[asyncio.to_thread(score, t, rounds) for t in texts]), repeat)
        work = partial(importable.score, rounds=rounds)
        ours, got = await timed(lambda: cpu.map(work, texts), repeat)
        assert got == expected
        rows.append((f"pure-Python scoring of {len(texts)} texts, {type(cpu).__name__}.map",
                     baseline, ours, "total"))
    progress.step("pure-Python CPU work")

    count = 300 if quick else 1_000
    base_lat = statistics.median(await round_trips(asyncio.to_thread, count))
    our_lat = statistics.median(await round_trips(offload.run, count))
    rows.append(("one call at a time (median round trip)", base_lat, our_lat, "per call"))
    progress.step("round trips")
    return rows


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog="python -m offload.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a few seconds)")
    args = parser.parse_args(list(argv))

    print(f"offload {offload.__version__} vs asyncio.to_thread - Python {sys.version.split()[0]}, "
          f"{len(os.sched_getaffinity(0))} CPUs, {offload.default_pool().workers} offload workers")
    rows = asyncio.run(scenarios(args.quick))
    name_w = max(len(r[0]) for r in rows)
    print()
    print(f"{'scenario':<{name_w}}  {'to_thread':>10}  {'offload':>10}  {'speed-up':>8}")
    print(f"{'-' * name_w}  {'-' * 10}  {'-' * 10}  {'-' * 8}")
    for name, base, ours, _ in rows:
        print(f"{name:<{name_w}}  {fmt(base):>10}  {fmt(ours):>10}  {base / ours:>7.1f}x")
    print()
    print("Same results both ways (checked). Speed-up = to_thread time / offload time, best of runs.")
    print("* baseline: call_soon_threadsafe into an asyncio.Queue; offload: a Channel(1024).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
