"""One completion queue (``_core.Notifier``) per event loop.

Workers never touch an event loop. They push finished calls into the loop's notifier; the
notifier wakes the loop once per burst (an eventfd watched with ``loop.add_reader``) and the
loop completes the whole batch of asyncio futures on its own thread in ``drain()``. A loop
without ``add_reader`` gets one ``call_soon_threadsafe`` per burst instead.

The registry is keyed by ``id(loop)``. An entry is removed when its loop is garbage-collected
(weakref callback, so an id is never reused while its entry exists) and, for loops that
cannot be weakly referenced, when a later lookup finds the loop closed. Removing an entry
closes the notifier: results still queued for a closed loop are released, never delivered.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional

from . import _core

# id(loop) -> notifier; the hot path reads only this dict.
_notifiers: Dict[int, _core.Notifier] = {}
# id(loop) -> a callable returning the loop or None (a weakref, or a strong-ref stand-in).
_loop_refs: Dict[int, Callable[[], Any]] = {}
_lock = threading.Lock()
# Notifiers abandoned in a forked child: never touched again (their locks may be held by
# threads that did not survive the fork), kept alive so that nothing frees them either.
_abandoned: List[_core.Notifier] = []


def notifier_for(loop: asyncio.AbstractEventLoop) -> _core.Notifier:
    """The notifier of ``loop`` (the running loop of the calling thread), created on first use."""
    notifier = _notifiers.get(id(loop))
    if notifier is not None:
        return notifier
    return _attach(loop)


def registered_notifier(loop: asyncio.AbstractEventLoop) -> Optional[_core.Notifier]:
    """The notifier of ``loop`` if it has one already; safe from any thread (it attaches none:
    attaching touches the loop, which only its own thread may)."""
    return _notifiers.get(id(loop))


class _Waker:
    """Wakes a loop that cannot watch a file descriptor. Holds no reference to its notifier
    once detached, so that the pair can be freed."""

    __slots__ = ("loop", "drain")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.drain: Callable[[], object] | None = None

    def __call__(self) -> None:
        drain = self.drain
        if drain is not None:
            self.loop.call_soon_threadsafe(drain)


def _attach(loop: asyncio.AbstractEventLoop) -> _core.Notifier:
    if loop.is_closed():
        raise RuntimeError("offload: the event loop is closed")
    with _lock:
        _sweep_closed_loops()
        key = id(loop)
        notifier = _notifiers.get(key)
        if notifier is not None:
            return notifier
        notifier = _core.Notifier()
        try:
            loop.add_reader(notifier.fd, notifier.drain)
            detach_hook: Callable[[], None] = lambda: None
        except NotImplementedError:
            notifier.close()
            waker = _Waker(loop)
            notifier = _core.Notifier(wake=waker)
            waker.drain = notifier.drain

            def detach_hook() -> None:
                waker.drain = None

        def forget(_ref: object = None, key: int = key) -> None:
            _detach(key)

        try:
            loop_ref: Callable[[], Any] = weakref.ref(loop, forget)
        except TypeError:  # a loop type without weak references: kept until it is closed

            def loop_ref(loop: asyncio.AbstractEventLoop = loop) -> Any:
                return loop
        _notifiers[key] = notifier
        _loop_refs[key] = loop_ref
        _detach_hooks[key] = detach_hook
        return notifier


_detach_hooks: Dict[int, Callable[[], None]] = {}


def _detach(key: int) -> None:
    _core.forget_loops()  # first: the native per-thread cache must not outlive the entry
    notifier = _notifiers.pop(key, None)
    _loop_refs.pop(key, None)
    hook = _detach_hooks.pop(key, None)
    if hook is not None:
        hook()
    if notifier is not None:
        notifier.close()


def _sweep_closed_loops() -> None:
    """Detach the notifiers of loops that are closed (or gone)."""
    for key, ref in list(_loop_refs.items()):
        loop = ref()
        if loop is None or loop.is_closed():
            _detach(key)


def reset_after_fork() -> None:
    """In a forked child: forget every notifier without touching it."""
    _core.forget_loops()
    _abandoned.extend(_notifiers.values())
    _notifiers.clear()
    _loop_refs.clear()
    _detach_hooks.clear()
    global _lock
    _lock = threading.Lock()


_core.set_notifier_lookup(notifier_for)
