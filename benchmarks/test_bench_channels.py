"""offload.Channel against the other queues that cross threads and coroutines. `make bench`.

Scenarios (one pytest-benchmark group per scenario and capacity, `chan-<scenario>-<capacity>`):

  t2c  a thread producer, a coroutine consumer   vs janus, culsans, aiologic (goal: >= 3x the best)
  c2c  two coroutines on one loop                vs asyncio.Queue               (goal: >= 1x)
  t2t  two threads                               vs queue.Queue                 (goal: >= 1x)
  c2t  a coroutine producer, a thread consumer   vs janus, culsans, aiologic    (no goal)

at capacities 0, 1, 256 and unbounded. Each round moves ITEMS[capacity] ints 0..n-1 from the
producer to the consumer through a fresh queue (made, untimed, before the round); the consumer
asserts it got exactly those, in order, and that nothing is left. A thread side is a new thread
started inside the round, for every candidate alike; a coroutine side runs on one persistent
default loop (run_until_complete, never asyncio.run per round).

Names are `test_chan_<scenario>[<candidate>-<capacity>]`; report.py renders each group as the
median time per item and the speed-up against the scenario's baseline. Each candidate calls its
library directly, methods bound to locals, with no adapter layer in between, and uses the
fastest correct calls for its role:

  offload   send_blocking / recv_blocking in threads, await send / await recv in coroutines
  janus     sync_q.put / sync_q.get, await async_q.put / async_q.get (its only API); the async
            side ends with shutdown() + wait_closed(), which janus needs to finish its loop tasks
  culsans   the same calls made on the queue itself (sync_put, async_get, ...), not through the
            sync_q / async_q proxies, which only forward to them
  aiologic  unbounded: SimpleQueue (deque + semaphore) with put, which never waits; an unbounded
            aiologic.Queue() is far slower here. Bounded: Queue(capacity), green_* / async_*
  asyncio   await put / await get; queue.Queue: put / get

Capacity 0 is a rendezvous: a send completes only when a receiver takes the item. None of
janus, culsans, aiologic, asyncio.Queue and queue.Queue has one (all but aiologic read
maxsize=0 as unbounded; aiologic.Queue rejects it), so only offload runs at
capacity 0 in every scenario, plus, in c2c, anyio's memory object stream of buffer size 0
(`create_memory_object_stream(0)`: a true rendezvous, for coroutines only). offload's
rendezvous is compared with the alternatives at capacity 1, the closest semantics (there one
item may wait in the queue, and the sender goes on before it is taken): the report says so,
and the paired test (below) alternates offload at capacity 0 with those at capacity 1.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

import offload

try:
    import janus
except ImportError:  # pragma: no cover
    janus = None
try:
    import culsans
except ImportError:  # pragma: no cover
    culsans = None
try:
    import aiologic
except ImportError:  # pragma: no cover
    aiologic = None
try:
    import anyio
except ImportError:  # pragma: no cover
    anyio = None

CAPACITIES: Dict[str, Optional[int]] = {"cap0": 0, "cap1": 1, "cap256": 256, "unbounded": None}
# The candidates of every scenario that have a rendezvous (capacity 0); the others run at the
# other capacities. anyio, the one alternative with a rendezvous, is an extra case of c2c.
RENDEZVOUS = ("offload",)
# What the alternatives are compared at when they have no rendezvous: capacity 1.
STAND_IN = {"cap0": "cap1"}

# Items per round, per capacity: a round takes roughly 10-100 ms on a 2-core VM. A capacity of 0
# or 1 makes every item a hand-off between the two sides, so those rounds move fewer items.
ITEMS = {"cap0": 2_000, "cap1": 2_000, "cap256": 20_000, "unbounded": 20_000}
# Rounds per benchmark: as many as fit in BUDGET seconds after one untimed warm-up round, within
# [MIN_ROUNDS, MAX_ROUNDS]; the slowest candidates (aiologic's bounded Queue: 1-3 s a round on a
# loaded machine) get MIN_ROUNDS.
MIN_ROUNDS, MAX_ROUNDS, BUDGET = 3, 15, 1.0
JOIN_TIMEOUT = 60.0


def collect_garbage() -> None:
    """Before every round: each round starts from the same heap."""
    gc.collect()


def mismatch(i: int, item: Any) -> AssertionError:
    return AssertionError(f"item {i}: expected {i}, received {item!r}")


def check_empty(size: int) -> None:
    assert size == 0, f"{size} items left in the queue after the last expected one"


class Side(threading.Thread):
    """A producer or consumer thread started inside the round; join() re-raises its error."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(target=self._run, daemon=True, name="bench-side")
        self._fn = target
        self.error: Optional[BaseException] = None

    def _run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the benchmark thread
            self.error = exc

    def finish(self) -> None:
        self.join(JOIN_TIMEOUT)
        assert not self.is_alive(), "the thread side did not finish (deadlock?)"
        if self.error is not None:
            raise self.error


