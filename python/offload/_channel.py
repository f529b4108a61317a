"""Channels: multi-producer, multi-consumer queues shared by coroutines on any event loop,
plain threads and select, that never lose or duplicate an item.

The C++ core (``offload::Channel``) does the hand-off: a sender that finds a waiting receiver
gives the item straight to it, first come first served, and a woken receiver has already been
served, so nobody overtakes it. A coroutine waits on its own loop's notifier; the item stays in
the core's waiter until the resumed coroutine takes it, so cancellation can never drop it.
"""

from __future__ import annotations

import asyncio
import collections.abc
import sys
from dataclasses import dataclass
from typing import (
    Any,
    AsyncIterator,
    Coroutine,
    Generic,
    Iterable,
    Iterator,
    NamedTuple,
    Optional,
    Tuple,
    TypeVar,
    cast,
)

from . import _core
from ._checks import check_timeout
from ._errors import ChannelClosed, WouldBlock
from ._core import notifier_for

T = TypeVar("T")

_get_running_loop = asyncio.get_running_loop
_CancelledError = asyncio.CancelledError

_EMPTY = object()
_RECV = object()


@dataclass(frozen=True)
class ChannelStats:
    """Counters of a channel, read at one moment.

    ``sent`` counts items accepted by the channel, ``received`` items taken out of it (an item
    a cancelled receiver gave back is counted once, when it is finally received), so
    ``sent - received`` items are buffered or being handed over. ``waiting_senders`` and
    ``waiting_receivers`` count parties blocked on the channel (threads, coroutines, selects).

    >>> ch = offload.Channel(4)
    >>> ch.send_nowait("a")
    >>> ch.send_nowait("b")
    >>> ch.recv_nowait()
    'a'
    >>> ch.stats()
    ChannelStats(capacity=4, buffered=1, waiting_senders=0, waiting_receivers=0, sent=2, received=1, closed=False)
    """

    capacity: Optional[int]
    buffered: int
    waiting_senders: int
    waiting_receivers: int
    sent: int
    received: int
    closed: bool


_MAX_CAPACITY = 2**63 - 1


def _check_capacity(capacity: Optional[int]) -> Optional[int]:
    if capacity is None:
        return None
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(
            f"offload: Channel capacity must be an int or None, got {type(capacity).__name__}"
        )
    if capacity < 0:
        raise ValueError(f"offload: Channel capacity must be >= 0 (0: rendezvous), got {capacity}")
    if capacity > _MAX_CAPACITY:
        raise ValueError(
            f"offload: Channel capacity must be at most {_MAX_CAPACITY} (None: unbounded),"
            f" got {capacity}"
        )
    return capacity


def _closed(op: Optional["Operation"] = None) -> ChannelClosed:
    error = cast(ChannelClosed, _core.channel_closed_error())  # the one message, native
    error.op = op
    return error


async def _settle(
    future: "asyncio.Future[None]",
    waiter: Any,
    cores: Iterable[Any],
    expired: Optional[BaseException] = None,
) -> Tuple[int, bool, bool]:
    """Awaits a loop waiter; returns (index, is_send, closed) of the operation that happened.
    While it waits, the future is pinned on the core channels `cores` (by the native waiter;
    unpinned here once the coroutine resumes).

    Interrupted before any operation happened (cancelled, timed out, the coroutine closed), it
    withdraws every operation and re-raises. If one happened at that instant:
      * a receive gives its item back to the channel and the interruption is raised;
      * a send has delivered its item, so the send *happened*: it returns normally (a
        CancelledError from a send always means the item was not delivered), and the
        cancellation is passed on to the task's next await unless it is withdrawn meanwhile
        (_cancel_again_later);
      * the select's own deadline (`expired`) lost the race: the outcome is returned.
    """
    try:
        await future
    except BaseException as exc:
        if waiter.withdraw():
            raise
        outcome: Tuple[int, bool, bool] = waiter.happened()
        _, is_send, closed = outcome
        if exc is expired:
            return outcome
        if closed:
            raise
        if not is_send:
            waiter.give_back()
            raise
        if isinstance(exc, _CancelledError):
            _cancel_again_later(exc)
            return outcome
        raise
    finally:
        _unpin_waiting(cores, future)
    return waiter.happened()  # type: ignore[no-any-return]


