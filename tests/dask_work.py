"""Work for the DaskPool tests (test_dask.py), run by Dask worker processes.

The functions are module-level, so workers load them by reference (cloudpickle pickles a
function of an importable module by name): Dask's worker processes are started by
multiprocessing's spawn, which gives them the test process's sys.path, where pytest put this
directory.

Nothing waits by sleeping: a call that must block appends its process id to a "started" file
(which the test polls, with a deadline) and waits, with a deadline too, until the test creates
a "release" file.
"""

from __future__ import annotations

import contextvars
import os
import signal
import threading
import time
from typing import Any, Dict, Optional, Tuple

POLL_INTERVAL = 0.005

# Set by a test in its own process: a worker process sees the default.
VAR: "contextvars.ContextVar[str]" = contextvars.ContextVar("offload_dask_test", default="default")


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0, *, key: str = "") -> str:
    """``key`` is also the name of a ``client.submit`` option: it must reach the function."""
    return f"{a + b}{key}"


def fail(message: str) -> None:
    raise ValueError(message)


def fail_if_negative(x: int) -> int:
    if x < 0:
        raise ValueError(f"{x} is negative")
    return x


def fail_from(message: str) -> None:
    """Raises ValueError(message) chained to a KeyError (``raise ... from ...``)."""
    try:
        {}["missing"]
    except KeyError as error:
        raise ValueError(message) from error


def leave(how: str) -> None:
    """Raises SystemExit or KeyboardInterrupt (``how`` names it), which Dask would take for its
    worker process ending."""
    raise {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}[how](f"{how} from leave")


def make_lock() -> Any:
    """A result that cannot be pickled back to the caller."""
    return threading.Lock()


def make_lock_for(_item: Any) -> Any:
    """:func:`make_lock` for map."""
    return make_lock()


def value_after(item: Tuple[Any, Optional[str]]) -> Any:
    """``(value, release)``: returns ``value`` once ``release`` exists (at once if None), to
    finish out of order."""
    value, release = item
    if release is not None:
        wait_for_file(release)
    return value


def token(size: int) -> str:
    """Random each time it runs."""
    return os.urandom(size).hex()


def read_var() -> str:
    return VAR.get()


def wait_for_file(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was never created")
        time.sleep(POLL_INTERVAL)


def block(started: str, release: str, timeout: float = 30.0) -> int:
    """Appends this worker's pid to ``started``, waits until ``release`` exists, returns the pid."""
    with open(started, "a") as f:
        f.write(f"{os.getpid()}\n")
    wait_for_file(release, timeout)
    return os.getpid()


class SentSlowly:
    """A result that takes as long to send as a test wants: pickling it (when its worker sends
    it to a client) appends the worker's pid to ``started`` and waits until ``release``
    exists; it arrives as the int ``value``."""

    def __init__(self, value: int, started: str, release: str) -> None:
        self.value, self.started, self.release = value, started, release

    def __reduce__(self) -> Tuple[Any, Tuple[int]]:
        block(self.started, self.release)
        return (int, (self.value,))


def send_slowly(value: int, started: str, release: str) -> SentSlowly:
    return SentSlowly(value, started, release)


def block_on(item: Tuple[str, str]) -> int:
    """:func:`block` for map and imap: ``item`` is its two paths."""
    return block(*item)


def kill_own_worker() -> None:
    """Kills the worker process running it, every time it runs."""
    os.kill(os.getpid(), signal.SIGKILL)


def task_states(dask_scheduler: Any) -> Dict[str, str]:
    """Run on the scheduler (``run_on_scheduler``): every task it knows and its state."""
    return {str(key): task.state for key, task in dask_scheduler.tasks.items()}


def fail_or_block(item: Any) -> Any:
    """For map: ``None`` fails at once; anything else is the arguments of :func:`block`."""
    if item is None:
        fail("first")
    return block(*item)
