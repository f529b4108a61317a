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
median time per item and the speed-up against the scenario's baseline. Every candidate runs
the same loops (one per way of sending or receiving, below), which call its library's own
methods, bound to locals before the loop: no adapter layer in between. Each candidate gives the
fastest correct calls for its role (its Ends):

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
import contextlib
import functools
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import offload
from harness import collect_garbage

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


def mismatch(i: int, item: Any) -> AssertionError:
    return AssertionError(f"item {i}: expected {i}, received {item!r}")


def check_empty(size: int) -> None:
    assert size == 0, f"{size} items left in the queue after the last expected one"


class Side(threading.Thread):
    """A producer or consumer thread started inside the round, for the length of a `with` block:
    leaving the block joins it and re-raises its error."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(target=self._run, daemon=True, name="bench-side")
        self._fn = target
        self.error: Optional[BaseException] = None

    def _run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the benchmark thread
            self.error = exc

    def __enter__(self) -> "Side":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
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
# The candidates. Each maker takes a capacity and returns a fresh queue as its Ends: the calls,
# bound once, that each side makes, so that every candidate runs the same loops below.


@dataclass
class Ends:
    """The calls of one fresh queue, per side. A side the candidate never plays is None."""

    left: Callable[[], int]  # how many items it still holds
    put: Any = None  # put(i) in a thread (waits for room)
    get: Any = None  # get() in a thread
    send: Any = None  # await send(i) in a coroutine
    recv: Any = None  # await recv() in a coroutine
    # Instead of send: a put that never waits, called without await in a coroutine.
    send_nowait: Any = None
    # Instead of put(i): call_soon(put, i), a thread handing each put to the loop.
    call_soon: Any = None
    close_sender: Optional[Callable[[], None]] = None  # called by the producer after its last item
    # Awaited on the loop once every item was received (janus finishes its loop tasks).
    shutdown: Optional[Callable[[], Awaitable[None]]] = None


def offload_ends(capacity: Optional[int]) -> Ends:
    ch = offload.Channel(capacity)
    return Ends(ch.__len__, put=ch.send_blocking, get=ch.recv_blocking, send=ch.send, recv=ch.recv)


def janus_ends(capacity: Optional[int]) -> Ends:
    q = janus.Queue(maxsize(capacity))

    async def shutdown() -> None:  # janus wakes the loop through tasks: let the pending ones finish
        q.shutdown()
        await q.wait_closed()

    return Ends(q.sync_q.qsize, put=q.sync_q.put, get=q.sync_q.get, send=q.async_q.put,
                recv=q.async_q.get, shutdown=shutdown)


def culsans_ends(capacity: Optional[int]) -> Ends:
    # The calls on the queue itself (sync_put, async_get, ...): what the sync_q / async_q proxies
    # call, one proxy call less.
    q = culsans.Queue(maxsize(capacity))
    return Ends(q.__len__, put=q.sync_put, get=q.sync_get, send=q.async_put, recv=q.async_get)


def aiologic_ends(capacity: Optional[int]) -> Ends:
    """aiologic.SimpleQueue when unbounded (a deque and a semaphore: its fastest queue; an
    unbounded aiologic.Queue() is much slower here), else aiologic.Queue(capacity). SimpleQueue.put
    never waits and skips the checkpoint check: its fastest correct put, from threads and
    coroutines alike. A bounded Queue has only green_put / async_put."""
    if capacity is None:
        q = aiologic.SimpleQueue()
        return Ends(q.__len__, put=q.put, get=q.green_get, send_nowait=q.put, recv=q.async_get)
    q = aiologic.Queue(capacity)
    return Ends(q.__len__, put=q.green_put, get=q.green_get, send=q.async_put, recv=q.async_get)


def asyncio_ends(capacity: Optional[int]) -> Ends:
    q: "asyncio.Queue[int]" = asyncio.Queue(maxsize(capacity))
    return Ends(q.qsize, send=q.put, recv=q.get)


def asyncio_threadsafe_ends(capacity: Optional[int]) -> Ends:
    """The stdlib way for an unbounded stream: loop.call_soon_threadsafe(q.put_nowait, item)."""
    assert capacity is None, "call_soon_threadsafe cannot wait for room"
    q: "asyncio.Queue[int]" = asyncio.Queue()
    loop = asyncio.get_event_loop()  # the benchmark's loop, set as current by bench()
    return Ends(q.qsize, put=q.put_nowait, call_soon=loop.call_soon_threadsafe, recv=q.get)


def queue_ends(capacity: Optional[int]) -> Ends:
    q: "queue.Queue[int]" = queue.Queue(maxsize(capacity))
    return Ends(q.qsize, put=q.put, get=q.get)


def simplequeue_ends(capacity: Optional[int]) -> Ends:
    """queue.SimpleQueue (unbounded only): the stdlib's C queue, no maxsize, no task_done."""
    q: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    return Ends(q.qsize, put=q.put, get=q.get)


