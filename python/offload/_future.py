"""offload.Future: the result of ``submit`` on the native pools, thread-safe and awaitable
from any event loop, over a native future (``_core.Future``)."""

from __future__ import annotations

import asyncio
import collections.abc
from typing import Any, Callable, Generator, Generic, Optional, TypeVar

from . import _core
from ._call import AwaitedAsCoroutine
from ._checks import check_timeout
from ._core import notifier_for

T = TypeVar("T")

_get_running_loop = asyncio.get_running_loop


class Future(AwaitedAsCoroutine, Generic[T]):
    """The result of :meth:`Pool.submit`: thread-safe, and awaitable from any event loop.

    It follows :class:`concurrent.futures.Future`: ``result(timeout)`` and
    ``exception(timeout)`` wait (with the GIL released) and raise
    :class:`concurrent.futures.TimeoutError` or :class:`concurrent.futures.CancelledError`;
    ``cancel()`` cancels a call that has not started (and returns ``True``), or asks a running
    one to stop — :func:`offload.cancelled` turns true inside it — and returns ``False``.

    ``await fut`` works in any running loop, any number of times; cancelling the awaiting task
    cancels the call if it has not started.

    >>> with offload.Pool(workers=4) as pool:
    ...     fut = pool.submit(pow, 2, 10)
    ...     print(fut.result(timeout=5))             # from any thread
    1024
    >>> fut
    <offload.Future state=finished returned int>
    >>> async def main() -> int:
    ...     fut = offload.default_pool().submit(sum, range(10))
    ...     return await fut                          # from any loop
    >>> asyncio.run(main())
    45
    """

    __slots__ = ("_core", "__weakref__")

    def __init__(self, core: _core.Future) -> None:
        self._core = core
        self._driver = None  # see AwaitedAsCoroutine

    def result(self, timeout: Optional[float] = None) -> T:
        """The call's return value; raises its exception. Waits up to ``timeout`` seconds
        (``None``: no limit) with the GIL released.

        Raises:
            concurrent.futures.TimeoutError: the call did not finish in time.
            concurrent.futures.CancelledError: the call was cancelled.
        """
        return self._core.result(check_timeout(timeout))  # type: ignore[no-any-return]

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The call's exception, or ``None`` if it returned. Waits up to ``timeout`` seconds."""
        return self._core.exception(check_timeout(timeout))

    def done(self) -> bool:
        """True once the call returned, raised or was cancelled."""
        return self._core.done()

    def running(self) -> bool:
        """True while a worker runs the call."""
        return self._core.running()

    def cancelled(self) -> bool:
        """True if the call was cancelled before it started."""
        return self._core.cancelled()

    def cancel(self) -> bool:
        """Cancels the call if it has not started; returns whether the future is cancelled.

        A running call cannot be interrupted: it is asked to stop (:func:`offload.cancelled`
        turns true inside it) and ``cancel()`` returns ``False``.
        """
        return self._core.cancel()

    def add_done_callback(self, fn: Callable[["Future[T]"], object]) -> None:
        """Calls ``fn(future)`` once the future is done: at once if it is, else on the thread
        that completes it (a worker, or the thread that cancels it). Exceptions raised by
        ``fn`` are logged on the ``"offload"`` logger."""
        self._core.add_done_callback(fn, self)

    def __await__(self) -> Generator[Any, None, T]:
        loop = _get_running_loop()
        waiter = loop.create_future()
        self._core.deliver_to(notifier_for(loop), waiter)
        try:
            result: T = yield from waiter
            return result
        except asyncio.CancelledError:
            self._core.cancel()
            raise

    def __repr__(self) -> str:
        state = self._core.state
        if state == "finished":  # done, not cancelled: say how, as concurrent.futures does
            error = self._core.exception(0)
            if error is not None:
                return f"<offload.Future state=finished raised {type(error).__name__}>"
            return f"<offload.Future state=finished returned {type(self._core.result(0)).__name__}>"
        return f"<offload.Future state={state}>"


collections.abc.Coroutine.register(Future)
