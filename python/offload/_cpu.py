"""CPU pools: pure-Python work in parallel, behind the Pool API.

Threads run Python in parallel only while it releases the GIL. These pools give each worker
its own GIL:

* :class:`InterpreterPool` (Python 3.12+): each worker thread owns a subinterpreter with its
  own GIL, created once by the native core (``interpreters.cc``);
* :class:`ProcessPool` (every Python): each worker thread owns a worker process.

Both are a native offload pool whose calls are pickled: the caller pickles
``(fn, args, kwargs)``, a worker thread hands the bytes to its interpreter or process
(``offload._worker.run`` answers with a pickled reply), and unpickles the reply into the
result or the exception. So results reach asyncio through the loop's notifier like any
``Pool`` result, cancelling a call that has not started costs nothing, and ``map``, ``imap``,
``stats``, ``shutdown`` and the context managers are ``Pool``'s own.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.connection
import pickle
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NoReturn, Optional, Tuple, TypeVar

from . import _core, _worker
from ._errors import RemoteError, RemoteTraceback, SendError, WorkerDied
from ._checks import check_callable, check_count, check_name
from ._future import Future
from ._pool import PoolBase

if TYPE_CHECKING:
    from ._call import Call

if TYPE_CHECKING:
    import asyncio

    from typing_extensions import ParamSpec

    P = ParamSpec("P")

T = TypeVar("T")
R = TypeVar("R")

# A call on its way to a worker: the pickled (fn, args, kwargs), and fn for error messages.
_Job = Tuple[bytes, Any]


def _describe(fn: Any) -> str:
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if isinstance(qualname, str):
        return f"{module}.{qualname}" if isinstance(module, str) else qualname
    return repr(fn)


def _why_unpicklable(
    fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], where: str, item: Optional[int]
) -> str:
    """Names what in a call cannot be pickled (the call as a whole just failed to)."""
    name = _describe(fn)
    try:
        pickle.dumps(fn, protocol=_worker.PROTOCOL)
    except Exception as error:
        return (
            f"offload: cannot send {name} to a {where}: {error}. Only functions importable "
            "by name can be sent: defined at the top level of a module, not lambdas, nested "
            "functions or closures"
        )
    labelled = [(f"argument {index}", arg) for index, arg in enumerate(args)]
    if item is not None:  # a map: its one argument is the item
        labelled = [(f"item {item}", arg) for arg in args]
    labelled += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in labelled:
        try:
            pickle.dumps(value, protocol=_worker.PROTOCOL)
        except Exception as error:
            return (
                f"offload: {label} of {name} ({type(value).__name__}) cannot be pickled "
                f"for a {where}: {error}"
            )
    return f"offload: the call to {name} cannot be pickled for a {where}"


def _encode(
    fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], where: str, item: Optional[int] = None
) -> _Job:
    check_callable(fn)
    try:
        payload = pickle.dumps((fn, args, kwargs), protocol=_worker.PROTOCOL)
    except Exception as error:
        raise SendError(_why_unpicklable(fn, args, kwargs, where, item)) from error
    return payload, fn


def _decode(reply: bytes, fn: Any, where: str) -> Any:
    """The result of a call from its reply; raises what the call raised."""
    try:
        message = pickle.loads(reply)
    except Exception as error:
        raise SendError(
            f"offload: the result of {_describe(fn)} could not be unpickled in the caller: "
            f"{type(error).__name__}: {error}"
        ) from error
    tag = message[0]
    if tag == _worker.OK:
        return message[1]
    if tag == _worker.RAISED:
        _, blob, type_name, text, remote_tb = message
        raised = None
        if blob is not None:
            try:
                raised = pickle.loads(blob)
            except Exception:
                pass  # its type cannot be rebuilt here: RemoteError below
        if not isinstance(raised, BaseException):
            raised = RemoteError(type_name, text)
        raised.__cause__ = RemoteTraceback(remote_tb)
        raise raised
    _, type_name, text, remote_tb = message
    if tag == _worker.LOAD_FAILED:
        hint = ""
        if where == "worker interpreter" and "ImportError" in type_name:
            hint = (
                " (a worker interpreter imports only modules that support subinterpreters;"
                " many C extensions do not: use offload.ProcessPool for those)"
            )
        elif "__main__" in text:
            hint = f" (objects defined in __main__ cannot be loaded in a {where})"
        what = f"offload: the call to {_describe(fn)} could not be loaded in the {where}: "
        raise SendError(f"{what}{type_name}: {text}{hint}") from RemoteTraceback(remote_tb)
    raise SendError(
        f"offload: the result of {_describe(fn)} could not be pickled in the {where}: "
        f"{type_name}: {text}"
    ) from RemoteTraceback(remote_tb)


class _PickledPool(PoolBase):
    """A pool whose calls are pickled to another interpreter or process."""

    _where = "worker"

    def _check_sendable(self, fn: Any) -> None:
        """Raises SendError for a function the workers surely cannot load."""

    def _encode(self, fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> _Job:
        self._check_sendable(fn)
        return _encode(fn, args, kwargs, self._where)

    def _call(self, job: _Job) -> Any:
        """Runs one call on the worker thread this is called on (the main GIL held)."""
        raise NotImplementedError

    def submit(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> Future[R]:
        """Schedules ``fn(*args, **kwargs)`` and returns its :class:`offload.Future`.

        ``fn`` and the arguments are pickled now, so a failure to pickle raises here.

        Raises:
            SendError: ``fn`` or an argument cannot be sent to a worker.
            TypeError: ``fn`` is not callable.
            RuntimeError: the pool was shut down.
        """
        job = self._encode(fn, args, kwargs)
        return Future(self._core.submit(self._call, (job,), None, None))

    def run(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "Call[R]":
        """Runs ``fn(*args, **kwargs)`` on a worker; await the result in the running loop.

        ``fn`` and the arguments are pickled now, so a failure to pickle raises here. The
        exception the call raises comes back with its type and message, its worker-side
        traceback attached as ``__cause__`` (a :class:`RemoteTraceback`). Cancelling the
        awaiting task cancels the call if it has not started; a running call runs to its end.
        The result is a :class:`Call`, as for :meth:`Pool.run`.

        Raises:
            SendError: ``fn`` or an argument cannot be sent to a worker.
            RuntimeError: the pool was shut down.
            TypeError: ``fn`` is not callable.
        """
        return self._run(self._call, self._encode(fn, args, kwargs))

    def _map_calls(self, fn: Callable[[T], R], items: List[T]) -> Tuple[Callable[[Any], Any], List[Any], Any]:
        self._check_sendable(fn)
        calls = [_encode(fn, (item,), {}, self._where, index) for index, item in enumerate(items)]
        return self._call, calls, None


def _interpreter_call(job: _Job) -> Any:
    payload, fn = job
    return _decode(_core.run_in_interpreter(payload), fn, "worker interpreter")


def _bootstrap_source() -> str:
    """The Python source each worker interpreter runs once when it starts: the caller's
    ``sys.path``, then ``offload._worker`` loaded from its file (importing the ``offload``
    package would load the native core, which subinterpreters cannot)."""
    path = [p for p in sys.path if isinstance(p, str)]
    return (
        "import sys, importlib.util\n"
        f"sys.path[:] = {path!r}\n"
        f"spec = importlib.util.spec_from_file_location('offload._worker', {_worker.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['offload._worker'] = module\n"
        "spec.loader.exec_module(module)\n"
        "module.subinterpreter = True\n"
        "run = module.run\n"
        "del spec, module\n"
    )


def _guard_thread_snapshots() -> None:
    """Wraps ``sys._current_frames`` and ``sys._current_exceptions`` (once) so that they run
    while no worker interpreter runs Python: they make objects for every interpreter's frames
    with the caller's allocator, which a worker interpreter cannot free (a crash; see
    ``with_interpreters_paused`` in cpp/binding/interpreters.h). Dask's profiler calls the
    first every 10 ms."""
    for name in ("_current_frames", "_current_exceptions"):
        original = getattr(sys, name, None)
        if original is None or getattr(original, "__offload_paused__", False):
            continue

        def paused(original: Callable[[], Any] = original) -> Any:
            return _core.with_interpreters_paused(original)

        functools.update_wrapper(paused, original)
        paused.__offload_paused__ = True  # type: ignore[attr-defined]
        setattr(sys, name, paused)


class InterpreterPool(_PickledPool):
    """Runs pure-Python functions in parallel: each worker is a native thread owning a
    subinterpreter with its own GIL (PEP 684; Python 3.12+).

    ``workers`` defaults to the number of CPUs this process may use. Interpreters start with
    the pool (40 to 90 ms each, in parallel on the workers) and are reused, so a call costs a
    pickle round trip, not an interpreter start. The surface is :class:`Pool`'s: ``run``,
    ``submit``, ``map``, ``imap``, ``shutdown``, ``stats`` and the context managers.

    What can be sent: a function importable by name — defined at the top level of a module
    the worker interpreter can import (not ``__main__``, not a lambda or closure) — with
    picklable arguments and a picklable result. Worker interpreters import modules afresh and
    share no state with the caller or each other (start from the caller's ``sys.path``);
    extension modules without subinterpreter support (numpy and many others) cannot be
    imported there: use :class:`ProcessPool` for those. :mod:`contextvars` are not carried
    over and :func:`offload.cancelled` is false in a worker interpreter. Once an
    InterpreterPool exists, ``sys._current_frames()`` and ``sys._current_exceptions()`` wait
    for the calls in progress in worker interpreters (taken while they run, CPython crashes).

    Functions from the standard library qualify, and so do yours in a module (``crunch.py``
    with ``def score(doc): ...``, say). The example falls back to :class:`ProcessPool` before
    Python 3.12, as an application would:

    >>> import math, sys
    >>> CpuPool = offload.InterpreterPool if sys.version_info >= (3, 12) else offload.ProcessPool
    >>> async def main() -> list:
    ...     async with CpuPool(workers=2) as pool:
    ...         return await pool.map(math.factorial, [5, 10, 15])   # in parallel, order kept
    >>> asyncio.run(main())
    [120, 3628800, 1307674368000]

    Raises:
        RuntimeError: this Python is older than 3.12 (use :class:`ProcessPool`).
        TypeError: ``workers`` is not an int, or ``name`` not a str.
        ValueError: ``workers`` is less than 1 or more than 65536, or ``name`` is not valid UTF-8.
    """

    _where = "worker interpreter"

    def __init__(self, workers: Optional[int] = None, *, name: str = "offload-sub") -> None:
        if not _core.interpreters_supported:
            raise RuntimeError(
                "offload.InterpreterPool needs Python 3.12 or newer (own-GIL subinterpreters, "
                f"PEP 684); this is Python {sys.version_info.major}.{sys.version_info.minor}. "
                "Use offload.ProcessPool for pure-Python CPU work on this Python"
            )
        if sys.version_info < (3, 12, 4):
            warnings.warn(
                "offload.InterpreterPool: Python 3.12.0 to 3.12.3 can crash at exit after a "
                "worker interpreter used some extension modules (CPython gh-119213); use "
                "Python 3.12.4 or newer",
                RuntimeWarning,
                stacklevel=2,
            )
        count = check_count(workers, "workers")
        _guard_thread_snapshots()
        self._start(_core.Pool(count, check_name(name), None, (), _bootstrap_source()))

    def _check_sendable(self, fn: Any) -> None:
        if getattr(fn, "__module__", None) == "__main__":
            raise SendError(
                f"offload: cannot send {_describe(fn)} to a worker interpreter: it is defined "
                "in __main__, which worker interpreters cannot import. Define it in a module"
            )

    _call = staticmethod(_interpreter_call)

    def _before_fork(self) -> None:
        # CPython cannot fork while a subinterpreter exists (the child aborts, gh-101437):
        # the workers finish the queued calls and end their interpreters, and the pool
        # starts afresh on its next call, in the parent and in the child.
        self._core.stop_workers()


def _default_context() -> Any:
    """A start method that is safe in a process with threads (offload's workers, the loop):
    forkserver where it exists (POSIX but macOS), else spawn. Never plain fork."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods and sys.platform != "darwin":
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class _Process:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, name: str) -> None:
        self.conn, child = context.Pipe(duplex=True)
        # Not daemonic, so that calls may start processes of their own (as with
        # ProcessPoolExecutor); a worker exits when its pipe closes, and offload closes the
        # pipes at exit before multiprocessing joins its children.
        self.process = context.Process(target=_worker.serve, args=(child,), name=name)
        self.answered = 0
        try:
            self.process.start()
        finally:
            child.close()

    def call(self, payload: bytes) -> bytes:
        self.conn.send_bytes(payload)
        reply = bytes(self.conn.recv_bytes())
        self.answered += 1
        return reply

    def exit_code(self) -> Optional[int]:
        self.process.join(timeout=5)
        code: Optional[int] = self.process.exitcode
        return code

    def stop(self, timeout: float) -> None:
        """Closes the pipe (the worker's cue to exit) and reaps the process. Only the pipe's
        user may call it: the worker thread that owns the process, or any thread once the
        worker threads are gone (closing an fd another thread reads would let that read
        reach whatever file reuses the number)."""
        self.conn.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class ProcessPool(_PickledPool):
    """Runs pure-Python functions in parallel in worker processes, on every Python.

    Each worker is a native thread that owns one worker process, started on its first call
    and replaced if it dies: the call it was running then fails with :class:`WorkerDied`, and
    the calls queued behind it run in the new process. ``mp_context`` is a
    :mod:`multiprocessing` context; the default start method is ``forkserver`` (``spawn`` on
    macOS), because forking a process that runs threads is unsafe. The surface is
    :class:`Pool`'s: ``run``, ``submit``, ``map``, ``imap``, ``shutdown``, ``stats`` and the
    context managers; ``shutdown`` also stops the processes.

    What can be sent: a function importable by name with picklable arguments and result, as
    for :class:`concurrent.futures.ProcessPoolExecutor` (a ``__main__`` function works when
    the main module is a file guarded by ``if __name__ == "__main__":``). Unlike
    :class:`InterpreterPool`, workers can import any module (numpy included).
    :mod:`contextvars` are not carried over and :func:`offload.cancelled` is false in a worker.

    >>> import math
    >>> async def main() -> int:
    ...     async with offload.ProcessPool(workers=2) as pool:
    ...         return await pool.run(math.factorial, 20)
    >>> asyncio.run(main())
    2432902008176640000

    Raises:
        TypeError: ``workers`` is not an int, or ``name`` not a str.
        ValueError: ``workers`` is less than 1 or more than 65536, or ``name`` is not valid UTF-8.
    """

    _where = "worker process"

    def __init__(
        self,
        workers: Optional[int] = None,
        *,
        name: str = "offload-proc",
        mp_context: Any = None,
    ) -> None:
        count = check_count(workers, "workers")
        if mp_context is not None and not (
            callable(getattr(mp_context, "Process", None)) and callable(getattr(mp_context, "Pipe", None))
        ):
            raise TypeError(
                "offload: mp_context must be a multiprocessing context (multiprocessing."
                f"get_context(...)), got {type(mp_context).__name__}"
            )
        self._default_context = mp_context is None
        self._context = _default_context() if mp_context is None else mp_context
        self._started = 0  # processes started, for their names
        self._local = threading.local()  # .process: the worker process of this worker thread
        self._processes: List[_Process] = []  # every process started and not yet reaped
        self._lock = threading.Lock()
        self._start(_core.Pool(count, check_name(name), None, ()))

    def _check_sendable(self, fn: Any) -> None:
        if getattr(fn, "__module__", None) == "__main__":
            main = sys.modules.get("__main__")
            if getattr(main, "__file__", None) is None:
                raise SendError(
                    f"offload: cannot send {_describe(fn)} to a worker process: it is defined "
                    "in an interactive __main__ (no file), which worker processes cannot "
                    "import. Define it in a module"
                )

    def _process(self) -> _Process:
        process: Optional[_Process] = getattr(self._local, "process", None)
        # An idle worker never writes: a readable pipe means it is gone (EOF), even before
        # waitpid says so.
        if process is not None and process.process.is_alive() and not process.conn.poll():
            return process
        if process is not None:  # died while idle: nothing was lost, replace it
            self._forget(process)
        with self._lock:
            self._started += 1
            number = self._started
        process = _Process(self._context, f"{self.name}-process-{number}")
        with self._lock:
            self._processes.append(process)
        self._local.process = process
        return process

    def _forget(self, process: _Process) -> None:
        self._local.process = None
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)
        process.stop(timeout=0)

    def _call(self, job: _Job) -> Any:
        payload, fn = job
        process = self._process()
        try:
            reply = process.call(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The worker never read the call (it was gone, or died before reading it all:
            # unread data makes the pipe report a reset, not an end): it did not run, so
            # run it in a new worker.
            self._forget(process)
            process = self._process()
            reply = self._call_or_report(process, payload, fn)
        except (EOFError, OSError) as error:
            self._report_death(process, fn, error)
        return _decode(reply, fn, self._where)

    def _call_or_report(self, process: _Process, payload: bytes, fn: Any) -> bytes:
        try:
            return process.call(payload)
        except (EOFError, OSError) as error:
            self._report_death(process, fn, error)

    def _report_death(self, process: _Process, fn: Any, error: BaseException) -> NoReturn:
        """Raises WorkerDied for a worker that died with the call (after reaping it)."""
        code = process.exit_code()
        self._forget(process)
        hint = ""
        if process.answered == 0:
            hint = (
                ". It had answered no call yet: if it failed while starting, see its"
                " output; a main module that starts pools or processes when imported"
                " needs the `if __name__ == '__main__':` guard, as with multiprocessing"
            )
        raise WorkerDied(
            f"offload: the worker process running {_describe(fn)} died "
            f"(exit code {code}); it has been replaced{hint}"
        ) from error

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stops accepting calls, as :meth:`concurrent.futures.Executor.shutdown` does, and
        stops the worker processes once the queued calls are done.

        Queued calls still run unless ``cancel_pending`` is true. With ``wait`` true, returns
        once every worker thread and process has exited; with ``wait`` false, a helper thread
        stops the processes when the workers are done (the interpreter waits for it at exit,
        as it would for the queued calls).
        """
        super().shutdown(wait, cancel_pending=cancel_pending)
        if wait:
            self._stop_processes()
        else:
            # Not a daemon: CPython ends daemon threads that wait for the GIL at exit.
            threading.Thread(target=self._join_and_stop, name=f"{self.name}-shutdown").start()

    def _join_and_stop(self) -> None:
        super().shutdown(True)
        self._stop_processes()

    def _stop_processes(self, timeout: float = 5) -> None:
        with self._lock:
            processes, self._processes = self._processes, []
        for process in processes:
            process.stop(timeout=timeout)

    def _interrupt(self) -> None:
        """Ctrl-C: queued calls are cancelled and the worker processes ended at once (they
        ignore SIGINT: Ctrl-C is the parent's decision), so the calls they run fail with
        WorkerDied and nothing waits for them. The pipes are left to their worker threads,
        which see the end and close them (the shutdown helper closes those of idle ones)."""
        super()._interrupt()
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            process.process.kill()

    def _after_fork_in_child(self) -> None:
        # The processes are the parent's children: forget them without touching them.
        # multiprocessing's forkserver is the parent's too, and its handle breaks in a forked
        # child (waitpid on a process that is not the child's): start workers by spawn here.
        if self._default_context and self._context.get_start_method() == "forkserver":
            self._context = multiprocessing.get_context("spawn")
        self._local = threading.local()
        self._processes = []
        self._lock = threading.Lock()
        super()._after_fork_in_child()