def anyio_ends(capacity: Optional[int]) -> Ends:
    """anyio's memory object stream (buffer size 0: a rendezvous); measured at capacity 0 only,
    the one alternative here with a rendezvous."""
    send_stream, receive_stream = anyio.create_memory_object_stream(
        float("inf") if capacity is None else capacity)

    async def shutdown() -> None:
        receive_stream.close()

    return Ends(lambda: receive_stream.statistics().current_buffer_used, send=send_stream.send,
                recv=receive_stream.receive, close_sender=send_stream.close, shutdown=shutdown)


QUEUES: Dict[str, Callable[[Optional[int]], Ends]] = {
    "offload": offload_ends,
    "janus": janus_ends,
    "culsans": culsans_ends,
    "aiologic": aiologic_ends,
    "asyncio": asyncio_ends,
    "asyncio_threadsafe": asyncio_threadsafe_ends,
    "queue": queue_ends,
    "simplequeue": simplequeue_ends,
    "anyio": anyio_ends,
}


# =============================================================================================
# The sides: what a round times, one loop per way of sending or receiving, each call bound to a
# local. A producer sends 0..n-1; a consumer checks that it got exactly those, in order, and
# that nothing is left.


def put_each(put: Callable[[int], Any], n: int) -> None:
    for i in range(n):
        put(i)


def call_soon_each(call_soon: Callable[..., Any], put: Callable[[int], Any], n: int) -> None:
    for i in range(n):
        call_soon(put, i)


async def send_each(send: Callable[[int], Awaitable[Any]], n: int,
                    close_sender: Optional[Callable[[], None]]) -> None:
    for i in range(n):
        await send(i)
    if close_sender is not None:
        close_sender()


async def send_nowait_each(put: Callable[[int], Any], n: int) -> None:
    for i in range(n):
        put(i)


def get_each(get: Callable[[], Any], n: int, left: Callable[[], int]) -> None:
    for i in range(n):
        item = get()
        if item != i:
            raise mismatch(i, item)
    check_empty(left())


async def recv_each(recv: Callable[[], Awaitable[Any]], n: int, left: Callable[[], int],
                    shutdown: Optional[Callable[[], Awaitable[None]]]) -> None:
    for i in range(n):
        item = await recv()
        if item != i:
            raise mismatch(i, item)
    check_empty(left())
    if shutdown is not None:
        await shutdown()


def thread_producer(q: Ends, n: int) -> Callable[[], None]:
    if q.call_soon is not None:
        return functools.partial(call_soon_each, q.call_soon, q.put, n)
    return functools.partial(put_each, q.put, n)


def coroutine_producer(q: Ends, n: int) -> Callable[[], Awaitable[None]]:
    if q.send_nowait is not None:
        return functools.partial(send_nowait_each, q.send_nowait, n)
    return functools.partial(send_each, q.send, n, q.close_sender)


def thread_consumer(q: Ends, n: int) -> Callable[[], None]:
    return functools.partial(get_each, q.get, n, q.left)


def coroutine_consumer(q: Ends, n: int) -> Callable[[], Awaitable[None]]:
    return functools.partial(recv_each, q.recv, n, q.left, q.shutdown)


# =============================================================================================
# The scenarios: each makes a round's sides from a fresh queue (untimed), and runs a round.


