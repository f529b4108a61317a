"""The native awaitables of Channel.recv / send / __anext__, and the lifetime of waiting
coroutines: they must behave as the coroutines they stand for (regressions from a review)."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import warnings
from typing import Any, List

import pytest

import offload
from test_channel import Run, until
from test_lifecycle import run_python


def test_a_fire_and_forget_consumer_task_is_kept_alive_while_it_waits(arun) -> None:
    """asyncio keeps only weak references to tasks; asyncio.Queue keeps a waiting getter's
    task alive through its future, and so must a channel."""
    got: List[int] = []

    async def consumer(ch: offload.Channel[int]) -> None:
        while True:
            got.append(await ch.recv())

    async def main() -> None:
        ch: offload.Channel[int] = offload.Channel(4)
        asyncio.get_running_loop().create_task(consumer(ch))  # no reference kept
        await until(lambda: ch.stats().waiting_receivers == 1)
        gc.collect()
        for i in range(3):
            await ch.send(i)
        await until(lambda: len(got) == 3)

    arun(main)
    assert got == [0, 1, 2]


def test_a_receiver_on_a_closed_but_referenced_loop_never_swallows_an_item() -> None:
    ch: offload.Channel[str] = offload.Channel(0)
    loop = asyncio.new_event_loop()
    task = loop.create_task(ch.recv())  # kept referenced, like a fixture would
    loop.run_until_complete(until(lambda: ch.stats().waiting_receivers == 1))
    loop.close()
    live = Run(ch.recv_blocking, 10)
    ch.send_blocking("item", timeout=10)
    assert live.outcome() == "item"
    assert not task.done()
    assert ch.stats().waiting_receivers == 0


@pytest.mark.filterwarnings("ignore:coroutine 'Channel.recv' was never awaited")
def test_an_awaitable_is_not_an_iterable_so_a_for_loop_cannot_eat_items() -> None:
    ch: offload.Channel[int] = offload.Channel(2)
    ch.send_nowait(1)
    with pytest.raises(TypeError):
        for _ in ch.recv():  # type: ignore[attr-defined]  # mistaken for `for x in ch`
            pass
    with pytest.raises(TypeError):
        list(ch.recv())  # type: ignore[call-overload]
    assert ch.recv_nowait() == 1


def test_awaitables_cannot_be_made_from_python() -> None:
    with pytest.raises(TypeError):
        offload._core.ChannelAwaitable()  # type: ignore[attr-defined]


def test_an_awaitable_is_a_coroutine_for_asyncio(arun) -> None:
    async def main() -> Any:
        ch: offload.Channel[str] = offload.Channel(1)
        probe = ch.recv()
        assert asyncio.iscoroutine(probe)  # what create_task and wait_for check
        probe.close()  # closed unstarted: no warning, nothing taken
        receiving = asyncio.get_running_loop().create_task(ch.recv())
        await ch.send("x")
        got = await asyncio.wait_for(receiving, 10)
        return got

    assert arun(main) == "x"


def test_a_forgotten_await_warns_and_does_nothing() -> None:
    ch: offload.Channel[int] = offload.Channel(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ch.send(1)  # never awaited
        gc.collect()
    assert any("was never awaited" in str(w.message) for w in caught)
    assert len(ch) == 0


def test_throw_before_the_first_step_raises_it_and_the_operation_never_happens() -> None:
    ch: offload.Channel[int] = offload.Channel(1)
    aw = ch.send(5)
    with pytest.raises(ValueError, match="boom"):
        aw.throw(ValueError("boom"))
    assert len(ch) == 0
    with pytest.raises(RuntimeError, match="cannot reuse"):
        aw.send(None)


def test_closing_an_awaitable_while_it_runs_is_refused_not_a_crash() -> None:
    result = run_python(
        """
        import asyncio, offload, offload._channel as C
        held = {}
        original = C.notifier_for
        def notifier_for(loop):                 # runs inside the awaitable's slow path
            aw = held.pop("aw", None)
            if aw is not None:
                try:
                    aw.close()
                except ValueError as e:
                    print("refused:", e, flush=True)
            return original(loop)
        C.notifier_for = notifier_for
        async def main():
            ch = offload.Channel(0)
            held["aw"] = aw = ch.recv()
            task = asyncio.ensure_future(aw)
            del aw
            while ch.stats().waiting_receivers == 0:
                await asyncio.sleep(0)
            ch.send_nowait(7)
            print("got", await task, flush=True)
        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["refused: coroutine already executing", "got 7"]


