"""offload.run and Pool.run: the asyncio.to_thread drop-in."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import traceback

import pytest

import offload
from conftest import Gate, native_thread_name

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def add(a: int, b: int = 0, *, c: int = 0) -> int:
    return a + b + c


def fail(message: str) -> None:
    raise ValueError(message)


def test_run_returns_the_result(arun) -> None:
    async def main():
        return await offload.run(add, 2, 3)

    assert arun(main) == 5


def test_run_passes_positional_and_keyword_arguments(arun) -> None:
    async def main():
        return await offload.run(add, 1, b=10, c=100)

    assert arun(main) == 111


def test_run_raises_the_exception_with_its_traceback(arun) -> None:
    async def main():
        await offload.run(fail, "bad input")

    with pytest.raises(ValueError, match="bad input") as info:
        arun(main)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "fail" in frames


def test_run_copies_the_callers_context(arun) -> None:
    def read_and_write() -> str:
        seen = request_id.get()
        request_id.set("changed in worker")
        return seen

    async def main():
        request_id.set("abc")
        seen = await offload.run(read_and_write)
        return seen, request_id.get()

    assert arun(main) == ("abc", "abc")


def test_run_rejects_a_non_callable_at_call_time(arun) -> None:
    async def main():
        offload.run(42)

    with pytest.raises(TypeError, match="int"):
        arun(main)


def test_run_without_a_running_loop_submits_nothing_until_awaited() -> None:
    with offload.Pool(workers=1) as pool:
        call = pool.run(add, 1, 2)
        assert asyncio.iscoroutine(call) and not asyncio.isfuture(call)
        assert pool.stats().submitted == 0
        assert asyncio.run(call) == 3
        assert pool.stats().submitted == 1


def test_gather_of_many_runs_keeps_every_result_in_order(arun) -> None:
    async def main():
        return await asyncio.gather(*[offload.run(add, i, 1) for i in range(5000)])

    assert arun(main) == [i + 1 for i in range(5000)]


def test_run_executes_on_a_named_worker_thread(arun) -> None:
    caller = threading.get_ident()

    async def main():
        return await offload.run(lambda: (threading.get_ident(), native_thread_name()))

    ident, name = arun(main)
    assert ident != caller
    assert name.startswith("offload-")


def test_two_loops_in_two_threads_get_their_own_results() -> None:
    results: dict = {}
    errors: list = []

    def thread_main(tag: int) -> None:
        async def main():
            return await asyncio.gather(*[offload.run(add, i, tag) for i in range(2000)])

        try:
            results[tag] = asyncio.run(main())
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(t,)) for t in (1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {tag: [i + tag for i in range(2000)] for tag in (1000, 2000)}


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_reach_the_awaiter(arun, exc_type) -> None:
    def raise_it() -> None:
        raise exc_type("from worker")

    async def main():
        try:
            await offload.run(raise_it)
        except exc_type as e:
            return e

    assert isinstance(arun(main), exc_type)


def test_stop_iteration_arrives_as_runtime_error_caused_by_it(arun) -> None:
    async def main():
        await offload.run(next, iter(()))

    with pytest.raises(RuntimeError) as info:
        arun(main)
    assert isinstance(info.value.__cause__, StopIteration)


def test_cancelling_the_awaiter_before_start_means_the_call_never_runs(arun, one_worker, gate: Gate) -> None:
    ran = threading.Event()

    async def main():
        blocker = one_worker.run(gate.wait)
        victim = asyncio.ensure_future(one_worker.run(ran.set))
        await asyncio.sleep(0)  # let the task start awaiting
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        gate.open()
        await blocker
        await one_worker.run(add, 1)  # FIFO: the victim's turn has passed

    before = one_worker.stats().cancelled
    arun(main)
    assert not ran.is_set()
    assert one_worker.stats().cancelled == before + 1


def test_a_running_call_sees_cancelled_after_its_awaiter_is_cancelled(arun, one_worker) -> None:
    started = threading.Event()
    saw_cancel = threading.Event()

    def poll() -> None:
        started.set()
        for _ in range(30_000):
            if offload.cancelled():
                saw_cancel.set()
                return
            saw_cancel.wait(0.001)

    async def main():
        task = asyncio.ensure_future(one_worker.run(poll))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.get_running_loop().run_in_executor(None, saw_cancel.wait, 30)

    assert arun(main) is True


def test_cancelled_is_false_outside_and_inside_an_uncancelled_call(arun) -> None:
    async def main():
        return await offload.run(offload.cancelled)

    assert offload.cancelled() is False
    assert arun(main) is False


def test_results_for_a_closed_loop_are_dropped_and_offload_keeps_working(gate: Gate, one_worker) -> None:
    async def start_and_leave():
        one_worker.run(gate.wait)  # never awaited: the loop closes with it running
        assert await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 30)

    asyncio.run(start_and_leave())
    gate.open()

    async def again():
        return await one_worker.run(add, 20, 22)

    assert asyncio.run(again()) == 42