def t2c_sides(q: Ends, n: int):
    return thread_producer(q, n), coroutine_consumer(q, n)


def run_t2c(loop: asyncio.AbstractEventLoop, sides) -> None:
    """A thread producer (a new thread), the coroutine consumer on the loop."""
    produce, consume = sides
    with Side(produce):
        until_complete(loop, consume())


def c2c_sides(q: Ends, n: int):
    return coroutine_producer(q, n), coroutine_consumer(q, n)


def run_c2c(loop: asyncio.AbstractEventLoop, sides) -> None:
    """Two coroutines on one loop: the producer is a task, the consumer the main coroutine."""
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


def t2t_sides(q: Ends, n: int):
    return thread_producer(q, n), thread_consumer(q, n)


def run_t2t(_loop: Any, sides) -> None:
    """Two threads: the producer is a new thread, the consumer the benchmark's thread."""
    produce, consume = sides
    with Side(produce):
        consume()


def c2t_sides(q: Ends, n: int):
    # The consumer is a thread: janus's loop-side shutdown runs after it, on the loop.
    return coroutine_producer(q, n), thread_consumer(q, n), q.shutdown


def run_c2t(loop: asyncio.AbstractEventLoop, sides) -> None:
    """A coroutine producer on the loop, the consumer a new thread."""
    produce, consume, shutdown = sides
    with Side(consume):
        until_complete(loop, produce())
    if shutdown is not None:
        loop.run_until_complete(shutdown())


@dataclass
class Scenario:
    sides: Callable[[Ends, int], Tuple[Any, ...]]
    run: Callable[[Any, Tuple[Any, ...]], None]
    candidates: Tuple[str, ...]
    extra: Tuple[Tuple[str, str], ...] = ()  # (candidate, capacity) cases beyond the grid


SCENARIOS = {
    "t2c": Scenario(t2c_sides, run_t2c, ("offload", "janus", "culsans", "aiologic"),
                    extra=(("asyncio_threadsafe", "unbounded"),)),
    "c2c": Scenario(c2c_sides, run_c2c, ("asyncio", "offload", "janus", "culsans", "aiologic"),
                    extra=(("anyio", "cap0"),)),
    "t2t": Scenario(t2t_sides, run_t2t, ("queue", "offload", "janus", "culsans", "aiologic"),
                    extra=(("simplequeue", "unbounded"),)),
    "c2t": Scenario(c2t_sides, run_c2t, ("offload", "janus", "culsans", "aiologic")),
}


def make_sides(scenario: str, candidate: str, capacity: str, n: int) -> Tuple[Any, ...]:
    """A fresh queue of `candidate` at `capacity`, as the two sides of one round of `scenario`."""
    return SCENARIOS[scenario].sides(QUEUES[candidate](CAPACITIES[capacity]), n)


# =============================================================================================
# the benchmarks

LIBRARIES = {"janus": lambda: janus, "culsans": lambda: culsans, "aiologic": lambda: aiologic,
             "anyio": lambda: anyio}


def cases(scenario: str):
    """(candidate, capacity) pairs, ids `<candidate>-<capacity>`; capacity 0 only for the
    candidates with a rendezvous."""
    s = SCENARIOS[scenario]
    pairs = [(c, cap) for c in s.candidates for cap in CAPACITIES
             if cap != "cap0" or c in RENDEZVOUS] + list(s.extra)
    return pytest.mark.parametrize(("candidate", "capacity"), pairs,
                                   ids=[f"{c}-{cap}" for c, cap in pairs])


def rounds_within(budget: float, warmup: float) -> int:
    """As many rounds as the warm-up round's time fits in `budget`, within the bounds."""
    return max(MIN_ROUNDS, min(MAX_ROUNDS, int(budget / warmup)))


@contextlib.contextmanager
def current_loop(loop: Optional[asyncio.AbstractEventLoop]) -> Iterator[None]:
    """`loop` as the thread's current loop (for the queues that look it up when made)."""
    if loop is not None:
        asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        if loop is not None:
            asyncio.set_event_loop(None)


