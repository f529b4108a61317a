"""imap: the results of ``fn(item)`` as an async iterator with at most ``window`` calls in
flight, over the ``run`` of any pool (the native pools and DaskPool share it).

The input is read only as results are consumed (backpressure); leaving the iteration early
cancels the calls not yet started and marks the failures nobody will see as retrieved.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Optional, Set, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_get_running_loop = asyncio.get_running_loop


def default_window(workers: int) -> int:
    """The window when none is given: four calls in flight per worker (at least one)."""
    return 4 * max(1, workers)


def windowed(
    run: Callable[..., "asyncio.Future[R]"],
    fn: Callable[[T], R],
    items: Iterator[T],
    *,
    ordered: bool,
    window: int,
) -> AsyncIterator[R]:
    """``fn(item)`` for each of ``items``, each call made by ``run(fn, item)``, at most
    ``window`` in flight: the results in input order (``ordered``) or as they complete. The
    first exception ends the iteration; ``window`` is already checked."""
    return (_imap_ordered if ordered else _imap_unordered)(run, fn, items, window)


async def _imap_ordered(
    run: Callable[..., "asyncio.Future[R]"], fn: Callable[[T], R], items: Iterator[T], window: int
) -> AsyncIterator[R]:
    pending: "collections.deque[asyncio.Future[R]]" = collections.deque()
    try:
        while True:
            for item in itertools.islice(items, window - len(pending)):
                pending.append(run(fn, item))
            if not pending:
                return
            yield await pending.popleft()
    finally:
        _abandon(pending)


async def _imap_unordered(
    run: Callable[..., "asyncio.Future[R]"], fn: Callable[[T], R], items: Iterator[T], window: int
) -> AsyncIterator[R]:
    # Not asyncio.wait: it refuses calls, which are coroutines too (see offload.Call).
    loop = _get_running_loop()
    pending: "Set[asyncio.Future[R]]" = set()
    done: "collections.deque[asyncio.Future[R]]" = collections.deque()
    wakeup: "Optional[asyncio.Future[None]]" = None

    def finished(call: "asyncio.Future[R]") -> None:
        if call in pending:
            pending.discard(call)
            done.append(call)
            if wakeup is not None and not wakeup.done():
                wakeup.set_result(None)

    try:
        while True:
            for item in itertools.islice(items, window - len(pending) - len(done)):
                call = run(fn, item)
                pending.add(call)
                call.add_done_callback(finished)
            if done:
                yield done.popleft().result()
            elif pending:
                wakeup = loop.create_future()
                await wakeup
            else:
                return
    finally:
        _abandon(done)
        _abandon(list(pending))
        pending.clear()


def _abandon(futures: "Iterable[asyncio.Future[Any]]") -> None:
    """The results an imap left early will not deliver: calls not started are cancelled, and
    the exceptions of calls that failed meanwhile are marked as seen, as asyncio.gather does
    for its children, so asyncio does not log them as never retrieved."""
    for future in futures:
        if not future.cancel() and not future.cancelled():
            future.exception()
