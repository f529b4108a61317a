"""offload as a type checker sees it: checked with mypy --strict by tests/test_typing.py and
`make lint`, never run.

Each assert_type states what a user's code gets; each ``# type: ignore[code]`` marks a misuse
that must be an error (--strict reports an ignore that is not needed, so a misuse the types let
through fails the check too).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import AsyncIterator, List, Optional, Tuple

from typing_extensions import assert_type

import offload


def parse(line: str, *, base: int = 10) -> int:
    return int(line, base)


def greet(name: str) -> str:
    return f"hello {name}"


async def calls() -> None:
    # run keeps the callable's parameters (ParamSpec) and return type.
    assert_type(await offload.run(parse, "ff", base=16), int)
    assert_type(await offload.run(greet, "you"), str)
    await offload.run(parse, 12)  # type: ignore[arg-type]
    await offload.run(parse, "1", bas=2)  # type: ignore[call-arg]
    await offload.run(greet)  # type: ignore[call-arg]
    offload.run(42)  # type: ignore[arg-type]
    # A call is a future and a coroutine: tasks, task groups and gather all take it.
    assert_type(offload.run(parse, "1"), offload.Call[int])
    assert_type(asyncio.create_task(offload.run(parse, "1")), "asyncio.Task[int]")
    assert_type(await asyncio.gather(offload.run(parse, "1"), offload.run(greet, "x")), Tuple[int, str])

    pool = offload.Pool(workers=4, name="typed")
    assert_type(await pool.run(parse, "7"), int)
    assert_type(pool.submit(parse, "7"), offload.Future[int])
    assert_type(pool.submit(parse, "7").result(timeout=1.0), int)
    assert_type(await pool.submit(greet, "x"), str)
    assert_type(pool.submit(parse, "7").exception(), Optional[BaseException])
    pool.submit(parse, b"7")  # type: ignore[arg-type]
    assert_type(await pool.map(greet, ["a", "b"]), List[str])
    await pool.map(greet, [1, 2])  # type: ignore[arg-type]
    stream = pool.imap(greet, ["a", "b"], ordered=False, window=8)
    assert_type(stream, AsyncIterator[str])
    async for text in stream:
        assert_type(text, str)
    pool.imap(greet, ["a"], window="8")  # type: ignore[arg-type]
    assert_type(pool.stats(), offload.PoolStats)
    assert_type(pool.stats().completed, int)
    assert_type(offload.default_pool(), offload.Pool)
    assert_type(offload.cancelled(), bool)
    pool.shutdown(wait=True, cancel_pending=False)
    async with offload.Pool() as entered:
        assert_type(entered, offload.Pool)
    with offload.Pool() as entered_sync:
        assert_type(entered_sync, offload.Pool)


async def cpu_pools() -> None:
    async with offload.InterpreterPool(workers=2) as interpreters:
        assert_type(interpreters, offload.InterpreterPool)
        assert_type(await interpreters.run(parse, "1"), int)
        assert_type(await interpreters.map(greet, ["a"]), List[str])
    async with offload.ProcessPool(workers=2) as processes:
        assert_type(await processes.run(greet, "b"), str)
        assert_type(processes.submit(parse, "3"), offload.Future[int])


def executor() -> None:
    with offload.Executor(max_workers=2, thread_name_prefix="typed") as ex:
        assert_type(ex, offload.Executor)
        assert_type(ex.submit(parse, "1"), "concurrent.futures.Future[int]")
        assert_type(list(ex.map(greet, ["a"])), List[str])
        ex.submit(parse, 1)  # type: ignore[arg-type]


async def channels() -> None:
    ch: offload.Channel[int] = offload.Channel(capacity=16)
    await ch.send(1)
    await ch.send("one")  # type: ignore[arg-type]
    ch.send_nowait(2)
    ch.send_blocking(3, timeout=1.0)
    assert_type(await ch.recv(), int)
    assert_type(ch.recv_nowait(), int)
    assert_type(ch.recv_blocking(timeout=0.5), int)
    async for item in ch:
        assert_type(item, int)
    for blocking_item in ch:
        assert_type(blocking_item, int)
    assert_type(ch.capacity, Optional[int])
    assert_type(ch.stats(), offload.ChannelStats)
    assert_type(len(ch), int)
    assert_type(ch.closed, bool)
    offload.Channel(capacity="16")  # type: ignore[arg-type]

    names: offload.Channel[str] = offload.Channel(None)
    op, value = await offload.select(ch.recv_op(), names.send_op("x"), timeout=1.0)
    assert_type(op, offload.Operation)
    assert_type(offload.select_blocking(ch.recv_op(), timeout=None), offload.Selected)
    assert_type(offload.select_nowait(names.recv_op()), offload.Selected)
    names.send_op(3)  # type: ignore[arg-type]


def errors() -> None:
    try:
        pass
    except offload.ChannelClosed as closed:
        assert_type(closed.op, Optional[offload.Operation])
    except offload.RemoteError as remote:
        assert_type(remote.type_name, str)
    except offload.RemoteTraceback as tb:
        assert_type(tb.text, str)
    except (offload.WouldBlock, offload.SendError, offload.WorkerDied):
        pass


def futures_interop(fut: offload.Future[bytes]) -> None:
    fut.add_done_callback(lambda f: assert_type(f.result(), bytes))
    assert_type(fut.done(), bool)
    assert_type(fut.cancel(), bool)
    concurrent.futures.wait([concurrent.futures.Future()])  # the standard library's own


async def dask_pools() -> None:
    # DaskPool: the same types; submit gives a DaskFuture, a concurrent.futures.Future.
    async with offload.DaskPool(n_workers=1, processes=False) as dask:
        assert_type(dask, offload.DaskPool)
        assert_type(await dask.run(parse, "ff", base=16), int)
        assert_type(await dask.map(parse, ["1"]), List[int])
        assert_type(dask.imap(parse, ["1"], window=4), AsyncIterator[int])
        fut = dask.submit(parse, "7")
        assert_type(fut, offload.DaskFuture[int])
        assert_type(await fut, int)
        assert_type(fut.result(timeout=1.0), int)
        future: concurrent.futures.Future[int] = fut
        await dask.run(parse, 12)  # type: ignore[arg-type]
        with dask:  # type: ignore[attr-defined]
            pass
    await dask.aclose(cancel_pending=True)
    assert_type(dask.stats(), offload.PoolStats)


async def through_the_contract(pool: offload.PoolLike) -> None:
    # PoolLike: what every pool offers, with the same types as on each pool.
    assert_type(await pool.run(parse, "ff", base=16), int)
    await pool.run(parse, 12)  # type: ignore[arg-type]
    assert_type(await pool.map(greet, ["a"]), List[str])
    assert_type(pool.imap(greet, ["a"], ordered=False, window=4), AsyncIterator[str])
    fut = pool.submit(parse, "7")
    assert_type(fut, offload.FutureLike[int])
    assert_type(fut.result(timeout=1.0), int)
    assert_type(await fut, int)
    assert_type(fut.exception(), Optional[BaseException])
    assert_type(fut.cancel(), bool)
    assert_type(pool.stats(), offload.PoolStats)
    assert_type(pool.closed, bool)
    async with pool as entered:
        assert_type(entered, offload.PoolLike)
    pool.shutdown(wait=False, cancel_pending=True)
    pool.workers  # type: ignore[attr-defined]  # not every pool has workers (DaskPool)
    with pool:  # type: ignore[attr-defined]  # nor `with` (DaskPool closes on its loop)
        pass


async def every_pool_is_pool_like() -> None:
    pools: List[offload.PoolLike] = [
        offload.default_pool(),
        offload.Pool(workers=2),
        offload.InterpreterPool(workers=2),
        offload.ProcessPool(workers=2),
        offload.DaskPool(n_workers=1, processes=False),
    ]
    for pool in pools:
        await through_the_contract(pool)
    futures: List[offload.FutureLike[int]] = [
        offload.Pool().submit(parse, "1"),
        offload.DaskPool().submit(parse, "1"),
    ]
    assert_type(futures[0].result(), int)
    executor: offload.PoolLike = offload.Executor()  # type: ignore[assignment]  # no run, imap, stats