def until_complete(loop: asyncio.AbstractEventLoop, coro) -> None:
    """run_until_complete with a deadline: a failed thread side must not hang the suite."""
    loop.run_until_complete(asyncio.wait_for(coro, JOIN_TIMEOUT))


def maxsize(capacity: Optional[int]) -> int:
    """The stdlib/janus/culsans convention: 0 is unbounded, so capacity 0 (a rendezvous) has no
    maxsize: asking for one is a mislabelled case."""
    if capacity == 0:
        raise ValueError("maxsize=0 means unbounded to these queues, not a rendezvous")
    return 0 if capacity is None else capacity


def need(module: Any, name: str) -> None:
    if module is None:
        pytest.skip(f"{name} is not installed")


# =============================================================================================
# thread producer -> coroutine consumer
#
# Each maker returns (produce, consume): produce() runs in a new thread, consume() is the
# coroutine run on the loop; the round runs both and asserts.


def t2c_offload(capacity: Optional[int], n: int):
    ch = offload.Channel(capacity)

    def produce() -> None:
        send = ch.send_blocking
        for i in range(n):
            send(i)

    async def consume() -> None:
        recv = ch.recv
        for i in range(n):
            item = await recv()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(ch))

    return produce, consume


def t2c_janus(capacity: Optional[int], n: int):
    q = janus.Queue(maxsize(capacity))

    def produce() -> None:
        put = q.sync_q.put
        for i in range(n):
            put(i)

    async def consume() -> None:
        get = q.async_q.get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.async_q.qsize())
        q.shutdown()  # janus wakes the loop through tasks: let the pending ones finish here
        await q.wait_closed()

    return produce, consume


def t2c_culsans(capacity: Optional[int], n: int):
    # sync_put / async_get on the queue itself: what q.sync_q.put / q.async_q.get call, one
    # proxy call less.
    q = culsans.Queue(maxsize(capacity))

    def produce() -> None:
        put = q.sync_put
        for i in range(n):
            put(i)

    async def consume() -> None:
        get = q.async_get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume


def aiologic_queue(capacity: Optional[int]):
    """aiologic.SimpleQueue when unbounded (a deque and a semaphore: its fastest queue; an
    unbounded aiologic.Queue() is much slower here), else aiologic.Queue(capacity)."""
    return aiologic.SimpleQueue() if capacity is None else aiologic.Queue(capacity)


def aiologic_green_put(q):
    """SimpleQueue.put never waits and skips the checkpoint check: its fastest correct put,
    from threads and coroutines alike. A bounded Queue has only green_put / async_put."""
    return q.put if isinstance(q, aiologic.SimpleQueue) else q.green_put


def t2c_aiologic(capacity: Optional[int], n: int):
    q = aiologic_queue(capacity)

    def produce() -> None:
        put = aiologic_green_put(q)
        for i in range(n):
            put(i)

    async def consume() -> None:
        get = q.async_get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume


