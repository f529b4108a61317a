"""The life-cycle registry: every live pool and executor, stopped before the interpreter
finalizes and restarted lazily after ``os.fork()``.

A pool enters ``live_pools`` when it starts (``PoolBase._start``, ``Executor.__init__``) and
leaves it when collected. What the hooks ask of it: ``shutdown(wait=True)``,
``_before_fork()``, ``_after_fork_in_child()`` and, on Ctrl-C at exit, ``_interrupt()``.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

from . import _core, _threads

# Every Pool and Executor alive: shut down at exit, restarted after fork.
live_pools: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _shutdown_all() -> None:
    """At exit: let queued calls finish and join every worker, as ThreadPoolExecutor does,
    those of pools already collected too. No worker may touch Python once finalization
    starts. Ctrl-C while it waits stops every pool instead (queued calls are cancelled,
    worker processes ended) and the interpreter exits; a worker still in a call then ends
    when it next needs the GIL, as CPython ends daemon threads."""
    pools = list(live_pools)
    try:
        for pool in pools:
            pool.shutdown(wait=True)
        _core.join_retired_pools()
    except KeyboardInterrupt:
        for pool in pools:
            try:
                pool._interrupt()
            except Exception:  # noqa: BLE001 - stopping the others matters more
                pass
        raise


def _before_fork() -> None:
    for pool in list(live_pools):
        pool._before_fork()


def _after_fork_in_child() -> None:
    _core.reset_after_fork()
    _threads.after_fork_in_child()
    _core.forget_loops_after_fork()
    for pool in list(live_pools):
        pool._after_fork_in_child()


atexit.register(_shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