def _cancel_again_later(exc: BaseException) -> None:
    """A send happened although its task was being cancelled, so the send returns normally;
    this passes the cancellation on to the task's next await, so that it is not lost, unless
    it is withdrawn: ``asyncio.timeout`` (so ``wait_for`` from 3.12) and ``TaskGroup``
    withdraw the cancellations they made with ``uncancel()`` (Python 3.11+), and a timeout
    that lost the race to the send must then just end, as the send succeeded.

    * 3.11+: the request is renewed from a callback once the task moved on, if
      ``cancelling()`` still shows it; a task that finished meanwhile has nothing left to
      cancel. Not at once with ``cancel(); uncancel()``: on 3.13 that leaves the task's
      must-cancel flag set (``uncancel`` clears it only when the count reaches zero), so a
      coroutine whose last step was the send would end as a cancelled task, although its
      send was delivered.
    * 3.9, 3.10: nothing withdraws a cancellation; renewed from a callback too, if the task
      has not finished (renewed at once, it would end as cancelled a coroutine whose last
      step was the send: the task's must-cancel flag wins over its result).
    """
    task = asyncio.current_task()
    if task is None:
        return
    message = exc.args[0] if exc.args else None
    requested = task.cancelling() if hasattr(task, "cancelling") else None
    task.get_loop().call_soon(_cancel_if_still_requested, task, requested, message)


def _cancel_if_still_requested(task: "asyncio.Task[Any]", requested: Optional[int], message: Any) -> None:
    if task.done():
        return
    if requested is None:  # 3.9, 3.10
        task.cancel(message)
    elif requested > 0 and task.cancelling() >= requested:
        task.cancel(message)  # lands at the task's next await...
        task.uncancel()  # ...without counting the same request twice


def _unpin_waiting(cores: Iterable[Any], future: "asyncio.Future[Any]") -> None:
    for core in cores:
        core.waiting.discard(future)


# The slow paths of Channel.recv / send / __anext__: the native awaitable (offload._core)
# tries the operation at once and, when it would block, runs one of these and delegates to it.


async def _recv_wait(core: Any) -> Any:
    loop = _get_running_loop()
    future = loop.create_future()
    waiter = core.recv_waiter(notifier_for(loop), future)
    _, _, closed = await _settle(future, waiter, (core,))
    if closed:
        raise _closed()
    return waiter.take()


async def _anext_wait(core: Any) -> Any:
    try:
        return await _recv_wait(core)
    except ChannelClosed:
        raise StopAsyncIteration from None


async def _send_wait(core: Any, item: Any) -> None:
    loop = _get_running_loop()
    future = loop.create_future()
    waiter = core.send_waiter(item, notifier_for(loop), future)
    _, _, closed = await _settle(future, waiter, (core,))
    if closed:
        raise _closed()


collections.abc.Coroutine.register(_core.ChannelAwaitable)


