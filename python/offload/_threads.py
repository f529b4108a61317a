"""Worker threads as the threading module sees them.

Each native worker announces itself when it first runs Python: ``threading.current_thread()``
in a worker, ``threading.enumerate()``, logging's ``%(threadName)s`` and the tools built on
them show its name (``"offload-0"``, ...), the name the kernel shows to ``top -H``, uncut. A
worker withdraws as it exits, so no dead thread stays listed.
"""

from __future__ import annotations

import sys
import threading

from . import _core


def _started(name: str) -> None:
    # A thread that threading did not start gets a _DummyThread on first look; naming it is
    # public API.
    threading.current_thread().name = name


if sys.version_info >= (3, 13):

    def _stopping() -> None:
        pass  # CPython forgets a _DummyThread with its thread state

else:

    def _stopping() -> None:
        # Before 3.13 a _DummyThread stays in threading's table after its thread is gone, and
        # its ident may be reused by a new thread. threading has no public way to drop it.
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            threading._active.pop(threading.get_ident(), None)  # type: ignore[attr-defined]


_core.set_thread_hooks(_started, _stopping)
