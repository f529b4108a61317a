"""offload.Channel and select: construction, ordering, close, cancellation, threads and loops,
and items that must never be compared or hashed.

Synchronisation in these tests never relies on sleeping: a test that needs a party to be
waiting polls ``ch.stats()`` (or an event) until it is, with a deadline so that a bug fails
the test instead of hanging it. Every helper thread is a daemon joined with a timeout.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any, Callable, List, Optional

import pytest

import offload
from conftest import new_loop
from fault_work import Hostile

DEADLINE = 10.0  # seconds any wait in these tests may take before the test fails


# ---------------------------------------------------------------------------------------------
# helpers


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Polls `condition` from a thread until it holds; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


async def until(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Polls `condition` from a coroutine (the loop keeps running) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


class Run(threading.Thread):
    """Runs fn(*args, **kwargs) on a daemon thread; outcome() joins it (with a deadline) and
    returns its result or raises its exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.returned = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args, **self.kwargs)
        except BaseException as e:  # reported by outcome()
            self.error = e
        finally:
            self.returned.set()

    def outcome(self, timeout: float = DEADLINE) -> Any:
        self.join(timeout)
        assert not self.is_alive(), f"{self.fn} never returned"
        if self.error is not None:
            raise self.error
        return self.result

    async def aoutcome(self, timeout: float = DEADLINE) -> Any:
        """outcome() without blocking the running loop."""
        await until(self.returned.is_set, timeout)
        return self.outcome()


def waiting(ch: offload.Channel, receivers: int = 0, senders: int = 0) -> Callable[[], bool]:
    def check() -> bool:
        s = ch.stats()
        return s.waiting_receivers == receivers and s.waiting_senders == senders

    return check


def drain(ch: offload.Channel) -> List[Any]:
    """Everything that can be received at once (stops at WouldBlock or ChannelClosed)."""
    items = []
    while True:
        try:
            items.append(ch.recv_nowait())
        except (offload.WouldBlock, offload.ChannelClosed):
            return items


# ---------------------------------------------------------------------------------------------
# construction


def test_capacity_is_required() -> None:
    with pytest.raises(TypeError):
        offload.Channel()  # type: ignore[call-arg]


@pytest.mark.parametrize("capacity", [True, False, 1.0, 2.5, "3", b"1", [1]])
def test_capacity_of_the_wrong_type_raises_type_error(capacity) -> None:
    with pytest.raises(TypeError, match="capacity"):
        offload.Channel(capacity)


@pytest.mark.parametrize("capacity", [-1, -100])
def test_negative_capacity_raises_value_error(capacity) -> None:
    with pytest.raises(ValueError, match="capacity"):
        offload.Channel(capacity)


@pytest.mark.parametrize("capacity", [0, 1, 7, None])
def test_capacity_and_fresh_stats(capacity) -> None:
    ch = offload.Channel(capacity)
    assert ch.capacity == capacity
    assert len(ch) == 0
    assert not ch.closed
    assert ch.stats() == offload.ChannelStats(
        capacity=capacity,
        buffered=0,
        waiting_senders=0,
        waiting_receivers=0,
        sent=0,
        received=0,
        closed=False,
    )


def test_repr_shows_capacity_state_and_counts() -> None:
    ch = offload.Channel(4)
    ch.send_nowait(1)
    r = repr(ch)
    assert "capacity=4" in r and "open" in r and "buffered=1" in r
    ch.close()
    assert "closed" in repr(ch)
    assert "unbounded" in repr(offload.Channel(None))


def test_stats_count_sent_and_received_items() -> None:
    ch = offload.Channel(3)
    for i in range(3):
        ch.send_nowait(i)
    ch.recv_nowait()
    s = ch.stats()
    assert (s.buffered, s.sent, s.received) == (2, 3, 1)
    assert len(ch) == 2


# ---------------------------------------------------------------------------------------------
# ordering, nowait, rendezvous, unbounded


@pytest.mark.parametrize("capacity", [5, None])
def test_items_are_received_in_the_order_they_were_sent(capacity) -> None:
    ch = offload.Channel(capacity)
    for i in range(5):
        ch.send_nowait(i)
    assert [ch.recv_nowait() for _ in range(5)] == [0, 1, 2, 3, 4]


def test_items_are_the_objects_sent_not_copies() -> None:
    ch = offload.Channel(1)
    item = object()
    ch.send_nowait(item)
    assert ch.recv_nowait() is item


def test_send_nowait_on_a_full_channel_raises_would_block_and_keeps_the_item_out() -> None:
    ch = offload.Channel(2)
    ch.send_nowait("a")
    ch.send_nowait("b")
    with pytest.raises(offload.WouldBlock):
        ch.send_nowait("c")
    assert len(ch) == 2
    assert drain(ch) == ["a", "b"]
    assert ch.stats().sent == 2


@pytest.mark.parametrize("capacity", [0, 1, None])
def test_recv_nowait_on_an_empty_channel_raises_would_block(capacity) -> None:
    ch = offload.Channel(capacity)
    with pytest.raises(offload.WouldBlock):
        ch.recv_nowait()
    assert ch.stats().received == 0


def test_would_block_and_channel_closed_are_distinct_exceptions() -> None:
    assert not issubclass(offload.WouldBlock, offload.ChannelClosed)
    assert not issubclass(offload.ChannelClosed, offload.WouldBlock)
    assert issubclass(offload.ChannelClosed, Exception)


def test_rendezvous_send_nowait_fails_without_a_waiting_receiver() -> None:
    ch = offload.Channel(0)
    with pytest.raises(offload.WouldBlock):
        ch.send_nowait("x")
    assert len(ch) == 0 and ch.stats().sent == 0
    with pytest.raises(offload.WouldBlock):
        ch.recv_nowait()  # the failed send left nothing behind


