"""DaskPool: the Pool API on a Dask distributed cluster.

When one machine is not enough, the same ``await pool.run(fn, x)`` runs on a Dask cluster.
A :class:`DaskPool` drives a ``distributed.Client`` in asynchronous mode on the caller's event
loop, so awaiting a call never blocks the loop, and maps the Pool surface onto it:

* ``run`` is one ``client.submit`` and a loop task that awaits the Dask future's result,
  fetched in a task of its own (``_fetched``: cancelling one call must not cancel the
  request Dask shares between calls that finish together); every call
  runs on its worker inside ``_run_on_worker``, which brings SystemExit and
  KeyboardInterrupt back as any exception, and keeps the key Dask would give it;
* ``map`` is one ``client.map`` and one ``client.gather`` (fetched likewise); the failure
  with the lowest index is raised;
* ``imap`` is :class:`Pool`'s own windowed iteration, over ``run``;
* ``submit`` returns a :class:`DaskFuture`: a :class:`concurrent.futures.Future` that is also
  awaitable, so threads and other loops can use it too.

One path ends every call: a done-callback on its loop task (``_call_done``) counts the call
and releases its Dask futures, however the task ended — returned, raised, or cancelled, even
before its first step. Releasing, not ``client.cancel``, is also how a call is cancelled: the
scheduler forgets a key once no future holds it, so a call not started never runs and a
running one's result is dropped, while a caller that shares the key (``pure=True``) keeps
it. Nothing else holds a key: a result or an error is not kept on the cluster once its call
ended, even while the caller keeps the exception (whose traceback reaches the future).

The client, the loop tasks and the counters belong to the pool's loop: every method but
``submit``, ``shutdown`` and ``stats`` runs on that loop's thread, and ``submit`` from
anywhere else hands the call to it (``call_soon_threadsafe``), while that loop runs. Such a
``submit`` decides at once whether the call is accepted, against any ``shutdown`` (both take
``_intake``); the loop runs what it accepted, and a close waits for those calls too.

``distributed`` is an optional dependency (``pip install offload[dask]``), imported when a
DaskPool is constructed. Its objects are typed ``Any`` here, so that offload type-checks
without it.
"""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import functools
import importlib
import threading
import traceback
import uuid
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    NoReturn,
    Optional,
    Set,
    Tuple,
    Type,
    TypeVar,
    cast,
)

from ._call import AwaitedAsCoroutine, Call
from ._call import start_call as _start_call
from ._checks import check_callable, check_timeout, check_window
from ._cpu import _describe
from ._errors import RemoteTraceback, SendError
from ._imap import default_window, windowed
from ._stats import PoolStats

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import ParamSpec

    P = ParamSpec("P")

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "pip install offload[dask]"

# How to reach a pool from a loop or thread it does not belong to, by what was attempted.
USE_SUBMIT = "from other loops and threads use submit() and wait for its DaskFuture"
USE_SHUTDOWN = "from another thread use pool.shutdown(), which waits for the close"


def _import_distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError as error:
        raise ImportError(
            f"offload.DaskPool needs Dask's distributed scheduler, which is not installed: "
            f"{INSTALL_HINT}"
        ) from error


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _refuse_shut_down() -> None:
    raise RuntimeError("offload: cannot submit to a pool that was shut down")


def _retrieve_exception(task: "asyncio.Future[Any]") -> None:
    """Done-callback of a task whose waiters may all have given up (``asyncio.shield`` drops
    its hold when its waiter is cancelled): marks its exception as seen, so asyncio does not
    log it as never retrieved. The waiters that remain still get it."""
    if not task.cancelled():
        task.exception()


async def _fetched(result: Any) -> Any:
    """Awaits ``result`` (a Dask future, or a gather) in a task of its own, which cancelling
    the caller does not reach.

    Dask's client fetches the results of futures that finish together in one request: a task
    that the first of them awaits, and the others join. Awaited directly, cancelling that
    first call cancelled the request, and every call fetched with it raised CancelledError,
    its result on the cluster. A cancelled call leaves its fetch to end on its own instead:
    at once if it had not begun (the call releases its future, which ends the wait), else once
    the request is done, its result dropped."""
    fetch = asyncio.ensure_future(result)
    fetch.add_done_callback(_retrieve_exception)  # if the caller left, nobody else looks
    return await asyncio.shield(fetch)


async def _attach_remote_traceback(error: BaseException, future: Any) -> None:
    """Puts the worker-side traceback of an exception a Dask task raised, as text, in
    ``__cause__`` (a :class:`RemoteTraceback`), as ProcessPool does, when Dask brought one
    back. The text has the whole chain as the worker saw it, so it replaces a cause the
    worker chained (``raise X from Y``): that cause is in the text.

    ``error`` is what awaiting the Dask future raised: the task's exception or, for a
    StopIteration (which a coroutine cannot raise), the RuntimeError whose cause it is; the
    text goes to the task's exception. A carried exception has its text already."""
    if future.status != "error" or _is_carrier(error):
        return
    raised: BaseException = await future.exception()
    if raised is not error and error.__cause__ is not raised:
        return  # not the task's exception
    if isinstance(raised.__cause__, RemoteTraceback):
        return  # already done: pure=True callers share it
    remote = await future.traceback()
    if remote is not None:
        text = "".join(traceback.format_exception(type(raised), raised, remote))
        raised.__cause__ = RemoteTraceback(text)


