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
import time
from typing import Any, Dict, Tuple

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


def sleep_then(item: Tuple[Any, float]) -> Any:
    """``(value, seconds)``: returns ``value`` after ``seconds``, to finish out of order."""
    value, seconds = item
    time.sleep(seconds)
    return value


def token(size: int) -> str:
    """Random each time it runs."""
    return os.urandom(size).hex()


def read_var() -> str:
    return VAR.get()


def block(started: str, release: str, timeout: float = 30.0) -> int:
    """Appends this worker's pid to ``started``, waits until ``release`` exists, returns the pid."""
    with open(started, "a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + timeout
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} was never created")
        time.sleep(POLL_INTERVAL)
    return os.getpid()


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
