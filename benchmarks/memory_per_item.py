"""Memory per buffered channel item: a million items waiting in an unbounded channel or queue,
offload against the standard library and the hybrid thread/asyncio queues.

    .venv/bin/python benchmarks/memory_per_item.py [--items N] [--json PATH] [--cases a,b]

Measured like memory_per_task.py measures pending tasks: each case runs in a fresh
interpreter, twice, once for RSS and times, once under tracemalloc (which slows allocation
and adds its own memory, so its run is not timed). In each, inside a running asyncio loop
(janus needs one), the N items are made first, ``list(range(N))``, so the queue holds only
references to objects that already exist and the item itself costs nothing; then a fresh
unbounded queue is made, the N items are put into it with its non-waiting put (nothing waits
on the other side, so no wake-up is involved), the memory is measured while all N are
buffered, and the queue is drained with its non-waiting get: every item must come back, the
very object put, in order, and the queue must then be empty.

The cases, each with the calls it uses:

* ``offload.Channel(None)``: ``send_nowait`` / ``recv_nowait`` (the buffer is a native
  ``std::deque`` of object references).
* ``collections.deque``: ``append`` / ``popleft``, the floor: a bare container, nothing to
  wait on.
* ``asyncio.Queue()``: ``put_nowait`` / ``get_nowait``.
* ``queue.Queue()``: ``put_nowait`` / ``get_nowait``; ``queue.SimpleQueue()`` the same.
* janus: ``async_q.put_nowait`` / ``async_q.get_nowait`` (with no waiter, its sync side does
  the same work).
* culsans: ``put_nowait`` / ``get_nowait`` on the queue itself.
* aiologic: ``SimpleQueue()`` (``put`` / ``green_get(blocking=False)``), the queue
  test_bench_channels.py uses when unbounded, and ``Queue()`` (``green_put`` / ``green_get``,
  ``blocking=False``).

The JSON has the same keys as memory_per_task.py's, per item: ``rss_per_item`` and
``traced_per_item`` (bytes per buffered item from RSS and from tracemalloc, which cannot see
offload's native buffer), ``submit_s`` (the time to put the N items), ``drain_s`` (to get and
check them), ``rss_peak`` (VmHWM), ``rss_start``, ``rss_after_drain`` (the emptied queue still
alive, after ``gc.collect()``: what a drained queue keeps) and ``rss_after_trim`` (the same
after ``malloc_trim(0)``), ``results`` (the items received); and per run ``items``,
``python``, ``labels`` (each case's name in the tables), ``floor`` (the case that is no
alternative) and ``skipped`` (the cases whose library is not installed).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import os
import platform
import queue
import subprocess
import sys
import tracemalloc
from typing import Any, Callable, Dict, Tuple

from memory_per_task import Meter, mib

# A case makes a fresh queue and returns (put, get, size): put(item) and get() never wait,
# size() is the number of items buffered.
Sides = Tuple[Callable[[Any], None], Callable[[], Any], Callable[[], int]]


def offload_channel() -> Sides:
    import offload

    ch: "offload.Channel[Any]" = offload.Channel(None)
    return ch.send_nowait, ch.recv_nowait, ch.__len__


def bare_deque() -> Sides:
    d: "collections.deque[Any]" = collections.deque()
    return d.append, d.popleft, d.__len__


def asyncio_queue() -> Sides:
    q: "asyncio.Queue[Any]" = asyncio.Queue()
    return q.put_nowait, q.get_nowait, q.qsize


def queue_queue() -> Sides:
    q: "queue.Queue[Any]" = queue.Queue()
    return q.put_nowait, q.get_nowait, q.qsize


def simple_queue() -> Sides:
    q: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    return q.put_nowait, q.get_nowait, q.qsize


def janus_queue() -> Sides:
    import janus

    q: "janus.Queue[Any]" = janus.Queue()
    return q.async_q.put_nowait, q.async_q.get_nowait, q.async_q.qsize


def culsans_queue() -> Sides:
    import culsans

    q: "culsans.Queue[Any]" = culsans.Queue()
    return q.put_nowait, q.get_nowait, q.__len__


def aiologic_simple_queue() -> Sides:
    import aiologic

    q: "aiologic.SimpleQueue[Any]" = aiologic.SimpleQueue()
    return q.put, lambda: q.green_get(blocking=False), q.__len__


def aiologic_queue() -> Sides:
    import aiologic

    q: "aiologic.Queue[Any]" = aiologic.Queue()
    return (lambda item: q.green_put(item, blocking=False),
            lambda: q.green_get(blocking=False), q.__len__)


# case: (maker, label, the module it needs)
CASES: Dict[str, Tuple[Callable[[], Sides], str, str]] = {
    "offload": (offload_channel, "`offload.Channel(None)`", "offload"),
    "deque": (bare_deque, "`collections.deque` (the floor: nothing waits)", "collections"),
    "asyncio": (asyncio_queue, "`asyncio.Queue()`", "asyncio"),
    "queue": (queue_queue, "`queue.Queue()`", "queue"),
    "simplequeue": (simple_queue, "`queue.SimpleQueue()`", "queue"),
    "janus": (janus_queue, "janus `Queue()`", "janus"),
    "culsans": (culsans_queue, "culsans `Queue()`", "culsans"),
    "aiologic_simple": (aiologic_simple_queue, "aiologic `SimpleQueue()`", "aiologic"),
    "aiologic": (aiologic_queue, "aiologic `Queue()`", "aiologic"),
}
# The floor is not an alternative: the best alternative is the leanest of the others.
FLOOR = "deque"


def measure(case: str, n: int, meter: Meter) -> None:
    """Buffers n items in a fresh queue of `case`, measures, drains and checks them."""

    async def main() -> None:
        items = list(range(n))  # made before the measurement: the queue holds references only
        put, get, size = CASES[case][0]()
        meter.before()
        for item in items:
            put(item)
        meter.pending(n)
        if size() != n:
            raise AssertionError(f"{size()} items buffered, expected {n}")
        meter.released()
        received = total = 0
        for expected in items:
            item = get()
            if item is not expected:
                raise AssertionError(f"item {received}: expected {expected}, received {item!r}")
            received += 1
            total += item
        meter.drained()
        if size() != 0:
            raise AssertionError(f"{size()} items left after the last expected one")
        meter.after(received, n * (n - 1) // 2, total)  # the drained queue is still alive

    asyncio.run(main())


def child(case: str, n: int, traced: bool) -> None:
    if traced:
        tracemalloc.start()
    meter = Meter(traced, unit="item")
    measure(case, n, meter)
    if meter.out.get("results") != n:
        raise AssertionError(f"{case}: {meter.out.get('results')} items, expected {n}")
    print(json.dumps(meter.out), flush=True)


def run_child(case: str, n: int, traced: bool) -> Dict[str, float]:
    argv = [sys.executable, os.path.abspath(__file__), "--child", case, "--items", str(n)]
    if traced:
        argv.append("--traced")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{case} (traced={traced}) failed:\n{proc.stdout}\n{proc.stderr}")
    out: Dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return out


def table(rows: Dict[str, Dict[str, float]]) -> str:
    alternatives = [r["rss_per_item"] for case, r in rows.items() if case not in ("offload", FLOOR)]
    best = min(alternatives) if alternatives else None
    lines = [
        "| case | items | bytes/buffered item (RSS) | bytes/item (tracemalloc) | RSS vs best alternative "
        "| time to put | time to drain | peak RSS | RSS after drain, queue alive (vs before) "
        "| after malloc_trim |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, r in rows.items():
        ratio = f"{r['rss_per_item'] / best:.2f}x" if best and best > 0 else "n/a"
        after = f"{mib(r['rss_after_drain'])} ({(r['rss_after_drain'] - r['rss_start']) / 2**20:+,.0f})"
        trimmed = f"{mib(r['rss_after_trim'])} ({(r['rss_after_trim'] - r['rss_start']) / 2**20:+,.0f})"
        lines.append(
            f"| {CASES[case][1]} | {int(r['results']):,} | {r['rss_per_item']:,.1f} "
            f"| {r.get('traced_per_item', float('nan')):,.1f} | {ratio} | {r['submit_s']:.2f} s "
            f"| {r['drain_s']:.2f} s | {mib(r['rss_peak'])} | {after} | {trimmed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated, among: " + ", ".join(CASES)
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.items, args.traced)
        return

    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {sorted(unknown)}")
    rows: Dict[str, Dict[str, float]] = {}
    skipped = []
    for case in cases:
        module = CASES[case][2]
        if importlib.util.find_spec(module) is None:
            print(f"{case}: SKIPPED, {module} is not installed", file=sys.stderr, flush=True)
            skipped.append(case)
            continue
        print(f"{case}: {args.items:,} items ...", file=sys.stderr, flush=True)
        row = run_child(case, args.items, traced=False)
        row["traced_per_item"] = run_child(case, args.items, traced=True)["traced_per_item"]
        rows[case] = row
    import offload

    print(f"Memory per buffered item: {args.items:,} items in an unbounded queue "
          f"(Python {platform.python_version()}, offload {offload.__version__}, {os.cpu_count()} CPUs)\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"items": args.items, "python": platform.python_version(), "cases": rows,
                       "labels": {case: CASES[case][1] for case in rows}, "floor": FLOOR,
                       "skipped": skipped}, f, indent=2)


if __name__ == "__main__":
    main()
