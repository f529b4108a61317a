"""Every kind of offload pool, for contract tests that run one suite over all of them, the way
CPython runs its executor tests over every executor.

A kind makes pools with make_pool(kind) and closes them with close_pool(pool), from outside
any loop. The work the contracts send lives in cpu_work.py, importable by worker interpreters
and processes (and by Dask's workers).

  default      offload.run / offload.default_pool()
  thread       offload.Pool
  interpreter  offload.InterpreterPool (Python 3.12+)
  process      offload.ProcessPool
  dask         offload.DaskPool on a LocalCluster shared by the session (offload[dask])
"""

from __future__ import annotations

import asyncio
import platform
import sys
import warnings
from typing import Any, Iterator, List, Optional

import pytest

import offload

KINDS = ["default", "thread", "interpreter", "process", "dask"]
WORKERS = 2


def skip_reason(kind: str) -> Optional[str]:
    if kind == "interpreter" and sys.version_info < (3, 12):
        return f"InterpreterPool needs Python >= 3.12; this is {platform.python_version()}"
    if kind == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            return "dask.distributed is not installed (pip install offload[dask])"
    return None


_cluster: Any = None
_opened: List[Any] = []


def dask_cluster() -> Any:
    """One LocalCluster (two worker processes, one thread each), made on first use.

    Its scheduler runs in this process. On CPython 3.13.0, creating subinterpreters while it
    runs crashes the process (free(): invalid pointer), with or without offload (reproduced
    with the _interpreters module alone): suites must not start InterpreterPools while it is
    open, which is why KINDS lists "dask" last and close_session() closes it."""
    global _cluster
    if _cluster is None:
        import distributed

        _cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    return _cluster


def make_pool(kind: str) -> Any:
    reason = skip_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    if kind == "default":
        return offload.default_pool()
    if kind == "thread":
        pool: Any = offload.Pool(WORKERS, name="contract")
    elif kind == "interpreter":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*gh-119213", category=RuntimeWarning)
            pool = offload.InterpreterPool(WORKERS)
    elif kind == "process":
        pool = offload.ProcessPool(WORKERS)
    else:
        pool = offload.DaskPool(dask_cluster().scheduler_address)
    _opened.append(pool)
    return pool


def close_pool(pool: Any) -> None:
    """Closes a pool from outside its loop. A DaskPool's client belongs to the loop it started
    on: closed there if that loop still runs, else forgotten with it."""
    if pool is offload.default_pool():
        return
    if isinstance(pool, offload.DaskPool):
        loop = pool._loop
        if loop is not None and not loop.is_closed() and loop.is_running():
            pool.shutdown(wait=True)
        elif loop is not None and not loop.is_closed():
            loop.run_until_complete(pool.aclose())
        else:
            pool.shutdown(wait=False)
        return
    pool.shutdown(wait=True)


def close_session() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.close()
        _cluster = None


@pytest.fixture(params=KINDS)
def pool_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_pool(pool_kind: str) -> Iterator[Any]:
    """A fresh pool of the parametrised kind (the default pool for "default")."""
    pool = make_pool(pool_kind)
    try:
        yield pool
    finally:
        close_pool(pool)


def in_loop_runner() -> Optional[asyncio.AbstractEventLoop]:
    return asyncio._get_running_loop()
