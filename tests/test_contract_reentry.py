"""Contract: re-entry never deadlocks (docs/design.md, "The re-entrancy rule").

* Every callback offload runs -- a destructor of something it releases, a done callback, a
  signal handler, a collection started by one of its allocations -- may call any offload API.
* A worker that waits on its own pool never deadlocks it: a worker that submits to its pool
  while none is free lends its place until its call ends (one more worker may run), and a
  worker that waits with the GIL released (result(), a channel, from_thread) lets another
  worker run meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, List


import offload
from conftest import run_python

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
