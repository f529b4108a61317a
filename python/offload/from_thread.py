"""Calls back into the event loop from a worker: ``offload.from_thread``.

Code running on an offload worker for a call awaited on a loop can run a plain function or
a coroutine on that very loop and wait for its result, as ``anyio.from_thread`` and
``trio.from_thread`` allow::

    def save(rows):                                     # runs on a worker
        for row in rows:
            disk.write(row)                             # blocking work, off the loop
            offload.from_thread.run_sync(progress.update, 1)      # a plain function
        offload.from_thread.run(db.commit)              # a coroutine function, on the loop

    await offload.run(save, rows)

The function reaches the loop through the loop's completion queue, the one that delivers
results: a burst of callbacks from any number of workers costs the loop one wake-up, not
one ``call_soon_threadsafe`` each. The worker waits with the GIL released (a worker of a pool
that waits lets another worker run meanwhile, so a callback that offloads more work to the
same pool cannot deadlock it). From a thread that is not such a worker, name the loop:
``run_sync(fn, loop=loop)``.

Both copy the calling thread's :mod:`contextvars` context: the function or coroutine sees
what the offloaded call sees.

>>> import threading
>>> async def main() -> str:
...     def work() -> str:                                          # on a worker
...         loop_thread = offload.from_thread.run_sync(threading.current_thread)
...         return f"called back into {loop_thread.name}"
...     return await offload.run(work)
>>> asyncio.run(main())
'called back into MainThread'
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import CancelledError as _FutureCancelled
from concurrent.futures import TimeoutError as _FutureTimeout
from typing import Any, Awaitable, Callable, List, Optional, Tuple, TypeVar

from . import _core
from ._checks import check_callable
from ._core import registered_notifier

T = TypeVar("T")

__all__ = ["run", "run_sync"]

# While a worker waits for the loop, it looks this often whether the loop was closed meanwhile
# (a closed loop never runs what was sent to it, nor finishes a task it started).
_CLOSED_LOOP_CHECK = 0.1


def run_sync(func: Callable[..., T], /, *args: Any, loop: Optional[asyncio.AbstractEventLoop] = None) -> T:
    """Runs ``func(*args)`` on the event loop and returns its result (or raises its exception).

    On a worker running a call awaited on a loop, that loop is the default; elsewhere pass
    ``loop``. The calling thread waits with the GIL released; on the main thread, Ctrl-C
    interrupts the wait.

    >>> import threading
    >>> async def main() -> list:
    ...     seen = []
    ...     def work() -> str:                       # on a worker thread
    ...         offload.from_thread.run_sync(seen.append, threading.current_thread().name)
    ...         return "done"
    ...     await offload.run(work)
    ...     return seen                              # appended on the loop's thread
    >>> [name.startswith("offload-") for name in asyncio.run(main())]
    [True]

    Raises:
        RuntimeError: no loop (not on a worker of a loop's call, and ``loop`` not given), the
            loop is the calling thread's own (waiting would deadlock it), or it was closed.
        TypeError: ``func`` is not callable.
        Exception: whatever ``func`` raises, with its traceback.
    """
    check_callable(func)
    target = _target(loop)
    context = contextvars.copy_context()

    def on_loop(promise: Any) -> Callable[[], None]:
        def call() -> None:
            try:
                value = context.run(func, *args)
            except BaseException as error:
                promise.set_exception(error)
            else:
                promise.set_result(value)

        return call

    return _send(target, on_loop)  # type: ignore[no-any-return]


def run(func: Callable[..., Awaitable[T]], /, *args: Any, loop: Optional[asyncio.AbstractEventLoop] = None) -> T:
    """Runs the coroutine ``func(*args)`` as a task on the event loop, waits until it ends, and
    returns its result (or raises its exception).

    On a worker running a call awaited on a loop, that loop is the default; elsewhere pass
    ``loop``. The task runs in a copy of the calling thread's context. If the worker's wait
    is interrupted (Ctrl-C on the main thread), the task is cancelled.

    >>> async def main() -> int:
    ...     async def fetch(key: str) -> int:        # a coroutine, run on the loop
    ...         await asyncio.sleep(0)
    ...         return len(key)
    ...     def work() -> int:                        # on a worker thread
    ...         return offload.from_thread.run(fetch, "abc") * 10
    ...     return await offload.run(work)
    >>> asyncio.run(main())
    30

    Raises:
        RuntimeError: as :func:`run_sync`.
        TypeError: ``func`` is not callable, or does not return an awaitable.
        asyncio.CancelledError: the task was cancelled on the loop.
        Exception: whatever the coroutine raises, with its traceback.
    """
    check_callable(func)
    target = _target(loop)
    context = contextvars.copy_context()
    started: List["asyncio.Future[Any]"] = []  # the task, to cancel if the wait is cut short

    def on_loop(promise: Any) -> Callable[[], None]:
        def settle(task: "asyncio.Future[Any]") -> None:
            try:
                promise.set_result(task.result())
            except BaseException as error:  # its exception, or its CancelledError
                promise.set_exception(error)

        def start() -> None:
            try:
                awaitable = context.run(func, *args)
                task = context.run(asyncio.ensure_future, awaitable, loop=target[0])
            except BaseException as error:
                promise.set_exception(error)
                return
            started.append(task)
            task.add_done_callback(settle)

        return start

    try:
        return _send(target, on_loop)  # type: ignore[no-any-return]
    except BaseException:
        _cancel_started(target, started)
        raise


def _cancel_started(target: Tuple[asyncio.AbstractEventLoop, Any], started: List["asyncio.Future[Any]"]) -> None:
    """The worker gave up waiting: the task it started (if any) is cancelled, on its loop."""
    loop, notifier = target

    def cancel() -> None:
        for task in started:
            task.cancel()

    if notifier is not None and notifier.call_soon(cancel):
        return
    try:
        loop.call_soon_threadsafe(cancel)
    except RuntimeError:  # closed: nothing runs there any more
        pass


def _target(loop: Optional[asyncio.AbstractEventLoop]) -> Tuple[asyncio.AbstractEventLoop, Any]:
    """(the loop, its notifier or None): where a callback goes."""
    if loop is None:
        call = _core.current_call()
        if call is None:
            raise RuntimeError(
                "offload.from_thread: no event loop to call back into: call it from an "
                "offloaded call that a loop awaits (offload.run, Pool.run, Pool.map), or "
                "pass loop="
            )
        loop = call.get_loop()
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"offload.from_thread: loop must be an event loop, got {type(loop).__name__}")
    if asyncio._get_running_loop() is loop:
        raise RuntimeError(
            "offload.from_thread: called on the event loop's own thread, which would wait for "
            "itself forever: await the coroutine, or call the function, directly"
        )
    if loop.is_closed():
        raise RuntimeError("offload.from_thread: the event loop is closed")
    return loop, registered_notifier(loop)


def _send(target: Tuple[asyncio.AbstractEventLoop, Any], on_loop: Callable[[Any], Callable[[], None]]) -> Any:
    """Sends on_loop(promise)() to the loop and waits for the promise. Only the callback holds
    the promise: if the loop drops it unrun (closed), the future reads as cancelled."""
    loop, notifier = target
    promise = _core.Promise()
    future = promise.future
    callback = on_loop(promise)
    del promise
    if notifier is None or not notifier.call_soon(callback):
        # A loop offload has not met yet (a foreign thread naming it): its own thread-safe door.
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:
            raise RuntimeError("offload.from_thread: the event loop is closed") from None
    del callback
    while True:
        try:
            return future.result(_CLOSED_LOOP_CHECK)
        except _FutureTimeout:
            if loop.is_closed() and not future.done():
                raise _closed_meanwhile() from None
        except _FutureCancelled:  # the loop dropped the callback unrun
            raise _closed_meanwhile() from None


def _closed_meanwhile() -> RuntimeError:
    return RuntimeError("offload.from_thread: the event loop was closed before the call ended")