class Channel(Generic[T]):
    """A multi-producer, multi-consumer channel of Python objects, shared by coroutines on any
    number of event loops, by plain threads and by :func:`select`.

    ``capacity`` is required: ``> 0`` buffers that many items, ``0`` makes a rendezvous channel
    (a send completes when a receiver takes the item; one that is cancelled at that instant
    gives it back to the channel for the next receiver), ``None`` is unbounded.

    Example: a blocking producer thread feeding a coroutine:

    >>> import threading
    >>> lines: offload.Channel[str] = offload.Channel(capacity=2)
    >>> def reader() -> None:                      # a plain thread, reading a file say
    ...     for line in ["alpha", "beta", "gamma", "delta"]:
    ...         lines.send_blocking(line)          # waits, GIL released, while full
    ...     lines.close()
    >>> async def consumer() -> list:
    ...     return [line.upper() async for line in lines]   # until closed and drained
    >>> threading.Thread(target=reader).start()
    >>> asyncio.run(consumer())
    ['ALPHA', 'BETA', 'GAMMA', 'DELTA']

    Ordering: items are received in the order they were sent, and waiting parties are served
    first come, first served: a sender hands its item straight to the longest-waiting
    receiver, which cannot be overtaken.

    Close: :meth:`close` makes every later send raise :class:`ChannelClosed` and wakes every
    waiter. Waiting senders get :class:`ChannelClosed` (their items were not delivered).
    Receivers drain the items buffered before the close, then get :class:`ChannelClosed`.

    Cancellation: a cancelled :meth:`recv` never loses an item — one already handed to it goes
    back to the head of the channel (or to the next waiting receiver). A :meth:`send` that
    raises ``CancelledError`` (or a ``send_blocking`` that raises ``TimeoutError``) did not
    deliver its item. If a receiver took the item at the very instant the sending task was
    cancelled, ``send`` returns normally (the item *was* delivered) and the cancellation
    takes effect at the task's next ``await`` instead — unless it was withdrawn by then: a
    timeout (``asyncio.timeout``, ``wait_for``) that lost that race to the send just ends, as
    the send succeeded (Python 3.11+, where timeouts withdraw their cancellations). Before
    Python 3.12, ``asyncio.wait_for`` runs the send in a task of its own and may raise
    ``TimeoutError`` for a send that happened in that instant; ``asyncio.timeout`` (3.11+) or
    :func:`select` with ``timeout=`` do not.

    Like coroutines, the awaitables of ``send``, ``recv`` and ``async for`` do nothing until
    awaited (a forgotten ``await`` warns ``RuntimeWarning: ... was never awaited``). A waiting
    coroutine is kept alive by the channel, as ``asyncio.Queue`` keeps its getters, so a
    fire-and-forget consumer task is not garbage-collected while it waits.

    Raises:
        TypeError: ``capacity`` is not an int or None.
        ValueError: ``capacity`` is negative or larger than ``2**63 - 1``.
    """

    def __init__(self, capacity: Optional[int]) -> None:
        self._core = core = _core.Channel(_check_capacity(capacity))
        # Futures of coroutines waiting on it, pinned by their native waiters while they wait,
        # as asyncio.Queue keeps its getters (the waiter holds the future weakly, so that a
        # coroutine abandoned on a dead loop stays collectable with its channel).
        core.waiting = set()
        # The operations are native functions bound to the core channel: the methods below
        # call them, and so that no Python frame stands in between, they also shadow those
        # methods as instance attributes — except the ones a subclass overrides.
        self._native = native = core.bind()
        cls = type(self)
        for name, fn in native.items():
            if cls is Channel or getattr(cls, name) is getattr(Channel, name):
                self.__dict__[name] = fn

    # -- coroutines ---------------------------------------------------------------------------

    def send(self, item: T) -> Coroutine[Any, Any, None]:
        """Sends ``item``, waiting while the channel is full (or, for a rendezvous channel,
        until a receiver takes it). Works in any running event loop; ``await`` it (it is a
        coroutine: nothing happens before it runs).

        Raises:
            ChannelClosed: the channel is closed (before or while waiting); not delivered.
            asyncio.CancelledError: the task was cancelled; the item was not delivered.
        """
        return self._native["send"](item)  # type: ignore[no-any-return]

    def recv(self) -> Coroutine[Any, Any, T]:
        """Receives the next item, waiting until one is sent. Works in any running event loop;
        ``await`` it (it is a coroutine: nothing happens before it runs).

        Raises:
            ChannelClosed: the channel is closed and drained.
            asyncio.CancelledError: the task was cancelled; no item was taken (one handed
                over at that instant went back to the channel).
        """
        return self._native["recv"]()  # type: ignore[no-any-return]

    # -- no waiting ---------------------------------------------------------------------------

    def send_nowait(self, item: T) -> None:
        """Sends ``item`` if that can happen at once (buffer space, or a waiting receiver).

        >>> ch = offload.Channel(1)
        >>> ch.send_nowait("x")
        >>> len(ch)
        1

        Raises:
            WouldBlock: the channel is full (or no receiver waits on a rendezvous channel).
            ChannelClosed: the channel is closed.
        """
        self._native["send_nowait"](item)

    def recv_nowait(self) -> T:
        """Receives an item if one is ready at once.

        >>> ch = offload.Channel(None)
        >>> for i in range(3):
        ...     ch.send_nowait(i)
        >>> ch.recv_nowait(), ch.recv_nowait()
        (0, 1)

        Raises:
            WouldBlock: nothing is buffered and no sender waits.
            ChannelClosed: the channel is closed and drained.
        """
        return self._native["recv_nowait"]()  # type: ignore[no-any-return]

    # -- threads ------------------------------------------------------------------------------

    def send_blocking(self, item: T, timeout: Optional[float] = None) -> None:
        """Sends ``item`` from a thread, waiting up to ``timeout`` seconds (``None``: no limit)
        with the GIL released. On the main thread, Ctrl-C interrupts the wait.

        >>> ch = offload.Channel(1)
        >>> ch.send_blocking("first", timeout=1)
        >>> ch.send_blocking("second", timeout=0.01)   # full, and nobody receives
        Traceback (most recent call last):
          ...
        TimeoutError: ...

        Raises:
            TimeoutError: the timeout passed first; the item was not delivered.
            ChannelClosed: the channel is closed; the item was not delivered.
            TypeError, ValueError: ``timeout`` is not a number (or is NaN).
            KeyboardInterrupt: from a Ctrl-C during the wait; in the rare case that a receiver
                took the item at that very instant, it was delivered.
        """
        self._native["send_blocking"](item, timeout)

    def recv_blocking(self, timeout: Optional[float] = None) -> T:
        """Receives an item from a thread, waiting up to ``timeout`` seconds (``None``: no
        limit) with the GIL released. On the main thread, Ctrl-C interrupts the wait.

        >>> import threading
        >>> ch = offload.Channel(0)                     # rendezvous: no buffer
        >>> threading.Thread(target=ch.send_blocking, args=("hello",)).start()
        >>> ch.recv_blocking(timeout=10)
        'hello'

        Raises:
            TimeoutError: the timeout passed first; nothing was taken.
            ChannelClosed: the channel is closed and drained.
            TypeError, ValueError: ``timeout`` is not a number (or is NaN).
        """
        return self._native["recv_blocking"](timeout)  # type: ignore[no-any-return]

    # -- state --------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel: later sends raise :class:`ChannelClosed`, every waiting party is
        woken, receivers drain what is buffered. Calling it again does nothing.

        >>> ch = offload.Channel(None)
        >>> ch.send_nowait(1)
        >>> ch.close()
        >>> ch.closed, list(ch)                         # drained, then iteration ends
        (True, [1])
        """
        self._core.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._core.closed)

    @property
    def capacity(self) -> Optional[int]:
        """The buffer size: ``0`` for a rendezvous channel, ``None`` when unbounded."""
        capacity: Optional[int] = self._core.capacity
        return capacity

    def __len__(self) -> int:
        """The number of buffered items."""
        return len(self._core)

    def stats(self) -> ChannelStats:
        """The channel's counters; see :class:`ChannelStats`."""
        return ChannelStats(capacity=self.capacity, closed=self.closed, **self._core.stats())

    # -- select -------------------------------------------------------------------------------

    def recv_op(self) -> "Operation":
        """A receive from this channel, for :func:`select`."""
        return Operation(self, _RECV)

    def send_op(self, item: T) -> "Operation":
        """A send of ``item`` to this channel, for :func:`select`."""
        return Operation(self, item)

    # -- iteration ----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[T]:
        """``async for item in channel`` receives until the channel is closed and drained."""
        return self

    def __anext__(self) -> Coroutine[Any, Any, T]:
        return self._native["__anext__"]()  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[T]:
        """``for item in channel`` (in a thread) receives until closed and drained."""
        return self

    def __next__(self) -> T:
        try:
            return self._native["recv_blocking"]()  # type: ignore[no-any-return]
        except ChannelClosed:
            raise StopIteration from None

    def __repr__(self) -> str:
        s = self._core.stats()
        capacity = "unbounded" if self.capacity is None else self.capacity
        state = "closed" if self.closed else "open"
        return (
            f"<offload.Channel capacity={capacity} {state} buffered={s['buffered']}"
            f" waiting_senders={s['waiting_senders']} waiting_receivers={s['waiting_receivers']}>"
        )


