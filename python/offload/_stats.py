"""PoolStats: the counters every offload pool reports through ``stats()``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolStats:
    """Counters of a pool, read at one moment.

    ``workers`` is the most workers the pool runs at once, ``threads`` how many are started
    now (a pool for blocking calls starts them as calls need them; while a worker waits for
    calls of its own pool, one more may run). ``submitted`` counts calls accepted; each ends
    as ``completed`` (returned), ``failed`` (raised) or ``cancelled`` (cancelled before it
    started, or dropped by ``shutdown(cancel_pending=True)``). ``queued`` are waiting,
    ``busy`` workers are running calls. A ``map`` counts one call per worker that took part,
    not one per item.

    >>> with offload.Pool(workers=1) as pool:
    ...     print(pool.submit(pow, 2, 3).result())
    ...     print(pool.submit(int, "x").exception())
    8
    invalid literal for int() with base 10: 'x'
    >>> pool.stats()
    PoolStats(workers=1, submitted=2, completed=1, failed=1, cancelled=0, queued=0, busy=0, threads=0)
    """

    workers: int
    submitted: int
    completed: int
    failed: int
    cancelled: int
    queued: int
    busy: int
    threads: int
