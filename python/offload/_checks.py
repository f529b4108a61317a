"""Argument checks shared by the public entry points: each bad value gets a TypeError or a
ValueError that names the parameter, before anything reaches the native core."""

from __future__ import annotations

import os
import sys
from typing import Optional

from . import _core

# Far beyond any useful pool (each worker is an OS thread with its own stack), and far below
# what the platform would refuse with an error that names nothing.
MAX_WORKERS = 1 << 16


# The native checks, so that the fast paths and the Python entry points give the same error for
# the same value (cpp/binding/checks.h): TypeError naming the type of a non-callable; a timeout
# as float seconds or None, anything with __float__ or __index__ but a bool, not NaN, within a
# float (TypeError or ValueError otherwise).
check_callable = _core.check_callable
check_timeout = _core.check_timeout


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"offload: {what} must be a str, got {type(name).__name__}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"offload: {what} must be encodable as UTF-8: {error.reason}") from None
    return name


def check_count(value: Optional[int], what: str, maximum: int = MAX_WORKERS) -> int:
    """A count of workers (None: one per CPU available, the CPU pools' default), or of
    ``what`` at most ``maximum``."""
    if value is None:
        return int(_core.default_worker_count())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"offload: {what} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"offload: {what} must be at least 1, got {value}")
    if value > maximum:
        raise ValueError(f"offload: {what} must be at most {maximum}, got {value}")
    return value


def default_thread_workers() -> int:
    """How many worker threads a pool for blocking calls may run by default: the standard
    library's ``ThreadPoolExecutor`` default, ``min(32, cpus + 4)`` (``cpus`` from
    :func:`os.process_cpu_count` where it exists, as in 3.13, else :func:`os.cpu_count`)."""
    cpus: Optional[int] = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (cpus or 1) + 4)


def check_window(window: int) -> int:
    return check_count(window, "window", sys.maxsize)
