"""offload.Executor: the concurrent.futures face of the native pool."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import concurrent.futures._base as _cf_base
import concurrent.futures.thread as _cf_thread
from concurrent.futures.thread import BrokenThreadPool
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Dict, Optional, Tuple, TypeVar

from . import _core
from ._checks import check_count, check_name, default_thread_workers
from ._lifecycle import live_pools
from ._threads import WorkerThread, meet
from ._threads import forget as _forget_meetings

R = TypeVar("R")

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    P = ParamSpec("P")



_tokens = itertools.count(1)  # one per Executor, for offload._threads.meet


def _logged_initializer(initializer: Callable[..., object]) -> Callable[..., None]:
    """The initializer, its failure logged as ThreadPoolExecutor logs it (CRITICAL on the
    "concurrent.futures" logger), then raised: the native pool marks itself broken."""

    def run(*args: Any) -> None:
        try:
            initializer(*args)
        except BaseException:
            _cf_base.LOGGER.critical("Exception in initializer:", exc_info=True)
            raise

    return run


class Executor(concurrent.futures.ThreadPoolExecutor):
    """A :class:`concurrent.futures.ThreadPoolExecutor` backed by offload's native pool.

    Being a ``ThreadPoolExecutor`` subclass, it is accepted by
    :meth:`asyncio.loop.set_default_executor`, so ``loop.run_in_executor(None, ...)`` and
    :func:`asyncio.to_thread` run on native workers:

    >>> async def main() -> int:
    ...     asyncio.get_running_loop().set_default_executor(offload.Executor(max_workers=4))
    ...     return await asyncio.to_thread(sum, [1, 2, 3])      # now on offload's workers
    >>> asyncio.run(main())
    6
    >>> with offload.Executor(max_workers=2, thread_name_prefix="io") as executor:
    ...     print(list(executor.map(pow, [2, 3], [5, 2])))
    [32, 9]

    Semantics are the standard library's: ``submit`` returns a
    :class:`concurrent.futures.Future`; ``map`` (with ``timeout``) and
    ``shutdown(wait, cancel_futures=...)`` behave as documented there; a failing
    ``initializer`` breaks the executor (:class:`~concurrent.futures.thread.BrokenThreadPool`).
    ``max_workers`` defaults to ``min(32, cpus + 4)`` as in the standard library (``cpus``:
    :func:`os.process_cpu_count` where it exists, else :func:`os.cpu_count`).

    As with ``ThreadPoolExecutor``, workers start as calls need them, and ``submit`` raises
    ``RuntimeError`` once the interpreter is shutting down (the main thread has finished).
    Unlike it: ``shutdown(wait=True)`` called on one of its own workers waits for the other
    workers and returns (the standard library raises ``RuntimeError``, a thread cannot join
    itself); a task that submits to the executor while no worker is free lends its place
    until it ends (one more worker may run meanwhile), so a task that waits for tasks it
    submitted cannot deadlock the executor. Threads are named and listed in ``_threads`` as
    the standard library's, a failing ``initializer`` is logged as there (CRITICAL on the
    ``concurrent.futures`` logger), and collecting an executor does not wait for its calls.

    Raises:
        ValueError: ``max_workers`` is less than 1 or more than 65536.
        TypeError: ``initializer`` is not callable.
    """

    def __init__(
        self,
        max_workers: Optional[int] = None,
        thread_name_prefix: str = "",
        initializer: Optional[Callable[..., object]] = None,
        initargs: Tuple[Any, ...] = (),
    ) -> None:
        if max_workers is None:
            max_workers = default_thread_workers()
        elif not isinstance(max_workers, bool) and isinstance(max_workers, int) and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")  # ThreadPoolExecutor's words
        max_workers = check_count(max_workers, "max_workers")
        check_name(thread_name_prefix, "thread_name_prefix")
        try:
            initargs = tuple(initargs)
        except TypeError:
            raise TypeError(
                f"offload: initargs must be an iterable, got {type(initargs).__name__}"
            ) from None
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
        # Threads are named "<prefix>_<index>" with ThreadPoolExecutor's own default prefix,
        # "ThreadPoolExecutor-<n>" (set by its __init__ just now).
        prefix = self._thread_name_prefix or ""  # always set by now; typed Optional upstream
        # {index: threading.Thread} of every worker started: what _threads shows (the objects
        # are agreed with the workers through offload._threads.meet).
        self._workers: Dict[int, WorkerThread] = {}
        self._known = 0  # the workers started that _workers has an object for
        self._token = next(_tokens)
        self._native = _core.Pool(
            max_workers,
            prefix,
            _logged_initializer(initializer) if initializer is not None else None,
            initargs,
            separator="_",
            on_demand=True,
            thread_token=self._token,
            log_initializer_errors=False,  # _logged_initializer logs it, as the standard library
        )
        self._claim_lock = threading.Lock()
        live_pools.add(self)

    def submit(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "concurrent.futures.Future[R]":
        """Schedules ``fn(*args, **kwargs)``; returns a :class:`concurrent.futures.Future`.

        Raises:
            RuntimeError: after :meth:`shutdown`.
            BrokenThreadPool: a worker's initializer failed.
        """
        # No lock of ours is held here: making the future, or the thread object of a new
        # worker, may run a collection whose __del__ submits again. The native pool refuses
        # work once shut down, atomically, whatever the order of the checks below.
        if self._native.broken:
            raise BrokenThreadPool("A thread initializer failed, the thread pool is not usable anymore")
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if getattr(_cf_thread, "_shutdown", False):  # set as threading's shutdown begins
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        try:
            self._native.submit_concurrent(future, fn, args, kwargs or None, None)
        except RuntimeError:
            if self._shutdown:  # shut down by another thread meanwhile
                raise RuntimeError("cannot schedule new futures after shutdown") from None
            raise
        self._note_started_workers()
        return future

    def _note_started_workers(self) -> None:
        """A submit that started a worker adds its thread to _threads at once, as
        ThreadPoolExecutor.submit does (its worker adopts the object when it runs)."""
        started = self._native.started
        with self._claim_lock:  # held for two integers only: nothing else runs inside
            first, self._known = self._known, max(self._known, started)
        for index in range(first, started):
            self._workers[index] = meet(self._token, index, f"{self._thread_name_prefix}_{index}")

    # ThreadPoolExecutor's set of worker threads, which code written for it reads (and CPython's
    # tests check): here the workers' threading.Thread objects, alive while they run.
    @property
    def _threads(self) -> AbstractSet[threading.Thread]:
        return set(self._workers.values())

    @_threads.setter
    def _threads(self, value: AbstractSet[threading.Thread]) -> None:
        pass  # ThreadPoolExecutor.__init__ sets it; the workers fill it here

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops intake; ``cancel_futures`` cancels the calls not yet started; ``wait`` joins
        the workers (with the GIL released)."""
        self._shutdown = True
        self._native.shutdown(bool(wait), bool(cancel_futures))
        if wait:  # every worker has exited: nothing is left to meet
            _forget_meetings(self._token)

    # ThreadPoolExecutor's flag, which code written for it polls: here the native pool's.
    @property
    def _broken(self) -> bool:
        return bool(self._native.broken)

    @_broken.setter
    def _broken(self, value: bool) -> None:
        pass  # ThreadPoolExecutor.__init__ clears it; only the native pool breaks it

    def _interrupt(self) -> None:
        """Ctrl-C while the exit hook joins (offload._lifecycle): stops intake and cancels the
        calls not started, without waiting; a call still running ends when its worker next
        needs the GIL, as CPython ends daemon threads."""
        self.shutdown(wait=False, cancel_futures=True)

    def _before_fork(self) -> None:
        pass

    def _after_fork_in_child(self) -> None:
        self._native.after_fork_in_child()

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return f"<offload.Executor max_workers={self._max_workers} {state}>"
