"""InterpreterPool and ProcessPool life cycle, each case in a fresh interpreter: exit, garbage
collection (interpreters and processes end), worker processes after the parent is gone, fork,
and the functions of a program's own __main__. Exit with calls running and queued is the
contract of every pool kind: test_contract_lifecycle.py."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, List, Optional

import pytest

from cpu_work import pid_exists, wait_for_exit

TESTS = str(Path(__file__).resolve().parent)
TIMEOUT = 60.0  # bound on every child process
HAS_INTERPRETERS = sys.version_info >= (3, 12)
KINDS = [
    pytest.param(
        "interpreter",
        marks=pytest.mark.skipif(
            not HAS_INTERPRETERS,
            reason=f"InterpreterPool needs Python >= 3.12 (own-GIL subinterpreters); "
            f"this is {platform.python_version()}",
        ),
    ),
    "process",
]

# Every child program starts with this: cpu_work importable, the 3.12.0-3.12.3 warning
# silenced (test_cpu_pools tests it), and `new_pool(workers)` building the pool under test.
PRELUDE = """\
import warnings
warnings.filterwarnings("ignore", message=".*gh-119213", category=RuntimeWarning)
import json, os, select, sys, time
import offload, cpu_work
KIND = {kind!r}

def new_pool(workers):
    if KIND == "interpreter":
        return offload.InterpreterPool(workers)
    return offload.ProcessPool(workers)

def fifo(path):
    os.mkfifo(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)

def wait_started(fd):
    assert select.select([fd], [], [], 30)[0], "a worker did not start"
    assert os.read(fd, 1) == b"x"
