"""Contract: the closed-loop policy (docs/design.md), on asyncio and on uvloop.

A loop that closes, or is dropped without close(), takes nothing with it and leaves nothing
behind: it cancels no call (a call never awaited still runs), results are released, coroutines left waiting on a
channel take nothing (an item handed to one goes on), and nothing keeps the loop alive.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any, Dict, List

import pytest

import offload
from offload import _core
from conftest import Gate, Plain, held_then, new_loop, run_python

TIMEOUT = 30


def run_once(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


async def receivers_waiting(ch: "offload.Channel[Any]", n: int) -> None:
    while ch.stats().waiting_receivers < n:
        await asyncio.sleep(0)


def test_closing_a_loop_detaches_it_at_once(loop_kind: str) -> None:
    loop = new_loop(loop_kind)
    before = _core.attached_loops()
    run_once(loop, offload.run(int))
    assert _core.attached_loops() == before + 1
    notifier = _core.registered_notifier(loop)
    loop.close()  # the loop releases its reader: no later lookup is needed to notice
    assert _core.attached_loops() == before
    assert notifier is not None and notifier.closed



def test_calls_never_awaited_still_run_after_their_loop_closes(loop_kind: str) -> None:
    # Fire and forget: a call (and a map) queued behind a blocked worker, never awaited, whose
    # loop closes before they start. A close cancels nothing: they run, their results go.
    pool = offload.Pool(1)
    entered, gate = threading.Event(), threading.Event()
    ran: List[Any] = []
    loop = new_loop(loop_kind)

    def blocker() -> None:
        entered.set()
        gate.wait(TIMEOUT)

    async def start() -> Any:
        return (pool.run(blocker), pool.run(ran.append, "call"),
                pool.map(ran.append, ["item 1", "item 2"]))

    try:
        calls = run_once(loop, start())
        assert entered.wait(TIMEOUT)
        loop.close()
        gate.set()
        pool.shutdown(wait=True)  # joins the worker: everything queued has run by now
        assert ran == ["call", "item 1", "item 2"]
        assert pool.stats().cancelled == 0
        assert not any(call.done() for call in calls)  # their loop is gone: nothing delivered
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_a_result_for_a_loop_closed_meanwhile_is_released_without_another_loop(
    one_worker, gate: Gate, loop_kind: str
) -> None:
    # Was a known limit (a strict xfail): the result of a call still running when its loop
    # closed, and the loop, stayed alive until another loop first used offload. The loop's
    # close() now detaches it at once: the result is released when the call ends.
    refs: Dict[str, "weakref.ref[Any]"] = {}

    def make() -> Plain:
        result = Plain()
        refs["result"] = weakref.ref(result)
        return result

    async def leave() -> None:
        refs["loop"] = weakref.ref(asyncio.get_running_loop())
        one_worker.run(held_then(gate, make))  # never awaited: the loop closes first

    loop = new_loop(loop_kind)
    loop.run_until_complete(leave())
    assert gate.entered.wait(TIMEOUT)  # running, held, when the loop closes
    loop.close()
    del loop
    gate.open()
    one_worker.shutdown(wait=True)
    gc.collect()
    assert refs["result"]() is None, "the result of the call is still alive"
    assert refs["loop"]() is None, "the closed loop is still alive"


def test_a_loop_dropped_without_close_is_detached_when_collected() -> None:
    loop = asyncio.new_event_loop()
    before = _core.attached_loops()
    run_once(loop, offload.run(int))
    assert _core.attached_loops() == before + 1
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None
    assert _core.attached_loops() == before


def test_an_item_handed_to_a_coroutine_of_a_loop_that_then_closes_goes_on(loop_kind: str) -> None:
    # The loop is not running when the item is handed over; then it closes without
    # cancelling its task. A thread waiting in recv_blocking gets the item (no limbo).
    ch: offload.Channel[str] = offload.Channel(None)
    loop = new_loop(loop_kind)

    async def start() -> None:
        loop.create_task(ch.recv())  # type: ignore[arg-type]
        await receivers_waiting(ch, 1)

    run_once(loop, start())
    got: List[str] = []
    thread = threading.Thread(target=lambda: got.append(ch.recv_blocking(TIMEOUT)))
    thread.start()
    while ch.stats().waiting_receivers < 2:
        pass  # the thread queues behind the coroutine
    ch.send_nowait("item")  # handed to the coroutine, first in line; its loop is stopped
    loop.close()
    thread.join(TIMEOUT)
    assert got == ["item"]
    s = ch.stats()
    assert (s.sent, s.received, s.buffered, s.waiting_receivers) == (1, 1, 0, 0)


def test_a_coroutine_left_waiting_on_a_closed_loop_takes_nothing(loop_kind: str) -> None:
    ch: offload.Channel[int] = offload.Channel(None)
    loop = new_loop(loop_kind)

    async def start() -> None:
        loop.create_task(ch.recv())  # type: ignore[arg-type]
        loop.create_task(ch.recv())  # type: ignore[arg-type]
        await receivers_waiting(ch, 2)

    run_once(loop, start())
    loop.close()
    assert ch.stats().waiting_receivers == 0  # withdrawn when the loop closed
    ch.send_nowait(1)
    assert ch.recv_nowait() == 1  # nobody took it


def test_a_send_of_a_coroutine_left_on_a_closed_loop_delivers_nothing(loop_kind: str) -> None:
    ch: offload.Channel[str] = offload.Channel(0)
    loop = new_loop(loop_kind)

    async def start() -> None:
        loop.create_task(ch.send("never"))  # type: ignore[arg-type]
        while ch.stats().waiting_senders < 1:
            await asyncio.sleep(0)

    run_once(loop, start())
    loop.close()
    assert ch.stats().waiting_senders == 0
    with pytest.raises(offload.WouldBlock):
        ch.recv_nowait()


def test_a_dead_loop_is_not_kept_alive_by_a_channel(loop_kind: str) -> None:
    ch: offload.Channel[int] = offload.Channel(None)
    refs = []
    for _ in range(50):
        loop = new_loop(loop_kind)

        async def start(loop: asyncio.AbstractEventLoop = loop) -> None:
            loop.create_task(ch.recv())  # type: ignore[arg-type]
            await receivers_waiting(ch, 1)

        run_once(loop, start())
        loop.close()
        refs.append(weakref.ref(loop))
        del loop, start
    gc.collect()
    assert ch._core.waiting == set()  # no coroutine of a dead loop stays pinned
    if loop_kind == "asyncio":  # uvloop's loops are freed by reference counting alone
        assert all(r() is None for r in refs)
    ch.send_nowait(7)
    assert ch.recv_nowait() == 7


def test_a_send_past_many_dead_waiters_is_a_loop_not_a_recursion() -> None:
    # 60,000 coroutines left waiting on a loop closed without cancelling them: before, the
    # next send recursed once per dead waiter and overflowed the stack. (The loop's close
    # withdraws them now; the orphan chain is also checked with a thread's small stack below.)
    result = run_python(
        """
        import asyncio, threading, offload
        ch = offload.Channel(None)
        loop = asyncio.new_event_loop()
        async def start():
            for _ in range(60000):
                loop.create_task(ch.recv())
            while ch.stats().waiting_receivers < 60000:
                await asyncio.sleep(0)
        loop.run_until_complete(start())
        loop.close()
        ch.send_nowait("item")
        print(ch.recv_nowait(), ch.stats().waiting_receivers, flush=True)
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["item", "0"]


