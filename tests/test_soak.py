"""A bounded soak of everything at once, in a fresh interpreter, with an exact ledger.

Each round, two long-lived event loops (the default one and uvloop when installed), one fresh
loop in a fresh thread, and plain threads share three pools (a shared one, one for ``map``,
the default pool) and three channels (bounded, rendezvous, unbounded):

* calls: ``gather`` of ``pool.run``, ``offload.run`` and awaited ``pool.submit`` futures with
  random ``task.cancel()`` and ``asyncio.wait_for`` timeouts; ``pool.map`` (some with a
  failing item) and ``async for`` over ``pool.imap`` (ordered or not, sometimes left early),
  cancelled or timed out at random; threads doing ``submit(...).result(timeout=...)``,
  ``Future.cancel()``, done callbacks, and a running call asked to stop
  (``offload.cancelled()``); a fresh ``async with offload.Pool(1)`` per round;
* channel traffic: coroutines on all three loops and threads sending and receiving with
  ``send``/``recv`` (direct, under ``asyncio.timeout``/``wait_for``, or in a task cancelled at
  random), ``select``, the ``*_nowait`` and ``*_blocking`` calls with short timeouts, and
  ``async for``/``for``; producers still sending when the channels close; every other round
  the consumers are cancelled mid-``recv`` and the main thread drains what the closed channels
  still hold.

The ledger: every call is accounted for exactly once, as a result (the right one, from a call
that ran once), a failure (its own exception), cancelled (and then it never ran: an
``offload.Future`` says so definitively) or abandoned (an asyncio awaiter cancelled or timed
out: the call ran at most once); each pool's own counters must match the calls that ran.
Every item whose send completed is received exactly once, and no other item is. Memory
(tracemalloc, the C heap in use, RSS) must not grow steadily after a warm-up, and no thread
may be left behind, in Python or in the kernel.

``OFFLOAD_SOAK_SECONDS`` sets the duration (default 6; e.g. 600 for a long run), and
``OFFLOAD_SOAK_SEED`` the seed. The summary is printed (``pytest -s`` shows it) and recorded as
the test's ``soak`` property; ``python tests/test_soak.py`` runs the soak alone and prints
its summary as JSON.
"""

from __future__ import annotations

import array
import asyncio
import collections
import concurrent.futures
import ctypes
import functools
import gc
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import traceback
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Set, Tuple

import offload

if __name__ != "__main__":
    # Under pytest: the soak is a long run (`make test-slow`). Its own process, this file run as
    # a script, does not import pytest: the soak's memory starts from the same imports as ever.
    import pytest

    pytestmark = pytest.mark.slow

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extras
    uvloop = None  # type: ignore[assignment]

SECONDS = float(os.environ.get("OFFLOAD_SOAK_SECONDS", "6"))
SEED = int(os.environ.get("OFFLOAD_SOAK_SEED", "20261123"))
# Set by `make sanitize` (tools/sanitize/run.sh): the runtime's allocator keeps freed memory in
# quarantine and its shadow memory grows with use, so memory cannot be judged there; every
# count is still checked, with more time per party (everything runs 5-15 times slower).
SANITIZER = os.environ.get("OFFLOAD_SANITIZER", "")
HANG = 60.0 * (4 if SANITIZER else 1)  # a party that does not finish in time fails the soak
SHORT = [0, 0.0005, 0.002]  # random short timeouts
TIMEOUTS = [None, 0, 0.0005, 0.002]  # for thread-side channel waits (None: until done or closed)
FINITE = SHORT + [0.01]
CALLS_PER_LOOP = 60  # pool.run / offload.run / awaited submit per loop and round
MAP_ITEMS = 80  # at most, per map
IMAP_ITEMS = 40  # at most, per imap
THREAD_CALLS = 50  # pool.submit per thread and round
PER_PRODUCER = 40  # items each count-bounded producer sends per round
PAGE = os.sysconf("SC_PAGE_SIZE")

# Memory: after the warm-up (the first third of the time), the samples are cut into PARTS
# consecutive parts, each part's growth taken between the medians of EDGE samples at its ends.
# A leak grows with the operations, so in every part; PARTS times the smallest part's growth
# (the steady growth over the whole run after warm-up) may be at most these bounds, whatever
# the duration (so a longer run is a stricter test). What the interpreter allocates once
# grows in one part only, whenever it happens. Seen in the soak's process with tracemalloc
# snapshots:
# - CPython 3.10: the table of interned strings (~10,600, from the imports, so allocated before
#   tracemalloc starts) has 16,384 slots and only ~16-24 free when the soak starts; each fresh
#   asyncio loop's time.get_clock_info() interns a string that dies, leaving a deleted slot,
#   so the table is rebuilt with 32,768 slots 3-4 s into the run: one block of 576 KiB, all new
#   to tracemalloc. The next rebuild, of the same size, is ~11,000 fresh loops later (3.9 has
#   ~340 fresh loops of slack, 3.11 ~9,600; 3.12 interns for good, leaving no deleted slots).
# - Every version: linecache keeps a source file the first time a logged traceback shows it
#   (this file: ~140 KiB), e.g. asyncio's "Future exception was never retrieved".
# Measured on a 2-core VM, with nothing leaking: after warm-up, a 6 s run (~30,000 operations)
# grew tracemalloc by 10-140 KiB (3.10: up to 740), the C heap by 90-300 KiB and RSS by
# 0.6-2.1 MiB (still settling: malloc arenas of new threads); a 120 s run (~660,000
# operations) by 5 KiB, 104 KiB and 0.6 MiB. So a leak of 20 bytes of Python objects per
# operation, or ~20 KiB per round, fails a 6 s run; a 120 s run also catches 4 bytes per
# operation of C heap and 15 of RSS.
TRACED_LIMIT = 512 * 1024  # Python allocations (tracemalloc)
HEAP_LIMIT = 2 * 1024 * 1024  # bytes in use in the C heap, where the native core allocates
RSS_LIMIT = 8 * 1024 * 1024  # also counts fragmentation and memory kept for reuse
LIMITS = {"traced": TRACED_LIMIT, "heap": HEAP_LIMIT, "rss": RSS_LIMIT}
WARMUP_FRACTION = 1 / 3
EDGE = 3  # samples whose median is taken at each end of a part
PARTS = 3  # parts of the run after warm-up, each of which a leak grows


