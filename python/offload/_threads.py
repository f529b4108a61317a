"""Worker threads as the threading module sees them.

Each native worker announces itself when it first runs Python (it gets its Python thread state
then): from that moment ``threading.current_thread()`` in the worker is a `WorkerThread`, a real
`threading.Thread` that

* carries the worker's name (``"offload-0"``, ...), shown by ``threading.enumerate()``,
  logging's ``%(threadName)s`` and the tools built on them, and the name the kernel shows to
  ``top -H``, uncut;
* is a daemon (workers never hold up interpreter exit: offload joins them in an atexit hook,
  after threading has waited for the non-daemon threads);
* is alive while the worker runs and finished once it exited: ``is_alive()`` turns false,
  ``join()`` and ``join(timeout)`` return, and ``threading.enumerate()`` no longer lists it,
  exactly as for a thread that ``threading`` started;
* runs under the trace and profile functions set with ``threading.settrace()`` /
  ``threading.setprofile()``, which threading installs in every thread it starts (and so
  coverage.py, profilers and debuggers see code run through offload).

A thread that threading did not start would otherwise get a ``threading._DummyThread``, which
never finishes (``is_alive()`` stays true and ``join()`` fails on every Python up to 3.13) and
gets no trace or profile function.

How it is done, and the private parts of threading it needs. threading has no public way to
adopt a running thread, so `WorkerThread` does what threading's own ``_MainThread`` and
``_DummyThread`` do for the threads they adopt, and ties "alive" to the same object threading
uses for the threads it starts, so that ``is_alive()`` and ``join()`` are threading's own code:

* ``Thread._started`` (an Event; every version): set, as for a started thread; ``is_alive()``,
  ``join()`` and ``repr()`` look at it.
* ``Thread._set_ident()`` / ``Thread._set_native_id()`` (every version): record ``ident`` and
  ``native_id`` as threading does when a thread starts.
* Python 3.9-3.12: ``Thread._set_tstate_lock()``, which takes a lock from
  ``_thread._set_sentinel()``. The interpreter releases that lock itself when the worker's
  Python thread state is deleted (``WorkerGil::stop``, right after `_stopping`); ``join()``
  waits for it and ``is_alive()`` polls it (then marking the thread stopped), as for any thread
  threading starts.
* Python 3.13+: ``_thread._make_thread_handle(ident)`` as ``Thread._handle`` (what
  ``_MainThread`` and ``_DummyThread`` use: a running handle with no OS thread to join), and
  its ``_set_done()`` in `_stopping`, as ``threading._shutdown()`` does for the main thread;
  ``join()`` waits for it and ``is_alive()`` reads it.
* ``threading._active`` and ``threading._active_limbo_lock`` (every version): the table, keyed
  by ident, behind ``current_thread()`` and ``enumerate()``. The worker enters it under its
  ident when it starts, replacing whatever a dead thread with the same ident may have left
  there, and leaves it as it stops, only if the entry is still its own, so a new thread that
  reuses the ident is never confused with it. Old references to a dead worker's object keep
  answering "finished" however the ident is reused: its state is its own lock or handle.
* ``threading._DummyThread`` (every version), only if `_started` failed: threading then made
  one up for the worker, and `_stopping` removes it from the table (before 3.13 it would stay).
* Python 3.9: ``threading._trace_hook`` / ``threading._profile_hook``, read through
  ``threading.gettrace()`` / ``getprofile()`` from 3.10 on.

In a child forked while workers ran, threading finishes their objects as it does every other
thread's (``threading._after_fork``; on 3.13 CPython marks every handle but the forking
thread's done), and the child's new workers get new ones.

On Python 3.12+ ``threading.settrace_all_threads()`` also reaches the workers that already have
a thread state, like any other thread; a worker that gets its thread state later gets the
function from `_started`, once. `_stopping` switches the worker's trace and profile functions
off: nothing of the worker's own runs after it.

The hooks are called by the C++ worker (``WorkerGil``) with the GIL held and never raise: an
error is logged on the "offload" logger and the worker goes on.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Optional

from . import _core

if sys.version_info >= (3, 13):
    from _thread import _make_thread_handle  # type: ignore[attr-defined,unused-ignore]

if sys.version_info >= (3, 10):
    from threading import getprofile as _getprofile, gettrace as _gettrace
else:

    def _gettrace() -> Any:
        return threading._trace_hook  # type: ignore[attr-defined,unused-ignore]

    def _getprofile() -> Any:
        return threading._profile_hook  # type: ignore[attr-defined,unused-ignore]


_log = logging.getLogger("offload")

# The calling worker's WorkerThread, from _started to _stopping. Thread-local storage belongs to
# the Python thread state (not the ident) and outlives _stopping: WorkerGil deletes the state
# after it.
_this_worker = threading.local()


class WorkerThread(threading.Thread):
    """A native offload worker as a `threading.Thread`, created on the worker itself.

    It is started by its pool, never by `start()`, and runs no `run()`: it stands for the native
    thread, alive from the worker's first Python call until the worker exits.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        # Adopt the calling thread: what Thread._bootstrap_inner does for a thread it starts.
        self._set_ident()  # type: ignore[attr-defined]
        if hasattr(threading, "get_native_id"):  # where threading defines _set_native_id
            self._set_native_id()  # type: ignore[attr-defined]
        if sys.version_info >= (3, 13):
            self._handle = _make_thread_handle(self.ident)
        else:
            self._set_tstate_lock()  # type: ignore[attr-defined]
        self._started.set()  # type: ignore[attr-defined]

    def _finish(self) -> None:
        """Marks the thread finished: join() returns and is_alive() is false from now on."""
        if sys.version_info >= (3, 13):
            self._handle._set_done()
        # Before 3.13 the interpreter releases the thread-state lock as it deletes the worker's
        # thread state, right after _stopping.


