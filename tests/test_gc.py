"""Reference cycles through offload's native state: Python's cyclic gc collects them, as it
collects the same cycles through asyncio.Queue and concurrent.futures.Future, and never takes
anything that a live party still uses.

A Channel shows the gc its buffered items and the items of its queued sends; an
offload.Future shows its outcome (result, or exception with its traceback) once it is the
only holder of it. The gc's traversal takes the channel's lock with the GIL held, so it is
also exercised from a thread while items flow.

Nothing here synchronises by sleeping: waits are on events and have deadlines.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any, Dict, List, Optional

import pytest

import offload
from conftest import Gate, Plain

TIMEOUT = 30.0  # the bound of every wait; each normally takes milliseconds


class Payload:
    """An item whose contents a wrongful gc clear would empty."""

    def __init__(self, owner: Any, data: List[int]) -> None:
        self.owner = owner
        self.data = data


def intact(item: Payload, data: List[int]) -> bool:
    return item.data == data and item.owner is not None


async def until(predicate: Any) -> None:
    """Steps the loop until `predicate()` holds (a coroutine reaching its wait)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# --------------------------------------------------------------------------------------------
# Channels


def test_a_channel_whose_buffered_item_references_it_is_collected() -> None:
    ch: offload.Channel[Any] = offload.Channel(4)
    ch.send_nowait(Payload(ch, [1]))
    ch.send_nowait("plain")
    ref = weakref.ref(ch)
    del ch
    gc.collect()
    assert ref() is None


def test_channel_items_that_reference_their_channel_are_collected() -> None:
    class Actor:
        def __init__(self) -> None:
            self.inbox: offload.Channel[Any] = offload.Channel(None)

        def tell(self, message: str) -> None:
            self.inbox.send_nowait((self, message))  # a message that names its sender

    actor = Actor()
    actor.tell("hello")
    ref = weakref.ref(actor)
    del actor
    gc.collect()
    assert ref() is None  # asyncio.Queue in the same role is collected


@pytest.mark.parametrize("kind", ["offload", "asyncio"])
def test_a_coroutine_blocked_in_send_on_a_channel_only_it_references_is_collected(
    arun, kind: str
) -> None:
    # The item names the channel, so the cycle runs through the blocked send's item, which the
    # sender owns: asyncio.Queue's blocked put() is collected in this role, and so is this.
    refs: Dict[str, "weakref.ref[Any]"] = {}
    seen: List[str] = []
    destroyed: List[str] = []

    async def sender() -> None:
        if kind == "offload":
            ch: Any = offload.Channel(0)  # rendezvous: no receiver ever comes
            send = ch.send
        else:
            ch = asyncio.Queue(1)
            ch.put_nowait("filler")
            send = ch.put
        refs["channel"] = weakref.ref(ch)
        try:
            await send(Payload(ch, [1, 2, 3]))
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: destroyed.append(context["message"]))
        task = asyncio.create_task(sender())
        refs["task"] = weakref.ref(task)
        await until(lambda: "channel" in refs and not task.done())
        await asyncio.sleep(0)
        del task
        gc.collect()
        assert refs["channel"]() is None
        assert refs["task"]() is None

    arun(main)
    assert seen == ["GeneratorExit"]  # closed by the gc, not woken by a closed channel
    assert destroyed == ["Task was destroyed but it is pending!"]


def test_a_coroutine_blocked_in_recv_on_a_collected_channel_is_not_woken_by_its_close(
    arun,
) -> None:
    seen: List[str] = []
    refs: Dict[str, "weakref.ref[Any]"] = {}

    async def receiver() -> None:
        ch: offload.Channel[Any] = offload.Channel(None)
        ch.me = ch  # type: ignore[attr-defined]
        refs["channel"] = weakref.ref(ch)
        try:
            await ch.recv()
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda *_: None)
        task = asyncio.create_task(receiver())
        await until(lambda: "channel" in refs)
        await asyncio.sleep(0)
        del task
        gc.collect()
        assert refs["channel"]() is None
        await asyncio.sleep(0)  # a wake-up, had the close queued one, would run now

    arun(main)
    assert seen == ["GeneratorExit"]


def test_a_thread_blocked_in_send_keeps_the_channel_and_its_item_alive_through_gc() -> None:
    # Only the blocked thread references the channel, and its item references the channel:
    # the gc must see the thread's stack as a root and clear nothing.
    ch: offload.Channel[Any] = offload.Channel(0)
    ref = weakref.ref(ch)
    sent = threading.Event()

    def send(channel: offload.Channel[Any]) -> None:
        channel.send_blocking(Payload(channel, [4, 5, 6]), timeout=TIMEOUT)
        sent.set()

    thread = threading.Thread(target=send, args=(ch,))
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while ch.stats().waiting_senders == 0:  # until the thread is queued
        assert time.monotonic() < deadline
    del ch
    for _ in range(3):
        gc.collect()
    channel = ref()
    assert channel is not None
    item = channel.recv_blocking(timeout=TIMEOUT)
    assert sent.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert intact(item, [4, 5, 6]) and item.owner is channel