# --------------------------------------------------------------------------------------------
# select


class Operation:
    """One operation for :func:`select`: a receive from a channel (``channel.recv_op()``) or a
    send of an item to it (``channel.send_op(item)``).

    >>> ch = offload.Channel(1)
    >>> op = ch.send_op("item")
    >>> op.is_send, op.channel is ch
    (True, True)
    >>> offload.select_nowait(ch.recv_op(), op).op is op   # nothing to receive: the send
    True
    """

    __slots__ = ("channel", "_item")

    def __init__(self, channel: Channel[Any], item: Any) -> None:
        if not isinstance(channel, Channel):
            raise TypeError(f"offload: expected a Channel, got {type(channel).__name__}")
        self.channel = channel
        self._item = item

    @property
    def is_send(self) -> bool:
        """True for a send, false for a receive."""
        return self._item is not _RECV

    def __repr__(self) -> str:
        kind = "send" if self.is_send else "recv"
        return f"<offload.Operation {kind} on {self.channel!r}>"


class Selected(NamedTuple):
    """What :func:`select` did: ``op`` is the operation that happened; ``value`` is the item
    it received (``None`` for a send).

    >>> ch = offload.Channel(1)
    >>> ch.send_nowait("ready")
    >>> op, value = offload.select_nowait(ch.recv_op())
    >>> value
    'ready'
    """

    op: Operation
    value: Any


def _select_args(ops: Tuple[Operation, ...]) -> Tuple[list, list]:  # type: ignore[type-arg]
    if not ops:
        raise ValueError("offload: select() needs at least one operation")
    for op in ops:
        if not isinstance(op, Operation):
            raise TypeError(
                "offload: select() takes operations made by channel.recv_op() or "
                f"channel.send_op(item), got {type(op).__name__}"
            )
    return [op.channel._core for op in ops], [op._item for op in ops]