def test_orphaning_a_chain_of_dead_waiters_needs_no_deep_stack() -> None:
    # A loop type whose close() keeps its readers is not noticed closed until the next
    # attach: a send then meets its waiters one by one, each orphaned, each passing the item
    # on. That chain is a loop on one thread: a thread with a small stack and 5,000 dead
    # waiters used to crash.
    result = run_python(
        """
        import asyncio, threading, offload
        class KeepsItsReaders(asyncio.SelectorEventLoop):
            def close(self):
                self.kept = list(self._selector.get_map().values())
                super().close()
        ch = offload.Channel(None)
        loop = KeepsItsReaders()
        async def start():
            for _ in range(5000):
                loop.create_task(ch.recv())
            while ch.stats().waiting_receivers < 5000:
                await asyncio.sleep(0)
        loop.run_until_complete(start())
        loop.close()
        threading.stack_size(256 * 1024)
        t = threading.Thread(target=ch.send_nowait, args=("item",))
        t.start(); t.join()
        print(ch.recv_nowait(), ch.stats().waiting_receivers, flush=True)
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["item", "0"]


def test_a_destructor_run_by_detaching_may_call_offload(loop_kind: str) -> None:
    # A result still queued for a closed loop is released when the loop is detached; its
    # __del__ calls offload (a fire-and-forget cleanup): nothing may deadlock, nothing is lost.
    result = run_python(
        f"""
        import asyncio, faulthandler, threading, offload, uvloop
        faulthandler.dump_traceback_later(30, exit=True)
        new = uvloop.new_event_loop if {loop_kind!r} == "uvloop" else asyncio.new_event_loop
        cleaned = threading.Event()
        class Cleanup:
            def __del__(self):
                # A fire-and-forget cleanup (no loop runs here: submit, not run).
                offload.default_pool().submit(cleaned.set)
        entered, gate = threading.Event(), threading.Event()
        def make():
            entered.set(); gate.wait(10)
            return Cleanup()
        loop = new()
        async def start():
            return offload.run(make)
        pending = loop.run_until_complete(start())
        entered.wait(10)
        gate.set()
        notifier = offload._core.registered_notifier(loop)
        while notifier.stats()["added"] == 0:
            pass                        # until the result is queued for the (stopped) loop
        loop.close()                    # releases it: __del__ submits to offload
        async def again():
            return await offload.run(pow, 2, 5)
        print("again", asyncio.run(again()), "cleanup ran", cleaned.wait(10), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["again", "32", "cleanup", "ran", "True"]


def test_loops_dropped_without_close_never_break_a_later_attach() -> None:
    # The old sweep iterated a dict that a gc-triggered weakref callback changed.
    result = run_python(
        """
        import asyncio, gc, offload
        gc.set_threshold(1)
        for _ in range(200):
            loop = asyncio.new_event_loop()
            loop.run_until_complete(offload.run(int))
            del loop                      # dropped without close()
        async def main():
            return await offload.run(pow, 3, 3)
        print(asyncio.run(main()), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["27"]
