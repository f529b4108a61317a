"""Call: what ``run``, ``Pool.run`` and ``Pool.map`` return (cpp/binding/call.h says why).

In a running loop, a :class:`Call`: the loop's :class:`asyncio.Future` of the call, which also
speaks the coroutine protocol. With no running loop, a ``LazyCall``: a coroutine that starts
the call on the loop that first awaits it. Both are registered as
:class:`collections.abc.Coroutine`, which is what ``asyncio.create_task``, ``TaskGroup`` and
``asyncio.run`` check.
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING, Any, Generator, Optional

from ._core import Call, LazyCall, start_call

__all__ = ["AwaitedAsCoroutine", "Call", "LazyCall", "start_call"]

collections.abc.Coroutine.register(Call)
collections.abc.Coroutine.register(LazyCall)


class AwaitedAsCoroutine:
    """The coroutine protocol for a future that is awaitable from any loop (``offload.Future``,
    ``DaskFuture``), so that ``asyncio.create_task``, ``TaskGroup`` and ``asyncio.run`` take
    it as they take a coroutine: ``send``, ``throw`` and ``close`` drive one ``__await__``
    generator, made on the first step. Interrupted before that step (a task cancelled at
    once, a closing TaskGroup), it cancels the call, as cancelling an ``await`` of it does.

    The subclass sets ``_driver`` to ``None`` when it is made, and provides ``__await__`` and
    ``cancel``.
    """

    __slots__ = ("_driver",)
    _driver: Optional[Generator[Any, None, Any]]
    if TYPE_CHECKING:

        def __await__(self) -> Generator[Any, None, Any]: ...

        def cancel(self) -> bool: ...

    def send(self, value: Any) -> Any:
        driver = self._driver
        if driver is None:
            driver = self._driver = self.__await__()
        try:
            return driver.send(value)
        except BaseException:
            self._driver = None
            raise

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        driver, self._driver = self._driver, None
        if driver is None:
            self.cancel()
            if val is None:
                val = typ() if isinstance(typ, type) else typ
            if tb is not None:
                val = val.with_traceback(tb)
            raise val
        result = driver.throw(typ, val, tb) if val is not None or tb is not None else driver.throw(typ)
        self._driver = driver  # it caught the exception and awaits again
        return result

    def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            self.cancel()
        else:
            driver.close()