def test_rendezvous_send_nowait_hands_the_item_to_a_waiting_thread() -> None:
    ch = offload.Channel(0)
    receiver = Run(ch.recv_blocking, timeout=DEADLINE)
    wait_until(waiting(ch, receivers=1))
    ch.send_nowait("x")
    assert receiver.outcome() == "x"
    assert len(ch) == 0
    assert ch.stats().sent == ch.stats().received == 1


def test_rendezvous_send_blocking_returns_only_after_a_receiver_took_the_item() -> None:
    ch = offload.Channel(0)
    sender = Run(ch.send_blocking, "x", timeout=DEADLINE)
    wait_until(waiting(ch, senders=1))
    # The sender is parked in the channel: it has not returned and nothing is buffered.
    assert not sender.returned.is_set()
    assert len(ch) == 0 and ch.stats().sent == 0
    assert ch.recv_nowait() == "x"
    assert sender.outcome() is None
    assert ch.stats().sent == ch.stats().received == 1


def test_rendezvous_coroutine_send_waits_for_a_receiver(arun) -> None:
    ch = offload.Channel(0)

    async def main():
        task = asyncio.ensure_future(ch.send("x"))
        await until(waiting(ch, senders=1))
        assert not task.done()
        receiver = Run(ch.recv_blocking, timeout=DEADLINE)
        assert await receiver.aoutcome() == "x"
        await asyncio.wait_for(task, DEADLINE)
        assert task.result() is None

    arun(main)


def test_unbounded_channel_never_blocks_a_sender() -> None:
    ch = offload.Channel(None)
    n = 20_000
    for i in range(n):
        ch.send_nowait(i)
    assert len(ch) == n and ch.capacity is None
    assert [ch.recv_nowait() for _ in range(n)] == list(range(n))


def test_waiting_senders_are_served_in_order(arun) -> None:
    """A receiver that frees space moves the longest-waiting sender's item into the buffer."""
    ch = offload.Channel(1)

    async def main():
        ch.send_nowait("buffered")
        senders = []
        for i in range(4):
            senders.append(asyncio.ensure_future(ch.send(i)))
            await until(waiting(ch, senders=i + 1))
        got = [await ch.recv() for _ in range(5)]
        await asyncio.wait_for(asyncio.gather(*senders), DEADLINE)
        return got

    assert arun(main) == ["buffered", 0, 1, 2, 3]


# ---------------------------------------------------------------------------------------------
# fairness


def test_waiting_coroutine_receivers_are_served_first_come_first_served(arun) -> None:
    ch = offload.Channel(2)

    async def main():
        receivers = []
        for i in range(5):
            receivers.append(asyncio.ensure_future(ch.recv()))
            await until(waiting(ch, receivers=i + 1))
        for i in range(5):
            ch.send_nowait(i)  # each is handed straight to the longest-waiting receiver
        assert len(ch) == 0
        return await asyncio.wait_for(asyncio.gather(*receivers), DEADLINE)

    assert arun(main) == [0, 1, 2, 3, 4]


def test_waiting_thread_receivers_are_served_first_come_first_served() -> None:
    ch = offload.Channel(0)
    receivers = []
    for i in range(4):
        receivers.append(Run(ch.recv_blocking, timeout=DEADLINE))
        wait_until(waiting(ch, receivers=i + 1))
    for i in range(4):
        ch.send_nowait(i)
    assert [r.outcome() for r in receivers] == [0, 1, 2, 3]


def test_threads_coroutines_and_selects_wait_in_one_queue(arun) -> None:
    """Receivers of every kind are served in the order they started waiting."""
    ch = offload.Channel(0)
    other = offload.Channel(0)

    async def main():
        first = Run(ch.recv_blocking, timeout=DEADLINE)
        await until(waiting(ch, receivers=1))
        second = asyncio.ensure_future(ch.recv())
        await until(waiting(ch, receivers=2))
        third = Run(offload.select_blocking, other.recv_op(), ch.recv_op(), timeout=DEADLINE)
        await until(waiting(ch, receivers=3))
        fourth = asyncio.ensure_future(offload.select(ch.recv_op()))
        await until(waiting(ch, receivers=4))
        for i in range(4):
            ch.send_nowait(i)
        assert await first.aoutcome() == 0
        assert await asyncio.wait_for(second, DEADLINE) == 1
        assert (await third.aoutcome()).value == 2
        assert (await asyncio.wait_for(fourth, DEADLINE)).value == 3
        assert other.stats().waiting_receivers == 0

    arun(main)


# ---------------------------------------------------------------------------------------------
# close


def test_close_lets_receivers_drain_buffered_items_then_raises_channel_closed() -> None:
    ch = offload.Channel(3)
    for i in range(3):
        ch.send_nowait(i)
    ch.close()
    assert ch.closed and ch.stats().closed
    assert [ch.recv_nowait(), ch.recv_blocking(timeout=1)] == [0, 1]
    assert ch.recv_blocking() == 2  # no timeout: a drained channel must not block
    with pytest.raises(offload.ChannelClosed):
        ch.recv_nowait()
    with pytest.raises(offload.ChannelClosed):
        ch.recv_blocking(timeout=1)


def test_close_is_idempotent() -> None:
    ch = offload.Channel(1)
    ch.send_nowait("x")
    ch.close()
    ch.close()
    assert ch.closed
    assert ch.recv_nowait() == "x"


def test_every_send_after_close_raises_channel_closed(arun) -> None:
    ch = offload.Channel(None)
    ch.close()
    with pytest.raises(offload.ChannelClosed):
        ch.send_nowait(1)
    with pytest.raises(offload.ChannelClosed):
        ch.send_blocking(1)
    with pytest.raises(offload.ChannelClosed):
        ch.send_blocking(1, timeout=0)

    async def main():
        with pytest.raises(offload.ChannelClosed):
            await ch.send(1)
        with pytest.raises(offload.ChannelClosed):
            await offload.select(ch.send_op(1))

    arun(main)
    assert len(ch) == 0 and ch.stats().sent == 0


