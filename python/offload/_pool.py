"""PoolBase, what the native pools share, and Pool: offloading calls to native threads from
asyncio and from threads."""

from __future__ import annotations

import asyncio
import threading
from contextvars import copy_context
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Callable,
    Iterable,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
)

from . import _core, _threads  # noqa: F401 (_threads names the workers for threading)
from ._checks import check_callable, check_count, check_name, check_window, default_thread_workers
from ._call import Call
from ._call import start_call as _start_call
from ._core import Pool as _NativePool
from ._core import notifier_for
from ._future import Future
from ._imap import default_window, windowed
from ._lifecycle import live_pools
from ._stats import PoolStats

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import ParamSpec

    P = ParamSpec("P")

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound="PoolBase")

_get_running_loop = asyncio.get_running_loop


class PoolBase:
    """What the native pools (Pool, InterpreterPool, ProcessPool) share: a native pool of worker
    threads (``_core.Pool``) behind ``map``/``imap``, ``shutdown``, ``stats`` and the context
    managers. Subclasses define how a call reaches a worker: ``run``, ``submit`` and
    ``_map_calls``. (DaskPool has no native pool: it meets the same contract, ``PoolLike``,
    on its own.)"""

    _core: _NativePool
    _run: Callable[..., "Call[Any]"]

    def _start(self, core: _NativePool, run_name: str = "") -> None:
        self._core = core
        # The native fast path of run(): a raw vectorcall function bound to the native pool.
        self._run = core.runner(run_name or f"offload.{type(self).__name__}.run")
        live_pools.add(self)

    @property
    def workers(self) -> int:
        """The number of workers."""
        return int(self._core.workers)

    @property
    def name(self) -> str:
        """The pool's name, the prefix of its threads' names."""
        return str(self._core.name)

    def run(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "Call[R]":
        raise NotImplementedError

    def _map_calls(self, fn: Callable[[T], R], items: List[T]) -> Tuple[Callable[[Any], Any], List[Any], Any]:
        """(the function each worker calls, its argument per item, the context to run in)."""
        raise NotImplementedError

    def map(self, fn: Callable[[T], R], iterable: Iterable[T], /) -> "Call[List[R]]":
        """Runs ``fn(item)`` for every item on the workers; await the list of results.

        The list keeps the input order. The iterable is consumed at once. Items are handed to
        the workers in blocks, so a map costs far less per item than as many ``run`` calls.
        If calls raise, the exception of the lowest-indexed failure among the calls that ran
        is raised, and no worker takes a further block. Cancelling the awaiting task works the
        same way: the blocks not yet taken never start, while the items of a block a worker
        holds still run, with :func:`offload.cancelled` true so a long call can stop early.
        For calls that must stop at once, use :meth:`imap` or ``run``.

        The result is a :class:`Call`, as for :meth:`run`: in a running loop the map starts at
        once; with no running loop, when the result is first awaited.

        >>> async def main() -> list:
        ...     return await offload.default_pool().map(abs, range(-3, 3))
        >>> asyncio.run(main())
        [3, 2, 1, 0, 1, 2]

        Raises:
            RuntimeError: the pool was shut down.
            TypeError: ``fn`` is not callable, or ``iterable`` is not iterable.
        """
        check_callable(fn)
        items = list(iterable)
        return _start_call(f"offload.{type(self).__name__}.map", self._start_map, fn, items)

    def _start_map(self, call: "Call[List[R]]", fn: Callable[[T], R], items: List[T]) -> None:
        if not items:
            call.set_result([])
            return
        target, calls, context = self._map_calls(fn, items)
        self._core.map_on_loop(notifier_for(call.get_loop()), call, target, calls, context)

    def imap(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        /,
        *,
        ordered: bool = True,
        window: Optional[int] = None,
    ) -> AsyncIterator[R]:
        """Runs ``fn(item)`` for each item and yields the results as an async iterator, with at
        most ``window`` calls in flight (default: four per worker).

        The iterable is read lazily, only as results are consumed, so a huge or endless one
        never fills memory: this is backpressure. With ``ordered=True`` results come in input
        order; with ``ordered=False``, as they complete. The first exception raised by a call
        ends the iteration with that exception. Leaving the loop early (``break``, an
        exception, cancellation of the consuming task) cancels the calls not yet started.

        >>> import itertools, zlib
        >>> async def main() -> int:
        ...     endless = (bytes([i % 256]) * 1000 for i in itertools.count())
        ...     total = 0
        ...     async for packed in offload.default_pool().imap(zlib.compress, endless, window=8):
        ...         total += 1          # at most 8 calls in flight, however long the input
        ...         if total == 100:
        ...             break           # leaving the loop cancels the calls not yet started
        ...     return total
        >>> asyncio.run(main())
        100

        A progress bar is three lines, with tqdm or any other::

            with tqdm(total=len(blobs)) as bar:
                async for digest in pool.imap(hashlib.sha256, blobs, ordered=False):
                    bar.update(1)

        Raises:
            TypeError: ``fn`` is not callable, ``window`` is not an int.
            ValueError: ``window`` is less than 1.
        """
        check_callable(fn)
        limit = default_window(self.workers) if window is None else check_window(window)
        return windowed(self.run, fn, iter(iterable), ordered=ordered, window=limit)

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stops accepting calls, as :meth:`concurrent.futures.Executor.shutdown` does.

        Queued calls still run unless ``cancel_pending`` is true, in which case their futures
        are cancelled. With ``wait`` true, returns once every worker has exited (the GIL is
        released meanwhile). Calling it again is harmless.

        >>> pool = offload.Pool(workers=2)
        >>> pool.shutdown()
        >>> pool.closed
        True
        >>> pool.submit(print)
        Traceback (most recent call last):
          ...
        RuntimeError: offload: cannot submit to a pool that was shut down
        """
        self._core.shutdown(bool(wait), bool(cancel_pending))

    def stats(self) -> PoolStats:
        """The pool's counters; see :class:`PoolStats`."""
        return PoolStats(**self._core.stats())

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` was called."""
        return bool(self._core.is_shutdown)

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        """Shuts down and waits for the workers. Left by Ctrl-C (KeyboardInterrupt), it stops
        instead: queued calls are cancelled (a ProcessPool also ends its worker processes, so
        the calls they run fail), and a second Ctrl-C ends the wait for running calls."""
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupt()
        self.shutdown(wait=True)

    def _interrupt(self) -> None:
        """Ctrl-C: stop intake and drop what is queued, without waiting (see __exit__)."""
        self.shutdown(wait=False, cancel_pending=True)

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        """Shuts down and waits for the workers without blocking the loop."""
        self.shutdown(wait=False)
        loop = _get_running_loop()
        joined = loop.create_future()

        def join() -> None:
            self.shutdown(wait=True)
            try:
                loop.call_soon_threadsafe(_set_result_unless_done, joined, None)
            except RuntimeError:  # the loop was closed meanwhile
                pass

        # Not a daemon: CPython ends daemon threads that wait for the GIL at exit, mid-join.
        threading.Thread(target=join, name=f"{self.name}-join").start()
        await joined

    def _before_fork(self) -> None:
        pass

    def _after_fork_in_child(self) -> None:
        self._core.after_fork_in_child()

    def __repr__(self) -> str:
        s = self._core.stats()
        state = "shut down" if self.closed else "running"
        return (
            f"<offload.{type(self).__name__} name={self.name!r} workers={self.workers} {state}"
            f" queued={s['queued']} busy={s['busy']}>"
        )


class Pool(PoolBase):
    """A pool of native worker threads that run Python callables.

    ``workers`` is the most worker threads it runs at once; it defaults to the standard
    library's default for blocking work, ``min(32, cpus + 4)``, as
    :class:`~concurrent.futures.ThreadPoolExecutor`. Workers start as calls need them (one
    when a call finds none idle), are named ``"<name>-<index>"`` and then stay. Calls start
    in the order they were submitted. Each worker keeps one Python thread state for its life
    and takes the GIL once per batch of queued calls, so offloading many small calls costs
    little more than making them.

    Calls that wait for calls of their own pool never deadlock it: a worker that submits to
    its pool while no worker is free lends its place until its call ends (one more worker
    may run meanwhile), and a worker that waits with the GIL released (``result()``, a
    channel) lets another worker run while it waits.

    Use a pool for work that releases the GIL (hashing, compression, I/O, numpy, C libraries)
    or that blocks; pure-Python CPU work does not run in parallel on threads: use
    :class:`InterpreterPool` or :class:`ProcessPool` for that.

    >>> import json
    >>> async def main() -> None:
    ...     async with offload.Pool(workers=8, name="parser") as pool:
    ...         print(await pool.run(json.loads, '{"id": 1}'))      # one call
    ...         print(await pool.map(json.loads, ["1", "[2]"]))     # ordered list
    ...         fut = pool.submit(json.loads, "3")                  # for threads too
    ...         print(await fut)
    >>> asyncio.run(main())
    {'id': 1}
    [1, [2]]
    3

    Raises:
        TypeError: ``workers`` is not an int, or ``name`` not a str.
        ValueError: ``workers`` is less than 1 or more than 65536, or ``name`` is not valid UTF-8.
    """

    def __init__(self, workers: Optional[int] = None, *, name: str = "offload") -> None:
        count = default_thread_workers() if workers is None else check_count(workers, "workers")
        self._start(_core.Pool(count, check_name(name), on_demand=True))
        # Bound as the instance's `run` too, which skips the Python frame of the method below;
        # not in a subclass that overrides `run`, whose own method must be the one called.
        if type(self).run is Pool.run:
            self.run = self._run  # type: ignore[method-assign]

    def submit(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> Future[R]:
        """Schedules ``fn(*args, **kwargs)`` and returns its :class:`offload.Future`.

        The call runs in a copy of the caller's :mod:`contextvars` context.

        Raises:
            TypeError: ``fn`` is not callable.
            RuntimeError: the pool was shut down.
        """
        return Future(self._core.submit(fn, args, kwargs or None, copy_context()))

    def run(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "Call[R]":
        """Runs ``fn(*args, **kwargs)`` on a worker; await the result in the running loop.

        Semantics match :func:`asyncio.to_thread`: the call runs in a copy of the caller's
        :mod:`contextvars` context, its exception is raised with its traceback, and
        cancelling the awaiting task cancels the call if it has not started (a running call
        cannot be interrupted; it can poll :func:`offload.cancelled`). The return value is a
        :class:`Call`: in a running loop, the call is submitted at once and this is the
        loop's own future of it, completed on the loop's thread, and a coroutine too; with
        no running loop, a coroutine that starts the call on the loop that first awaits it.

        Raises:
            RuntimeError: the pool was shut down.
            TypeError: ``fn`` is not callable.
        """
        return self._run(fn, *args, **kwargs)

    def _map_calls(self, fn: Callable[[T], R], items: List[T]) -> Tuple[Callable[[Any], Any], List[Any], Any]:
        # Each call runs in its own copy of the caller's context.
        return fn, items, copy_context()


def _set_result_unless_done(future: "asyncio.Future[Any]", value: Any) -> None:
    if not future.done():
        future.set_result(value)