def _raise_send_error(error: TypeError, fn: Any, labelled: List[Tuple[str, Any]]) -> NoReturn:
    """Raises :class:`SendError` naming what of a call cloudpickle cannot pickle, from the
    ``TypeError`` Dask raised when it failed to send the call; re-raises that error if the
    call's parts all pickle. Runs only on that failure: a call is pickled once, by Dask."""
    cloudpickle = importlib.import_module("cloudpickle")  # what Dask pickles calls with
    name = _describe(fn)
    try:
        cloudpickle.dumps(fn)
    except Exception as why:
        raise SendError(f"offload: cannot send {name} to a Dask worker: {why}") from error
    for label, value in labelled:
        try:
            cloudpickle.dumps(value)
        except Exception as why:
            raise SendError(
                f"offload: {label} of {name} ({type(value).__name__}) cannot be pickled "
                f"for a Dask worker: {why}"
            ) from error
    raise error


# -- the worker's side of a call ------------------------------------------------------------

# A Dask worker takes a SystemExit or KeyboardInterrupt raised by a task for its own end: the
# worker process dies, the scheduler runs the call again elsewhere, and the call ends as
# KilledWorker. So the worker side of every call (_run_on_worker) turns them into a
# RuntimeError whose arguments are (CARRIED, the exception, its traceback on the worker as
# text), which Dask brings back as any error, and the caller's side (_uncarried) raises the
# exception itself, as ProcessPool does. Every other exception, BaseException subclasses
# included, Dask brings back as it is.
CARRIED = "offload.DaskPool: a SystemExit or KeyboardInterrupt raised by the call"


def _worker_side() -> Callable[[Callable[..., Any], Tuple[Any, ...]], Any]:
    """Makes the function that runs each call on its Dask worker. Defined inside a function so
    that cloudpickle pickles it by value, as it pickles a nested function: a worker loads it
    with cloudpickle and the standard library, and needs no offload."""

    def run_on_worker(fn: Callable[..., Any], args: Tuple[Any, ...]) -> Any:
        try:
            return fn(*args)
        except (SystemExit, KeyboardInterrupt) as error:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            raise RuntimeError(CARRIED, error, text) from None

    return run_on_worker


_run_on_worker = _worker_side()

# What Dask runs for a call: _ON_WORKER(_worker_call(fn, args)), an eval that loads
# _run_on_worker from the bytes cloudpickle made of it once (cloudpickle comes with Dask) and
# calls it. Every piece of it pickles with plain pickle: a function pickled by value would
# make Dask fall back to cloudpickle for each call, on the client and again on the scheduler,
# which cost the loop's thread about 150 us a call (benchmarks/test_bench_dask.py). The
# arguments stay where Dask reads them: a Dask future among them is a dependency.
_ON_WORKER = functools.partial(eval, "__import__('pickle').loads(run_on_worker)(fn, args)")


@functools.lru_cache(maxsize=None)
def _run_on_worker_pickled() -> bytes:
    return cast(bytes, importlib.import_module("cloudpickle").dumps(_run_on_worker))


def _worker_call(fn: Callable[..., Any], args: Tuple[Any, ...]) -> Dict[str, Any]:
    """The namespace _ON_WORKER evaluates a call of ``fn(*args)`` in."""
    return {"run_on_worker": _run_on_worker_pickled(), "fn": fn, "args": args}


def _is_carrier(error: BaseException) -> bool:
    """Whether ``error`` is what _run_on_worker raised to carry an exception back. Its
    arguments are compared only once known to be strings: a call's own arguments may be
    objects whose ``__eq__`` raises."""
    args = error.args
    return (
        type(error) is RuntimeError
        and len(args) == 3
        and type(args[0]) is str
        and args[0] == CARRIED
        and isinstance(args[1], BaseException)
        and type(args[2]) is str
    )


def _uncarried(error: BaseException) -> BaseException:
    """The exception the call raised, from the one its loop task ended with: a SystemExit or
    KeyboardInterrupt carried back, with its worker-side traceback in ``__cause__`` (a
    :class:`RemoteTraceback`), or ``error`` itself. Unwrapped only when it reaches the
    call's future: a loop task must not raise either, which would stop the loop."""
    if not _is_carrier(error):
        return error
    _, carried, text = error.args
    carried.__cause__ = RemoteTraceback(text)
    return cast(BaseException, carried)


class _Call:
    """What the done-callback of a run or map task needs: the Dask futures it submitted
    (none before the pool started and the call was sent), and whether it raised."""

    __slots__ = ("futures", "raised")

    def __init__(self) -> None:
        self.futures: List[Any] = []
        self.raised = False


async def _unless_cancelled(call: "Call[T]", body: "Coroutine[Any, Any, T]") -> T:
    """Runs ``body`` unless ``call`` was cancelled before the task's first step (the
    cancellation reaches the task itself only one loop turn later, through _follow)."""
    if call.cancelled():
        body.close()
        raise asyncio.CancelledError
    return await body


def _follow(call: "Call[T]", task: "asyncio.Future[T]") -> None:
    """Makes ``call`` settle as ``task`` does, and cancelling ``call`` cancel ``task``."""

    def settle(task: "asyncio.Future[T]") -> None:
        if call.done():
            return
        if task.cancelled():
            call.cancel()
            return
        error = task.exception()
        if error is not None:
            call.set_exception(_uncarried(error))
        else:
            call.set_result(task.result())

    def cancel(call: "asyncio.Future[T]") -> None:
        if call.cancelled():
            task.cancel()

    task.add_done_callback(settle)
    call.add_done_callback(cancel)


