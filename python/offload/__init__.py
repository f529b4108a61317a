"""offload: a native thread pool, futures and channels for asyncio.

Offload blocking and CPU work from an event loop without stalling it, at a fraction of the
cost of :func:`asyncio.to_thread`::

    import asyncio, hashlib, offload

    async def main(blob: bytes) -> bytes:
        digest = await offload.run(hashlib.sha256, blob)           # like asyncio.to_thread
        async with offload.Pool(workers=4) as pool:
            sizes = await pool.map(len, [b"a", b"bb"])             # ordered list
        return digest.digest()

Channels carry items between threads and coroutines on any loops::

    ch = offload.Channel(capacity=128)       # > 0 bounded, 0 rendezvous, None unbounded
    ch.send_blocking(item)                   # from a thread (GIL released while waiting)
    item = await ch.recv()                   # from a coroutine, on any loop

The awaitables are the loop's own futures, completed on the loop's thread in batches: one
wake-up per burst of results, whatever the number of results.
"""

__all__ = [
    "Call",
    "Channel",
    "ChannelClosed",
    "ChannelStats",
    "DaskFuture",
    "DaskPool",
    "Executor",
    "Future",
    "FutureLike",
    "InterpreterPool",
    "Operation",
    "Pool",
    "PoolLike",
    "PoolStats",
    "ProcessPool",
    "RemoteError",
    "RemoteTraceback",
    "Selected",
    "SendError",
    "WorkerDied",
    "WouldBlock",
    "cancelled",
    "default_pool",
    "from_thread",
    "run",
    "select",
    "select_blocking",
    "select_nowait",
]

from ._errors import (
    ChannelClosed,
    RemoteError,
    RemoteTraceback,
    SendError,
    WorkerDied,
    WouldBlock,
)
from ._worker import subinterpreter as _in_worker_interpreter

if _in_worker_interpreter:
    # Inside an InterpreterPool worker, where the native core cannot be loaded: importing
    # offload works, using it raises a clear error (see offload._unavailable).
    from ._unavailable import install as _install

    _install(globals(), __all__)
else:
    from ._call import Call
    from ._channel import (
        Channel,
        ChannelStats,
        Operation,
        Selected,
        select,
        select_blocking,
        select_nowait,
    )
    from ._contract import FutureLike, PoolLike
    from ._cpu import InterpreterPool, ProcessPool
    from ._dask import DaskFuture, DaskPool
    from ._executor import Executor
    from ._default_pool import cancelled, default_pool, run
    from ._future import Future
    from ._pool import Pool
    from ._stats import PoolStats

    from . import from_thread

    # The one hand-over of the package's objects to the native module (cpp/binding/package.h):
    # what it raises, returns and calls back. Nothing else puts Python objects into _core.
    from . import _channel, _core, _threads

    _core.connect(
        channel_closed=ChannelClosed,
        would_block=WouldBlock,
        channel_empty=_channel._EMPTY,
        channel_recv=_channel._RECV,
        recv_wait=_channel._recv_wait,
        send_wait=_channel._send_wait,
        anext_wait=_channel._anext_wait,
        default_pool=default_pool,
        thread_started=_threads._started,
        thread_stopping=_threads._stopping,
    )

# Public objects present themselves as offload.X: in reprs, tracebacks, pickles and the docs.
for _name in __all__:
    if _name == "from_thread":  # a module of its own
        continue
    try:
        globals()[_name].__module__ = __name__
    except (AttributeError, TypeError):  # offload.run: a native function keeps its own
        pass
del _name

__version__ = "0.1.0"