def _selected(ops: Tuple[Operation, ...], index: int, item: Any, closed: bool) -> Selected:
    if closed:
        raise _closed(ops[index])
    return Selected(ops[index], item)


async def select(*ops: Operation, timeout: Optional[float] = None) -> Selected:
    """Waits until one of several channel operations can happen, and does exactly that one.

    Each operation is ``channel.recv_op()`` or ``channel.send_op(item)``, on any channels.
    When several are ready at once, the first one listed happens. Works in any running event
    loop; :func:`select_blocking` is the same for threads, :func:`select_nowait` never waits.

    Example: serve urgent requests first, and stop when told to:

    >>> async def serve(urgent, normal, stop) -> list:
    ...     handled = []
    ...     while True:
    ...         op, value = await offload.select(stop.recv_op(), urgent.recv_op(), normal.recv_op())
    ...         if op.channel is stop:
    ...             return handled
    ...         handled.append(value)
    >>> urgent, normal, stop = offload.Channel(None), offload.Channel(None), offload.Channel(1)
    >>> for job in ["n1", "n2"]:
    ...     normal.send_nowait(job)
    >>> urgent.send_nowait("u1")
    >>> async def main() -> list:
    ...     server = asyncio.ensure_future(serve(urgent, normal, stop))
    ...     while len(normal):                  # until the server took every job
    ...         await asyncio.sleep(0)
    ...     await stop.send(None)
    ...     return await server
    >>> asyncio.run(main())
    ['u1', 'n1', 'n2']

    Returns:
        ``Selected(op, value)``: the operation that happened and the item it received
        (``None`` for a send).

    Raises:
        ChannelClosed: the operation that came first met a closed channel (a send to a closed
            channel, or a receive from a closed and drained one); ``error.op`` says which.
        TimeoutError: ``timeout`` seconds passed with no operation possible; none happened.
        asyncio.CancelledError: the task was cancelled; no operation happened (with the same
            exception as :meth:`Channel.send` when a send was taken at that instant).
        TypeError, ValueError: no operations, or something else than an operation.
    """
    channels, items = _select_args(ops)
    seconds = check_timeout(timeout)
    loop = _get_running_loop()
    future = loop.create_future()
    distinct = tuple(dict.fromkeys(channels))  # a channel listed twice pins once
    waiter = _core.select_waiter(channels, items, notifier_for(loop), future, distinct)
    expired: Optional[BaseException] = None
    timer = None
    if seconds is not None and not future.done():
        expired = TimeoutError("offload: select timed out")
        timer = loop.call_later(max(seconds, 0.0), _expire, future, expired)
    try:
        index, _, closed = await _settle(future, waiter, set(channels), expired)
    finally:
        if timer is not None:
            timer.cancel()
    return _selected(ops, index, waiter.take(), closed)


def _expire(future: "asyncio.Future[None]", error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def select_blocking(*ops: Operation, timeout: Optional[float] = None) -> Selected:
    """:func:`select` for threads: waits up to ``timeout`` seconds (``None``: no limit) with
    the GIL released, then does exactly one operation.

    >>> import threading
    >>> results, errors = offload.Channel(0), offload.Channel(0)
    >>> threading.Thread(target=errors.send_blocking, args=("disk full",)).start()
    >>> op, value = offload.select_blocking(results.recv_op(), errors.recv_op(), timeout=10)
    >>> op.channel is errors, value
    (True, 'disk full')

    Raises:
        ChannelClosed, TimeoutError, TypeError, ValueError: as :func:`select`.
    """
    channels, items = _select_args(ops)
    index, item, closed = _core.select_blocking(channels, items, timeout)  # checked there
    return _selected(ops, index, item, closed)


def select_nowait(*ops: Operation) -> Selected:
    """:func:`select` without waiting: does the first operation that can happen at once.

    >>> high, low = offload.Channel(4), offload.Channel(4)
    >>> low.send_nowait("low")
    >>> high.send_nowait("high")
    >>> offload.select_nowait(high.recv_op(), low.recv_op()).value   # listed first wins
    'high'
    >>> offload.select_nowait(high.recv_op(), low.recv_op()).value
    'low'

    Raises:
        WouldBlock: none can happen now.
        ChannelClosed, TypeError, ValueError: as :func:`select`.
    """
    channels, items = _select_args(ops)
    outcome = _core.select_nowait(channels, items)
    if outcome is None:
        raise WouldBlock("offload: no operation of the select can happen now")
    return _selected(ops, *outcome)