def test_coroutine_recv_after_close_drains_then_raises(arun) -> None:
    ch = offload.Channel(2)
    ch.send_nowait("a")
    ch.close()

    async def main():
        assert await ch.recv() == "a"
        with pytest.raises(offload.ChannelClosed):
            await ch.recv()

    arun(main)


def test_close_wakes_every_waiting_coroutine_receiver(arun) -> None:
    ch = offload.Channel(1)

    async def main():
        receivers = [asyncio.ensure_future(ch.recv()) for _ in range(3)]
        await until(waiting(ch, receivers=3))
        ch.close()
        results = await asyncio.wait_for(
            asyncio.gather(*receivers, return_exceptions=True), DEADLINE
        )
        assert all(isinstance(r, offload.ChannelClosed) for r in results), results
        assert waiting(ch)()

    arun(main)


@pytest.mark.parametrize("capacity", [0, 1])
def test_close_wakes_waiting_coroutine_senders_without_delivering(arun, capacity) -> None:
    ch = offload.Channel(capacity)

    async def main():
        for _ in range(capacity):
            ch.send_nowait("buffered")
        senders = [asyncio.ensure_future(ch.send(i)) for i in range(3)]
        await until(waiting(ch, senders=3))
        ch.close()
        results = await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), DEADLINE)
        assert all(isinstance(r, offload.ChannelClosed) for r in results), results
        # Only what was buffered before the close is received; the senders' items are not.
        assert drain(ch) == ["buffered"] * capacity
        with pytest.raises(offload.ChannelClosed):
            ch.recv_nowait()
        assert ch.stats().sent == capacity

    arun(main)


def test_close_wakes_threads_blocked_in_recv_blocking() -> None:
    ch = offload.Channel(0)
    receivers = [Run(ch.recv_blocking), Run(ch.recv_blocking, timeout=DEADLINE * 10)]
    wait_until(waiting(ch, receivers=2))
    ch.close()
    for r in receivers:
        with pytest.raises(offload.ChannelClosed):
            r.outcome()
    assert waiting(ch)()


@pytest.mark.parametrize("capacity", [0, 1])
def test_close_wakes_threads_blocked_in_send_blocking_without_delivering(capacity) -> None:
    ch = offload.Channel(capacity)
    for _ in range(capacity):
        ch.send_nowait("buffered")
    senders = [Run(ch.send_blocking, "a"), Run(ch.send_blocking, "b", timeout=DEADLINE * 10)]
    wait_until(waiting(ch, senders=2))
    ch.close()
    for s in senders:
        with pytest.raises(offload.ChannelClosed):
            s.outcome()
    assert drain(ch) == ["buffered"] * capacity
    assert ch.stats().sent == capacity


def test_async_iteration_receives_until_closed_and_drained(arun) -> None:
    ch = offload.Channel(2)

    async def producer():
        for i in range(10):
            await ch.send(i)
        ch.close()

    async def main():
        task = asyncio.ensure_future(producer())
        got = [item async for item in ch]
        await asyncio.wait_for(task, DEADLINE)
        return got

    assert arun(main) == list(range(10))


def test_async_iteration_of_a_closed_channel_yields_what_was_buffered(arun) -> None:
    ch = offload.Channel(None)
    for i in range(3):
        ch.send_nowait(i)
    ch.close()

    async def main():
        return [item async for item in ch]

    assert arun(main) == [0, 1, 2]


def test_async_iteration_ends_when_a_waiting_iterator_sees_the_close(arun) -> None:
    ch = offload.Channel(0)

    async def main():
        task = asyncio.ensure_future(asyncio.wait_for(collect(), DEADLINE))
        await until(waiting(ch, receivers=1))
        ch.close()
        return await task

    async def collect():
        return [item async for item in ch]

    assert arun(main) == []


def test_sync_iteration_in_a_thread_receives_until_closed_and_drained() -> None:
    ch = offload.Channel(1)
    consumer = Run(list, ch)
    for i in range(50):
        ch.send_blocking(i, timeout=DEADLINE)
    wait_until(waiting(ch, receivers=1))  # the iterator waits for more
    ch.close()
    assert consumer.outcome() == list(range(50))


# ---------------------------------------------------------------------------------------------
# timeouts


@pytest.mark.parametrize("capacity", [0, 1])
def test_recv_blocking_timeout_leaves_no_waiter_behind(capacity) -> None:
    ch = offload.Channel(capacity)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        ch.recv_blocking(timeout=0.05)
    assert time.monotonic() - start >= 0.04
    assert waiting(ch)()
    # No stale receiver: a send now cannot be handed to the timed-out call.
    if capacity == 0:
        with pytest.raises(offload.WouldBlock):
            ch.send_nowait("x")
    else:
        ch.send_nowait("x")
        assert len(ch) == 1 and ch.recv_nowait() == "x"
    assert ch.stats().received == capacity


@pytest.mark.parametrize("capacity", [0, 1])
def test_send_blocking_timeout_leaves_no_waiter_and_does_not_deliver(capacity) -> None:
    ch = offload.Channel(capacity)
    for _ in range(capacity):
        ch.send_nowait("buffered")
    with pytest.raises(TimeoutError):
        ch.send_blocking("late", timeout=0.05)
    assert waiting(ch)()
    assert drain(ch) == ["buffered"] * capacity  # "late" is not in the channel
    with pytest.raises(offload.WouldBlock):
        ch.recv_nowait()
    assert ch.stats().sent == capacity


@pytest.mark.parametrize("timeout", [0, -1, 0.0])
def test_zero_or_negative_timeouts_do_not_wait(timeout) -> None:
    ch = offload.Channel(1)
    with pytest.raises(TimeoutError):
        ch.recv_blocking(timeout=timeout)
    ch.send_blocking("a", timeout=timeout)  # possible at once: happens
    with pytest.raises(TimeoutError):
        ch.send_blocking("b", timeout=timeout)
    assert ch.recv_blocking(timeout=timeout) == "a"
    assert waiting(ch)() and len(ch) == 0


