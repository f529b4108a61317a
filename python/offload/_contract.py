"""The pool contract: ``PoolLike``, the surface every offload pool offers, and ``FutureLike``,
what its ``submit`` returns, as :class:`typing.Protocol` classes.

:class:`Pool`, :class:`InterpreterPool` and :class:`ProcessPool` offer more (``workers``,
``name``, ``with``); :class:`DaskPool` offers the same members with its own ``submit`` future
(:class:`DaskFuture`) and adds ``start``, ``aclose`` and ``client``. Code written against
``PoolLike`` runs on any of them, and ``mypy --strict`` checks that each one still fits
(``tests/typed_usage.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Generator, Iterable, List
from typing import Optional, Protocol, Type, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import ParamSpec

    from ._call import Call
    from ._stats import PoolStats

    P = ParamSpec("P")

T = TypeVar("T")
R = TypeVar("R")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class FutureLike(Protocol[T_co]):
    """What every pool's ``submit`` returns: a future that threads wait on and any event loop
    awaits. :class:`offload.Future` (the native pools) and :class:`DaskFuture` (a
    :class:`concurrent.futures.Future` too) are both ``FutureLike``.

    ``await fut`` works on any running loop; cancelling the awaiting task cancels the call.
    ``add_done_callback`` is left out: each future passes its own type to the callback.

    >>> def wait_for(fut: offload.FutureLike[int]) -> int:
    ...     return fut.result(timeout=10)             # from any thread; or `await fut`
    >>> with offload.Pool(workers=1) as pool:
    ...     print(wait_for(pool.submit(pow, 2, 8)))
    256
    """

    def result(self, timeout: Optional[float] = None) -> T_co:
        """The call's return value; raises its exception. Waits up to ``timeout`` seconds
        (``None``: no limit).

        Raises:
            concurrent.futures.TimeoutError: the call did not finish in time.
            concurrent.futures.CancelledError: the call was cancelled.
        """

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The call's exception, or ``None`` if it returned; waits and raises as :meth:`result`
        does, but not the call's exception."""

    def done(self) -> bool:
        """True once the call returned, raised or was cancelled."""

    def running(self) -> bool:
        """True while a worker is known to run the call (a pool that is not told when a call
        starts, such as :class:`DaskPool`, always says ``False``)."""

    def cancelled(self) -> bool:
        """True if the call was cancelled."""

    def cancel(self) -> bool:
        """Cancels the call unless it is done: one that has not started never runs. Returns
        whether the future is now cancelled (see each pool for a call already running)."""

    def __await__(self) -> Generator[Any, None, T_co]: ...


@runtime_checkable
class PoolLike(Protocol):
    """The surface every offload pool offers, as :class:`os.PathLike` is that of paths: type
    a parameter ``PoolLike`` and pass a :class:`Pool`, :func:`default_pool`, an
    :class:`InterpreterPool`, a :class:`ProcessPool` or a :class:`DaskPool`.

    What each pool guarantees beyond this (where it may be called from, what its workers
    can run, how ``shutdown`` waits) is in its own documentation. Not in the contract, as not
    every pool has them: ``workers`` and ``name``, ``with`` (a :class:`DaskPool` closes only
    on its loop, in ``async with`` or ``aclose``), and :class:`DaskPool`'s ``start``,
    ``aclose`` and ``client``. ``isinstance(obj, PoolLike)`` checks that the members exist,
    not their signatures: ``mypy`` checks those.

    >>> async def lengths(pool: offload.PoolLike, words: list) -> list:
    ...     return await pool.map(len, words)            # on any kind of pool
    >>> async def main() -> list:
    ...     async with offload.Pool(workers=2) as pool:
    ...         return await lengths(pool, ["a", "bb", "ccc"])
    >>> asyncio.run(main())
    [1, 2, 3]
    >>> isinstance(offload.default_pool(), offload.PoolLike)
    True
    """

    def run(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> "Call[R]":
        """Runs ``fn(*args, **kwargs)`` on a worker; await the result in the running loop.

        The result is a :class:`Call`: in a running loop the call is submitted at once; with
        no running loop, when the call is first awaited. Awaiting it raises the call's
        exception. Cancelling the awaiting task cancels the call if it has not started; a
        running call is not interrupted.

        Raises:
            RuntimeError: the pool was shut down.
            TypeError: ``fn`` is not callable.
        """

    def submit(self, fn: "Callable[P, R]", /, *args: "P.args", **kwargs: "P.kwargs") -> FutureLike[R]:
        """Schedules ``fn(*args, **kwargs)`` and returns its :class:`FutureLike`, for threads
        (``result(timeout)``) and any event loop (``await``).

        Raises:
            RuntimeError: the pool was shut down.
            TypeError: ``fn`` is not callable.
        """

    def map(self, fn: Callable[[T], R], iterable: Iterable[T], /) -> "Call[List[R]]":
        """Runs ``fn(item)`` for every item; await the list of results, in input order.

        The iterable is consumed at once. If calls raise, one exception is raised: that of the
        lowest-indexed call among those the pool saw fail. Cancelling the awaiting task
        cancels the calls not yet handed to a worker. The result is a :class:`Call`, as for
        :meth:`run`.

        Raises:
            RuntimeError: the pool was shut down.
            TypeError: ``fn`` is not callable, or ``iterable`` is not iterable.
        """

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

        The iterable is read only as results are consumed. With ``ordered=True`` results come
        in input order, else as they complete. The first exception raised by a call ends the
        iteration with it; leaving the iteration early cancels the calls not yet started.

        Raises:
            TypeError: ``fn`` is not callable, ``window`` is not an int.
            ValueError: ``window`` is less than 1.
        """

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stops accepting calls. The calls in flight still finish, unless ``cancel_pending``
        is true: then the calls not started are cancelled (by a :class:`DaskPool`, every call
        in flight). With ``wait`` true, returns once the pool has stopped (a
        :class:`DaskPool` cannot wait on its own loop's thread). Calling it again is
        harmless."""

    def stats(self) -> "PoolStats":
        """The pool's counters, read at one moment; see :class:`PoolStats`."""

    @property
    def closed(self) -> bool:
        """True once the pool was shut down (from the call to ``shutdown`` on)."""

    async def __aenter__(self) -> "PoolLike":
        """Returns the pool (a :class:`DaskPool` starts here)."""

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        """Shuts the pool down and waits until it has stopped, without blocking the loop."""
