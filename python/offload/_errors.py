"""offload's exceptions. Pure Python, so that they exist even where the native core cannot be
loaded (inside InterpreterPool worker interpreters)."""

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ._channel import Operation


class ChannelClosed(Exception):
    """The channel is closed: raised by every send after :meth:`Channel.close`, and by
    receives once the items buffered before the close are drained.

    ``op`` is the :class:`Operation` that met the closed channel when a select raised it,
    else ``None``.

    >>> ch = offload.Channel(1)
    >>> ch.send_nowait("last")
    >>> ch.close()
    >>> ch.recv_nowait()           # what was buffered before the close is still received
    'last'
    >>> ch.recv_nowait()
    Traceback (most recent call last):
      ...
    offload.ChannelClosed: ...
    """

    op: "Optional[Operation]" = None


class WouldBlock(Exception):
    """A ``*_nowait`` operation (or :func:`select_nowait`) could not happen at once.

    >>> ch = offload.Channel(1)
    >>> ch.recv_nowait()
    Traceback (most recent call last):
      ...
    offload.WouldBlock: ...
    >>> ch.send_nowait(1)
    >>> ch.send_nowait(2)          # full
    Traceback (most recent call last):
      ...
    offload.WouldBlock: ...
    """


class SendError(TypeError):
    """A call could not travel between the caller and a worker interpreter or process.

    Raised by ``submit``/``run``/``map`` of :class:`InterpreterPool` and :class:`ProcessPool`
    when the function or an argument cannot be pickled (a lambda, a nested function, a
    ``__main__`` function a worker cannot import, an open file...), and by the awaited result
    when the worker could not load the call (a module that cannot be imported there) or could
    not pickle the result. The message names the cause; for a failure in the worker,
    ``__cause__`` is a :class:`RemoteTraceback`.

    >>> with offload.ProcessPool(workers=1) as pool:
    ...     pool.submit(lambda: 42)
    Traceback (most recent call last):
      ...
    offload.SendError: offload: cannot send ...<lambda> to a worker process: ...
    """


class WorkerDied(RuntimeError):
    """The worker process running the call died (killed, crashed, or ``os._exit``).

    The pool replaces the worker; the calls queued behind it still run. Whether the call had
    any effect before the worker died is unknown.

    >>> import os
    >>> async def main() -> str:
    ...     async with offload.ProcessPool(workers=1) as pool:
    ...         try:
    ...             await pool.run(os._exit, 3)        # the worker process dies
    ...         except offload.WorkerDied as e:
    ...             print("died:", e)
    ...         return await pool.run(str, 42)        # a new worker process took over
    >>> asyncio.run(main())
    died: ...
    '42'
    """


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker interpreter or process, as text.

    It is the ``__cause__`` of the exception re-raised in the caller, so the worker's side of
    the story appears in the caller's traceback, as with
    :class:`concurrent.futures.ProcessPoolExecutor`.

    >>> async def main() -> None:
    ...     async with offload.ProcessPool(workers=1) as pool:
    ...         try:
    ...             await pool.run(int, "twelve")
    ...         except ValueError as e:            # the worker's exception, its own type
    ...             print(type(e.__cause__).__name__)
    ...             print(e.__cause__.text.splitlines()[-1])
    >>> asyncio.run(main())
    RemoteTraceback
    ValueError: invalid literal for int() with base 10: 'twelve'
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class RemoteError(Exception):
    """An exception raised in a worker whose own type could not be brought back.

    Raised in place of the original when that exception cannot be pickled in the worker or
    unpickled in the caller. ``type_name`` and ``message`` describe the original;
    ``__cause__`` holds its traceback (a :class:`RemoteTraceback`).

    >>> error = offload.RemoteError("LockError", "the lock is held")   # as a pool raises it
    >>> error.type_name, error.message
    ('LockError', 'the lock is held')
    >>> str(error)
    'LockError: the lock is held'
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> Any:
        return (type(self), (self.type_name, self.message))
