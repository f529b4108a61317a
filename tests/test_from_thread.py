"""offload.from_thread: calls back into the loop from workers, through the loop's notifier."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any, List

import pytest

import offload
from offload import _core

TIMEOUT = 30
flavour: contextvars.ContextVar[str] = contextvars.ContextVar("flavour", default="unset")


def test_run_sync_runs_on_the_loop_thread_and_returns_the_result(arun) -> None:
    async def main() -> Any:
        loop_thread = threading.get_ident()

        def work() -> Any:
            on = offload.from_thread.run_sync(threading.get_ident)
            return on == loop_thread, threading.get_ident() != loop_thread

        return await offload.run(work)

    assert arun(main) == (True, True)


def test_run_runs_a_coroutine_as_a_task_of_the_loop(arun) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()

        async def on_loop(x: int) -> Any:
            await asyncio.sleep(0)
            return x * 2, asyncio.get_running_loop() is loop, asyncio.current_task() is not None

        return await offload.run(offload.from_thread.run, on_loop, 21)

    assert arun(main) == (42, True, True)


def test_exceptions_come_back_with_their_type_and_traceback(arun) -> None:
    async def failing() -> None:
        raise KeyError("from the loop")

    def work(kind: str) -> None:
        if kind == "sync":
            offload.from_thread.run_sync(int, "not a number")
        else:
            offload.from_thread.run(failing)

    async def main() -> List[BaseException]:
        results = await asyncio.gather(offload.run(work, "sync"), offload.run(work, "async"), return_exceptions=True)
        return list(results)

    sync_error, async_error = arun(main)
    assert isinstance(sync_error, ValueError)
    assert isinstance(async_error, KeyError)
    assert "failing" in "".join(__import__("traceback").format_tb(async_error.__traceback__))


def test_a_task_cancelled_on_the_loop_raises_cancelled_error_in_the_worker(arun) -> None:
    async def main() -> str:
        started = asyncio.Event()

        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        def work() -> str:
            try:
                offload.from_thread.run(forever)
            except asyncio.CancelledError:
                return "cancelled"
            return "not cancelled"

        call = offload.run(work)
        await started.wait()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        return await call

    assert arun(main) == "cancelled"


def test_the_workers_context_is_what_the_callback_sees(arun) -> None:
    async def main() -> Any:
        flavour.set("caller")

        async def read() -> str:
            return flavour.get()

        def work() -> Any:
            before = flavour.get()  # copied from the awaiting task
            flavour.set("worker")
            return before, offload.from_thread.run_sync(flavour.get), offload.from_thread.run(read)

        return await offload.run(work)

    assert arun(main) == ("caller", "worker", "worker")


def test_a_plain_thread_names_the_loop(arun) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def thread() -> None:
            try:
                result = offload.from_thread.run_sync(sum, [1, 2, 3], loop=loop)
            except BaseException as error:  # noqa: BLE001 - handed to the loop
                result = error
            loop.call_soon_threadsafe(done.set_result, result)

        await offload.run(int)  # the loop has a notifier now; a foreign thread may use it
        threading.Thread(target=thread).start()
        return await asyncio.wait_for(done, TIMEOUT)

    assert arun(main) == 6


def test_a_loop_offload_never_met_is_reached_through_its_own_door() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        assert _core.registered_notifier(loop) is None
        assert offload.from_thread.run_sync(pow, 2, 5, loop=loop) == 32
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(TIMEOUT)
        loop.close()


def test_bad_calls_get_clear_errors(arun) -> None:
    with pytest.raises(RuntimeError, match="no event loop"):
        offload.from_thread.run_sync(int)
    with offload.Pool(workers=1) as pool:  # a worker, but of a call no loop awaits
        with pytest.raises(RuntimeError, match="no event loop"):
            pool.submit(offload.from_thread.run_sync, int).result(timeout=TIMEOUT)
    with pytest.raises(TypeError, match="callable"):
        offload.from_thread.run_sync(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event loop"):
        offload.from_thread.run_sync(int, loop="a loop")  # type: ignore[arg-type]
    closed = asyncio.new_event_loop()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        offload.from_thread.run_sync(int, loop=closed)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="own thread"):
            offload.from_thread.run_sync(int, loop=asyncio.get_running_loop())

        async def not_a_coroutine_function() -> None:
            pass

        def work() -> None:
            offload.from_thread.run(lambda: 42)  # returns no awaitable

        with pytest.raises(TypeError):
            await offload.run(work)

    arun(main)


def test_a_burst_of_callbacks_wakes_the_loop_once(arun) -> None:
    workers = 8

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        await offload.run(int)  # the loop's notifier exists, and is drained
        notifier = _core.registered_notifier(loop)
        release = threading.Event()

        def work(i: int) -> int:
            release.wait(TIMEOUT)
            return offload.from_thread.run_sync(lambda: i)  # type: ignore[no-any-return]

        with offload.Pool(workers=workers) as pool:
            calls = [pool.run(work, i) for i in range(workers)]
            before = notifier.stats()
            release.set()
            # The loop does not run meanwhile: every callback is queued before the first drain.
            deadline = time.monotonic() + TIMEOUT
            while notifier.stats()["added"] < before["added"] + workers:
                assert time.monotonic() < deadline, "the callbacks were never queued"
                time.sleep(0.0005)  # nothing to wait on: a count of queued tasks
            queued = notifier.stats()
            results = await asyncio.gather(*calls)
        return results, queued["wakes"] - before["wakes"]

    results, wakes = arun(main)
    assert results == list(range(workers))
    assert wakes == 1  # eight callbacks from eight threads, one wake-up of the loop


def test_a_callback_may_offload_to_the_pool_its_worker_belongs_to(arun) -> None:
    async def main() -> int:
        with offload.Pool(workers=1) as pool:

            async def on_loop() -> int:
                return await pool.run(pow, 2, 10)  # the only worker waits for this: it must run

            return await pool.run(offload.from_thread.run, on_loop)

    assert arun(main) == 1024


def test_a_worker_waiting_on_a_closing_loop_gets_an_error() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    try:
        with offload.Pool(workers=1) as pool:
            waiting = pool.submit(offload.from_thread.run, forever, loop=loop)
            assert started.wait(TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            runner.join(TIMEOUT)
            loop.close()
            with pytest.raises(RuntimeError, match="closed"):
                waiting.result(timeout=TIMEOUT)
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            runner.join(TIMEOUT)
            loop.close()