def t2c_asyncio_threadsafe(capacity: Optional[int], n: int):
    """The stdlib way for an unbounded stream: loop.call_soon_threadsafe(q.put_nowait, item)."""
    assert capacity is None, "call_soon_threadsafe cannot wait for room"
    q: "asyncio.Queue[int]" = asyncio.Queue()
    loop = asyncio.get_event_loop()  # the benchmark's loop, set as current by bench()

    def produce() -> None:
        call, put = loop.call_soon_threadsafe, q.put_nowait
        for i in range(n):
            call(put, i)

    async def consume() -> None:
        get = q.get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.qsize())

    return produce, consume


T2C = {
    "offload": t2c_offload,
    "janus": t2c_janus,
    "culsans": t2c_culsans,
    "aiologic": t2c_aiologic,
}


def run_t2c(loop: asyncio.AbstractEventLoop, sides) -> None:
    produce, consume = sides
    side = Side(produce)
    side.start()
    try:
        until_complete(loop, consume())
    finally:
        side.finish()


# =============================================================================================
# coroutine -> coroutine, one loop: the producer is a task, the consumer the main coroutine.


def c2c_asyncio(capacity: Optional[int], n: int):
    q: "asyncio.Queue[int]" = asyncio.Queue(maxsize(capacity))

    async def produce() -> None:
        put = q.put
        for i in range(n):
            await put(i)

    async def consume() -> None:
        get = q.get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.qsize())

    return produce, consume


def c2c_offload(capacity: Optional[int], n: int):
    ch = offload.Channel(capacity)

    async def produce() -> None:
        send = ch.send
        for i in range(n):
            await send(i)

    async def consume() -> None:
        recv = ch.recv
        for i in range(n):
            item = await recv()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(ch))

    return produce, consume


def c2c_janus(capacity: Optional[int], n: int):
    q = janus.Queue(maxsize(capacity))

    async def produce() -> None:
        put = q.async_q.put
        for i in range(n):
            await put(i)

    async def consume() -> None:
        get = q.async_q.get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.async_q.qsize())
        q.shutdown()
        await q.wait_closed()

    return produce, consume


def c2c_culsans(capacity: Optional[int], n: int):
    q = culsans.Queue(maxsize(capacity))

    async def produce() -> None:
        put = q.async_put
        for i in range(n):
            await put(i)

    async def consume() -> None:
        get = q.async_get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume


def c2c_aiologic(capacity: Optional[int], n: int):
    q = aiologic_queue(capacity)

    async def produce() -> None:
        if capacity is None:  # SimpleQueue.put never waits (see aiologic_green_put)
            put_now = q.put
            for i in range(n):
                put_now(i)
            return
        put = q.async_put
        for i in range(n):
            await put(i)

    async def consume() -> None:
        get = q.async_get
        for i in range(n):
            item = await get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume


def c2c_anyio(capacity: Optional[int], n: int):
    """anyio's memory object stream (buffer size 0: a rendezvous); measured at capacity 0 only,
    the one alternative here with a rendezvous."""
    send_stream, receive_stream = anyio.create_memory_object_stream(
        float("inf") if capacity is None else capacity)

    async def produce() -> None:
        send = send_stream.send
        for i in range(n):
            await send(i)
        send_stream.close()

    async def consume() -> None:
        recv = receive_stream.receive
        for i in range(n):
            item = await recv()
            if item != i:
                raise mismatch(i, item)
        check_empty(receive_stream.statistics().current_buffer_used)
        receive_stream.close()

    return produce, consume


C2C = {
    "asyncio": c2c_asyncio,
    "offload": c2c_offload,
    "janus": c2c_janus,
    "culsans": c2c_culsans,
    "aiologic": c2c_aiologic,
}


def run_c2c(loop: asyncio.AbstractEventLoop, sides) -> None:
    produce, consume = sides

    async def main() -> None:
        producer = asyncio.ensure_future(produce())
        try:
            await consume()
        except BaseException:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            raise
        # A rendezvous sender may still have to resume after its last item was taken.
        await asyncio.wait_for(producer, JOIN_TIMEOUT)

    loop.run_until_complete(main())


