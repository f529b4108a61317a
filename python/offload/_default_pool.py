"""The default pool and the module-level functions: ``offload.default_pool()``, the
process-wide :class:`Pool` made on first use; ``offload.run``, a call on it; and
``offload.cancelled()``, which a running call polls."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Optional, TypeVar

from . import _core
from ._pool import Pool

if TYPE_CHECKING:
    from typing import Callable

    from typing_extensions import ParamSpec

    from ._call import Call

    P = ParamSpec("P")

R = TypeVar("R")

_default: Optional[Pool] = None
_default_lock = threading.Lock()


def default_pool() -> Pool:
    """The process-wide pool used by :func:`offload.run`, created on first use: a
    :class:`Pool` with the default size, ``min(32, cpus + 4)`` workers, started as calls need
    them.

    >>> pool = offload.default_pool()
    >>> pool is offload.default_pool(), pool.name
    (True, 'offload')
    """
    global _default
    pool = _default
    if pool is not None:
        return pool
    # Made outside the lock: making it may run a collection whose __del__ calls offload.run,
    # which comes back here (no lock of ours is held while code we do not own runs).
    candidate = Pool(name="offload")
    # A LazyCall of offload.run calls itself so in the never-awaited warning.
    candidate._run = candidate.run = candidate._core.runner("offload.run")  # type: ignore[method-assign]
    with _default_lock:  # held for one assignment
        if _default is None:
            _default = candidate
        pool = _default
    if pool is not candidate:  # another thread, or a __del__, made one first
        candidate.shutdown(wait=False)
    return pool


if TYPE_CHECKING:

    def run(fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "Call[R]":
        """Runs ``fn(*args, **kwargs)`` on the default pool (see the native docstring)."""

else:
    # A native function, so that no Python frame stands between the caller and the pool. It
    # creates the default pool on first use through default_pool().
    run = _core.run_on_default


def cancelled() -> bool:
    """True inside an offloaded call whose cancellation was requested.

    A running call cannot be interrupted; a long one can poll this and stop early. It is
    false outside offloaded calls.

    >>> import threading
    >>> started, chunk_done = threading.Event(), threading.Event()
    >>> def crunch(chunks: int) -> str:
    ...     for i in range(chunks):
    ...         if offload.cancelled():
    ...             return f"stopped after {i} chunks"
    ...         started.set()
    ...         chunk_done.wait()               # stands for a chunk of work
    ...     return "finished"
    >>> with offload.Pool(workers=1) as pool:
    ...     fut = pool.submit(crunch, 1000)
    ...     _ = started.wait(10)
    ...     print(fut.cancel())                 # running: it is asked to stop, not stopped
    ...     chunk_done.set()
    ...     print(fut.result())
    False
    stopped after 1 chunks
    >>> offload.cancelled()
    False
    """
    return bool(_core.cancelled())


def _after_fork_in_child() -> None:
    # Registered after the life-cycle registry's hook (this module imports it through _pool),
    # so it runs after the pools were reset. A thread of the parent may have held the lock.
    global _default_lock
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