Spec = Tuple[int, bool, float]  # (call id, raises, seconds it blocks)
NOT_DONE = (TimeoutError, asyncio.TimeoutError, asyncio.CancelledError, offload.WouldBlock)
_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _heap_reader() -> Callable[[], int]:
    """Bytes in use in the C heap (glibc's mallinfo2: what malloc handed out and was not
    freed), where the native core allocates: unlike RSS, blind to fragmentation and to memory
    malloc keeps for reuse. -1 where it is not available."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return lambda: -1
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []

    def read() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return read


heap_bytes = _heap_reader()


class Samples:
    """Memory samples in columns allocated up front, so that sampling allocates nothing that
    stays (which tracemalloc would see as growth)."""

    FIELDS = ("t", "ops", "rss", "traced", "heap")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.columns = {name: array.array("d", bytes(8 * capacity)) for name in self.FIELDS}
        self.n = 0

    def add(self, t: float, ops: int, rss: int, traced: int, heap: int) -> None:
        if self.n < self.capacity:
            c, i = self.columns, self.n
            c["t"][i], c["ops"][i], c["rss"][i] = t, ops, rss
            c["traced"][i], c["heap"][i] = traced, heap
            self.n += 1

    def as_list(self) -> List[Dict[str, float]]:
        return [{name: self.columns[name][i] for name in self.FIELDS} for i in range(self.n)]


def type_counts() -> "collections.Counter[str]":
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def os_thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop" and uvloop is not None:
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def finish(task: "asyncio.Future[Any]") -> None:
    """Waits until `task` is done, through cancellations of the caller (passed on after)."""
    interrupted: Optional[BaseException] = None
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError as e:
            interrupted = e
    if interrupted is not None:
        raise interrupted


def expected(cid: int) -> int:
    return 3 * cid + 1


class CallFailed(Exception):
    """Raised by the calls flagged to fail; carries the call's id."""

    def __init__(self, cid: int) -> None:
        super().__init__(cid)
        self.cid = cid


# ----------------------------------------------------------------------------------------------
# The ledgers of one round.


class Calls:
    """Every offloaded call of a round: who submitted it where, whether it ran (recorded by the
    call itself, under a lock), and the one outcome its submitter saw."""

    def __init__(self, base: int, failures: List[str]) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(base)
        self.label: Dict[int, str] = {}  # call id -> the pool it went to
        self.fails: Set[int] = set()  # ids flagged to raise
        self.ran: Set[int] = set()
        self.ran_twice: List[int] = []
        self.outcome: Dict[int, str] = {}  # result | failed | cancelled | abandoned
        self.settled_twice: List[int] = []
        self.callbacks: "collections.Counter[int]" = collections.Counter()
        self.with_callback: Set[int] = set()
        self.deferred: List[Tuple[int, "offload.Future[int]"]] = []  # awaiter cancelled
        self.map_errors: List[Tuple[List[int], int]] = []  # (a map's ids, the id it raised)
        self.stopped_early = 0  # calls that saw offload.cancelled() turn true
        self.failures = failures

    def new(self, rng: random.Random, label: str, fail: Optional[bool] = None) -> Spec:
        r = rng.random()
        delay = 0.0 if r < 0.85 else (0.0002 if r < 0.95 else 0.001)
        if fail is None:
            fail = rng.random() < 0.03
        with self.lock:
            cid = next(self.ids)
            self.label[cid] = label
            if fail:
                self.fails.add(cid)
        return cid, fail, delay

    # -- on the workers -----------------------------------------------------------------------

    def work(self, cid: int, fail: bool, delay: float) -> int:
        with self.lock:
            if cid in self.ran:
                self.ran_twice.append(cid)
            self.ran.add(cid)
        if delay:
            time.sleep(delay)  # a blocking call, as offloaded calls are
        if fail:
            raise CallFailed(cid)
        return expected(cid)

    def work_item(self, spec: Spec) -> int:
        return self.work(*spec)

    def until_cancelled(self, cid: int, started: threading.Event) -> int:
        """Runs until its future is cancelled (offload.cancelled() polled, as documented)."""
        with self.lock:
            self.ran.add(cid)
        started.set()
        deadline = time.monotonic() + HANG
        while time.monotonic() < deadline:
            if offload.cancelled():
                with self.lock:
                    self.stopped_early += 1
                return expected(cid)
            time.sleep(0.0002)
        return -1  # never asked to stop: a wrong result, reported by settle()

    # -- on the submitters --------------------------------------------------------------------

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def settle(self, cid: int, outcome: str, value: Any = None) -> None:
        with self.lock:
            if cid in self.outcome:
                self.settled_twice.append(cid)
                return
            self.outcome[cid] = outcome
        if outcome == "result" and value != expected(cid):
            self.fail(f"call {cid} ({self.label.get(cid)}): result {value!r}, not {expected(cid)}")
        if outcome == "failed" and not (isinstance(value, CallFailed) and value.cid == cid):
            self.fail(f"call {cid} ({self.label.get(cid)}): raised {value!r}")

    def settle_gathered(self, cid: int, value: Any) -> None:
        """The outcome of an awaited call, as asyncio.gather(return_exceptions=True) gives it."""
        if isinstance(value, CallFailed):
            self.settle(cid, "failed", value)
        elif isinstance(value, (asyncio.CancelledError, asyncio.TimeoutError)):
            self.settle(cid, "abandoned")  # ran at most once; its result, if any, was dropped
        elif isinstance(value, BaseException):
            self.fail(f"call {cid}: unexpected {value!r}")
            self.settle(cid, "abandoned")
        else:
            self.settle(cid, "result", value)

    def callback(self, cid: int, future: "offload.Future[int]") -> None:
        with self.lock:
            self.callbacks[cid] += 1

    # -- at the end of the round, once every worker passed a fence ----------------------------

    def verify(self, totals: "collections.Counter[str]") -> None:
        for cid, fut in self.deferred:
            # Its awaiting task was cancelled, which cancels the call unless it had started:
            # cancelled and never run, or run and its result is there.
            if not fut.done():
                self.fail(f"call {cid}: future still pending after the fence: {fut!r}")
                self.settle(cid, "abandoned")
            elif fut.cancelled():
                self.settle(cid, "cancelled")
            else:
                error = fut.exception(0)
                if error is None:
                    self.settle(cid, "result", fut.result(0))
                else:
                    self.settle(cid, "failed", error)
        for ids, raised in self.map_errors:
            failed_and_ran = [c for c in ids if c in self.fails and c in self.ran]
            if not failed_and_ran or min(failed_and_ran) != raised:
                self.fail(f"map raised for {raised}; failing calls that ran: {failed_and_ran[:3]}")
        if self.ran_twice:
            self.fail(f"calls ran twice: {self.ran_twice[:10]}")
        if self.settled_twice:
            self.fail(f"outcomes received twice: {self.settled_twice[:10]}")
        lost = self.label.keys() - self.outcome.keys()
        if lost:
            self.fail(f"{len(lost)} calls without an outcome (lost): {sorted(lost)[:10]}")
        stray = self.ran - self.label.keys()
        if stray:
            self.fail(f"calls ran that were never submitted: {sorted(stray)[:10]}")
        for cid, outcome in self.outcome.items():
            ran, flagged = cid in self.ran, cid in self.fails
            if outcome == "result" and (not ran or flagged):
                self.fail(f"call {cid}: a result although ran={ran} flagged={flagged}")
            elif outcome == "failed" and not (ran and flagged):
                self.fail(f"call {cid}: failed although ran={ran} flagged={flagged}")
            elif outcome == "cancelled" and ran:
                self.fail(f"call {cid}: cancelled, yet it ran")
            totals[f"calls_{outcome}"] += 1
        for cid in self.with_callback:
            if self.callbacks[cid] != 1:
                self.fail(f"call {cid}: done callback called {self.callbacks[cid]} times")
        for cid, label in self.label.items():
            totals[f"{label}_submitted"] += 1
            if cid in self.ran:
                totals[f"{label}_ran_failed" if cid in self.fails else f"{label}_ran_ok"] += 1
        totals["calls_submitted"] += len(self.label)
        totals["calls_ran"] += len(self.ran)
        totals["calls_stopped_early"] += self.stopped_early
        totals["done_callbacks"] += sum(self.callbacks.values())