class DaskFuture(AwaitedAsCoroutine, concurrent.futures.Future[T]):
    """The result of :meth:`DaskPool.submit`: a :class:`concurrent.futures.Future` that is
    also awaitable, from any event loop.

    ``result(timeout)`` and ``exception(timeout)`` wait from any thread but the pool's loop
    thread: there the loop drives the Dask client, so waiting could never end, and they raise
    :class:`RuntimeError` unless the future is done or ``timeout`` is 0 or less (which waits
    for nothing: :class:`concurrent.futures.TimeoutError` if not done, as any future);
    ``await`` it there instead. ``timeout`` is checked as every offload timeout is: ``None``
    or a number, not a bool, not NaN (:class:`TypeError` or :class:`ValueError` naming it).
    ``cancel()`` cancels the call — a task that has not started does not run; a running one
    runs to its end on its worker and its result is dropped — and returns ``True`` unless
    the future is done. Cancelling a task that awaits the future
    cancels it too. ``running()`` is always false: a Dask client is not told when a task
    starts.

    Callbacks added with ``add_done_callback`` run on the pool's loop thread when the call
    ends, on the thread that calls ``cancel()``, or at once on the adding thread if the
    future is already done: they must not block.

    >>> async def main() -> int:
    ...     async with offload.DaskPool(n_workers=1, processes=False) as pool:
    ...         fut = pool.submit(sum, [1, 2, 3])
    ...         print(await asyncio.to_thread(fut.result, 30))   # from a thread
    ...         return await fut                                 # or on any loop
    >>> asyncio.run(main())
    6
    6
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._driver = None  # see AwaitedAsCoroutine
        self._loop = loop  # the pool's loop
        self._task: "Optional[asyncio.Future[T]]" = None  # the call, on that loop

    def _attach(self, task: "asyncio.Future[T]") -> None:
        """Follows the call's loop task (on the pool's loop thread)."""
        self._task = task
        if self.cancelled():
            task.cancel()
        task.add_done_callback(self._settle)

    def _settle(self, task: "asyncio.Future[T]") -> None:
        try:
            if task.cancelled():
                concurrent.futures.Future.cancel(self)
                return
            error = task.exception()
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(task.result())
        except concurrent.futures.InvalidStateError:
            pass  # cancelled by another thread meanwhile

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _wait_limit(self, what: str, timeout: Optional[float]) -> Optional[float]:
        """``timeout`` checked as every offload timeout is, as concurrent.futures takes it: a
        wait longer than the clock can count (which it refuses with OverflowError) is a wait
        without limit, as for :class:`offload.Future`. Refuses a wait on the pool's loop
        thread before the future is done."""
        seconds = check_timeout(timeout)
        if seconds is not None and seconds > threading.TIMEOUT_MAX:
            seconds = None
        waits = seconds is None or seconds > 0
        if waits and not self.done() and _running_loop() is self._loop:
            raise RuntimeError(
                f"offload: DaskFuture.{what}() would block the event loop that drives the "
                "Dask client, so the call could never finish: await the future instead"
            )
        return seconds

    def result(self, timeout: Optional[float] = None) -> T:
        """The call's return value; raises its exception. Waits up to ``timeout`` seconds
        (``None``: no limit).

        Raises:
            concurrent.futures.TimeoutError: the call did not finish in time.
            concurrent.futures.CancelledError: the call was cancelled.
            RuntimeError: called on the pool's loop thread, with a timeout that would wait,
                before the future is done.
            TypeError: ``timeout`` is not a number or None (a bool included).
            ValueError: ``timeout`` is NaN.
        """
        return super().result(self._wait_limit("result", timeout))

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The call's exception, or ``None`` if it returned. Waits up to ``timeout`` seconds;
        raises as :meth:`result` does, but not the call's exception."""
        return super().exception(self._wait_limit("exception", timeout))

    def cancel(self) -> bool:
        """Cancels the call on the cluster unless it is done; returns whether the future is
        cancelled."""
        if not super().cancel():
            return False
        if _running_loop() is self._loop:
            self._cancel_task()
        else:
            try:
                self._loop.call_soon_threadsafe(self._cancel_task)
            except RuntimeError:  # the pool's loop is closed: so is its client
                pass
        return True

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self, loop=asyncio.get_running_loop()).__await__()


collections.abc.Coroutine.register(DaskFuture)


