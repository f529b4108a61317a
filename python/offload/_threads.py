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
* Python 3.9-3.12: ``Thread._tstate_lock``: a lock held while the thread lives, which
  ``join()`` waits for and ``is_alive()`` polls (then marking the thread stopped). For a thread
  threading starts, the interpreter releases it as the thread state goes; here it is a plain
  lock of the worker's object, acquired when the object is made and released in `_stopping`.
* Python 3.13+: ``Thread._handle``, the object whose ``is_done()`` and ``join()`` answer
  ``is_alive()`` and ``join()``: a `_Handle` of ours (the same methods, and ``_set_done()``,
  which threading's after-fork calls), done in `_stopping`.

Being a lock of its own (rather than the thread state's) lets a pool make a worker's object
when it starts the worker, on the starting thread, before the worker runs: ``Executor`` does,
so that its ``_threads`` lists a worker as soon as ``submit`` started it, as
``ThreadPoolExecutor``'s does; the worker then adopts that object (``_set_ident()``).
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

import _thread
import logging
import sys
import threading
import weakref
from typing import Any, Dict, List, Optional, Tuple

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


class _Handle:
    """Python 3.13+: what threading asks of ``Thread._handle`` (``ident``, ``is_done()``,
    ``join()``, ``_set_done()``), for a worker: done once the worker has exited. (CPython marks
    its own handles done in a forked child; after_fork_in_child() does it for these.)"""

    __slots__ = ("_running", "ident")

    def __init__(self) -> None:
        self.ident: Optional[int] = None
        self._running = _thread.allocate_lock()
        self._running.acquire()

    def is_done(self) -> bool:
        return not self._running.locked()

    def join(self, timeout: Optional[float] = None) -> None:
        if self._running.acquire(True, -1 if timeout is None else timeout):
            self._running.release()

    def _set_done(self) -> None:
        try:
            self._running.release()
        except RuntimeError:  # done already (threading's after-fork marks every handle done)
            pass


class WorkerThread(threading.Thread):
    """A native offload worker as a `threading.Thread`.

    It is started by its pool, never by `start()`, and runs no `run()`: it stands for the native
    thread, alive from the moment its pool started it (made then by `Executor`, else by the
    worker itself) until the worker exits. "Alive" is a lock of its own, held until then:
    ``_tstate_lock`` before 3.13, the lock of a `_Handle` from 3.13 -- what ``is_alive()`` and
    ``join()`` look at for a thread that threading starts.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        if sys.version_info >= (3, 13):
            self._handle = _Handle()
        else:
            self._tstate_lock = _thread.allocate_lock()
            self._tstate_lock.acquire()
        self._started.set()  # type: ignore[attr-defined]
        _every_worker.add(self)

    def _adopt(self) -> None:
        """Takes the calling thread (the worker) as its own: what Thread._bootstrap_inner does
        for a thread it starts."""
        self._set_ident()  # type: ignore[attr-defined]
        if hasattr(threading, "get_native_id"):  # where threading defines _set_native_id
            self._set_native_id()  # type: ignore[attr-defined]
        if sys.version_info >= (3, 13):
            self._handle.ident = self.ident

    def _finish(self) -> None:
        """Marks the thread finished: join() returns and is_alive() is false from now on."""
        if sys.version_info >= (3, 13):
            self._handle._set_done()
            return
        lock = self._tstate_lock  # None once threading saw it finished (or after a fork)
        if lock is not None and lock.locked():
            lock.release()


# Every worker's object alive (for after_fork_in_child).
_every_worker: "weakref.WeakSet[WorkerThread]" = weakref.WeakSet()


def after_fork_in_child() -> None:
    """In a forked child, the parent's workers do not exist: their objects read as finished
    (threading does that itself before 3.13, where ``Thread._tstate_lock`` is the mark). The
    thread that forked, if it was a worker, lives on as the child's main thread."""
    me = threading.get_ident()
    for thread in list(_every_worker):
        if thread.ident != me:
            thread._finish()


# Where a pool with a token (Executor) and its worker agree on the worker's object. The pool
# makes one when submit started the worker (so its _threads lists it at once, as
# ThreadPoolExecutor's does), the worker when it first runs Python; whichever comes first puts
# its own here, and both take that one. The second to come removes the entry. (A dict's
# setdefault and a list's append are each atomic under the GIL: no lock is needed, so none is
# held while anything else runs.)
_meetings: Dict[Tuple[int, int], List[Any]] = {}


def meet(token: int, index: int, name: str) -> WorkerThread:
    """The object of worker ``index`` of the pool with ``token``: its own, or the one the other
    side made first."""
    key = (token, index)
    slot = _meetings.setdefault(key, [WorkerThread(name)])
    slot.append(None)  # one mark per side that came
    if len(slot) >= 3:
        _meetings.pop(key, None)
    thread: WorkerThread = slot[0]
    return thread


def forget(token: int) -> None:
    """Drops the meetings of a pool whose workers are gone (one that no submit saw start, a
    compensation worker say, leaves one behind)."""
    for key in [k for k in _meetings if k[0] == token]:
        _meetings.pop(key, None)


def _started(name: str, index: int, token: int) -> None:
    """Called by a worker once it has a Python thread state: enters it in threading's table
    and installs threading's trace and profile functions, as for a thread threading starts."""
    try:
        thread = meet(token, index, name) if token else WorkerThread(name)
        thread._adopt()
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

