"""Contract: re-entry never deadlocks (docs/design.md, "The re-entrancy rule").

* Every callback offload runs -- a destructor of something it releases, a done callback, a
  signal handler, a collection started by one of its allocations -- may call any offload API.
  A result dropped by a cancelled awaiter (finalized on the loop's thread), a result nobody
  waits for (finalized on the worker), an item of a collected channel: each finalizer may
  submit to the pool that dropped it, run on it, or send on a channel a coroutine awaits.
* A worker that waits on its own pool never deadlocks it: a worker that submits to its pool
  while none is free lends its place until its call ends (one more worker may run), and a
  worker that waits with the GIL released (result(), a channel, from_thread) lets another
  worker run meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from typing import Any, List, Tuple

import pytest

import offload
from conftest import ActsInDel, Gate, RaisesInDel, Unraisables, held_then
from conftest import native_thread_name, run_python
from pool_kinds import counters_add_up

TIMEOUT = 30


# -- callbacks that call offload -------------------------------------------------------------


def test_a_done_callback_may_use_every_offload_api(arun) -> None:
    ch: offload.Channel[int] = offload.Channel(None)
    seen: List[Any] = []
    with offload.Pool(workers=1) as pool:

        def callback(fut: "offload.Future[int]") -> None:  # on the worker that completes it
            seen.append(pool.submit(pow, fut.result(), 2).result(timeout=TIMEOUT))
            ch.send_nowait(fut.result())
            seen.append(ch.recv_nowait())
            with offload.Pool(workers=1) as inner:
                seen.append(inner.submit(abs, -1).result(timeout=TIMEOUT))

        fut = pool.submit(int, "3")
        fut.add_done_callback(callback)
        assert fut.result(timeout=TIMEOUT) == 3
        pool.submit(int).result(timeout=TIMEOUT)  # after the callback, on the same worker
    assert seen == [9, 3, 1]


def test_destructors_of_results_items_and_calls_may_call_offload() -> None:
    result = run_python(
        """
        import asyncio, faulthandler, gc, offload
        faulthandler.dump_traceback_later(30, exit=True)
        ran = []
        class CallsBack:
            def __init__(self, tag): self.tag = tag
            def __del__(self):
                ran.append(offload.default_pool().submit(len, self.tag).result(timeout=10))
        async def main():
            # a result dropped by the loop, an item dropped with its channel, a call's argument
            await offload.run(CallsBack, "result")
            ch = offload.Channel(None)
            ch.send_nowait(CallsBack("item"))
            del ch
            await offload.run(lambda x: None, CallsBack("argument"))
            gc.collect()
        asyncio.run(main())
        print(sorted(ran), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[4, 6, 8]"


def test_a_collection_inside_offload_whose_destructor_calls_offload() -> None:
    # A gc pass can start inside any of offload's allocations: making the default pool, an
    # Executor's future, a loop's notifier. A __del__ that calls offload there must not hang.
    result = run_python(
        """
        import asyncio, concurrent.futures, faulthandler, gc, offload
        faulthandler.dump_traceback_later(30, exit=True)
        ex = offload.Executor(max_workers=2)
        class Again:
            def __init__(self): self.me = self          # garbage only a collection frees
            def __del__(self):
                offload.default_pool().submit(print, end="")
                ex.submit(print, end="")
        async def main():
            for _ in range(200):
                Again()
                await offload.run(int)
                ex.submit(int).result(timeout=10)
        gc.set_threshold(1)
        asyncio.run(main())
        gc.set_threshold(700)
        print("done", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


def test_a_signal_handler_may_call_offload_while_the_main_thread_waits() -> None:
    result = run_python(
        """
        import os, signal, threading, offload
        ch = offload.Channel(1)
        def handler(signum, frame):
            # runs on the main thread, inside recv_blocking's wait
            ch.send_nowait(offload.default_pool().submit(pow, 2, 10).result(timeout=10))
        signal.signal(signal.SIGUSR1, handler)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        print(ch.recv_blocking(timeout=10), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1024"


# -- finalizers of what offload drops, calling offload -----------------------------------------


def test_a_result_dropped_by_a_cancelled_awaiter_can_reenter_offload_from_its_finalizer(
    arun, one_worker, gate: Gate
) -> None:
    async def main() -> Tuple[int, int]:
        loop = asyncio.get_running_loop()
        found: offload.Channel[Tuple[Any, offload.Future[int]]] = offload.Channel(None)

        def reenter() -> None:
            # In the loop's drain: a run on the same pool, and a submit.
            found.send_nowait((one_worker.run(pow, 2, 10), one_worker.submit(pow, 3, 3)))

        task = asyncio.ensure_future(one_worker.run(held_then(gate, lambda: ActsInDel(reenter))))
        assert await loop.run_in_executor(None, gate.entered.wait, TIMEOUT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.open()
        run_future, submitted = await asyncio.wait_for(found.recv(), TIMEOUT)
        return await asyncio.wait_for(run_future, TIMEOUT), await submitted

    assert arun(main) == (1024, 27)
    counters_add_up(one_worker)


def test_a_result_dropped_on_the_worker_can_submit_to_its_own_pool_from_its_finalizer(
    one_worker, gate: Gate
) -> None:
    found: offload.Channel[Tuple[str, offload.Future[int]]] = offload.Channel(None)

    def reenter() -> None:
        found.send_nowait((native_thread_name(), one_worker.submit(pow, 2, 10)))

    fut = one_worker.submit(held_then(gate, lambda: ActsInDel(reenter)))
    del fut
    gate.open()
    where, submitted = found.recv_blocking(timeout=TIMEOUT)
    assert where.startswith("solo")
    assert submitted.result(timeout=TIMEOUT) == 1024
    s = counters_add_up(one_worker)
    assert (s.submitted, s.completed) == (2, 2)


def test_a_result_dropped_on_the_worker_wakes_a_coroutine_awaiting_the_channel_it_sends_on(
    arun, one_worker, gate: Gate
) -> None:
    async def main() -> str:
        ch: offload.Channel[str] = offload.Channel(0)  # rendezvous: the send waits for the receiver

        def reenter() -> None:
            ch.send_blocking("from __del__", timeout=TIMEOUT)

        fut = one_worker.submit(held_then(gate, lambda: ActsInDel(reenter)))
        del fut
        gate.open()
        return await asyncio.wait_for(ch.recv(), TIMEOUT)

    assert arun(main) == "from __del__"


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "open"])
def test_items_left_in_a_collected_channel_are_finalized_and_may_reenter_offload(
    pool, unraisables: Unraisables, closed: bool
) -> None:
    found: offload.Channel[offload.Future[int]] = offload.Channel(None)

    def reenter() -> None:
        found.send_nowait(pool.submit(pow, 2, 10))
        offload.Channel[str](1).send_nowait("a channel made and dropped in __del__")

    ch: offload.Channel[object] = offload.Channel(None)
    ch.send_nowait(RaisesInDel())
    ch.send_nowait(ActsInDel(reenter))
    ch.send_nowait(RaisesInDel())
    if closed:
        ch.close()
    del ch
    gc.collect()
    assert len(unraisables.of_type(ValueError)) == 2
    assert found.recv_nowait().result(timeout=TIMEOUT) == 1024


# -- workers waiting on their own pool ---------------------------------------------------------


def test_a_worker_waiting_for_a_call_it_submitted_to_its_full_pool(arun) -> None:
    with offload.Pool(workers=1) as pool:

        def outer() -> int:
            return pool.submit(pow, 2, 8).result(timeout=TIMEOUT) + 1

        assert pool.submit(outer).result(timeout=TIMEOUT) == 257


def test_a_nested_map_from_a_worker_of_a_full_pool(arun) -> None:
    with offload.Pool(workers=1) as pool:

        def outer(n: int) -> List[int]:
            return asyncio.run(pool.map(abs, range(-n, 0)))  # type: ignore[arg-type]

        assert pool.submit(outer, 3).result(timeout=TIMEOUT) == [3, 2, 1]

    async def main() -> Any:
        with offload.Pool(workers=2) as pool:

            def outer(n: int) -> int:
                return sum(asyncio.run(pool.map(abs, range(-n, 0))))  # type: ignore[arg-type]

            return await pool.map(outer, [3, 4, 5, 6])  # every worker nests at once

    assert arun(main) == [6, 10, 15, 21]


def test_a_run_waiting_for_a_call_queued_behind_it() -> None:
    with offload.Pool(workers=1) as pool:
        later: "concurrent.futures.Future[offload.Future[int]]" = concurrent.futures.Future()

        def first() -> int:
            return later.result(timeout=TIMEOUT).result(timeout=TIMEOUT) * 2  # waits for `second`

        a = pool.submit(first)
        later.set_result(pool.submit(pow, 3, 2))  # queued behind `first`, on a 1-worker pool
        assert a.result(timeout=TIMEOUT) == 18
        assert pool.stats().completed == 2


def test_a_worker_waiting_on_a_channel_fed_by_its_own_pool() -> None:
    ch: offload.Channel[int] = offload.Channel(0)
    with offload.Pool(workers=1) as pool:

        def consumer() -> int:
            producer = pool.submit(lambda: [ch.send_blocking(i, timeout=TIMEOUT) for i in range(3)])
            total = sum(ch.recv_blocking(timeout=TIMEOUT) for _ in range(3))
            producer.result(timeout=TIMEOUT)
            return total

        assert pool.submit(consumer).result(timeout=TIMEOUT) == 3


def test_an_executor_task_waiting_for_tasks_it_submitted() -> None:
    with offload.Executor(max_workers=2) as ex:

        def fan_out(n: int) -> int:
            return sum(f.result(timeout=TIMEOUT) for f in [ex.submit(pow, i, 2) for i in range(n)])

        both = [ex.submit(fan_out, 5), ex.submit(fan_out, 4)]  # both workers nest at once
        assert [f.result(timeout=TIMEOUT) for f in both] == [30, 14]


def test_the_default_pool_nested_through_asyncio_run_in_every_worker(arun) -> None:
    n = offload.default_pool().workers
    all_in = threading.Barrier(n, timeout=TIMEOUT)

    def outer(i: int) -> int:
        all_in.wait()  # every worker of the default pool is busy with an outer call
        return asyncio.run(offload.run(pow, i, 2))  # type: ignore[no-any-return]

    async def main() -> Any:
        return await asyncio.gather(*[offload.run(outer, i) for i in range(n)])

    assert arun(main) == [i * i for i in range(n)]


def test_threads_return_to_the_limit_after_compensation() -> None:
    with offload.Pool(workers=1) as pool:
        gate = threading.Event()

        def outer() -> int:
            inner = pool.submit(gate.wait, TIMEOUT)  # queued: the only worker is busy here
            gate.set()
            return int(inner.result(timeout=TIMEOUT))

        # While outer waits, a second worker runs `inner`; it leaves once idle.
        assert pool.submit(outer).result(timeout=TIMEOUT) == 1
        assert pool.stats().threads <= 2