# =============================================================================================
# thread -> thread: the producer is a new thread, the consumer is the benchmark's thread.


def t2t_queue(capacity: Optional[int], n: int):
    q: "queue.Queue[int]" = queue.Queue(maxsize(capacity))

    def produce() -> None:
        put = q.put
        for i in range(n):
            put(i)

    def consume() -> None:
        get = q.get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.qsize())

    return produce, consume


def t2t_simplequeue(capacity: Optional[int], n: int):
    """queue.SimpleQueue (unbounded only): the stdlib's C queue, no maxsize, no task_done."""
    q: "queue.SimpleQueue[int]" = queue.SimpleQueue()

    def produce() -> None:
        put = q.put
        for i in range(n):
            put(i)

    def consume() -> None:
        get = q.get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.qsize())

    return produce, consume


def t2t_offload(capacity: Optional[int], n: int):
    ch = offload.Channel(capacity)

    def produce() -> None:
        send = ch.send_blocking
        for i in range(n):
            send(i)

    def consume() -> None:
        recv = ch.recv_blocking
        for i in range(n):
            item = recv()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(ch))

    return produce, consume


def t2t_janus(capacity: Optional[int], n: int):
    q = janus.Queue(maxsize(capacity))

    def produce() -> None:
        put = q.sync_q.put
        for i in range(n):
            put(i)

    def consume() -> None:
        get = q.sync_q.get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.sync_q.qsize())

    return produce, consume


def t2t_culsans(capacity: Optional[int], n: int):
    q = culsans.Queue(maxsize(capacity))

    def produce() -> None:
        put = q.sync_put
        for i in range(n):
            put(i)

    def consume() -> None:
        get = q.sync_get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume


def t2t_aiologic(capacity: Optional[int], n: int):
    q = aiologic_queue(capacity)

    def produce() -> None:
        put = aiologic_green_put(q)
        for i in range(n):
            put(i)

    def consume() -> None:
        get = q.green_get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume


T2T = {
    "queue": t2t_queue,
    "offload": t2t_offload,
    "janus": t2t_janus,
    "culsans": t2t_culsans,
    "aiologic": t2t_aiologic,
}


def run_t2t(_loop: Any, sides) -> None:
    produce, consume = sides
    side = Side(produce)
    side.start()
    try:
        consume()
    finally:
        side.finish()


# =============================================================================================
# coroutine producer -> thread consumer: the consumer is a new thread, the producer a coroutine.


def c2t_offload(capacity: Optional[int], n: int):
    ch = offload.Channel(capacity)

    async def produce() -> None:
        send = ch.send
        for i in range(n):
            await send(i)

    def consume() -> None:
        recv = ch.recv_blocking
        for i in range(n):
            item = recv()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(ch))

    return produce, consume, None


def c2t_janus(capacity: Optional[int], n: int):
    q = janus.Queue(maxsize(capacity))

    async def produce() -> None:
        put = q.async_q.put
        for i in range(n):
            await put(i)

    def consume() -> None:
        get = q.sync_q.get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(q.sync_q.qsize())

    async def cleanup() -> None:  # janus's loop-side tasks, after the consumer is done
        q.shutdown()
        await q.wait_closed()

    return produce, consume, cleanup


def c2t_culsans(capacity: Optional[int], n: int):
    q = culsans.Queue(maxsize(capacity))

    async def produce() -> None:
        put = q.async_put
        for i in range(n):
            await put(i)

    def consume() -> None:
        get = q.sync_get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume, None


def c2t_aiologic(capacity: Optional[int], n: int):
    q = aiologic_queue(capacity)

    async def produce() -> None:
        if capacity is None:  # SimpleQueue.put never waits (see aiologic_green_put)
            put_now = q.put
            for i in range(n):
                put_now(i)
            return
        put = q.async_put
        for i in range(n):
            await put(i)

    def consume() -> None:
        get = q.green_get
        for i in range(n):
            item = get()
            if item != i:
                raise mismatch(i, item)
        check_empty(len(q))

    return produce, consume, None