@pytest.mark.parametrize("timeout", ["x", b"1", [], object()])
def test_timeout_of_the_wrong_type_raises_type_error(arun, timeout) -> None:
    ch = offload.Channel(1)
    with pytest.raises(TypeError):
        ch.send_blocking("x", timeout=timeout)
    assert len(ch) == 0 and ch.stats().sent == 0  # the item was not sent
    with pytest.raises(TypeError):
        ch.recv_blocking(timeout=timeout)
    with pytest.raises(TypeError):
        offload.select_blocking(ch.recv_op(), timeout=timeout)

    async def main():
        with pytest.raises(TypeError):
            await offload.select(ch.recv_op(), timeout=timeout)
        assert waiting(ch)()

    arun(main)
    assert waiting(ch)()


def test_nan_timeout_raises_value_error(arun) -> None:
    ch = offload.Channel(1)
    nan = float("nan")
    with pytest.raises(ValueError):
        ch.recv_blocking(timeout=nan)
    with pytest.raises(ValueError):
        ch.send_blocking("x", timeout=nan)
    with pytest.raises(ValueError):
        offload.select_blocking(ch.recv_op(), timeout=nan)

    async def main():
        with pytest.raises(ValueError):
            await offload.select(ch.recv_op(), timeout=nan)

    arun(main)
    assert len(ch) == 0 and waiting(ch)()


# ---------------------------------------------------------------------------------------------
# cancellation


@pytest.mark.parametrize("capacity", [0, 1])
def test_cancelling_a_waiting_recv_leaves_no_waiter_and_loses_nothing(arun, capacity) -> None:
    ch = offload.Channel(capacity)

    async def main():
        task = asyncio.ensure_future(ch.recv())
        await until(waiting(ch, receivers=1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiting(ch)()
        # The next item is not handed to the cancelled receiver.
        if capacity == 0:
            with pytest.raises(offload.WouldBlock):
                ch.send_nowait("x")
        else:
            ch.send_nowait("x")
            assert ch.recv_nowait() == "x"

    arun(main)


def test_recv_timed_out_by_wait_for_leaves_no_waiter(arun) -> None:
    ch = offload.Channel(1)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ch.recv(), 0.01)
        assert waiting(ch)()
        ch.send_nowait("x")
        assert await asyncio.wait_for(ch.recv(), DEADLINE) == "x"

    arun(main)


@pytest.mark.parametrize("capacity", [0, 1])
def test_cancelling_a_waiting_send_does_not_deliver_its_item(arun, capacity) -> None:
    ch = offload.Channel(capacity)

    async def main():
        for _ in range(capacity):
            ch.send_nowait("buffered")
        task = asyncio.ensure_future(ch.send("cancelled"))
        await until(waiting(ch, senders=1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiting(ch)()
        assert drain(ch) == ["buffered"] * capacity
        assert ch.stats().sent == capacity

    arun(main)


@pytest.mark.parametrize("capacity", [0, 1])
@pytest.mark.parametrize("how", ["recv", "select", "async for"])
def test_item_handed_to_a_receiver_cancelled_before_it_ran_goes_back_to_the_channel(
    arun, how, capacity
) -> None:
    """The race: on the loop's thread, an item is handed to a waiting receiver and, in the same
    callback, its task is cancelled. The task never ran to take the item: it must be returned
    (to the buffer, even of a rendezvous channel, since no other receiver waits)."""
    ch = offload.Channel(capacity)

    async def receive():
        if how == "recv":
            return await ch.recv()
        if how == "select":
            return (await offload.select(ch.recv_op())).value
        async for item in ch:
            return item

    async def main():
        task = asyncio.ensure_future(receive())
        await until(waiting(ch, receivers=1))
        ch.send_nowait("x")
        assert len(ch) == 0 and ch.stats().waiting_receivers == 0  # handed over, not buffered
        assert task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(ch) == 1
        assert ch.recv_nowait() == "x"
        assert ch.stats().sent == ch.stats().received == 1

    arun(main)


def test_item_given_back_by_a_cancelled_receiver_goes_to_the_head_of_the_channel(arun) -> None:
    """Even past capacity: the given-back item is never dropped to make room."""
    ch = offload.Channel(1)

    async def main():
        task = asyncio.ensure_future(ch.recv())
        await until(waiting(ch, receivers=1))
        ch.send_nowait("first")  # handed to the waiting receiver
        ch.send_nowait("second")  # buffered: the channel is full
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(ch) == 2  # one over capacity
        with pytest.raises(offload.WouldBlock):
            ch.send_nowait("third")
        assert [ch.recv_nowait(), ch.recv_nowait()] == ["first", "second"]
        assert ch.stats().sent == ch.stats().received == 2

    arun(main)


def test_item_given_back_by_a_cancelled_receiver_goes_to_the_next_waiting_receiver(arun) -> None:
    ch = offload.Channel(0)

    async def main():
        first = asyncio.ensure_future(ch.recv())
        await until(waiting(ch, receivers=1))
        second = asyncio.ensure_future(ch.recv())
        await until(waiting(ch, receivers=2))
        ch.send_nowait("x")  # handed to `first`
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, DEADLINE) == "x"
        assert len(ch) == 0 and waiting(ch)()
        assert ch.stats().sent == ch.stats().received == 1

    arun(main)


def test_item_handed_by_a_thread_to_a_receiver_cancelled_before_it_ran_goes_back(arun) -> None:
    """The same race through the loop's wake-up queue: a thread hands the item over while the
    loop is blocked, then the task is cancelled before the loop processes the wake-up."""
    ch = offload.Channel(1)

    async def main():
        task = asyncio.ensure_future(ch.recv())
        await until(waiting(ch, receivers=1))
        Run(ch.send_blocking, "x", timeout=DEADLINE).outcome()  # blocks the loop meanwhile
        assert ch.stats().waiting_receivers == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ch.recv_nowait() == "x"

    arun(main)


class SendThenNextAwait:
    """A coroutine sender (send, or a select with one send operation) that records what
    happened to it: the send returning, then whether it was cancelled at its next await."""

    def __init__(self, ch: offload.Channel, item: Any, how: str = "send") -> None:
        self.ch, self.item, self.how = ch, item, how
        self.events: List[str] = []

    async def __call__(self) -> None:
        if self.how == "send":
            await self.ch.send(self.item)
        else:
            op = self.ch.send_op(self.item)
            assert await offload.select(op, offload.Channel(0).recv_op()) == (op, None)
        self.events.append("sent")
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.events.append("cancelled at next await")
            raise
        self.events.append("not cancelled")


@pytest.mark.parametrize("how", ["send", "select"])
def test_send_taken_at_the_instant_its_task_is_cancelled_returns_then_cancels(arun, how) -> None:
    """The race for a sender: on the loop's thread, a receiver takes the waiting sender's item
    and, in the same callback, the sending task is cancelled. The item was delivered, so send
    returns normally, and the cancellation lands at the task's next await."""
    ch = offload.Channel(1)

    async def main():
        ch.send_nowait("a")
        sender = SendThenNextAwait(ch, "b", how)
        task = asyncio.ensure_future(sender())
        await until(waiting(ch, senders=1))
        assert ch.recv_nowait() == "a"  # frees space: "b" moves into the buffer
        assert task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), DEADLINE)
        assert task.cancelled()
        assert sender.events == ["sent", "cancelled at next await"]
        assert ch.recv_nowait() == "b"
        assert ch.stats().sent == ch.stats().received == 2

    arun(main)