"""


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"<rc={self.returncode} stdout={self.stdout!r} stderr={self.stderr!r}>"


def run_python(code: str, kind: str = "process", timeout: float = TIMEOUT, argv: Optional[List[str]] = None) -> Result:
    """Runs `code` (after PRELUDE) in a fresh interpreter. Output goes to files, not pipes, so
    a worker process that outlives its parent cannot make this wait."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, env.get("PYTHONPATH")) if p)
    source = PRELUDE.format(kind=kind) + textwrap.dedent(code)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        command = argv if argv is not None else [sys.executable, "-c", source]
        proc = subprocess.run(command, stdout=out, stderr=err, env=env, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return Result(proc.returncode, out.read(), err.read())


def last_json(result: Result) -> Any:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result
    return json.loads(lines[-1])


def kill_leftovers(pids: List[int]) -> None:
    """Never leave a stray worker behind, even when a test fails."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- exit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_exit_with_an_unused_pool(kind: str) -> None:
    result = run_python("pool = new_pool(2)\nprint('bye')\n", kind)
    assert (result.returncode, result.stdout, result.stderr) == (0, "bye\n", "")


@pytest.mark.parametrize("kind", KINDS)
def test_exit_after_shutdown_and_errors(kind: str) -> None:
    result = run_python(
        """
        import asyncio
        async def main():
            async with new_pool(2) as pool:
                assert await pool.map(cpu_work.square, range(20)) == [x * x for x in range(20)]
                try:
                    await pool.run(cpu_work.raise_unpicklable, "x")
                except offload.RemoteError:
                    pass
                try:
                    await pool.run(cpu_work.return_generator)
                except offload.SendError:
                    pass
        asyncio.run(main())
        print("done", flush=True)
        """,
        kind,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")


# --- garbage collection --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_garbage_collected_pool_stops_its_workers(kind: str, tmp_path: Path) -> None:
    result = run_python(
        f"""
        import gc
        def named(prefix):
            n = 0
            for tid in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{{tid}}/comm") as f:
                        n += f.read().startswith(prefix)
                except FileNotFoundError:
                    pass
            return n
        def interpreters():
            for name in ("_interpreters", "_xxsubinterpreters"):
                try:
                    return len(__import__(name).list_all())
                except ImportError:
                    pass
            return None
        before = interpreters()
        if KIND == "interpreter":
            pool = offload.InterpreterPool(2, name="gcpool")
        else:
            pool = offload.ProcessPool(2, name="gcpool")
        paths = [{str(tmp_path / "a")!r}, {str(tmp_path / "b")!r}]
        calls = [pool.submit(cpu_work.meet, p, paths, 10.0) for p in paths]
        pids = sorted({{f.result(timeout=30)[0] for f in calls}})
        during = (named("gcpool-"), interpreters())
        del pool, calls
        gc.collect()
        # As ThreadPoolExecutor, collecting it does not wait: its workers exit on their own.
        deadline = time.monotonic() + 30
        while named("gcpool-") and time.monotonic() < deadline:
            time.sleep(0.01)  # nothing to wait on: the kernel's list of threads
        after = (named("gcpool-"), interpreters())
        print(json.dumps({{"before": before, "during": during, "after": after, "pids": pids}}))
        """,
        kind,
    )
    assert result.returncode == 0, result
    assert result.stderr == ""
    facts = last_json(result)
    assert facts["during"][0] == 2 and facts["after"][0] == 0  # threads joined
    if kind == "interpreter":
        if facts["before"] is not None:
            assert facts["during"][1] == facts["before"] + 2
            assert facts["after"][1] == facts["before"]  # interpreters ended
        assert facts["pids"] == [facts["pids"][0]]
    else:
        pids = facts["pids"]
        try:
            assert len(pids) == 2
            assert all(wait_for_exit(pid) for pid in pids)
        finally:
            kill_leftovers(pids)


# --- ProcessPool: no process outlives its parent -------------------------------------------

DESCENDANTS = """
def descendants(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                found.append(int(child))
                found.extend(descendants(int(child)))
    return found
"""


def two_busy_workers(tmp_path: Path) -> str:
    """A program that starts a ProcessPool(2), makes both workers meet, and prints their
    pids and the program's descendants as JSON; the caller appends how it ends."""
    return DESCENDANTS + f"""
import signal
pool = offload.ProcessPool(2)
paths = [{str(tmp_path / "a")!r}, {str(tmp_path / "b")!r}]
calls = [pool.submit(cpu_work.meet, p, paths, 10.0) for p in paths]
workers = sorted(f.result(timeout=30)[0] for f in calls)
print(json.dumps({{"workers": workers, "descendants": descendants(os.getpid())}}), flush=True)
"""


def test_process_pool_workers_are_gone_when_the_parent_exits(tmp_path: Path) -> None:
    result = run_python(two_busy_workers(tmp_path) + "# exits without shutdown\n")
    facts = last_json(result)
    everyone = sorted(set(facts["workers"]) | set(facts["descendants"]))
    try:
        assert result.returncode == 0, result
        assert result.stderr == ""
        assert len(set(facts["workers"])) == 2
        assert set(facts["workers"]) <= set(facts["descendants"])
        # offload stopped the workers before the interpreter finished exiting...
        assert [pid for pid in facts["workers"] if pid_exists(pid)] == []
        # ...and multiprocessing's fork server follows its parent.
        assert all(wait_for_exit(pid) for pid in everyone)
    finally:
        kill_leftovers(everyone)


def test_process_pool_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    result = run_python(
        two_busy_workers(tmp_path) + "os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no shutdown\n"
    )
    assert result.returncode == -signal.SIGKILL, result
    facts = last_json(result)
    everyone = sorted(set(facts["workers"]) | set(facts["descendants"]))
    try:
        assert len(set(facts["workers"])) == 2
        # The idle workers see their pipe close and exit; the fork server sees its parent go.
        assert [pid for pid in everyone if not wait_for_exit(pid)] == []
    finally:
        kill_leftovers(everyone)


def _run_many(code: str, runs: int, batch: int = 8) -> List[Result]:
    """Runs `code` up to `runs` times, `batch` at a time, stopping after a batch with a failure."""
    results: List[Result] = []
    with ThreadPoolExecutor(batch) as executor:
        while len(results) < runs:
            results += list(executor.map(lambda _: run_python(code), range(batch)))
            if any(r.returncode != 0 for r in results):
                break
    return results


def test_exit_right_after_process_pool_shutdown_without_wait_never_aborts() -> None:
    # Eight pools, eight helper threads. When the helper was a daemon thread, CPython ended it
    # with pthread_exit as it took the GIL back during finalization, inside a noexcept C++
    # destructor: 10% to 60% of runs aborted. 48 runs make a pass with that bug very unlikely.
    code = """
    pools = [offload.ProcessPool(1) for _ in range(8)]
    for pool in pools:
        pool.shutdown(wait=False)
    """
    results = _run_many(code, runs=48)
    unexpected = [r for r in results if r.returncode not in (0, -signal.SIGABRT)]
    if unexpected:  # a failure other than the abort this guards against
        raise RuntimeError(f"unexpected failures: {unexpected}")
    assert [r for r in results if r.returncode != 0] == []


# --- fork ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_pool_works_in_a_forked_child_and_in_the_parent(kind: str) -> None:
    result = run_python(
        """
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pool = new_pool(2)
        print("parent before", pool.submit(cpu_work.square, 3).result(timeout=30), flush=True)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.write(1, f"child {pool.submit(cpu_work.square, 4).result(timeout=30)}\\n".encode())
                pool.shutdown(wait=True)
            except BaseException as error:
                os.write(1, f"child failed: {error!r}\\n".encode())
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status), flush=True)
        print("parent after", pool.submit(cpu_work.square, 5).result(timeout=30), flush=True)
        """,
        kind,
    )
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == [
        "parent before 9", "child 16", "child status 0", "parent after 25"]


# --- functions of the program's own __main__ -----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_function_of_an_interactive_main_raises_send_error_at_once(kind: str) -> None:
    result = run_python(
        """
        def twice(x):
            return 2 * x
        pool = new_pool(1)
        try:
            pool.submit(twice, 21)
        except offload.SendError as error:
            print("SendError:", error)
        print(json.dumps({"submitted": pool.stats().submitted}))
        """,
        kind,
    )
    assert result.returncode == 0, result
    first = result.stdout.splitlines()[0]
    assert first.startswith("SendError: ") and "__main__" in first
    assert last_json(result) == {"submitted": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_a_function_and_a_class_of_a_main_script(kind: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(
        PRELUDE.format(kind=kind)
        + textwrap.dedent(
            """
            def twice(x):
                return 2 * x

            class Point:
                def __init__(self, x, y):
                    self.x, self.y = x, y

                def __repr__(self):
                    return f"Point({self.x}, {self.y})"

            if __name__ == "__main__":
                pool = new_pool(1)
                try:
                    print("function:", pool.submit(twice, 21).result(timeout=30))
                except offload.SendError as error:
                    print("function: SendError at once:", error)
                fut = pool.submit(cpu_work.identity, Point(1, 2))  # pickles fine here
                try:
                    print("class:", fut.result(timeout=30))
                except offload.SendError as error:
                    print("class: SendError when awaited:", error)
                pool.shutdown()
            """
        )
    )
    result = run_python("", argv=[sys.executable, str(script)])
    assert result.returncode == 0, result
    function, klass = result.stdout.splitlines()
    if kind == "process":
        # Worker processes import the script as __mp_main__: what it defines can be sent.
        assert function == "function: 42"
        assert klass == "class: Point(1, 2)"
    else:
        # Worker interpreters never import the caller's __main__.
        assert function.startswith("function: SendError at once: ") and "__main__" in function
        assert klass.startswith("class: SendError when awaited: ")
        assert "could not be loaded in the worker interpreter" in klass
        assert "objects defined in __main__ cannot be loaded" in klass


def test_ctrl_c_ends_a_process_pool_at_once(tmp_path: Path) -> None:
    # Ctrl-C reaches the whole process group (as a terminal sends it). The worker processes
    # ignore it (the parent decides), so leaving `with ProcessPool()` by it ends them: the
    # calls they run fail, the queued ones are cancelled, and the program ends at once instead
    # of after ~12 s of queued work.
    program = tmp_path / "ctrl_c.py"
    program.write_text(textwrap.dedent(
        """
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import offload
        if __name__ == "__main__":
            with offload.ProcessPool(workers=2) as pool:
                futs = [pool.submit(time.sleep, 4) for _ in range(6)]
                print("submitted", flush=True)
                futs[-1].result()          # Ctrl-C lands here, then in __exit__
        """
    ))
    child = subprocess.Popen([sys.executable, str(program)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "submitted"
        time.sleep(1)  # the calls run by now (the test signals as a user would: after a while)
        start = time.monotonic()
        os.killpg(child.pid, signal.SIGINT)
        child.wait(timeout=TIMEOUT)
        assert time.monotonic() - start < 5
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


# --- thread snapshots ----------------------------------------------------------------------


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="InterpreterPool needs Python >= 3.12")
def test_thread_snapshots_while_worker_interpreters_run_python() -> None:
    # sys._current_frames() (Dask's profiler calls it every 10 ms in every process with a Dask
    # scheduler) made objects for the worker interpreters' frames with the main interpreter's
    # allocator; the workers freed them with their own: "free(): invalid pointer", a crash
    # within a few hundred calls. The snapshots now wait for the workers to be out of Python.
    result = run_python(
        """
        import threading
        stop = threading.Event()
        seen = []
        def snapshots():
            while not stop.is_set():
                frames = sys._current_frames()
                seen.append(threading.main_thread().ident in frames)
                sys._current_exceptions()
        watcher = threading.Thread(target=snapshots)
        pool = new_pool(2)                  # starting interpreters run Python too
        watcher.start()
        try:
            for _ in range(150):
                futures = [pool.submit(cpu_work.collatz_steps, 10_000 + i) for i in range(4)]
                assert [f.result(30) for f in futures] == [cpu_work.collatz_steps(10_000 + i) for i in range(4)]
        finally:
            stop.set()
            watcher.join()
            pool.shutdown()
        print(json.dumps({"snapshots": len(seen), "all_saw_main": all(seen)}))
        """,
        kind="interpreter",
    )
    assert result.returncode == 0, result
    report = last_json(result)
    assert report["snapshots"] > 0 and report["all_saw_main"], report


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="InterpreterPool needs Python >= 3.12")
def test_a_snapshot_waiting_for_a_long_call_lets_ctrl_c_through() -> None:
    # The snapshot waits for the worker interpreter's call (a minute long); Ctrl-C, sent until
    # the main thread reports it, must end that wait: the child is bounded by 30 s.
    result = run_python(
        """
        import signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        pool = new_pool(1)
        pool.submit(time.sleep, 60)
        while pool.stats().busy == 0:
            time.sleep(0.01)
        done = threading.Event()
        def interrupt():
            while not done.wait(0.1):
                os.kill(os.getpid(), signal.SIGINT)
        try:
            threading.Thread(target=interrupt, daemon=True).start()
            sys._current_frames()
            print("returned")
        except KeyboardInterrupt:
            print("interrupted")
        done.set()
        sys.stdout.flush()
        os._exit(0)
        """,
        kind="interpreter",
        timeout=30,
    )
    assert result.returncode == 0, result
    assert result.stdout.split() == ["interrupted"], result