def bench(benchmark, loop, scenario: str, candidate: str, capacity: str) -> None:
    """Times the scenario's run; the untimed set-up collects garbage and makes a fresh queue
    and its two sides."""
    if candidate in LIBRARIES:
        need(LIBRARIES[candidate](), candidate)
    run = SCENARIOS[scenario].run
    n = ITEMS[capacity]
    benchmark.group = f"chan-{scenario}-{capacity}"
    benchmark.extra_info["items"] = n

    def setup():
        collect_garbage()
        return (loop, make_sides(scenario, candidate, capacity, n)), {}

    with current_loop(loop):
        args, _ = setup()  # the warm-up round, timed to choose the number of rounds
        start = time.perf_counter()
        run(*args)
        warmup = time.perf_counter() - start
        rounds = rounds_within(BUDGET, warmup)
        benchmark.extra_info["rounds"] = rounds
        benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)


@cases("t2c")
def test_chan_t2c(benchmark, default_loop, candidate: str, capacity: str) -> None:
    bench(benchmark, default_loop, "t2c", candidate, capacity)


@cases("c2c")
def test_chan_c2c(benchmark, default_loop, candidate: str, capacity: str) -> None:
    bench(benchmark, default_loop, "c2c", candidate, capacity)


@cases("t2t")
def test_chan_t2t(benchmark, candidate: str, capacity: str) -> None:
    bench(benchmark, None, "t2t", candidate, capacity)


@cases("c2t")
def test_chan_c2t(benchmark, default_loop, candidate: str, capacity: str) -> None:
    bench(benchmark, default_loop, "c2t", candidate, capacity)


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
    "t2c": ("janus", "culsans", "aiologic"),
    "c2c": ("asyncio",),
    "t2t": ("queue",),
    "c2t": ("janus", "culsans", "aiologic"),
}
PAIRED_RENDEZVOUS = {"c2c": ("anyio",)}
PAIRED_CASES = [(s, c) for s in ("t2c", "c2c", "t2t") for c in CAPACITIES if c != "cap0"] + [
    (s, "cap0") for s in PAIRED]
PAIRED_BUDGET = 3.0
PAIRED_PRUNE = 4.0


def installed(name: str) -> bool:
    return name not in LIBRARIES or LIBRARIES[name]() is not None


@pytest.mark.parametrize(("scenario", "capacity"), PAIRED_CASES,
                         ids=[f"{s}-{c}" for s, c in PAIRED_CASES])
def test_chan_paired(benchmark, default_loop, scenario: str, capacity: str) -> None:
    run = SCENARIOS[scenario].run
    baseline_names = PAIRED[scenario]
    stand_in = STAND_IN.get(capacity, capacity)
    # name -> the capacity it runs at
    sides = {b: stand_in for b in baseline_names if installed(b)}
    if not sides:
        pytest.skip(f"none of {', '.join(baseline_names)} is installed")
    if capacity == "cap0":
        sides.update((b, capacity) for b in PAIRED_RENDEZVOUS.get(scenario, ()) if installed(b))
    baselines = list(sides)
    n = ITEMS[capacity]
    assert ITEMS[stand_in] == n, "per-item figures of one pair come from rounds of one size"
    times: Dict[str, List[float]] = {b: [] for b in baselines}
    benchmark.group = "chan-paired"
    benchmark.extra_info["items"] = n

    def baseline_round(name: str) -> float:
        pair = make_sides(scenario, name, sides[name], n)
        collect_garbage()
        start = time.perf_counter()
        run(default_loop, pair)
        return time.perf_counter() - start

    def setup():
        for name in baselines:
            times[name].append(baseline_round(name))
        collect_garbage()
        return (default_loop, make_sides(scenario, "offload", capacity, n)), {}

    with current_loop(default_loop):
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
        benchmark.extra_info["baseline_capacities"] = {b: sides[b] for b in baselines}
        rounds = rounds_within(PAIRED_BUDGET, warmup)
        benchmark.extra_info["rounds"] = rounds
        benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)
    benchmark.extra_info["baseline_medians"] = {
        name: sorted(t)[len(t) // 2] for name, t in times.items()}