C2T = {
    "offload": c2t_offload,
    "janus": c2t_janus,
    "culsans": c2t_culsans,
    "aiologic": c2t_aiologic,
}


def run_c2t(loop: asyncio.AbstractEventLoop, sides) -> None:
    produce, consume, cleanup = sides
    side = Side(consume)
    side.start()
    try:
        until_complete(loop, produce())
    finally:
        side.finish()
    if cleanup is not None:
        loop.run_until_complete(cleanup())


# =============================================================================================
# the benchmarks

LIBRARIES = {"janus": lambda: janus, "culsans": lambda: culsans, "aiologic": lambda: aiologic,
             "anyio": lambda: anyio}


def cases(candidates: Dict[str, Any], extra: Tuple[Tuple[str, str], ...] = ()):
    """(candidate, capacity) pairs, ids `<candidate>-<capacity>`; capacity 0 only for the
    candidates with a rendezvous."""
    pairs = [(c, cap) for c in candidates for cap in CAPACITIES
             if cap != "cap0" or c in RENDEZVOUS] + list(extra)
    return pytest.mark.parametrize(("candidate", "capacity"), pairs,
                                   ids=[f"{c}-{cap}" for c, cap in pairs])


def bench(benchmark, loop, scenario: str, run, make, capacity: str) -> None:
    """Times `run(loop, sides)`; the untimed set-up collects garbage and makes a fresh queue
    and its two sides (with `loop` as the current loop, for the queues that look it up)."""
    n = ITEMS[capacity]
    benchmark.group = f"chan-{scenario}-{capacity}"
    benchmark.extra_info["items"] = n

    def setup():
        collect_garbage()
        return (loop, make(CAPACITIES[capacity], n)), {}

    if loop is not None:
        asyncio.set_event_loop(loop)
    try:
        args, _ = setup()  # the warm-up round, timed to choose the number of rounds
        start = time.perf_counter()
        run(*args)
        warmup = time.perf_counter() - start
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(BUDGET / warmup)))
        benchmark.extra_info["rounds"] = rounds
        benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)
    finally:
        if loop is not None:
            asyncio.set_event_loop(None)


def skip_missing(candidate: str) -> None:
    if candidate in LIBRARIES:
        need(LIBRARIES[candidate](), candidate)


@cases(T2C, extra=(("asyncio_threadsafe", "unbounded"),))
def test_chan_t2c(benchmark, default_loop, candidate: str, capacity: str) -> None:
    skip_missing(candidate)
    make = t2c_asyncio_threadsafe if candidate == "asyncio_threadsafe" else T2C[candidate]
    bench(benchmark, default_loop, "t2c", run_t2c, make, capacity)


@cases(C2C, extra=(("anyio", "cap0"),))
def test_chan_c2c(benchmark, default_loop, candidate: str, capacity: str) -> None:
    skip_missing(candidate)
    make = c2c_anyio if candidate == "anyio" else C2C[candidate]
    bench(benchmark, default_loop, "c2c", run_c2c, make, capacity)


@cases(T2T, extra=(("simplequeue", "unbounded"),))
def test_chan_t2t(benchmark, candidate: str, capacity: str) -> None:
    skip_missing(candidate)
    make = t2t_simplequeue if candidate == "simplequeue" else T2T[candidate]
    bench(benchmark, None, "t2t", run_t2t, make, capacity)


@cases(C2T)
def test_chan_c2t(benchmark, default_loop, candidate: str, capacity: str) -> None:
    skip_missing(candidate)
    bench(benchmark, default_loop, "c2t", run_c2t, C2T[candidate], capacity)


