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

import asyncio
import collections
import functools
import queue
from typing import Any, Callable, Dict, List, Optional, Tuple

from memory_harness import Case, MemoryBenchmark, Meter, Row

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


def measure(make: Callable[[], Sides], n: int, meter: Meter) -> None:
    """Buffers n items in a fresh queue from `make`, measures, drains and checks them."""

    async def main() -> None:
        items = list(range(n))  # made before the measurement: the queue holds references only
        put, get, size = make()
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


def case(make: Callable[[], Sides], label: str, needs: str) -> Case:
    return Case(functools.partial(measure, make), label, needs)


CASES = {
    "offload": case(offload_channel, "`offload.Channel(None)`", "offload"),
    "deque": case(bare_deque, "`collections.deque` (the floor: nothing waits)", "collections"),
    "asyncio": case(asyncio_queue, "`asyncio.Queue()`", "asyncio"),
    "queue": case(queue_queue, "`queue.Queue()`", "queue"),
    "simplequeue": case(simple_queue, "`queue.SimpleQueue()`", "queue"),
    "janus": case(janus_queue, "janus `Queue()`", "janus"),
    "culsans": case(culsans_queue, "culsans `Queue()`", "culsans"),
    "aiologic_simple": case(aiologic_simple_queue, "aiologic `SimpleQueue()`", "aiologic"),
    "aiologic": case(aiologic_queue, "aiologic `Queue()`", "aiologic"),
}
# The floor is not an alternative: the best alternative is the leanest of the others.
FLOOR = "deque"


def best_alternative(rows: Dict[str, Row]) -> Optional[float]:
    alternatives = [r["rss_per_item"] for case, r in rows.items() if case not in ("offload", FLOOR)]
    return min(alternatives) if alternatives else None


def extra_json(skipped: List[str]) -> Dict[str, Any]:
    return {"floor": FLOOR, "skipped": skipped}


BENCHMARK = MemoryBenchmark(
    __file__, "item", held="buffered", what="items in an unbounded queue", cases=CASES,
    ratio_base=best_alternative, ratio_title="RSS vs best alternative",
    put="put", drained="RSS after drain, queue alive", digits=1, json_extra=extra_json,
)

if __name__ == "__main__":
    BENCHMARK.main(__doc__)