def _started(name: str) -> None:
    """Called by a worker once it has a Python thread state: enters it in threading's table
    and installs threading's trace and profile functions, as for a thread threading starts."""
    try:
        thread = WorkerThread(name)
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            threading._active[thread.ident] = thread  # type: ignore[attr-defined]
        _this_worker.thread = thread
    except Exception:
        _log.exception("offload: worker %s could not join the threading module", name)
    # Last, as Thread._bootstrap_inner does before run(): none of offload's code is traced.
    trace, profile = _gettrace(), _getprofile()
    if trace is not None:
        sys.settrace(trace)
    if profile is not None:
        sys.setprofile(profile)


def _stopping() -> None:
    """Called by a worker before it deletes its Python thread state: leaves threading's table
    and finishes the worker's thread object."""
    # The worker runs nobody's code any more. Without a trace or profile function, none sees
    # it leave: one that asks threading.current_thread() after that would get a new _DummyThread,
    # left in threading's table under the dead worker's ident.
    sys.settrace(None)
    sys.setprofile(None)
    thread: Optional[WorkerThread] = getattr(_this_worker, "thread", None)
    try:
        # First out of the table, then finished: whoever join()s it finds it unlisted, as with
        # a thread threading starts (Thread._delete() runs before its thread state goes).
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            ident = threading.get_ident()
            entry = threading._active.get(ident)  # type: ignore[attr-defined]
            # The worker's own entry; or, if _started failed, the _DummyThread that threading
            # made up for it (which, before 3.13, would stay listed forever).
            if thread is not None:
                mine = entry is thread
            else:
                mine = isinstance(entry, threading._DummyThread)
            if mine:
                del threading._active[ident]  # type: ignore[attr-defined]
    except Exception:
        _log.exception("offload: a worker could not leave threading's table")
    if thread is not None:
        try:
            thread._finish()
        except Exception:
            _log.exception("offload: worker %s could not mark its thread finished", thread.name)


_core.set_thread_hooks(_started, _stopping)
