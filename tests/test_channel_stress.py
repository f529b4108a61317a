"""A bounded stress run of two channels shared by plain threads and by coroutines on two event
loops in two threads, with every kind of send and receive: blocking with random short
timeouts, nowait, coroutines cancelled at random (asyncio.wait_for, task.cancel), and select
over both channels. Some producers are still sending when the channels are closed.

The items are distinct; the received ones must be exactly those whose send completed (a send
that raised TimeoutError, CancelledError, WouldBlock or ChannelClosed delivered nothing), each
received once, and the channels' counters must add up."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from typing import Any, Callable, List, Optional

import pytest

import offload
from conftest import new_loop

pytestmark = pytest.mark.slow  # a long run: `make test-slow`

PER_PRODUCER = 2500  # items each bounded producer tries to send
PACE = 0.0005  # past PER_PRODUCER items, a producer that runs until the close slows down
JOIN_TIMEOUT = 30.0  # a hung party fails the test instead of hanging it
TIMEOUTS = [None, 0, 0.0005, 0.002]  # random short timeouts (None: wait until done or closed)
NOT_DONE = (TimeoutError, asyncio.TimeoutError, asyncio.CancelledError, offload.WouldBlock)


class Ledger:
    """What happened, recorded by every party (list.append is atomic under the GIL)."""

    def __init__(self) -> None:
        self.sent: List[int] = []  # items whose send returned normally
        self.received: List[int] = []
        self.not_sent: List[int] = []  # items whose send raised
        self.outcomes: Counter = Counter()  # how often each kind of failure happened
        self.errors: List[BaseException] = []  # anything unexpected, raised at the end

    def failed(self, exc: BaseException) -> None:
        self.outcomes[type(exc).__name__] += 1


class Party(threading.Thread):
    """A daemon thread whose unexpected exception is recorded in the ledger."""

    def __init__(self, ledger: Ledger, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.ledger, self.fn = ledger, fn
        self.start()

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as e:
            self.ledger.errors.append(e)


class Stress:
    def __init__(self, capacity: Optional[int], ledger: Ledger) -> None:
        self.channels = [offload.Channel(capacity), offload.Channel(capacity)]
        self.ledger = ledger
        self.closed = threading.Event()

    def index_of(self, error: offload.ChannelClosed, fallback: int) -> int:
        if error.op is None:
            return fallback
        return 0 if error.op.channel is self.channels[0] else 1

    # -- threads --------------------------------------------------------------------------------

    def thread_producer(self, tag: int, count: Optional[int]) -> None:
        """Sends `count` items (None: until the channels are closed)."""
        rng = random.Random(tag)
        a, b = self.channels
        i = 0
        while count is None or i < count:
            x = tag * 1_000_000 + i
            i += 1
            if i > PER_PRODUCER:
                time.sleep(PACE)  # pacing only (an unbounded channel never pushes back)
            r = rng.random()
            ch = rng.choice(self.channels)
            try:
                if r < 0.45:
                    ch.send_blocking(x, timeout=rng.choice(TIMEOUTS))
                elif r < 0.8:
                    ops = [a.send_op(x), b.send_op(x)]
                    rng.shuffle(ops)
                    offload.select_blocking(*ops, timeout=rng.choice(TIMEOUTS))
                else:
                    ch.send_nowait(x)
            except NOT_DONE as e:
                self.ledger.failed(e)
                self.ledger.not_sent.append(x)
                continue
            except offload.ChannelClosed as e:
                self.ledger.failed(e)
                self.ledger.not_sent.append(x)
                assert self.closed.is_set(), "ChannelClosed before close()"
                if count is None:
                    return
                continue
            self.ledger.sent.append(x)

    def thread_consumer(self, tag: int) -> None:
        """Receives until both channels are closed and drained."""
        rng = random.Random(tag)
        open_ = [0, 1]
        while open_:
            r = rng.random()
            index = rng.choice(open_)
            ch = self.channels[index]
            try:
                if r < 0.35:
                    x = ch.recv_blocking(timeout=rng.choice(TIMEOUTS))
                elif r < 0.7:
                    ops = [self.channels[i].recv_op() for i in open_]
                    rng.shuffle(ops)
                    x = offload.select_blocking(*ops, timeout=rng.choice(TIMEOUTS)).value
                elif r < 0.9:
                    x = ch.recv_nowait()
                else:
                    x = next(iter(ch))  # iteration: StopIteration once closed and drained
            except NOT_DONE as e:
                self.ledger.failed(e)
                continue
            except offload.ChannelClosed as e:
                open_.remove(self.index_of(e, index))
                continue
            except StopIteration:
                open_.remove(index)
                continue
            self.ledger.received.append(x)

    # -- coroutines -----------------------------------------------------------------------------

    async def interrupted(self, rng: random.Random, attempt: Callable[[], Any]) -> None:
        """Runs the coroutine function `attempt` directly, under wait_for with a short timeout,
        or as a task cancelled at a random moment. `attempt` records its own success with no
        await in between, so whatever the wrapper raises, the ledger is right."""
        r = rng.random()
        if r < 0.4:
            await attempt()
        elif r < 0.7:
            await asyncio.wait_for(attempt(), rng.choice([0, 0.0005, 0.002]))
        else:
            task = asyncio.ensure_future(attempt())
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            if rng.random() < 0.5:
                await asyncio.sleep(rng.choice([0.0002, 0.001]))
            task.cancel()
            await task

    async def loop_producer(self, tag: int, count: Optional[int]) -> None:
        rng = random.Random(tag)
        a, b = self.channels
        i = 0
        while count is None or i < count:
            x = tag * 1_000_000 + i
            i += 1
            if i > PER_PRODUCER:
                await asyncio.sleep(PACE)  # pacing only
            ch = rng.choice(self.channels)
            kind = rng.random()

            async def attempt(x: int = x, ch: offload.Channel = ch, kind: float = kind) -> None:
                try:
                    if kind < 0.6:
                        await ch.send(x)
                    else:
                        ops = [a.send_op(x), b.send_op(x)]
                        rng.shuffle(ops)
                        await offload.select(*ops, timeout=rng.choice(TIMEOUTS))
                except BaseException:
                    self.ledger.not_sent.append(x)
                    raise
                self.ledger.sent.append(x)  # delivered: recorded before any other await

            try:
                await self.interrupted(rng, attempt)
            except NOT_DONE as e:
                self.ledger.failed(e)
            except offload.ChannelClosed as e:
                self.ledger.failed(e)
                assert self.closed.is_set(), "ChannelClosed before close()"
                if count is None:
                    return

    async def loop_consumer(self, tag: int) -> None:
        rng = random.Random(tag)
        open_ = [0, 1]
        while open_:
            index = rng.choice(open_)
            ch = self.channels[index]
            kind = rng.random()
            ops = [self.channels[i].recv_op() for i in open_]
            rng.shuffle(ops)

            async def attempt(ch: offload.Channel = ch, kind: float = kind, ops: list = ops):
                if kind < 0.4:
                    x = await ch.recv()
                elif kind < 0.8:
                    x = (await offload.select(*ops, timeout=rng.choice(TIMEOUTS))).value
                else:
                    x = await ch.__anext__()
                self.ledger.received.append(x)  # recorded before any other await

            try:
                await self.interrupted(rng, attempt)
            except NOT_DONE as e:
                self.ledger.failed(e)
            except offload.ChannelClosed as e:
                open_.remove(self.index_of(e, index))
            except StopAsyncIteration:
                open_.remove(index)

    def loop_thread(self, kind: str, base: int, producers_done: threading.Event) -> None:
        async def main() -> None:
            async def producers() -> None:
                await asyncio.gather(
                    self.loop_producer(base + 1, PER_PRODUCER),
                    self.loop_producer(base + 2, PER_PRODUCER),
                )
                producers_done.set()

            await asyncio.gather(
                producers(),
                self.loop_producer(base + 3, None),  # until the channels are closed
                self.loop_consumer(base + 4),
                self.loop_consumer(base + 5),
            )

        loop = new_loop(kind)
        try:
            loop.run_until_complete(asyncio.wait_for(main(), JOIN_TIMEOUT))
        finally:
            loop.close()


@pytest.mark.parametrize("capacity", [0, 1, 16, None])
def test_threads_and_two_loops_receive_exactly_the_items_whose_send_completed(capacity) -> None:
    ledger = Ledger()
    stress = Stress(capacity, ledger)
    started = time.monotonic()

    loops_done = [threading.Event(), threading.Event()]
    parties = [
        Party(ledger, lambda: stress.loop_thread("asyncio", 10, loops_done[0])),
        Party(ledger, lambda: stress.loop_thread("uvloop", 20, loops_done[1])),
        Party(ledger, lambda: stress.thread_consumer(31)),
        Party(ledger, lambda: stress.thread_consumer(32)),
        Party(ledger, lambda: stress.thread_producer(33, None)),  # until the channels close
    ]
    bounded = [Party(ledger, lambda t=t: stress.thread_producer(t, PER_PRODUCER)) for t in (34, 35)]

    for p in bounded:
        p.join(JOIN_TIMEOUT)
    for done in loops_done:
        done.wait(JOIN_TIMEOUT)
    stress.closed.set()
    for ch in stress.channels:
        ch.close()
    for p in bounded + parties:
        p.join(max(1.0, JOIN_TIMEOUT - (time.monotonic() - started)))
    hung = [p for p in bounded + parties if p.is_alive()]
    assert not hung, f"{len(hung)} parties never finished; ledger: {ledger.outcomes}"
    assert not ledger.errors, ledger.errors

    sent, received = ledger.sent, ledger.received
    assert len(set(sent)) == len(sent)  # every item is sent at most once
    assert not set(sent) & set(ledger.not_sent)
    duplicated = [x for x, n in Counter(received).items() if n > 1]
    assert not duplicated, f"received more than once: {duplicated[:10]}"
    assert not set(received) - set(sent), "received items whose send did not complete"
    assert not set(sent) - set(received), "lost items"
    assert len(received) == len(sent)

    stats = [ch.stats() for ch in stress.channels]
    assert sum(s.sent for s in stats) == len(sent)
    assert sum(s.received for s in stats) == len(received)
    for s in stats:
        assert (s.buffered, s.waiting_senders, s.waiting_receivers, s.closed) == (0, 0, 0, True)

    # The run did exercise what it claims to: deliveries, timeouts and cancellations.
    assert len(sent) > PER_PRODUCER
    assert ledger.outcomes["TimeoutError"] > 0, ledger.outcomes
    assert ledger.outcomes["CancelledError"] > 0, ledger.outcomes