class DaskPool:
    """Runs calls on a Dask cluster, with the API of :class:`Pool`: ``run``, ``submit``,
    ``map``, ``imap``, ``shutdown``, ``stats`` and ``async with``.

    ``client_or_address`` says which cluster:

    * ``None`` (the default): the pool starts a ``distributed.LocalCluster`` on this machine
      and owns it; ``options`` go to ``LocalCluster`` (``n_workers``, ``threads_per_worker``,
      ``processes``...);
    * a scheduler address (``"tcp://scheduler:8786"``) or a cluster object (a
      ``LocalCluster``, a ``dask_jobqueue`` or Kubernetes cluster...): the pool connects a
      client of its own to it; ``options`` go to ``distributed.Client``;
    * a ``distributed.Client`` created with ``asynchronous=True`` on the loop that will use
      the pool: the pool borrows it and leaves it open at shutdown.

    The pool starts (creates its cluster, connects its client) in ``async with``, in
    ``await pool.start()``, or on its first ``run``/``map``/``imap``, on the running loop,
    and belongs to that loop from then on.

    Semantics follow :class:`Pool` where Dask allows:

    * ``map`` keeps the input order; ``imap`` has at most ``window`` calls in flight (default:
      four per worker thread of the cluster) and reads its input only as results are consumed.
    * An exception raised by a call comes back with its type and message, and the worker-side
      traceback as text in ``__cause__`` (a :class:`RemoteTraceback`, whose text also shows
      a cause the worker chained) when Dask brings one. That includes ``SystemExit`` and
      ``KeyboardInterrupt``, which the pool catches on the worker (Dask would take them for
      the worker's end) and raises again in the caller. A worker that dies during a call does
      not fail it at once: Dask runs it again on another worker, and raises
      ``distributed.KilledWorker`` once the call has been on more dying workers than the
      scheduler's ``distributed.scheduler.allowed-failures`` (3 by default).
    * Cancelling the awaiting task cancels the call: the pool releases its Dask future, and
      the scheduler forgets a key no future holds any more: a task that has not started does
      not run; a running one cannot be interrupted and runs to its end on its worker, its
      result dropped. Every call ends that way: a result or an error is not kept on the
      cluster once its call ended. No other call is touched, not even one whose result Dask
      fetches in the same request.

    Where it differs:

    * Calls are pickled with cloudpickle (lambdas and ``__main__`` functions can be sent);
      workers must be able to import the modules the function uses. A call that cannot be
      pickled raises :class:`SendError` (and Dask logs its own error). :mod:`contextvars` are
      not carried over and :func:`offload.cancelled` is false on a worker.
    * ``pure=False`` (the default) gives every call a key of its own, so repeated calls run
      again, as with any pool. With ``pure=True``, identical calls (same function and
      arguments) share one Dask key: those in flight at the same time run once. Cancelling
      one of them leaves the others running: the key is forgotten once none holds it.
    * A pool belongs to the loop it started on: ``run``, ``map``, ``imap``, ``start`` and
      ``aclose`` from another loop raise :class:`RuntimeError`. ``submit`` works from any
      thread or loop once the pool has started, while its loop runs.
    * Only ``async with``: closing a Dask client needs its loop, so ``shutdown(wait=True)``
      cannot wait on that loop's thread. ``await pool.aclose()`` waits.
    * ``stats()``: ``workers`` is the number of worker threads in the cluster; ``queued``
      counts this pool's calls not finished yet, waiting or running (a Dask client is not told
      when a task starts), and ``busy`` is always 0; a ``map`` counts one call per item.

    An in-process cluster starts in a fraction of a second; ``processes=True`` (Dask's
    default) gives each worker its own process and GIL:

    >>> async def main() -> None:
    ...     async with offload.DaskPool(n_workers=1, processes=False) as pool:
    ...         print(await pool.run(pow, 2, 10))                 # one call
    ...         print(await pool.map(abs, [-3, -2, -1]))          # ordered list
    ...         async for n in pool.imap(len, ["a", "bb"], window=2):
    ...             print(n)
    >>> asyncio.run(main())
    1024
    [3, 2, 1]
    1
    2

    Raises:
        ImportError: ``distributed`` is not installed (``pip install offload[dask]``).
        TypeError: ``client_or_address`` is none of the above, ``options`` come with a
            client, or ``pure`` is not a bool.
    """

    def __init__(self, client_or_address: Any = None, *, pure: bool = False, **options: Any) -> None:
        distributed = _import_distributed()
        if not isinstance(pure, bool):
            raise TypeError(f"offload: pure must be a bool, got {type(pure).__name__}")
        self._distributed = distributed
        self._tokenize: Callable[..., str] = importlib.import_module("dask.base").tokenize
        self._funcname: Callable[[Any], str] = importlib.import_module("dask.utils").funcname
        self._pure = pure
        self._options: Dict[str, Any] = options
        self._target: Any = None  # what a client of the pool's own connects to (None: a LocalCluster)
        self._client: Any = None
        self._owns_client = True
        if client_or_address is None:
            pass
        elif isinstance(client_or_address, distributed.Client):
            if options:
                raise TypeError(
                    "offload: options are for the LocalCluster or the Client that DaskPool "
                    f"creates; a client of yours takes none (got {', '.join(sorted(options))})"
                )
            self._client = client_or_address
            self._owns_client = False
        elif isinstance(client_or_address, str) or hasattr(client_or_address, "scheduler_address"):
            self._target = client_or_address
        else:
            raise TypeError(
                "offload: DaskPool takes a distributed.Client, a scheduler address (str), a "
                f"cluster or None, got {type(client_or_address).__name__}"
            )
        self._cluster: Any = None  # the LocalCluster the pool started, closed at shutdown
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._starting: "Optional[asyncio.Future[None]]" = None
        self._ready = False  # the client is connected
        # What submit() from another thread decides against a shutdown from any thread. The
        # lock guards _closing, _cancel_pending and _handed, and is held for nothing else.
        self._intake = threading.Lock()
        self._closing = False  # shutdown began: no more calls
        self._cancel_pending = False  # a shutdown asked to cancel the calls in flight
        # Calls submit() accepted from another thread that have not reached the loop yet; only
        # the loop takes them in, and none is added once closing: the close waits for them.
        self._handed = 0
        self._all_handed: "Optional[asyncio.Future[None]]" = None  # set by the last one
        self._closed = False  # what the pool owns is closed
        self._closing_task: "Optional[asyncio.Future[None]]" = None  # the last close begun
        self._calls: "Set[asyncio.Future[Any]]" = set()  # loop tasks of the calls in flight
        self._threads = 0  # worker threads in the cluster, when last looked
        self._submitted = self._completed = self._failed = self._cancelled = self._in_flight = 0

    # -- the loop ----------------------------------------------------------------------------

    def _loop_for_call(self, elsewhere: str = USE_SUBMIT) -> asyncio.AbstractEventLoop:
        """The running loop, which must be the pool's (the first one to use it becomes it).
        ``elsewhere`` tells what to do instead, from another loop."""
        loop = asyncio.get_running_loop()
        bound = self._loop
        if bound is loop:
            return loop
        if bound is None:
            client = self._client
            if client is not None and not client.asynchronous:
                raise RuntimeError(
                    "offload: DaskPool needs a Client created with asynchronous=True on the "
                    "event loop that uses the pool; this one is synchronous or runs on "
                    "another loop. Pass its scheduler address instead"
                )
            self._loop = loop
            return loop
        if bound.is_closed():
            raise RuntimeError(
                "offload: this DaskPool's event loop is closed; a DaskPool (and its Dask "
                "client) belongs to the loop it started on: create a new one"
            )
        raise RuntimeError(
            "offload: this DaskPool belongs to another event loop (its Dask client runs "
            f"there): create one DaskPool per loop, or {elsewhere}"
        )

    def _loop_accepting_calls(self) -> asyncio.AbstractEventLoop:
        """What ``run``, ``map``, ``imap`` and ``start`` check first: the running loop is the
        pool's, and the pool was not shut down."""
        loop = self._loop_for_call()
        if self._closing:
            _refuse_shut_down()
        return loop

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` the pool drives (``None`` before it starts): for what
        the pool does not do (``scatter``, dashboards, ``run_on_scheduler``...)."""
        return self._client

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` or :meth:`aclose` was called."""
        return self._closing

    async def start(self) -> "DaskPool":
        """Creates the cluster and connects the client, on the running loop; returns the pool.
        Calling it again, or after ``run`` started the pool, is harmless.

        Raises:
            RuntimeError: no running event loop, the pool belongs to another loop or was
                shut down, or a borrowed client is synchronous.
            OSError: the scheduler cannot be reached (Dask's connect timeout).
        """
        self._loop_accepting_calls()
        await self._ensure_started()
        return self

    async def _ensure_started(self) -> None:
        if self._ready:
            return
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._connect())
            self._starting.add_done_callback(_retrieve_exception)
        # Shielded: a caller that gives up does not stop a start other callers wait for.
        await asyncio.shield(self._starting)

    async def _connect(self) -> None:
        distributed = self._distributed
        created_cluster = False
        try:
            client = self._client
            if client is None:
                target, options = self._target, dict(self._options)
                if target is not None and not isinstance(target, str):
                    cluster_loop = getattr(getattr(target, "loop", None), "asyncio_loop", None)
                    if cluster_loop is not asyncio.get_running_loop():
                        # A client made from a cluster object runs on the cluster's loop (a
                        # synchronous cluster has a thread of its own): connect by address.
                        options.setdefault("security", getattr(target, "security", None))
                        target = target.scheduler_address
                if target is None:
                    self._cluster = await distributed.LocalCluster(asynchronous=True, **options)
                    created_cluster = True
                    target, options = self._cluster, {}
                # Not the process-wide default client: a pool should not change what other
                # Dask code in the process uses.
                options.setdefault("set_as_default", False)
                client = await distributed.Client(target, asynchronous=True, **options)
                self._client = client
            elif client.status == "newly-created":
                await client
            elif client.status != "running":
                raise RuntimeError(f"offload: the Dask client given to DaskPool is {client.status}")
            self._ready = True
            self._refresh_threads()
        except BaseException:
            self._starting = None  # the next call tries again
            if created_cluster and self._client is None:
                cluster, self._cluster = self._cluster, None
                await cluster.close()
            raise

    def _refresh_threads(self) -> int:
        """The worker threads in the cluster, from the client's cached scheduler info (updated
        every few seconds by the client); on the pool's loop only."""
        info = self._client.scheduler_info()
        total = info.get("total_threads")
        if total is None:  # older distributed: per worker only
            total = sum(w.get("nthreads", 0) for w in info.get("workers", {}).values())
        self._threads = int(total)
        return self._threads

    # -- calls -------------------------------------------------------------------------------

    def _launch(
        self,
        loop: asyncio.AbstractEventLoop,
        body: "Coroutine[Any, Any, R]",
        record: _Call,
        call: "Call[R]",
    ) -> None:
        """Runs a call's body in a loop task, whose end the pool sees in ``_call_done``, and
        makes ``call`` (what run and map return) follow it: its outcome, and cancelling it
        cancels the task."""
        task = loop.create_task(_unless_cancelled(call, body))
        self._calls.add(task)
        task.add_done_callback(functools.partial(self._call_done, record))
        _follow(call, task)

    def _sent(self, call: _Call, futures: List[Any]) -> None:
        call.futures.extend(futures)
        self._submitted += len(futures)
        self._in_flight += len(futures)

    def _call_done(self, call: _Call, task: "asyncio.Future[Any]") -> None:
        """Done-callback of every call's loop task, the one place a call ends: counts each
        Dask future by how it ended, then releases them all.

        An erred future failed and a pending one was cancelled. A finished one completed,
        unless the call raised although no future erred: then the result could not be brought
        back (it could not be pickled, say), and the call failed."""
        self._calls.discard(task)
        futures = call.futures
        failed_in_transit = call.raised and not any(f.status == "error" for f in futures)
        for future in futures:
            status = future.status
            if status == "error" or (status == "finished" and failed_in_transit):
                self._failed += 1
            elif status == "finished":
                self._completed += 1
            else:
                self._cancelled += 1
        self._in_flight -= len(futures)
        self._release(futures)

    def _release(self, futures: List[Any]) -> None:
        """Drops the pool's hold on Dask futures: the scheduler forgets a key that no future
        holds any more (a task not started never runs; a running one's result is dropped).
        Explicit, not left to garbage collection: the client keeps an erred future's exception,
        whose traceback holds the frame that holds the future."""
        for future in futures:
            future.release()

    def _keys(self, fn: Callable[..., Any], calls: List[Tuple[Any, ...]]) -> List[str]:
        """The Dask keys of calls of ``fn`` with each of ``calls`` as arguments, as Dask names
        them: the function's name, then with ``pure`` a hash of the function and the arguments
        (identical calls share a key), else a unique id. Given to Dask, which would otherwise
        name every call after ``eval``."""
        name = self._funcname(fn)
        if self._pure:
            return [f"{name}-{self._tokenize(fn, *args)}" for args in calls]
        return [f"{name}-{uuid.uuid4()}" for _ in calls]

    def _submit(self, fn: Callable[..., Any], args: Any, kwargs: Dict[str, Any], call: _Call) -> Any:
        # The keyword arguments are bound first: client.submit reads its own (key, workers,
        # priority...) from the keywords it gets. The arguments stay Dask's to read (it looks
        # into the namespace _worker_call makes): a Dask future among them is a dependency.
        bound = functools.partial(fn, **kwargs) if kwargs else fn
        try:
            [key] = self._keys(bound, [args])
            future = self._client.submit(_ON_WORKER, _worker_call(bound, args), key=key)
        except TypeError as error:
            labelled = [(f"argument {index}", arg) for index, arg in enumerate(args)]
            labelled += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
            _raise_send_error(error, fn, labelled)
        self._sent(call, [future])
        return future

    async def _result(self, future: Any, call: _Call) -> Any:
        try:
            return await _fetched(future)
        except Exception as error:
            call.raised = True
            await _attach_remote_traceback(error, future)
            raise

    async def _start_then_run(
        self, fn: Callable[..., Any], args: Any, kwargs: Dict[str, Any], call: _Call
    ) -> Any:
        await self._ensure_started()
        return await self._result(self._submit(fn, args, kwargs, call), call)

    def run(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "Call[R]":
        """Runs ``fn(*args, **kwargs)`` on the cluster; await the result in the running loop.

        The call is submitted at once (once the pool has started); the return value is a
        :class:`Call` of the running loop, as for :meth:`Pool.run` (with no running loop, a
        coroutine that starts the call when first awaited). Its exception is raised with its
        type, message and remote traceback; cancelling the awaiting task cancels the call.

        Raises:
            RuntimeError: the pool belongs to another loop, or it was shut down.
            TypeError: ``fn`` is not callable.
            SendError: ``fn`` or an argument cannot be pickled (raised by the task if the
                pool was still starting).
        """
        check_callable(fn)
        if self._closing:
            _refuse_shut_down()
        return _start_call("offload.DaskPool.run", self._start_run, fn, args, kwargs)

    def _start_run(
        self,
        call: "Call[Any]",
        fn: Callable[..., Any],
        args: Any,
        kwargs: Dict[str, Any],
        accepted: bool = False,
    ) -> None:
        """Starts a run on the running loop. ``accepted``: a call submit() accepted, which runs
        although a shutdown may have begun since (the loop is then the pool's)."""
        loop = asyncio.get_running_loop() if accepted else self._loop_accepting_calls()
        record = _Call()
        if self._ready:
            body = self._result(self._submit(fn, args, kwargs, record), record)
        else:
            body = self._start_then_run(fn, args, kwargs, record)
        self._launch(loop, body, record, call)

    def submit(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> DaskFuture[R]:
        """Schedules ``fn(*args, **kwargs)`` on the cluster and returns its :class:`DaskFuture`.

        On the pool's loop it is :meth:`run` behind a thread-safe future. From another thread
        or loop the call is handed to the pool's loop, which must have started the pool and
        be running — and keep running until the call ends: a call handed to a loop that
        stopped meanwhile waits for it to run again. Whether the call is accepted is decided
        here, at once: a call this returned a future for runs even if a shutdown begins
        before it reaches the loop (which the close then waits for), unless that shutdown
        cancels the calls in flight (``cancel_pending``), and then its future is cancelled.

        Raises:
            TypeError: ``fn`` is not callable.
            SendError: (on the pool's loop) ``fn`` or an argument cannot be pickled; from
                elsewhere, the future raises it.
            RuntimeError: the pool was shut down, or (from another thread or loop) has not
                started or its loop is not running.
        """
        check_callable(fn)
        if self._closing:
            _refuse_shut_down()
        loop = self._loop
        running = _running_loop()
        if running is not None and (loop is None or loop is running):
            task = self.run(fn, *args, **kwargs)
            future: DaskFuture[R] = DaskFuture(running)
            future._attach(task)
            return future
        if loop is None:
            raise RuntimeError(
                "offload: this DaskPool has not started: start it on its event loop (async "
                "with, await pool.start() or a first run) before submitting from elsewhere"
            )
        closed = RuntimeError(
            "offload: this DaskPool's event loop is closed; a DaskPool belongs to the loop it "
            "started on: create a new one"
        )
        if loop.is_closed():
            raise closed
        if not loop.is_running():
            raise RuntimeError(
                "offload: this DaskPool's event loop is not running, so nothing would send the "
                "call: submit while the loop runs (run_forever in a thread, or within "
                "run_until_complete)"
            )
        future = DaskFuture(loop)
        with self._intake:  # accepted, or refused, against any shutdown: one decision
            if self._closing:
                _refuse_shut_down()
            self._handed += 1
        try:
            loop.call_soon_threadsafe(self._submit_on_loop, future, fn, args, kwargs)
        except RuntimeError:  # closed meanwhile, and with it any close that waited
            with self._intake:
                self._handed -= 1
            raise closed from None
        return future

    def _submit_on_loop(self, future: DaskFuture[Any], fn: Callable[..., Any], args: Any, kwargs: Dict[str, Any]) -> None:
        """On the pool's loop: runs a call submit() accepted from another thread, unless its
        future was cancelled meanwhile or a shutdown since cancels the calls in flight."""
        try:
            if future.cancelled():
                return
            if self._cancel_pending:
                future.cancel()
                return
            try:
                task = _start_call("offload.DaskPool.submit", self._start_run, fn, args, kwargs, True)
            except BaseException as error:  # the call cannot be sent
                try:
                    future.set_exception(error)
                except concurrent.futures.InvalidStateError:
                    pass
                return
            future._attach(task)
        finally:
            with self._intake:
                self._handed -= 1
                last = self._handed == 0
            waiter = self._all_handed
            if last and waiter is not None and not waiter.done():  # a close waits for it
                waiter.set_result(None)

    def map(self, fn: Callable[[T], R], iterable: Iterable[T], /) -> "Call[List[R]]":
        """Runs ``fn(item)`` for every item on the cluster; await the list of results.

        The list keeps the input order. The iterable is consumed at once, and every item is
        one Dask task (``client.map``). If calls raise, the exception of the lowest-indexed
        call that had failed when the first failure arrived is raised, and the calls still
        pending are cancelled. Cancelling the awaiting task cancels every call. The result is
        a :class:`Call`, as for :meth:`run`.

        Raises:
            RuntimeError: the pool belongs to another loop, or it was shut down.
            TypeError: ``fn`` is not callable, or ``iterable`` is not iterable.
            SendError: (raised by the task) ``fn`` or an item cannot be pickled.
        """
        check_callable(fn)
        if self._closing:
            _refuse_shut_down()
        items = list(iterable)
        return _start_call("offload.DaskPool.map", self._start_map, fn, items)

    def _start_map(self, call: "Call[List[Any]]", fn: Callable[[Any], Any], items: List[Any]) -> None:
        loop = self._loop_accepting_calls()
        record = _Call()
        self._launch(loop, self._map(fn, items, record), record, call)

    async def _map(self, fn: Callable[[T], R], items: List[T], call: _Call) -> List[R]:
        if not items:
            return []
        await self._ensure_started()
        try:
            keys = self._keys(fn, [(item,) for item in items])
            calls = [_worker_call(fn, (item,)) for item in items]
            # pure=False also spares Dask hashing the whole map (items it cannot hash included).
            futures = self._client.map(_ON_WORKER, calls, key=keys, pure=self._pure)
        except TypeError as error:
            _raise_send_error(error, fn, [(f"item {index}", item) for index, item in enumerate(items)])
        self._sent(call, futures)
        try:
            results = await _fetched(self._client.gather(futures, asynchronous=True))
        except Exception:
            call.raised = True
            # gather raises the error of any failed future: raise the lowest-indexed one.
            first = next((f for f in futures if f.status == "error"), None)
            if first is None:
                raise
        else:
            return list(results)
        # Raised here, not in the except clause, which would chain gather's error to it.
        failure = await first.exception()
        await _attach_remote_traceback(failure, first)
        raise failure.with_traceback(await first.traceback())

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
        most ``window`` calls on the cluster at once (default: four per worker thread).

        As :meth:`Pool.imap`: the iterable is read only as results are consumed; ``ordered``
        results come in input order, else as they complete; the first exception ends the
        iteration; leaving the loop early cancels the calls in flight.

        Raises:
            RuntimeError: no running event loop, the pool belongs to another loop, or it was
                shut down (checked again when the iteration starts).
            TypeError: ``fn`` is not callable, ``window`` is not an int.
            ValueError: ``window`` is less than 1.
        """
        self._loop_accepting_calls()
        check_callable(fn)
        limit = None if window is None else check_window(window)
        return self._imap(fn, iter(iterable), ordered, limit)

    async def _imap(self, fn: Callable[[T], R], items: Iterator[T], ordered: bool, window: Optional[int]) -> AsyncIterator[R]:
        self._loop_accepting_calls()  # again: it may have been shut down since imap() was called
        await self._ensure_started()
        limit = window if window is not None else default_window(self._refresh_threads())
        stream = windowed(self.run, fn, items, ordered=ordered, window=limit)
        inner = cast("AsyncGenerator[R, None]", stream)
        try:
            async for result in inner:
                yield result
        finally:
            await inner.aclose()

    # -- state and shutdown ------------------------------------------------------------------

    def stats(self) -> PoolStats:
        """The pool's counters, as :class:`PoolStats`: ``workers`` is the number of worker
        threads in the cluster (as the client last heard, every few seconds), ``queued`` this
        pool's calls not finished yet (waiting or running), ``busy`` always 0; ``submitted``,
        ``completed``, ``failed`` and ``cancelled`` count calls sent to the cluster (one per
        ``map`` item), each counted once its loop task ended: ``failed`` if its Dask task
        raised or its result could not be brought back, ``cancelled`` if it was dropped
        before its Dask task finished, else ``completed``. A :class:`DaskFuture` cancelled
        from another thread just as its call ends reports cancelled, while its call may be
        counted as it ended.
        """
        if self._ready and not self._closed and _running_loop() is self._loop:
            self._refresh_threads()  # after shutdown: the last count seen
        return PoolStats(
            workers=self._threads,
            submitted=self._submitted,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            queued=self._in_flight,
            busy=0,
            threads=self._threads,
        )

    async def aclose(self, *, cancel_pending: bool = False) -> None:
        """Shuts the pool down and waits: no more calls; the calls in flight finish (or, with
        ``cancel_pending``, are cancelled); then the client and the cluster the pool created
        are closed. A client it was given stays open. Calling it again is harmless; after a
        close that failed or was cancelled, it tries again.

        Raises:
            RuntimeError: called on another loop than the pool's (from another thread, use
                ``shutdown()``).
        """
        if self._closed or self._loop is None:  # never started: nothing of its own is open
            self._stop_intake(cancel_pending)
            self._closed = True
            return
        self._loop_for_call(USE_SHUTDOWN)
        await asyncio.shield(self._begin_close(cancel_pending))

    def _stop_intake(self, cancel_pending: bool) -> None:
        """No call is accepted from now on; with ``cancel_pending``, the calls submit()
        accepted that have not reached the loop yet will be cancelled there."""
        with self._intake:
            self._closing = True
            self._cancel_pending = self._cancel_pending or cancel_pending

    def _begin_close(self, cancel_pending: bool) -> "asyncio.Future[None]":
        """On the pool's loop: stops intake and starts closing, unless a close is under way;
        returns the close's task. A close that failed or was cancelled (its loop shut down
        first, say) left the pool not closed: this one tries again."""
        self._stop_intake(cancel_pending)
        if cancel_pending:
            for task in list(self._calls):
                task.cancel()
        closing = self._closing_task
        if closing is None or (closing.done() and not self._closed):
            closing = self._closing_task = asyncio.get_running_loop().create_task(self._close())
        return closing

    async def _close(self) -> None:
        """Waits for the start, the calls submit() accepted and the calls in flight, then closes
        what the pool owns; marks the pool closed only if all of that succeeded."""
        if self._starting is not None:  # let a start finish, to close what it opened
            await asyncio.wait([self._starting])
        while self._handed:  # none is added once closing, and only this loop takes them in
            self._all_handed = asyncio.get_running_loop().create_future()
            await self._all_handed
        while self._calls:
            await asyncio.wait(list(self._calls))
        try:
            if self._client is not None and self._owns_client:
                await self._client.close()
        finally:
            if self._cluster is not None:
                await self._cluster.close()
        self._closed = True

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stops accepting calls and closes the client and the cluster the pool created, once
        the calls in flight are done (with ``cancel_pending``, they are cancelled first). The
        calls in flight include those :meth:`submit` accepted from another thread before the
        shutdown, even if they had not reached the pool's loop yet.

        From another thread than the pool's loop, ``wait=True`` returns once all is closed.
        On the loop's own thread it cannot wait — the loop drives the client — and raises
        :class:`RuntimeError`: ``await pool.aclose()`` there, or ``shutdown(wait=False)``,
        which closes in a loop task: the loop must keep running until that task is done (a
        loop that ends first, as ``asyncio.run`` does when its main coroutine returns,
        cancels it and leaves the cluster open; ``await pool.aclose()`` waits for it). A close
        that failed or was cancelled is tried again by the next call; calling it again
        otherwise is harmless.

        Raises:
            RuntimeError: ``wait=True`` on the pool's loop thread, or the pool's loop is not
                running (nothing can close its client).
        """
        loop = self._loop
        if self._closed or loop is None or loop.is_closed():
            self._stop_intake(cancel_pending)
            self._closed = True
            return
        if _running_loop() is loop:
            if wait:
                raise RuntimeError(
                    "offload: DaskPool.shutdown(wait=True) cannot wait on its own event loop's "
                    "thread (the loop drives the Dask client): use `await pool.aclose()`, "
                    "`async with`, or shutdown(wait=False)"
                )
            self._begin_close(cancel_pending)
            return
        if not loop.is_running():
            raise RuntimeError(
                "offload: this DaskPool's event loop is not running, so its Dask client "
                "cannot be closed: call `await pool.aclose()` on that loop"
            )
        self._stop_intake(cancel_pending)
        closing = asyncio.run_coroutine_threadsafe(self.aclose(cancel_pending=cancel_pending), loop)
        if wait:
            closing.result()

    async def __aenter__(self) -> "DaskPool":
        return await self.start()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        if self._closed:
            state = "shut down"
        elif self._closing:
            state = "shutting down"
        elif self._ready:
            state = "running"
        else:
            state = "not started"
        address = getattr(getattr(self._client, "scheduler", None), "address", None)
        where = f" scheduler={address!r}" if address else ""
        return f"<offload.DaskPool{where} {state} in_flight={self._in_flight}>"