def test_a_select_that_also_waits_on_a_live_channel_keeps_its_send_item_intact(arun) -> None:
    # The select's send sits queued on a channel only the select's coroutine references; the
    # coroutine is reachable through the live channel, so the gc must keep that item too.
    live: offload.Channel[Any] = offload.Channel(None)
    results: List[Any] = []
    refs: Dict[str, "weakref.ref[Any]"] = {}

    async def selector() -> None:
        hidden: offload.Channel[Any] = offload.Channel(0)
        item = Payload(hidden, [7, 8])
        refs["hidden"] = weakref.ref(hidden)
        refs["item"] = weakref.ref(item)
        op, value = await offload.select(hidden.send_op(item), live.recv_op())
        results.append((op.is_send, value, intact(item, [7, 8]), len(hidden)))

    async def main() -> None:
        task = asyncio.create_task(selector())
        await until(lambda: live.stats().waiting_receivers == 1)
        gc.collect()
        assert refs["hidden"]() is not None and refs["item"]() is not None
        live.send_nowait("wake")
        await asyncio.wait_for(task, TIMEOUT)

    arun(main)
    assert results == [(False, "wake", True, 0)]


def test_collecting_a_channel_finalizes_its_items_and_they_may_use_other_channels(arun) -> None:
    # A dropped item's __del__ runs with no channel lock held: it can send on another channel,
    # which a live coroutine receives exactly once.
    notices: offload.Channel[str] = offload.Channel(None)

    class Noisy:
        def __init__(self, owner: Any, name: str) -> None:
            self.owner = owner
            self.name = name

        def __del__(self) -> None:
            notices.send_nowait(self.name)

    async def main() -> List[str]:
        received: List[str] = []

        async def listen() -> None:
            async for name in notices:
                received.append(name)

        listener = asyncio.create_task(listen())
        await until(lambda: notices.stats().waiting_receivers == 1)
        inbox: offload.Channel[Any] = offload.Channel(None)
        for name in ("a", "b"):
            inbox.send_nowait(Noisy(inbox, name))
        ref = weakref.ref(inbox)
        del inbox
        gc.collect()
        assert ref() is None
        await until(lambda: len(received) == 2)
        notices.close()
        await asyncio.wait_for(listener, TIMEOUT)
        return received

    assert sorted(arun(main)) == ["a", "b"]