def test_rendezvous_send_taken_at_the_instant_its_task_is_cancelled_returns_then_cancels(
    arun,
) -> None:
    ch = offload.Channel(0)

    async def main():
        sender = SendThenNextAwait(ch, "x")
        task = asyncio.ensure_future(sender())
        await until(waiting(ch, senders=1))
        assert ch.recv_nowait() == "x"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sender.events == ["sent", "cancelled at next await"]

    arun(main)


def test_send_taken_by_a_thread_as_its_task_is_cancelled_returns_then_cancels(arun) -> None:
    ch = offload.Channel(1)

    async def main():
        ch.send_nowait("a")
        sender = SendThenNextAwait(ch, "b")
        task = asyncio.ensure_future(sender())
        await until(waiting(ch, senders=1))
        assert Run(ch.recv_blocking, timeout=DEADLINE).outcome() == "a"  # blocks the loop
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sender.events == ["sent", "cancelled at next await"]
        assert ch.recv_nowait() == "b"

    arun(main)


# ---------------------------------------------------------------------------------------------
# references


class Item:
    """An item that can be weakly referenced, to see that nothing keeps it alive."""


def test_no_reference_to_an_item_is_kept_once_it_left_the_channel_or_was_refused(arun) -> None:
    refs: list = []

    def item() -> Item:
        x = Item()
        refs.append(weakref.ref(x))
        return x

    ch = offload.Channel(1)
    ch.send_nowait(item())
    ch.recv_nowait()
    ch.send_blocking(item(), timeout=DEADLINE)
    ch.recv_blocking(timeout=DEADLINE)
    ch.send_nowait(item())
    with pytest.raises(offload.WouldBlock):
        ch.send_nowait(item())
    with pytest.raises(TimeoutError):
        ch.send_blocking(item(), timeout=0.001)
    with pytest.raises(TypeError):
        ch.send_blocking(item(), timeout="x")
    with pytest.raises(offload.WouldBlock):
        offload.select_nowait(ch.send_op(item()), ch.send_op(item()))
    offload.select_nowait(ch.send_op(item()), ch.recv_op())  # receives; the send is unused
    rendezvous = offload.Channel(0)
    sender = Run(rendezvous.send_blocking, item(), timeout=DEADLINE)
    wait_until(waiting(rendezvous, senders=1))
    rendezvous.recv_nowait()
    sender.outcome()

    async def main():
        full = offload.Channel(1)
        full.send_nowait(item())
        task = asyncio.ensure_future(full.send(item()))
        await until(waiting(full, senders=1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        full.recv_nowait()
        receiver = asyncio.ensure_future(full.recv())
        await until(waiting(full, receivers=1))
        full.send_nowait(item())
        receiver.cancel()  # the item goes back to the channel, then out of it
        with pytest.raises(asyncio.CancelledError):
            await receiver
        full.recv_nowait()
        full.send_nowait(item())  # still buffered when the channel is dropped

    arun(main)
    unbounded = offload.Channel(None)
    for _ in range(3):
        unbounded.send_nowait(item())
    del unbounded, sender
    gc.collect()
    assert len(refs) == 17
    assert [i for i, r in enumerate(refs) if r() is not None] == []


# ---------------------------------------------------------------------------------------------
# threads and loops


@pytest.mark.parametrize("capacity", [0, 4])
def test_thread_producer_feeds_a_coroutine_consumer(arun, capacity) -> None:
    ch = offload.Channel(capacity)
    n = 2000

    def produce():
        for i in range(n):
            ch.send_blocking(i, timeout=DEADLINE)
        ch.close()

    async def main():
        producer = Run(produce)
        got = [item async for item in ch]
        await producer.aoutcome()
        return got

    assert arun(main) == list(range(n))


@pytest.mark.parametrize("capacity", [0, 4])
def test_coroutine_producer_feeds_a_thread_consumer(arun, capacity) -> None:
    ch = offload.Channel(capacity)
    n = 2000

    async def main():
        consumer = Run(list, ch)
        for i in range(n):
            await ch.send(i)
        ch.close()
        return await consumer.aoutcome()

    assert arun(main) == list(range(n))


@pytest.mark.parametrize("capacity", [0, 1, None])
def test_two_event_loops_in_two_threads_share_one_channel(loop_kind, capacity) -> None:
    ch = offload.Channel(capacity)
    back = offload.Channel(capacity)  # and one the other way, so both loops wait on both
    n = 1000
    other_kind = "uvloop" if loop_kind == "asyncio" else "asyncio"

    def run_on(kind: str, main: Callable[[], Any]) -> Any:
        loop = new_loop(kind)
        try:
            return loop.run_until_complete(asyncio.wait_for(main(), DEADLINE * 3))
        finally:
            loop.close()

    async def ping():
        got = []
        for i in range(n):
            await ch.send(i)
            got.append(await back.recv())
        ch.close()
        return got

    async def pong():
        count = 0
        async for item in ch:
            await back.send(-item)
            count += 1
        return count

    a = Run(run_on, loop_kind, ping)
    b = Run(run_on, other_kind, pong)
    assert a.outcome(DEADLINE * 4) == [-i for i in range(n)]
    assert b.outcome(DEADLINE * 4) == n


def test_receivers_on_several_loops_and_threads_each_get_one_item(loop_kind) -> None:
    ch = offload.Channel(0)

    def loop_receiver():
        loop = new_loop(loop_kind)
        try:
            return loop.run_until_complete(asyncio.wait_for(ch.recv(), DEADLINE))
        finally:
            loop.close()

    receivers = [Run(loop_receiver), Run(loop_receiver), Run(ch.recv_blocking, timeout=DEADLINE)]
    wait_until(waiting(ch, receivers=3))
    for i in range(3):
        ch.send_blocking(i, timeout=DEADLINE)
    assert sorted(r.outcome() for r in receivers) == [0, 1, 2]


def test_a_receiver_whose_loop_was_closed_does_not_swallow_later_items(loop_kind) -> None:
    """A coroutine waits in recv() on a loop that is then closed, without the task being
    cancelled, and the task is dropped. Items sent afterwards must reach other receivers."""
    ch = offload.Channel(1)
    tasks: list = []

    def abandon_a_receiver():
        loop = new_loop(loop_kind)
        tasks.append(loop.create_task(ch.recv()))
        loop.run_until_complete(until(waiting(ch, receivers=1)))
        loop.close()  # the task is still pending in recv()

    Run(abandon_a_receiver).outcome()
    tasks.clear()
    gc.collect()
    ch.send_nowait("x")
    assert ch.recv_blocking(timeout=2) == "x"
    ch.send_nowait("y")
    assert ch.recv_blocking(timeout=2) == "y"
    assert waiting(ch)()  # the abandoned coroutine was finalized and withdrew


def blocked_in_epoll(native_id: int) -> bool:
    """True while the thread sleeps in epoll_wait (the loop is idle in its selector)."""
    try:
        with open(f"/proc/self/task/{native_id}/wchan") as f:
            if "epoll" in f.read():
                return True
        with open(f"/proc/self/task/{native_id}/syscall") as f:
            return f.read().split()[0] in ("232", "281", "441")  # x86-64 epoll_wait/pwait/pwait2
    except (OSError, IndexError):
        pytest.skip("cannot see from /proc whether a thread is blocked in epoll")


def test_a_coroutine_is_woken_after_its_loop_moved_to_another_thread(loop_kind) -> None:
    """A loop may be run from one thread, stopped, then run from another. A coroutine that
    started waiting while the loop ran on the first thread must be woken when that first
    thread (no longer the loop's) sends it an item while the loop sleeps on the second."""
    ch = offload.Channel(1)
    loop = new_loop(loop_kind)
    try:
        task = loop.create_task(ch.recv())
        loop.run_until_complete(until(waiting(ch, receivers=1)))  # on this thread
        loop_thread = Run(loop.run_until_complete, task)  # now on another thread
        wait_until(lambda: bool(loop_thread.native_id) and blocked_in_epoll(loop_thread.native_id))
        ch.send_nowait("x")
        loop_thread.join(2.0)
        woken = not loop_thread.is_alive()
        if not woken:
            loop.call_soon_threadsafe(lambda: None)  # unstick the loop so that the test ends
        assert loop_thread.outcome() == "x"
        assert woken, "the item was handed over but the loop was not woken"
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------
# select


def test_select_nowait_takes_the_first_listed_ready_operation() -> None:
    a, b = offload.Channel(2), offload.Channel(2)
    a.send_nowait("a")
    b.send_nowait("b")
    a_op, b_op = a.recv_op(), b.recv_op()
    selected = offload.select_nowait(a_op, b_op)
    assert isinstance(selected, offload.Selected)
    assert selected.op is a_op and selected.value == "a"
    assert len(b) == 1  # exactly one operation happened
    a.send_nowait("a2")
    op, value = offload.select_nowait(b_op, a_op)
    assert op is b_op and value == "b"
    assert len(a) == 1


def test_select_and_select_blocking_take_the_first_listed_ready_operation(arun) -> None:
    a, b = offload.Channel(2), offload.Channel(2)
    b.send_nowait("b1")
    a.send_nowait("a1")
    ops = (b.recv_op(), a.recv_op())
    assert offload.select_blocking(*ops, timeout=DEADLINE) == (ops[0], "b1")

    async def main():
        return await offload.select(*ops)

    assert arun(main) == (ops[1], "a1")
    assert len(a) == len(b) == 0


def test_select_nowait_can_skip_operations_that_would_block() -> None:
    empty, full, ready = offload.Channel(1), offload.Channel(1), offload.Channel(1)
    full.send_nowait("full")
    ready.send_nowait("ready")
    send_op = full.send_op("more")
    selected = offload.select_nowait(empty.recv_op(), send_op, ready.recv_op())
    assert selected.value == "ready"
    assert drain(full) == ["full"] and len(empty) == 0


def test_select_send_op_sends_to_the_first_channel_with_room() -> None:
    full, free = offload.Channel(1), offload.Channel(1)
    full.send_nowait("old")
    send_op = free.send_op("new")
    assert send_op.is_send and not free.recv_op().is_send
    selected = offload.select_nowait(full.send_op("lost?"), send_op)
    assert selected == (send_op, None)
    assert drain(full) == ["old"] and drain(free) == ["new"]


def test_select_nowait_raises_would_block_when_nothing_can_happen() -> None:
    empty, full = offload.Channel(1), offload.Channel(1)
    full.send_nowait("old")
    with pytest.raises(offload.WouldBlock):
        offload.select_nowait(empty.recv_op(), full.send_op("new"), offload.Channel(0).recv_op())
    assert drain(full) == ["old"] and len(empty) == 0
    assert waiting(empty)() and waiting(full)()


def test_select_waits_across_channels_and_does_exactly_one_operation(arun) -> None:
    a, b = offload.Channel(1), offload.Channel(1)

    async def main():
        a_op, b_op = a.recv_op(), b.recv_op()
        task = asyncio.ensure_future(offload.select(a_op, b_op))
        await until(lambda: waiting(a, receivers=1)() and waiting(b, receivers=1)())
        await Run(b.send_blocking, "to b", timeout=DEADLINE).aoutcome()
        assert await asyncio.wait_for(task, DEADLINE) == (b_op, "to b")
        # The select's receive on `a` was withdrawn: a later item stays in `a`.
        assert waiting(a)() and waiting(b)()
        a.send_nowait("to a")
        assert drain(a) == ["to a"]

    arun(main)


def test_select_waits_on_send_operations(arun) -> None:
    a, b = offload.Channel(1), offload.Channel(1)
    a.send_nowait("a0")
    b.send_nowait("b0")

    async def main():
        to_a, to_b = a.send_op("a1"), b.send_op("b1")
        task = asyncio.ensure_future(offload.select(to_a, to_b))
        await until(lambda: waiting(a, senders=1)() and waiting(b, senders=1)())
        assert await Run(b.recv_blocking, timeout=DEADLINE).aoutcome() == "b0"
        assert await asyncio.wait_for(task, DEADLINE) == (to_b, None)
        assert waiting(a)() and waiting(b)()
        assert drain(a) == ["a0"] and drain(b) == ["b1"]

    arun(main)


def test_select_mixes_send_and_receive_operations(arun) -> None:
    inbox, outbox = offload.Channel(0), offload.Channel(0)

    async def main():
        recv_op, send_op = inbox.recv_op(), outbox.send_op("out")
        task = asyncio.ensure_future(offload.select(recv_op, send_op))
        await until(lambda: waiting(inbox, receivers=1)() and waiting(outbox, senders=1)())
        assert await Run(outbox.recv_blocking, timeout=DEADLINE).aoutcome() == "out"
        assert await asyncio.wait_for(task, DEADLINE) == (send_op, None)
        with pytest.raises(offload.WouldBlock):
            inbox.send_nowait("in")  # the select's receive is gone

    arun(main)


def test_select_timeout_raises_and_nothing_happens(arun) -> None:
    empty, full = offload.Channel(1), offload.Channel(1)
    full.send_nowait("old")
    ops = (empty.recv_op(), full.send_op("new"))

    def nothing_happened():
        assert waiting(empty)() and waiting(full)()
        assert len(empty) == 0 and len(full) == 1

    with pytest.raises(TimeoutError):
        offload.select_blocking(*ops, timeout=0.05)
    nothing_happened()

    async def main():
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await offload.select(*ops, timeout=0.05)
        assert time.monotonic() - start >= 0.04
        nothing_happened()
        with pytest.raises(TimeoutError):
            await offload.select(*ops, timeout=0)
        nothing_happened()

    arun(main)
    assert drain(full) == ["old"]


def test_select_with_a_timeout_returns_an_operation_ready_at_once(arun) -> None:
    ch = offload.Channel(1)
    ch.send_nowait("x")
    op = ch.recv_op()

    async def main():
        return await offload.select(op, timeout=0)

    assert arun(main) == (op, "x")


def test_select_on_a_closed_channel_raises_channel_closed_naming_the_operation(arun) -> None:
    closed, other = offload.Channel(1), offload.Channel(1)
    closed.send_nowait("last")
    closed.close()
    recv_op, send_op = closed.recv_op(), closed.send_op("x")

    # Buffered items are still received through a select.
    assert offload.select_nowait(other.recv_op(), recv_op) == (recv_op, "last")
    with pytest.raises(offload.ChannelClosed) as info:
        offload.select_nowait(other.recv_op(), recv_op)
    assert info.value.op is recv_op
    with pytest.raises(offload.ChannelClosed) as info:
        offload.select_blocking(send_op, other.recv_op(), timeout=DEADLINE)
    assert info.value.op is send_op

    async def main():
        with pytest.raises(offload.ChannelClosed) as info:
            await offload.select(other.recv_op(), recv_op)
        assert info.value.op is recv_op

    arun(main)
    assert waiting(other)() and len(other) == 0


def test_closing_a_channel_wakes_a_waiting_select_with_that_operation(arun) -> None:
    a, b = offload.Channel(0), offload.Channel(0)

    async def main():
        a_op, b_op = a.recv_op(), b.send_op("x")
        task = asyncio.ensure_future(offload.select(a_op, b_op))
        await until(lambda: waiting(a, receivers=1)() and waiting(b, senders=1)())
        b.close()
        with pytest.raises(offload.ChannelClosed) as info:
            await asyncio.wait_for(task, DEADLINE)
        assert info.value.op is b_op
        assert waiting(a)() and waiting(b)()

    arun(main)


def test_closing_a_channel_wakes_a_select_blocking_thread() -> None:
    a, b = offload.Channel(0), offload.Channel(0)
    a_op = a.recv_op()
    selector = Run(offload.select_blocking, a_op, b.recv_op())
    wait_until(lambda: waiting(a, receivers=1)() and waiting(b, receivers=1)())
    a.close()
    with pytest.raises(offload.ChannelClosed) as info:
        selector.outcome()
    assert info.value.op is a_op
    assert waiting(b)()


def test_select_rejects_bad_arguments(arun) -> None:
    ch = offload.Channel(1)
    for bad in ([], [1], [ch], [ch.recv_op(), None]):
        expected = ValueError if not bad else TypeError
        with pytest.raises(expected):
            offload.select_nowait(*bad)
        with pytest.raises(expected):
            offload.select_blocking(*bad, timeout=0)

    async def main():
        with pytest.raises(ValueError):
            await offload.select()
        with pytest.raises(TypeError):
            await offload.select(ch)
        with pytest.raises(TypeError):
            await offload.select(ch.recv_op(), "op")

    arun(main)
    with pytest.raises(TypeError):
        offload.Operation("not a channel", 1)  # type: ignore[arg-type]
    assert waiting(ch)() and len(ch) == 0


def test_select_blocking_from_several_threads_each_do_one_operation() -> None:
    a, b = offload.Channel(0), offload.Channel(0)
    a_op, b_op = a.recv_op(), b.recv_op()
    selectors = [Run(offload.select_blocking, a_op, b_op, timeout=DEADLINE) for _ in range(2)]
    wait_until(lambda: waiting(a, receivers=2)() and waiting(b, receivers=2)())
    a.send_blocking("via a", timeout=DEADLINE)
    b.send_blocking("via b", timeout=DEADLINE)
    results = sorted((r.outcome() for r in selectors), key=lambda s: s.value)
    assert results == [(a_op, "via a"), (b_op, "via b")]
    assert waiting(a)() and waiting(b)()


def test_select_blocking_sends_from_a_thread() -> None:
    a, b = offload.Channel(0), offload.Channel(0)
    to_a, to_b = a.send_op("x"), b.send_op("y")
    selector = Run(offload.select_blocking, to_a, to_b, timeout=DEADLINE)
    wait_until(lambda: waiting(a, senders=1)() and waiting(b, senders=1)())
    assert a.recv_blocking(timeout=DEADLINE) == "x"
    assert selector.outcome() == (to_a, None)
    with pytest.raises(offload.WouldBlock):
        b.recv_nowait()  # "y" was not sent


def test_cancelling_a_waiting_select_withdraws_every_operation(arun) -> None:
    inbox, outbox = offload.Channel(1), offload.Channel(1)
    outbox.send_nowait("old")

    async def main():
        task = asyncio.ensure_future(offload.select(inbox.recv_op(), outbox.send_op("new")))
        await until(lambda: waiting(inbox, receivers=1)() and waiting(outbox, senders=1)())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiting(inbox)() and waiting(outbox)()
        inbox.send_nowait("in")  # buffered, not handed to the cancelled select
        assert drain(inbox) == ["in"]
        assert drain(outbox) == ["old"]  # "new" was not sent
        with pytest.raises(offload.WouldBlock):
            outbox.recv_nowait()

    arun(main)


def test_select_over_the_same_channel_twice_does_one_operation(arun) -> None:
    ch = offload.Channel(0)

    async def main():
        first, second = ch.recv_op(), ch.recv_op()
        task = asyncio.ensure_future(offload.select(first, second))
        await until(waiting(ch, receivers=2))
        ch.send_nowait("x")
        assert await asyncio.wait_for(task, DEADLINE) == (first, "x")
        assert waiting(ch)()
        with pytest.raises(offload.WouldBlock):
            ch.send_nowait("y")

    arun(main)


@pytest.mark.parametrize("use_select", [False, True])
def test_a_send_taken_as_its_task_is_cancelled_ends_the_task_normally(arun, use_select: bool) -> None:
    # The receiver takes the item and the sending task is cancelled at that instant; the send
    # happened, so it returns, and a task whose last step it was ends with its result (3.13
    # once ended it cancelled: cancel(); uncancel() left its must-cancel flag set).
    async def sender(ch: "offload.Channel[str]") -> str:
        if use_select:
            await offload.select(ch.send_op("item"))
        else:
            await ch.send("item")
        return "sent"  # nothing awaited after the send

    async def main() -> Any:
        ch: offload.Channel[str] = offload.Channel(0)
        task = asyncio.ensure_future(sender(ch))
        while ch.stats().waiting_senders == 0:
            await asyncio.sleep(0)
        got = ch.recv_nowait()  # the receiver takes the item (claims the sender)...
        task.cancel()  # ...and the sending task is cancelled at that instant
        try:
            outcome = await task
        except asyncio.CancelledError:
            outcome = "CancelledError"
        return got, outcome

    assert arun(main) == ("item", "sent")


# ---------------------------------------------------------------------------------------------
# objects whose __eq__ and __hash__ raise: a channel never compares or hashes its items


def test_hostile_objects_pass_through_every_channel_operation(arun) -> None:
    async def main() -> List[int]:
        ch: offload.Channel[Hostile] = offload.Channel(1)
        out: List[int] = []
        await ch.send(Hostile(1))
        out.append((await ch.recv()).tag)
        ch.send_nowait(Hostile(2))
        out.append(ch.recv_nowait().tag)
        ch.send_blocking(Hostile(3), timeout=DEADLINE)
        out.append(ch.recv_blocking(timeout=DEADLINE).tag)
        offload.select_nowait(ch.send_op(Hostile(4)))
        out.append(offload.select_nowait(ch.recv_op()).value.tag)
        offload.select_blocking(ch.send_op(Hostile(5)), timeout=DEADLINE)
        out.append(offload.select_blocking(ch.recv_op(), timeout=DEADLINE).value.tag)
        await offload.select(ch.send_op(Hostile(6)), timeout=DEADLINE)
        out.append((await offload.select(ch.recv_op(), timeout=DEADLINE)).value.tag)
        rendezvous: offload.Channel[Hostile] = offload.Channel(0)  # a waiting sender's item
        sender = asyncio.ensure_future(rendezvous.send(Hostile(7)))
        out.append((await rendezvous.recv()).tag)
        await sender
        ch.send_nowait(Hostile(8))
        ch.close()
        out.extend([h.tag async for h in ch])
        return out

    assert arun(main) == [1, 2, 3, 4, 5, 6, 7, 8]
