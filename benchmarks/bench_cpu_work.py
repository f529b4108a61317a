"""The functions test_bench_cpu.py sends to worker interpreters, worker processes and threads.

InterpreterPool and ProcessPool send a function by reference, so it must live in a module the
workers can import: this one (the benchmarks directory is on sys.path under pytest, and both
pools start from the caller's sys.path). Only the standard library, and at module level only
modules built into the interpreter: worker interpreters import this module too, and extension
modules are best kept out of them (CPython gh-119213 on 3.12.0-3.12.3).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Tuple


def spin(n: int) -> int:
    """Pure-Python CPU work holding the GIL throughout: about n * 60 ns on this machine."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def calibrate_spin(seconds: float) -> int:
    """The n for which spin(n) takes about ``seconds`` here. From the fastest of five timings,
    after 0.2 s of warming up (a VM's CPU that was idle can run slowly at first): on a shared
    machine a slower timing measures the neighbours, not the work."""
    warm_until = time.perf_counter() + 0.2
    while time.perf_counter() < warm_until:
        spin(10_000)
    n = 20_000
    while True:  # grow n until a timing is long enough to scale from
        start = time.perf_counter()
        spin(n)
        if time.perf_counter() - start >= seconds / 4:
            break
        n *= 2
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        spin(n)
        best = min(best, time.perf_counter() - start)
    return max(1, round(n * seconds / best))


def tiny(x: int) -> int:
    """A trivial call: its cost is the pool's overhead alone."""
    return x


def worker_id(n: int) -> Tuple[int, int]:
    """spin(n), then which worker ran it: (process id, thread id). The warm-up checks with it
    that every worker of a pool has answered a call."""
    spin(n)
    return os.getpid(), threading.get_ident()


def sha256_digest(blob: bytes) -> bytes:
    """GIL-releasing work (hashlib drops the GIL for inputs over 2 KiB). Thread pools only:
    hashlib is imported on the first call, not with this module, so worker interpreters that
    import the module never load it."""
    import hashlib

    return hashlib.sha256(blob).digest()