def test_gc_from_another_thread_while_items_that_reference_their_channels_flow() -> None:
    # Senders and receivers on threads (GIL released while blocked) and a thread looping
    # gc.collect(), which traverses the channels under their locks: every item arrives once
    # and intact, and afterwards every channel is collectable.
    channels: List[offload.Channel[Any]] = [offload.Channel(capacity) for capacity in (0, 1, 8)]
    per_sender = 300
    stop = threading.Event()
    errors: List[BaseException] = []
    received: List[List[Any]] = [[] for _ in channels]

    def collect() -> None:
        while not stop.is_set():
            gc.collect()

    def send(index: int, offset: int) -> None:
        try:
            ch = channels[index]
            for i in range(per_sender):
                ch.send_blocking(Payload(ch, [offset + i]), timeout=TIMEOUT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def receive(index: int) -> None:
        try:
            for item in channels[index]:
                received[index].append(item)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    collector = threading.Thread(target=collect)
    receivers = [threading.Thread(target=receive, args=(i,)) for i in range(len(channels))]
    senders = [
        threading.Thread(target=send, args=(i, offset))
        for i in range(len(channels))
        for offset in (0, 10_000)
    ]
    collector.start()
    for t in receivers + senders:
        t.start()
    for t in senders:
        t.join(TIMEOUT)
    for ch in channels:
        ch.close()
    for t in receivers:
        t.join(TIMEOUT)
    stop.set()
    collector.join(TIMEOUT)
    assert not errors
    for ch, items in zip(channels, received):
        assert all(item.owner is ch for item in items)
        values = sorted(item.data[0] for item in items)
        assert values == list(range(per_sender)) + list(range(10_000, 10_000 + per_sender))


def test_gc_from_another_thread_while_coroutines_pass_items_through_a_channel(arun) -> None:
    per_sender = 500
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            gc.collect()

    async def main() -> List[int]:
        ch: offload.Channel[Any] = offload.Channel(2)

        async def send(offset: int) -> None:
            for i in range(per_sender):
                await ch.send(Payload(ch, [offset + i]))

        async def receive() -> List[int]:
            values = []
            async for item in ch:
                assert item.owner is ch
                values.append(item.data[0])
            return values

        receiver = asyncio.create_task(receive())
        await asyncio.gather(send(0), send(10_000))
        ch.close()
        return await asyncio.wait_for(receiver, TIMEOUT)

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        values = arun(main)
    finally:
        stop.set()
        collector.join(TIMEOUT)
    assert sorted(values) == list(range(per_sender)) + list(range(10_000, 10_000 + per_sender))


# --------------------------------------------------------------------------------------------
# Futures


def test_a_future_whose_exception_traceback_references_it_is_collected(one_worker) -> None:
    box: List[Any] = []

    def fail(holder: List[Any]) -> None:
        raise ValueError("boom")  # the traceback's frame keeps `holder`, which holds the future

    fut = one_worker.submit(fail, box)
    box.append(fut)
    assert isinstance(fut.exception(timeout=TIMEOUT), ValueError)
    ref = weakref.ref(fut)
    del fut, box
    gc.collect()
    assert ref() is None


def test_a_future_whose_result_references_it_is_collected(one_worker) -> None:
    holder: Dict[str, Any] = {}

    def make() -> Plain:
        result = Plain()
        result.holder = holder  # type: ignore[attr-defined]
        return result

    fut = one_worker.submit(make)
    holder["future"] = fut
    fut.result(timeout=TIMEOUT)
    ref = weakref.ref(fut)
    del fut, holder
    gc.collect()
    assert ref() is None


def test_a_future_whose_result_references_it_is_collected_after_a_loop_awaited_it(
    arun, one_worker
) -> None:
    refs: Dict[str, "weakref.ref[Any]"] = {}

    async def main() -> None:
        box: List[Any] = []
        fut = one_worker.submit(lambda: Payload(box, [1]))
        box.append(fut)
        result = await fut  # a delivery to this loop shared the state for a while
        assert intact(result, [1])
        refs["future"] = weakref.ref(fut)
        del fut, box, result

    arun(main)
    gc.collect()
    assert refs["future"]() is None


def test_a_pending_future_referenced_only_by_its_done_callback_is_kept_and_stays_intact(
    one_worker, gate: Gate
) -> None:
    # The done callback is held by the job that will run it: gc must not treat the future (or
    # the result the callback reads) as garbage meanwhile.
    outcome: List[Any] = []
    called = threading.Event()
    box: List[Any] = []

    def call() -> Payload:
        gate.wait()
        return Payload(box, [9])

    def on_done(fut: Any) -> None:
        result = fut.result()
        outcome.append((intact(result, [9]), result.owner is box, box[0] is fut))
        called.set()

    fut = one_worker.submit(call)
    box.append(fut)
    fut.add_done_callback(on_done)
    ref = weakref.ref(fut)
    assert gate.entered.wait(TIMEOUT)
    del fut
    gc.collect()
    assert ref() is not None
    gate.open()
    assert called.wait(TIMEOUT)
    assert outcome == [(True, True, True)]


def test_gc_from_another_thread_while_futures_settle_keeps_every_result_intact(pool) -> None:
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            gc.collect()

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        futures = []
        for i in range(2000):
            box: List[Any] = []
            fut = pool.submit(Payload, box, [i])
            box.append(fut)
            futures.append(fut)
        results = [fut.result(timeout=TIMEOUT) for fut in futures]
    finally:
        stop.set()
        collector.join(TIMEOUT)
    assert [r.data[0] for r in results] == list(range(2000))
    assert all(r.owner[0] is fut for r, fut in zip(results, futures))
    refs = [weakref.ref(fut) for fut in futures]
    del futures, results, fut, box
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_a_future_cleared_by_the_gc_is_never_seen_by_a_finalizer_half_cleared(one_worker) -> None:
    # The finalizer of an object in the same garbage runs before anything is cleared, so it
    # still reads the result.
    seen: List[Optional[List[int]]] = []

    class Watcher:
        def __init__(self, fut: Any) -> None:
            self.fut = fut

        def __del__(self) -> None:
            seen.append(list(self.fut.result(timeout=0).data))

    box: List[Any] = []
    fut = one_worker.submit(lambda: Payload(box, [3]))
    box.append(Watcher(fut))
    fut.result(timeout=TIMEOUT)
    ref = weakref.ref(fut)
    del fut, box
    gc.collect()
    assert ref() is None
    assert seen == [[3]]
