"""Contract: life cycle, on every pool kind (pool_kinds.py).

A pool dropped without shutdown is collected and its workers end on their own; the calls of a
loop that closed still run, and the pool serves other loops; at interpreter exit, running and
queued calls complete. A DaskPool belongs to the loop it started on and is closed there
(docs/guides/dask.md, "Loops" and "Shutting down"): what these promise for the native pools
is not promised for it, and each test says so. Shutdown itself: test_contract_shutdown.py.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

import cpu_work
from conftest import run_python, threads_named
from pool_kinds import TIMEOUT, Blocker, Kind
from pool_kinds import _dask_pool_per_test, blocker, kind, new_pool  # noqa: F401 (fixtures)

TESTS = str(Path(__file__).resolve().parent)
DASK_BELONGS_TO_ITS_LOOP = (
    "a DaskPool belongs to the loop it started on, and closing its Dask client needs that loop "
    "(dask.md, 'Loops', 'Shutting down': use async with or aclose); nothing is promised for one "
    "dropped, for its loop closing or for interpreter exit"
)


def test_a_pool_dropped_without_shutdown_is_collected_and_its_workers_end(kind: Kind) -> None:
    if kind.base == "dask":
        pytest.skip(DASK_BELONGS_TO_ITS_LOOP)
    if not kind.promises.own_pools:
        pytest.skip("the default pool is the process's own: it is never dropped")
    pool = kind.make(2, name="dropped")
    assert pool.submit(cpu_work.square, 3).result(TIMEOUT) == 9
    assert threads_named("dropped-") >= 1
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    # As ThreadPoolExecutor, collecting it does not wait: the workers exit on their own, and
    # nothing marks an OS thread's end: poll the kernel's list of this process's threads.
    deadline = time.monotonic() + TIMEOUT
    while threads_named("dropped-"):
        assert time.monotonic() < deadline, "the dropped pool's workers never ended"
        time.sleep(0.01)


def test_calls_of_a_closed_loop_still_run_and_the_pool_serves_other_loops(
    kind: Kind, blocker: Blocker, tmp_path: Path
) -> None:
    if kind.base == "dask":
        pytest.skip(DASK_BELONGS_TO_ITS_LOOP)
    log = tmp_path / "log"
    run = kind.run(kind.pool)

    async def leave() -> None:  # never awaited: the loop closes with one running, one queued
        run(cpu_work.block_then_append, *blocker.args()[:2], str(log), "running", TIMEOUT)
        run(cpu_work.append_line, str(log), "queued")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(leave())
    blocker.wait_started()
    loop.close()
    blocker.release()
    kind.settle(kind.pool, tmp_path / "settle")
    assert sorted(log.read_text().split()) == ["queued", "running"]

    async def again() -> Any:
        return await run(cpu_work.square, 6)

    assert kind.on_loop(again) == 36  # another loop: the kind's own


PROGRAM = """
import atexit, os, select, sys, warnings
sys.path.insert(0, {tests!r})
warnings.filterwarnings("ignore", message=".*gh-119213", category=RuntimeWarning)
import offload, cpu_work
started, release, log = {started!r}, {release!r}, {log!r}
pool = {make}
os.mkfifo(started)
fd = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
pool.submit(cpu_work.block_then_append, started, release, log, "running", 30)
for i in range(3):
    pool.submit(cpu_work.append_line, log, f"queued-{{i}}")
assert select.select([fd], [], [], 30)[0], "the call never started"
# Registered after offload's own exit handler, so it runs first: the call is released only
# once the interpreter is exiting, and is certainly still running then.
atexit.register(cpu_work.touch, release)
print("main exits", flush=True)
"""
MAKE = {
    "default": "offload.default_pool()",
    "thread": "offload.Pool(1)",
    "interpreter": "offload.InterpreterPool(1)",
    "process": "offload.ProcessPool(1)",
}


def test_exit_with_running_and_queued_calls_completes_them(kind: Kind, tmp_path: Path) -> None:
    if kind.base == "dask":
        pytest.skip(DASK_BELONGS_TO_ITS_LOOP)
    if kind.name.endswith("-uvloop"):
        pytest.skip("no loop takes part: the thread kind's test covers it")
    log = tmp_path / "log"
    program = PROGRAM.format(tests=TESTS, started=str(tmp_path / "started"), release=str(tmp_path / "release"),
                             log=str(log), make=MAKE[kind.base])
    result = run_python(program)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("main exits\n", "")
    ran = log.read_text().split()
    if kind.base == "default":  # many workers: the queued calls need not wait for the running one
        assert sorted(ran) == ["queued-0", "queued-1", "queued-2", "running"]
    else:  # one worker: in the order submitted, the running call first
        assert ran == ["running", "queued-0", "queued-1", "queued-2"]