# =============================================================================================
# paired measurements for the goals, and for capacity 0
#
# On a noisy machine two groups measured one after the other can see different conditions. These
# tests alternate: before each timed offload round, every baseline candidate of the scenario runs
# one round, timed by hand, on the same loop. The report judges the goals on these pairs (the
# baseline is the fastest of the scenario's baselines by median, as in the groups above). A
# baseline more than PAIRED_PRUNE times slower than the fastest one in the warm-up round cannot
# be the best: it is left out of the pairs (it still has its own group above).
#
# At capacity 0 (no goal; every scenario, c2t included) offload runs its rendezvous and the
# baselines run at their STAND_IN capacity 1; the alternatives with a real rendezvous
# (PAIRED_RENDEZVOUS) run at capacity 0 alongside, never pruned. extra_info["baseline_capacities"]
# records the capacity each of them ran at.

PAIRED = {
    "t2c": (run_t2c, T2C, ("janus", "culsans", "aiologic")),
    "c2c": (run_c2c, C2C, ("asyncio",)),
    "t2t": (run_t2t, T2T, ("queue",)),
    "c2t": (run_c2t, C2T, ("janus", "culsans", "aiologic")),
}
PAIRED_RENDEZVOUS = {"c2c": {"anyio": c2c_anyio}}
PAIRED_CASES = [(s, c) for s in ("t2c", "c2c", "t2t") for c in CAPACITIES if c != "cap0"] + [
    (s, "cap0") for s in PAIRED]
PAIRED_BUDGET = 3.0
PAIRED_PRUNE = 4.0


def installed(name: str) -> bool:
    return name not in LIBRARIES or LIBRARIES[name]() is not None


@pytest.mark.parametrize(("scenario", "capacity"), PAIRED_CASES,
                         ids=[f"{s}-{c}" for s, c in PAIRED_CASES])
def test_chan_paired(benchmark, default_loop, scenario: str, capacity: str) -> None:
    run, makers, baseline_names = PAIRED[scenario]
    stand_in = STAND_IN.get(capacity, capacity)
    # name -> (maker, capacity it runs at)
    sides = {b: (makers[b], stand_in) for b in baseline_names if installed(b)}
    if not sides:
        pytest.skip(f"none of {', '.join(baseline_names)} is installed")
    if capacity == "cap0":
        sides.update((b, (make, capacity))
                     for b, make in PAIRED_RENDEZVOUS.get(scenario, {}).items() if installed(b))
    baselines = list(sides)
    n = ITEMS[capacity]
    assert ITEMS[stand_in] == n, "per-item figures of one pair come from rounds of one size"
    times: Dict[str, list] = {b: [] for b in baselines}
    benchmark.group = "chan-paired"
    benchmark.extra_info["items"] = n

    def baseline_round(name: str) -> float:
        make, cap = sides[name]
        pair = make(CAPACITIES[cap], n)
        collect_garbage()
        start = time.perf_counter()
        run(default_loop, pair)
        return time.perf_counter() - start

    def setup():
        for name in baselines:
            times[name].append(baseline_round(name))
        collect_garbage()
        return (default_loop, makers["offload"](CAPACITIES[capacity], n)), {}

    asyncio.set_event_loop(default_loop)
    try:
        args, _ = setup()  # the warm-up round of every side, timed to choose the rounds
        start = time.perf_counter()
        run(*args)
        warmup = time.perf_counter() - start
        fastest = min(times[b][0] for b in baselines if b in baseline_names)
        baselines = [b for b in baselines
                     if b not in baseline_names or times[b][0] <= PAIRED_PRUNE * fastest]
        warmup += sum(times[b][0] for b in baselines)
        times = {b: [] for b in baselines}  # setup() sees the new binding
        benchmark.extra_info["paired_with"] = baselines
        benchmark.extra_info["baseline_capacities"] = {b: sides[b][1] for b in baselines}
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(PAIRED_BUDGET / warmup)))
        benchmark.extra_info["rounds"] = rounds
        benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)
    finally:
        asyncio.set_event_loop(None)
    benchmark.extra_info["baseline_medians"] = {
        name: sorted(t)[len(t) // 2] for name, t in times.items()}
