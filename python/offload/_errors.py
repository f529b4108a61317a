"""offload's exceptions. Pure Python, so that they exist even where the native core cannot be
loaded (inside InterpreterPool worker interpreters)."""

from typing import Any, Optional


class ChannelClosed(Exception):
    """The channel is closed: raised by every send after :meth:`Channel.close`, and by
    receives once the items buffered before the close are drained.

    ``op`` is the :class:`Operation` that met the closed channel when a select raised it,
    else ``None``.
    """

    op: Optional[Any] = None


class WouldBlock(Exception):
    """A ``*_nowait`` operation (or :func:`select_nowait`) could not happen at once."""


class SendError(TypeError):
    """A call could not travel between the caller and a worker interpreter or process.

    Raised by ``submit``/``run``/``map`` of :class:`InterpreterPool` and :class:`ProcessPool`
    when the function or an argument cannot be pickled (a lambda, a nested function, a
    ``__main__`` function a worker cannot import, an open file...), and by the awaited result
    when the worker could not load the call (a module that cannot be imported there) or could
    not pickle the result. The message names the cause; for a failure in the worker,
    ``__cause__`` is a :class:`RemoteTraceback`.
    """


class WorkerDied(RuntimeError):
    """The worker process running the call died (killed, crashed, or ``os._exit``).

    The pool replaces the worker; the calls queued behind it still run. Whether the call had
    any effect before the worker died is unknown.
    """


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker interpreter or process, as text.

    It is the ``__cause__`` of the exception re-raised in the caller, so the worker's side of
    the story appears in the caller's traceback, as with
    :class:`concurrent.futures.ProcessPoolExecutor`.
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
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> Any:
        return (type(self), (self.type_name, self.message))