def test_a_subclass_can_override_the_operations() -> None:
    calls: List[str] = []

    class Logged(offload.Channel[int]):
        def send_nowait(self, item: int) -> None:
            calls.append("send_nowait")
            super().send_nowait(item)

        def recv_blocking(self, timeout: Any = None) -> int:
            calls.append("recv_blocking")
            return super().recv_blocking(timeout)

    ch = Logged(2)
    ch.send_nowait(3)
    assert ch.recv_blocking(1) == 3
    assert calls == ["send_nowait", "recv_blocking"]
    ch.send_blocking(4)  # not overridden: still the native one
    assert ch.recv_nowait() == 4


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")
def test_a_timeout_that_loses_the_race_to_a_send_just_ends(loop_kind: str) -> None:
    """The timeout cancels the sending task, and in that same instant a receiver takes the
    item: the send happened, so it returns normally, the timeout block ends without
    TimeoutError, and no stray CancelledError is left behind."""
    from conftest import new_loop

    ch: offload.Channel[str] = offload.Channel(0)
    got: List[str] = []

    async def sender() -> str:
        async with asyncio.timeout(None) as cm:  # type: ignore[attr-defined]
            expire = cm._on_timeout

            def expire_then_receive() -> None:
                expire()  # cancels this task...
                got.append(ch.recv_nowait())  # ...and a receiver takes the item meanwhile

            cm._on_timeout = expire_then_receive
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: cm.reschedule(loop.time()))
            await ch.send("x")
        for _ in range(3):
            await asyncio.sleep(0)  # must not raise
        return "ended quietly"

    loop = new_loop(loop_kind)
    try:
        assert loop.run_until_complete(sender()) == "ended quietly"
    finally:
        loop.close()
    assert got == ["x"]


def test_an_external_cancel_that_loses_the_race_to_a_send_lands_at_the_next_await(arun) -> None:
    async def main() -> List[str]:
        ch: offload.Channel[str] = offload.Channel(0)
        events: List[str] = []

        async def sender() -> None:
            await ch.send("x")
            events.append("send returned")
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                events.append("cancelled at the next await")
                raise

        task = asyncio.get_running_loop().create_task(sender())
        await until(lambda: ch.stats().waiting_senders == 1)
        events.append(ch.recv_nowait())  # the send happens...
        task.cancel()  # ...and the task is cancelled in the same instant
        with pytest.raises(asyncio.CancelledError):
            await task
        return events

    assert arun(main) == ["x", "send returned", "cancelled at the next await"]


def test_channels_and_waiters_of_a_dead_loop_are_collected_with_their_tasks() -> None:
    result = run_python(
        """
        import asyncio, gc, weakref, offload
        ch = offload.Channel(0)
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(ch.recv()) for _ in range(3)]
        async def until(pred):
            while not pred():
                await asyncio.sleep(0)
        loop.run_until_complete(until(lambda: ch.stats().waiting_receivers == 3))
        loop.close()
        refs = [weakref.ref(ch)] + [weakref.ref(t) for t in tasks]
        del ch, tasks, loop
        gc.collect()
        print(sum(r() is not None for r in refs), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0"]


def test_many_threads_stepping_one_channel_through_awaitables_lose_nothing() -> None:
    """Awaitables driven by event loops in several threads at once, on one channel."""
    ch: offload.Channel[int] = offload.Channel(8)
    total = 2_000
    received: List[int] = []
    lock = threading.Lock()

    def consumer() -> None:
        async def main() -> None:
            async for item in ch:
                with lock:
                    received.append(item)

        asyncio.run(main())

    consumers = [Run(consumer) for _ in range(3)]

    async def produce() -> None:
        for i in range(total):
            await ch.send(i)
        ch.close()

    asyncio.run(produce())
    for c in consumers:
        c.outcome()
    assert sorted(received) == list(range(total))