class Items:
    """Every channel item of a round (list.append is atomic under the GIL)."""

    def __init__(self) -> None:
        self.attempted: List[int] = []
        self.sent: List[int] = []  # sends that returned normally
        self.not_sent: List[int] = []  # sends that raised
        self.received: List[int] = []
        self.drained: List[int] = []  # by the main thread, from the closed channels
        self.lock = threading.Lock()
        self.outcomes: "collections.Counter[str]" = collections.Counter()

    def count(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1


# ----------------------------------------------------------------------------------------------
# One round.


class Round:
    def __init__(self, soak: "Soak", number: int) -> None:
        self.number = number
        self.failures: List[str] = []
        self.calls = Calls(number * 10_000_000, self.failures)
        self.items = Items()
        self.pool = soak.pool
        self.map_pool = soak.map_pool
        rng = self.rng(0)
        # bounded, rendezvous, unbounded
        self.channels: List[offload.Channel[int]] = [
            offload.Channel(rng.randint(1, 8)),
            offload.Channel(0),
            offload.Channel(None),
        ]
        # Every other round, the consumers are stopped before the close and the main thread
        # drains the channels; else the consumers drain them after the close.
        self.main_drains = number % 2 == 1
        self.stop = threading.Event()  # consumers: stop now (main-drain rounds)
        self.closed = threading.Event()  # set just before the channels are closed
        self.lock = threading.Lock()
        self.producers_left = 2 * 2 + 2 + 1  # count-bounded: 2 per loop, 2 threads, 1 fresh loop
        self.producers_done = threading.Event()
        self.consumers_left = 2 * 2 + 2  # 2 per loop, 2 threads
        self.consumers_done = threading.Event()
        self.loop_consumers: Dict[int, List["asyncio.Task[None]"]] = {}
        self.fresh_pool_stats: Optional[offload.PoolStats] = None

    def rng(self, tag: int) -> random.Random:
        return random.Random(f"{SEED}-{self.number}-{tag}")

    def fail_exc(self, where: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.failures.append(f"{where}: {text}")

    def producer_finished(self) -> None:
        with self.lock:
            self.producers_left -= 1
            if self.producers_left == 0:
                self.producers_done.set()

    def consumer_finished(self) -> None:
        with self.lock:
            self.consumers_left -= 1
            if self.consumers_left == 0:
                self.consumers_done.set()

    def index_of(self, error: offload.ChannelClosed, fallback: int) -> int:
        if error.op is None:
            return fallback
        return next(i for i, ch in enumerate(self.channels) if ch is error.op.channel)

    def closed_before_close(self, who: str) -> None:
        if not self.closed.is_set():
            self.failures.append(f"{who}: ChannelClosed before close()")

    # -- calls from coroutines ----------------------------------------------------------------

    async def call_batch(self, rng: random.Random, pool: offload.Pool, label: str, n: int) -> None:
        """gather() of pool.run, offload.run and awaited pool.submit futures, some wrapped in
        wait_for with a short timeout, some cancelled at a random moment."""
        calls = self.calls

        async def awaiting(fut: "offload.Future[int]") -> int:
            return await fut

        entries: List[Tuple[int, Optional["offload.Future[int]"], "asyncio.Future[Any]"]] = []
        for _ in range(n):
            r = rng.random()
            fut: Optional[offload.Future[int]] = None
            aw: Awaitable[int]
            if r < 0.4:
                cid, fail, delay = calls.new(rng, label)
                aw = pool.run(calls.work, cid, fail, delay)
            elif r < 0.7:
                cid, fail, delay = calls.new(rng, "default")
                aw = offload.run(calls.work, cid, fail, delay)
            else:
                cid, fail, delay = calls.new(rng, label)
                fut = pool.submit(calls.work, cid, fail, delay)
                aw = asyncio.ensure_future(awaiting(fut))  # a task: awaited even if wait_for is not
            if rng.random() < 0.1:
                aw = asyncio.wait_for(aw, rng.choice(SHORT))
            entries.append((cid, fut, asyncio.ensure_future(aw)))
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        for _, _, task in entries:
            if rng.random() < 0.15:
                task.cancel()
        results = await asyncio.gather(*(task for _, _, task in entries), return_exceptions=True)
        for (cid, fut, _), value in zip(entries, results):
            if fut is not None and isinstance(value, (asyncio.CancelledError, asyncio.TimeoutError)):
                calls.deferred.append((cid, fut))  # settled from the future after the fence
            else:
                calls.settle_gathered(cid, value)

    async def map_batch(self, rng: random.Random) -> None:
        calls = self.calls
        n = rng.randint(1, MAP_ITEMS)
        failing = set(rng.sample(range(n), rng.randint(1, min(2, n)))) if rng.random() < 0.15 else set()
        specs = [calls.new(rng, "map", fail=i in failing) for i in range(n)]
        ids = [spec[0] for spec in specs]
        aw: Awaitable[List[int]] = self.map_pool.map(calls.work_item, specs)
        r = rng.random()
        try:
            if r < 0.1:
                results = await asyncio.wait_for(aw, rng.choice(SHORT))
            elif r < 0.2:
                task = asyncio.ensure_future(aw)
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
                results = await task
            else:
                results = await aw
        except CallFailed as e:
            calls.map_errors.append((ids, e.cid))
            calls.settle(e.cid, "failed", e)
            for cid in ids:
                if cid != e.cid:
                    calls.settle(cid, "abandoned")  # ran or not; their results are dropped
            return
        except (asyncio.CancelledError, asyncio.TimeoutError):
            for cid in ids:
                calls.settle(cid, "abandoned")
            return
        if len(results) != n:
            calls.fail(f"map of {n} items returned {len(results)} results")
        for cid, value in zip(ids, results):
            calls.settle(cid, "result", value)

    async def imap_batch(self, rng: random.Random, pool: offload.Pool, label: str) -> None:
        calls = self.calls
        n = rng.randint(1, IMAP_ITEMS)
        pulled: List[int] = []  # imap reads its input lazily: only these were submitted

        def feed() -> Iterator[Spec]:
            for _ in range(n):
                spec = calls.new(rng, label)
                pulled.append(spec[0])
                yield spec

        ordered = rng.random() < 0.5
        stop_after = rng.randint(1, n) if rng.random() < 0.3 else None
        results = pool.imap(calls.work_item, feed(), ordered=ordered, window=rng.randint(1, 12))
        got: List[int] = []
        failed: Optional[CallFailed] = None
        try:
            async for value in results:
                got.append(value)
                if stop_after is not None and len(got) >= stop_after:
                    break
        except CallFailed as e:
            failed = e
        finally:
            await results.aclose()  # type: ignore[attr-defined]  # an async generator
        if ordered and got != [expected(cid) for cid in pulled[: len(got)]]:
            calls.fail(f"ordered imap out of order: {got[:5]} for {pulled[:5]}")
        for value in got:
            cid = (value - 1) // 3
            if cid not in pulled:
                calls.fail(f"imap yielded {value}, not a result of its calls")
            else:
                calls.settle(cid, "result", value)
        if failed is not None:
            calls.settle(failed.cid, "failed", failed)
        for cid in pulled:
            if cid not in calls.outcome:
                calls.settle(cid, "abandoned")

    # -- channels from coroutines -------------------------------------------------------------

    async def interrupted(
        self, rng: random.Random, attempt: Callable[[], Awaitable[None]], may_block: bool = True
    ) -> None:
        """Runs the coroutine function `attempt` directly (only if it `may_block`), under
        asyncio.timeout or wait_for with a short timeout, or as a task cancelled at a random
        moment. `attempt` records its own success with no await in between, so whatever the
        wrapper raises, the ledger is right."""
        r = rng.random()
        if r < 0.45 and may_block:
            await attempt()
        elif r < 0.6 and _timeout is not None:
            async with _timeout(rng.choice(SHORT)):
                await attempt()
        elif r < 0.75:
            await asyncio.wait_for(attempt(), rng.choice(SHORT))
        else:
            task = asyncio.ensure_future(attempt())
            try:
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                if rng.random() < 0.3:
                    await asyncio.sleep(0.0005)
            finally:
                # Even if this coroutine is cancelled meanwhile: no attempt outlives it.
                task.cancel()
                await finish(task)
            task.result()  # its outcome: None, or what it raised

    async def loop_producer(self, tag: int, count: Optional[int]) -> None:
        """Sends `count` items (None: until the channels are closed, to the bounded and the
        rendezvous channels only, which push back)."""
        rng = self.rng(tag)
        items = self.items
        targets = self.channels if count is not None else self.channels[:2]
        try:
            for i in itertools.count():
                if count is not None and i >= count:
                    return
                x = self.number * 10_000_000 + tag * 100_000 + i
                items.attempted.append(x)
                ch = rng.choice(targets)
                kind = rng.random()
                ops = [c.send_op(x) for c in targets]
                rng.shuffle(ops)

                async def attempt(x: int = x, ch: offload.Channel[int] = ch, kind: float = kind,
                                  ops: List[offload.Operation] = ops) -> None:
                    try:
                        if kind < 0.55:
                            await ch.send(x)
                        elif kind < 0.85:
                            await offload.select(*ops, timeout=rng.choice(TIMEOUTS))
                        else:
                            ch.send_nowait(x)
                    except BaseException:
                        items.not_sent.append(x)
                        raise
                    items.sent.append(x)  # delivered: recorded before any other await

                try:
                    await self.interrupted(rng, attempt)
                except NOT_DONE as e:
                    items.count(f"send {type(e).__name__}")
                    if isinstance(e, offload.WouldBlock):
                        await asyncio.sleep(0)
                except offload.ChannelClosed:
                    items.count("send ChannelClosed")
                    self.closed_before_close(f"loop producer {tag}")
                    if count is None:
                        return
        finally:
            if count is not None:
                self.producer_finished()

    async def loop_consumer(self, tag: int, home: int) -> None:
        """Receives until the channels are closed and drained, or until stopped (cancelled).

        It waits without a time limit only on its `home` channel or in a select over every
        open channel: with each channel the home of some consumer, a consumer waiting on one
        channel can never leave senders stuck on another for good."""
        rng = self.rng(tag)
        items = self.items
        open_ = [0, 1, 2]
        try:
            while open_ and not self.stop.is_set():
                index = rng.choice(open_)
                ch = self.channels[index]
                kind = rng.random()
                ops = [self.channels[i].recv_op() for i in open_]
                rng.shuffle(ops)

                async def attempt(ch: offload.Channel[int] = ch, kind: float = kind,
                                  ops: List[offload.Operation] = ops) -> None:
                    if kind < 0.4:
                        x = await ch.recv()
                    elif kind < 0.75:
                        x = (await offload.select(*ops, timeout=rng.choice(TIMEOUTS))).value
                    elif kind < 0.85:
                        x = ch.recv_nowait()
                    else:
                        x = await ch.__anext__()
                    items.received.append(x)  # recorded before any other await

                try:
                    await self.interrupted(rng, attempt, may_block=index == home or 0.4 <= kind < 0.85)
                except asyncio.CancelledError:
                    if self.stop.is_set():
                        return  # stopped by the main thread
                    items.count("recv CancelledError")
                except NOT_DONE as e:
                    items.count(f"recv {type(e).__name__}")
                    if isinstance(e, offload.WouldBlock):
                        await asyncio.sleep(0)
                except offload.ChannelClosed as e:
                    open_.remove(self.index_of(e, index))
                except StopAsyncIteration:
                    open_.remove(index)
        finally:
            self.consumer_finished()

    def cancel_loop_consumers(self, index: int) -> None:
        """On loop `index`: cancels its consumers, wherever they wait."""
        for task in self.loop_consumers.get(index, []):
            task.cancel()

    async def loop_party(self, index: int) -> None:
        base = 100 + 10 * index
        rng = self.rng(base + 9)
        homes = [(0, 1), (2, 1)][index]
        consumers = [asyncio.ensure_future(self.loop_consumer(base + k, homes[k])) for k in (0, 1)]
        self.loop_consumers[index] = consumers

        async def calls() -> None:
            await self.call_batch(rng, self.pool, "pool", CALLS_PER_LOOP // 2)
            await self.map_batch(rng)
            await self.imap_batch(rng, self.pool, "pool")
            await self.call_batch(rng, self.pool, "pool", CALLS_PER_LOOP // 2)

        results = await asyncio.gather(
            calls(),
            self.loop_producer(base + 2, PER_PRODUCER),
            self.loop_producer(base + 3, PER_PRODUCER),
            self.loop_producer(base + 4, None),
            *consumers,
            return_exceptions=True,
        )
        for value in results:
            if isinstance(value, asyncio.CancelledError) and self.stop.is_set():
                continue  # a consumer stopped by the main thread
            if isinstance(value, BaseException):
                self.fail_exc(f"loop {index}", value)

    # -- a fresh loop in a fresh thread, with a pool of its own -------------------------------

    def fresh_loop(self, tag: int) -> None:
        kind = "uvloop" if self.number % 2 else "asyncio"
        loop = new_loop(kind)
        try:
            loop.run_until_complete(asyncio.wait_for(self.fresh_loop_main(tag), HANG))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    async def fresh_loop_main(self, tag: int) -> None:
        rng = self.rng(tag)
        async with offload.Pool(1, name="soak-fresh") as pool:
            await asyncio.gather(
                self.call_batch(rng, pool, "fresh", 20),
                self.imap_batch(rng, pool, "fresh"),
                self.loop_producer(tag + 1, PER_PRODUCER),
            )
        self.fresh_pool_stats = pool.stats()  # final: its worker was joined

    # -- threads ------------------------------------------------------------------------------

    def thread_calls(self, tag: int) -> None:
        rng = self.rng(tag)
        calls = self.calls
        entries: List[Tuple[int, offload.Future[int]]] = []
        for _ in range(THREAD_CALLS):
            pool, label = (self.pool, "pool") if rng.random() < 0.6 else (offload.default_pool(), "default")
            cid, fail, delay = calls.new(rng, label)
            fut = pool.submit(calls.work, cid, fail, delay)
            calls.with_callback.add(cid)
            fut.add_done_callback(functools.partial(calls.callback, cid))
            entries.append((cid, fut))
        for cid, fut in entries:
            if rng.random() < 0.25 and fut.cancel():
                # cancelled before it started: it never runs (checked after the fence)
                if not fut.cancelled():
                    calls.fail(f"call {cid}: cancel() returned True, cancelled() is False")
                try:
                    fut.result(0)
                    calls.fail(f"call {cid}: a result from a cancelled future")
                except concurrent.futures.CancelledError:
                    pass
                calls.settle(cid, "cancelled")
                continue
            try:
                if rng.random() < 0.2:
                    try:
                        value = fut.result(timeout=rng.choice([0, 0.0005]))
                    except concurrent.futures.TimeoutError:
                        self.items.count("result TimeoutError")
                        value = fut.result(timeout=HANG)
                else:
                    value = fut.result(timeout=HANG)
            except CallFailed as e:
                calls.settle(cid, "failed", e)
            else:
                calls.settle(cid, "result", value)

        # A running call cannot be cancelled; it is asked to stop, and its result arrives.
        started = threading.Event()
        cid, _, _ = calls.new(rng, "pool", fail=False)
        fut = self.pool.submit(calls.until_cancelled, cid, started)
        if not started.wait(HANG):
            calls.fail("until_cancelled never started")
        if fut.cancel():
            calls.fail(f"call {cid}: cancel() of a running call returned True")
        calls.settle(cid, "result", fut.result(timeout=HANG))

    def thread_producer(self, tag: int, count: Optional[int]) -> None:
        rng = self.rng(tag)
        items = self.items
        targets = self.channels if count is not None else self.channels[:2]
        try:
            for i in itertools.count():
                if count is not None and i >= count:
                    return
                x = self.number * 10_000_000 + tag * 100_000 + i
                items.attempted.append(x)
                r = rng.random()
                ch = rng.choice(targets)
                try:
                    if r < 0.5:
                        ch.send_blocking(x, timeout=rng.choice(TIMEOUTS))
                    elif r < 0.8:
                        ops = [c.send_op(x) for c in targets]
                        rng.shuffle(ops)
                        offload.select_blocking(*ops, timeout=rng.choice(TIMEOUTS))
                    else:
                        ch.send_nowait(x)
                except NOT_DONE as e:
                    items.not_sent.append(x)
                    items.count(f"send {type(e).__name__}")
                    continue
                except offload.ChannelClosed:
                    items.not_sent.append(x)
                    items.count("send ChannelClosed")
                    self.closed_before_close(f"thread producer {tag}")
                    if count is None:
                        return
                    continue
                items.sent.append(x)
        finally:
            if count is not None:
                self.producer_finished()

    def thread_consumer(self, tag: int, home: int) -> None:
        """As loop_consumer; stopped by the `stop` event, so it never waits without a time
        limit in the rounds where it is stopped."""
        rng = self.rng(tag)
        items = self.items
        open_ = [0, 1, 2]
        try:
            while open_ and not self.stop.is_set():
                r = rng.random()
                index = rng.choice(open_)
                ch = self.channels[index]
                may_block = index == home and not self.main_drains
                try:
                    if r < 0.4:
                        x = ch.recv_blocking(timeout=rng.choice(TIMEOUTS if may_block else FINITE))
                    elif r < 0.75:
                        ops = [self.channels[i].recv_op() for i in open_]
                        rng.shuffle(ops)
                        timeout = rng.choice(FINITE if self.main_drains else TIMEOUTS)
                        x = offload.select_blocking(*ops, timeout=timeout).value
                    elif r < 0.9 or not may_block:
                        x = ch.recv_nowait()
                    else:
                        x = next(iter(ch))  # StopIteration once closed and drained
                except NOT_DONE as e:
                    items.count(f"recv {type(e).__name__}")
                    continue
                except offload.ChannelClosed as e:
                    open_.remove(self.index_of(e, index))
                    continue
                except StopIteration:
                    open_.remove(index)
                    continue
                items.received.append(x)
        finally:
            self.consumer_finished()

    # -- verification -------------------------------------------------------------------------

    def verify(self, totals: "collections.Counter[str]") -> None:
        self.calls.verify(totals)
        items = self.items
        sent, received = items.sent, items.received + items.drained
        counted = collections.Counter(received)
        duplicated = [x for x, n in counted.items() if n > 1]
        if duplicated:
            self.failures.append(f"items received more than once: {duplicated[:10]}")
        if len(set(sent)) != len(sent):
            self.failures.append("an item was sent twice")
        both = set(sent) & set(items.not_sent)
        if both:
            self.failures.append(f"items both sent and not sent: {sorted(both)[:10]}")
        phantom = counted.keys() - set(sent)
        if phantom:
            self.failures.append(f"items received whose send did not complete: {sorted(phantom)[:10]}")
        lost = set(sent) - counted.keys()
        if lost:
            self.failures.append(f"items lost: {len(lost)}, e.g. {sorted(lost)[:10]}")
        stats = [ch.stats() for ch in self.channels]
        if sum(s.sent for s in stats) != len(sent) or sum(s.received for s in stats) != len(received):
            self.failures.append(f"channel counters {stats} vs sent {len(sent)} received {len(received)}")
        for s in stats:
            if (s.buffered, s.waiting_senders, s.waiting_receivers, s.closed) != (0, 0, 0, True):
                self.failures.append(f"channel not empty and idle after the round: {s}")
        fresh = self.fresh_pool_stats
        if fresh is None:
            self.failures.append("the fresh loop's pool reported no stats")
        else:
            # its own calls only: run/imap on the fresh pool, so its counters are exact
            ran = [c for c in self.calls.ran if self.calls.label.get(c) == "fresh"]
            failed = sum(1 for c in ran if c in self.calls.fails)
            submitted = sum(1 for label in self.calls.label.values() if label == "fresh")
            want = (submitted, len(ran) - failed, failed, submitted - len(ran), 0, 0)
            got = (fresh.submitted, fresh.completed, fresh.failed, fresh.cancelled, fresh.queued, fresh.busy)
            if got != want:
                self.failures.append(f"fresh pool counters {got}, expected {want}")
        totals["items_attempted"] += len(items.attempted)
        totals["items_sent"] += len(sent)
        totals["items_not_sent"] += len(items.not_sent)
        totals["items_received_by_parties"] += len(items.received)
        totals["items_drained_after_close"] += len(items.drained)
        for what, n in items.outcomes.items():
            totals[what] += n


# ----------------------------------------------------------------------------------------------
# The soak: rounds until the time is up.


class Soak:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.totals: "collections.Counter[str]" = collections.Counter()
        self.failures: List[str] = []
        self.fences: "collections.Counter[str]" = collections.Counter()
        self.kinds = ["asyncio", "uvloop" if uvloop is not None else "asyncio"]
        self.pool = offload.Pool(2, name="soak")
        self.map_pool = offload.Pool(2, name="soak-map")
        self.loops = [new_loop(kind) for kind in self.kinds]
        self.loop_threads = [
            threading.Thread(target=self.run_loop, args=(loop,), name=f"soak-loop-{i}")
            for i, loop in enumerate(self.loops)
        ]
        for t in self.loop_threads:
            t.start()

    @staticmethod
    def run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def wait(self, event: threading.Event, what: str, rnd: Round) -> None:
        if not event.wait(HANG):
            self.hung(f"{what} never finished", rnd)

    def hung(self, what: str, rnd: Round) -> None:
        """A hang cannot be recovered from: report everything and leave."""
        report = {
            "failures": self.failures + rnd.failures + [f"round {rnd.number}: {what}"],
            "channels": [repr(ch.stats()) for ch in rnd.channels],
            "pools": [repr(p.stats()) for p in (self.pool, self.map_pool, offload.default_pool())],
            "threads": [t.name for t in threading.enumerate()],
            "totals": dict(self.totals),
        }
        print(json.dumps(report), flush=True)
        os._exit(3)

    def fence(self, pool: offload.Pool, label: str) -> None:
        """Returns once every call submitted so far has finished or been skipped: calls start
        in submission order, so when every worker is inside one of these, nothing before them
        is queued or running."""
        barrier = threading.Barrier(pool.workers)
        futures = [pool.submit(barrier.wait, HANG) for _ in range(pool.workers)]
        for fut in futures:
            fut.result(HANG + 5)
        self.fences[label] += pool.workers

    def round(self, number: int) -> None:
        rnd = Round(self, number)
        parties = [
            asyncio.run_coroutine_threadsafe(rnd.loop_party(i), loop) for i, loop in enumerate(self.loops)
        ]
        targets: List[Tuple[Callable[..., None], Tuple[Any, ...]]] = [
            (rnd.thread_calls, (201,)),
            (rnd.thread_calls, (202,)),
            (rnd.thread_producer, (203, PER_PRODUCER)),
            (rnd.thread_producer, (204, PER_PRODUCER)),
            (rnd.thread_producer, (205, None)),  # until the channels are closed
            (rnd.thread_consumer, (206, 0)),
            (rnd.thread_consumer, (207, 2)),
            (rnd.fresh_loop, (210,)),
        ]

        def guarded(fn: Callable[..., None], *args: Any) -> None:
            try:
                fn(*args)
            except BaseException as e:
                rnd.fail_exc(f"{fn.__name__}{args}", e)

        threads = [
            threading.Thread(target=guarded, args=(fn, *args), name=f"soak-{fn.__name__}-{args[0]}")
            for fn, args in targets
        ]
        for t in threads:
            t.start()

        self.wait(rnd.producers_done, "count-bounded producers", rnd)
        main_items: List[int] = []
        if rnd.main_drains:
            rnd.stop.set()
            for i, loop in enumerate(self.loops):
                loop.call_soon_threadsafe(rnd.cancel_loop_consumers, i)
            self.wait(rnd.consumers_done, "stopped consumers", rnd)
            waiting = [ch.stats().waiting_receivers for ch in rnd.channels]
            if any(waiting):
                rnd.failures.append(f"receivers still waiting after every consumer stopped: {waiting}")
            # Leave items in the closed channels for sure: nobody receives any more.
            for k in range(3):
                x = number * 10_000_000 + 999 * 100_000 + k
                rnd.channels[2].send_nowait(x)
                rnd.items.attempted.append(x)
                rnd.items.sent.append(x)
                main_items.append(x)
        rnd.closed.set()
        for ch in rnd.channels:
            ch.close()
        for ch in rnd.channels:
            for x in ch:  # a closed channel still yields what it holds, then stops
                rnd.items.drained.append(x)
        if not set(main_items) <= set(rnd.items.drained):
            rnd.failures.append(f"items left in a closed channel were not drained: {main_items}")

        for fut in parties:
            try:
                fut.result(HANG)
            except concurrent.futures.TimeoutError:
                self.hung("a loop party", rnd)
        for t in threads:
            t.join(HANG)
            if t.is_alive():
                self.hung(f"thread {t.name}", rnd)

        self.fence(self.pool, "pool")
        self.fence(self.map_pool, "map")
        self.fence(offload.default_pool(), "default")
        rnd.verify(self.totals)
        self.totals["rounds"] += 1
        self.totals["main_drain_rounds"] += rnd.main_drains
        self.failures.extend(f"round {number}: {f}" for f in rnd.failures)

    def run(self) -> Dict[str, Any]:
        started = time.monotonic()
        samples = Samples(int(self.seconds * 50) + 100)
        warm: Optional["collections.Counter[str]"] = None  # object counts at the end of warm-up
        number = 0
        while time.monotonic() - started < self.seconds and not self.failures:
            self.round(number)
            number += 1
            gc.collect()
            t = time.monotonic() - started
            if warm is None and t >= self.seconds * WARMUP_FRACTION:
                warm = type_counts()  # taken before the first sample it is compared with
            traced, _ = tracemalloc.get_traced_memory()
            ops = self.totals["calls_submitted"] + self.totals["items_attempted"]
            samples.add(t, ops, rss_bytes(), traced, heap_bytes())
        elapsed = time.monotonic() - started
        # Which objects grew in number after the warm-up (a leak's first suspect).
        grown = type_counts()
        grown.subtract(warm or grown)
        return {
            "elapsed": round(elapsed, 2),
            "samples": samples.as_list(),
            "objects_grown_after_warmup": {k: n for k, n in grown.most_common(8) if n > 0},
        }

    def close(self) -> None:
        for loop in self.loops:
            loop.call_soon_threadsafe(loop.stop)
        for t in self.loop_threads:
            t.join(HANG)
        for pool in (self.pool, self.map_pool, offload.default_pool()):
            pool.shutdown(wait=True)

    def pool_accounts(self) -> Dict[str, Any]:
        """Each pool's counters against the ledger (exact once the pools were shut down)."""
        t = self.totals
        accounts: Dict[str, Any] = {}
        for label, pool in (("pool", self.pool), ("default", offload.default_pool())):
            s = pool.stats()
            fences, sub = self.fences[label], t[f"{label}_submitted"]
            ok, failed = t[f"{label}_ran_ok"], t[f"{label}_ran_failed"]
            want = {
                "submitted": sub + fences,
                "completed": ok + fences,
                "failed": failed,
                "cancelled": sub - ok - failed,
            }
            got = {k: getattr(s, k) for k in want}
            accounts[label] = {"stats": got, "ledger": want}
            if got != want or (s.queued, s.busy) != (0, 0):
                self.failures.append(f"{label} pool counters {s} do not match the ledger {want}")
        s = self.map_pool.stats()
        counters = ("submitted", "completed", "failed", "cancelled")
        accounts["map"] = {"stats": {k: getattr(s, k) for k in counters}}
        if s.submitted != s.completed + s.failed + s.cancelled or (s.queued, s.busy) != (0, 0):
            self.failures.append(f"map pool counters do not add up: {s}")
        return accounts


def soak(seconds: float) -> Dict[str, Any]:
    """The whole soak, in this (fresh) process; returns the summary."""
    threads_before = [t.name for t in threading.enumerate()]
    os_threads_before = os_thread_count()
    tracemalloc.start()
    runner = Soak(seconds)
    try:
        memory = runner.run()
    finally:
        runner.close()
    accounts = runner.pool_accounts()
    tracemalloc.stop()
    # Threads that offload started for itself (the join thread of `async with Pool`) end on
    # their own: give them the time to.
    lingering = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    for t in threading.enumerate():
        if t is not threading.main_thread():
            t.join(HANG)
    # A joined Python thread can still be exiting in the kernel for a moment, and nothing
    # signals its end: poll /proc/self/task for a bounded time.
    deadline = time.monotonic() + 10
    while os_thread_count() != os_threads_before and time.monotonic() < deadline:
        time.sleep(0.005)
    return {
        "python": sys.version.split()[0],
        "loops": runner.kinds,
        "seconds": seconds,
        "seed": SEED,
        **memory,
        "totals": dict(sorted(runner.totals.items())),
        "fences": dict(runner.fences),
        "pools": accounts,
        "threads": {
            "before": threads_before,
            "lingering_at_end": lingering,
            "after": [t.name for t in threading.enumerate()],
            "os_before": os_threads_before,
            "os_after": os_thread_count(),
        },
        "failures": runner.failures,
    }


# ----------------------------------------------------------------------------------------------
# The test: runs the soak in a fresh interpreter and checks its summary.


def levels(samples: List[Dict[str, float]], key: str) -> List[float]:
    """`key` at the PARTS + 1 cuts that split `samples` into PARTS consecutive parts: at each
    cut, the median of the EDGE samples around it (the first EDGE and the last EDGE at the
    ends), so a lone outlier moves no level and the parts' growths add up to the whole's."""
    n = len(samples)
    starts = [min(max(i * n // PARTS - EDGE // 2, 0), n - EDGE) for i in range(PARTS + 1)]
    return [statistics.median(s[key] for s in samples[i : i + EDGE]) for i in starts]


def growth(samples: List[Dict[str, float]], key: str) -> Tuple[float, float, List[float], float]:
    """(level at the start, at the end, the growth of each part, operations in between)."""
    level = levels(samples, key)
    ops = levels(samples, "ops")
    return level[0], level[-1], [b - a for a, b in zip(level, level[1:])], ops[-1] - ops[0]


def steady(parts: List[float]) -> float:
    """The growth that every part shows, over all of them: a leak's, not a one-time step's."""
    return PARTS * min(parts)


def after_warmup(summary: Dict[str, Any]) -> List[Dict[str, float]]:
    return [s for s in summary["samples"] if s["t"] >= summary["seconds"] * WARMUP_FRACTION]


def describe(summary: Dict[str, Any]) -> str:
    """The summary in a few lines, as quoted in docs."""
    t = summary["totals"]
    post = after_warmup(summary)
    lines = [
        f"soak: Python {summary['python']}, loops {summary['loops']} + a fresh one per round, "
        f"{summary['seconds']:g} s ({summary['elapsed']} s), {t.get('rounds', 0)} rounds "
        f"({t.get('main_drain_rounds', 0)} drained by the main thread), seed {summary['seed']}",
        f"  calls: {t.get('calls_submitted', 0)} submitted, {t.get('calls_ran', 0)} ran: "
        f"{t.get('calls_result', 0)} results, {t.get('calls_failed', 0)} failures, "
        f"{t.get('calls_cancelled', 0)} cancelled (never ran), {t.get('calls_abandoned', 0)} abandoned "
        f"(awaiter cancelled or timed out); {t.get('calls_stopped_early', 0)} running calls asked to stop; "
        f"{t.get('done_callbacks', 0)} done callbacks",
        f"  items: {t.get('items_attempted', 0)} attempted, {t.get('items_sent', 0)} sent, "
        f"{t.get('items_not_sent', 0)} not sent; {t.get('items_received_by_parties', 0)} received + "
        f"{t.get('items_drained_after_close', 0)} drained from closed channels",
        "  interrupted: "
        + ", ".join(f"{k} {v}" for k, v in t.items() if k.startswith(("send ", "recv ", "result "))),
        "  pools (counters = ledger): "
        + "; ".join(f"{name} {acc['stats']}" for name, acc in summary["pools"].items()),
    ]
    if len(post) >= PARTS * EDGE:
        for key, unit in (("traced", "tracemalloc"), ("heap", "C heap in use"), ("rss", "RSS")):
            start, end, parts, ops = growth(post, key)
            lines.append(
                f"  {unit} after warm-up: {start / 2**20:.2f} -> {end / 2**20:.2f} MiB "
                f"({(end - start) / 1024:+.0f} KiB over {ops:.0f} operations; by part "
                f"{'/'.join(f'{p / 1024:+.0f}' for p in parts)} KiB, steady {steady(parts) / 1024:+.0f} KiB, "
                f"limit {LIMITS[key] / 1024:.0f} KiB); "
                f"range {min(s[key] for s in post) / 2**20:.2f}-{max(s[key] for s in post) / 2**20:.2f} MiB"
            )
    lines.append(f"  objects grown in number after warm-up: {summary.get('objects_grown_after_warmup')}")
    th = summary["threads"]
    lines.append(
        f"  threads: {th['os_before']} OS thread(s) before, {th['os_after']} after; Python threads after: "
        f"{th['after']} (still ending at the end: {th['lingering_at_end']})"
    )
    return "\n".join(lines)


def test_soak_loses_nothing_duplicates_nothing_and_leaks_nothing(
    record_property: Callable[[str, object], None],
) -> None:
    env = dict(os.environ, OFFLOAD_SOAK_SECONDS=str(SECONDS), PYTHONFAULTHANDLER="1")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3 * SECONDS + 2 * HANG,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    summary = json.loads(proc.stdout.splitlines()[-1])
    record_property("soak", json.dumps(summary))
    print("\n" + describe(summary))

    # The ledger: nothing lost, nothing duplicated, every counter matches (checked in the soak).
    assert not summary["failures"], "\n".join(summary["failures"][:20])
    t = summary["totals"]
    assert t["items_received_by_parties"] + t["items_drained_after_close"] == t["items_sent"]
    assert t["items_sent"] + t["items_not_sent"] <= t["items_attempted"]
    outcomes = ("calls_result", "calls_failed", "calls_cancelled", "calls_abandoned")
    assert sum(t[key] for key in outcomes) == t["calls_submitted"]
    # It did exercise what it claims to (each of these would be zero if its path broke).
    assert t["rounds"] >= 6 and t["main_drain_rounds"] >= 3
    for key in outcomes:
        assert t.get(key, 0) > 0, (key, t)
    assert t["calls_stopped_early"] == t["rounds"] * 2  # one per calling thread and round
    assert t["done_callbacks"] == t["rounds"] * 2 * THREAD_CALLS
    for key in ("send TimeoutError", "send CancelledError", "send ChannelClosed", "send WouldBlock",
                "recv TimeoutError", "recv CancelledError", "recv WouldBlock"):
        assert t.get(key, 0) > 0, (key, t)
    assert t["items_drained_after_close"] >= 3 * t["main_drain_rounds"]

    # Threads: none left behind, in Python or in the kernel.
    th = summary["threads"]
    assert th["before"] == ["MainThread"]
    assert th["after"] == ["MainThread"], th
    # ThreadSanitizer's runtime starts one background thread of its own with the first thread.
    sanitizer_threads = 1 if SANITIZER == "thread" else 0
    assert th["os_after"] == th["os_before"] + sanitizer_threads, th

    # Memory: no steady growth after the warm-up.
    if SANITIZER:
        return
    post = after_warmup(summary)
    assert len(post) >= PARTS * EDGE, f"too few samples after warm-up: {len(post)}"
    grew = []
    for key, limit in LIMITS.items():
        if key == "heap" and post[0]["heap"] < 0:
            continue  # no mallinfo2 here
        start, end, parts, ops = growth(post, key)
        if steady(parts) > limit:
            grew.append(f"{key} grew in every part after warm-up, by "
                        f"{'/'.join(f'{p / 1024:.0f}' for p in parts)} KiB ({(end - start) / 1024:.0f} KiB "
                        f"over {ops:.0f} operations; steady {steady(parts) / 1024:.0f} KiB, "
                        f"limit {limit / 1024:.0f} KiB)")
    assert not grew, "; ".join(grew) + f"; objects grown in number: {summary['objects_grown_after_warmup']}"


if __name__ == "__main__":
    print(json.dumps(soak(SECONDS)), flush=True)
