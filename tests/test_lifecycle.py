"""Life cycle, each in a fresh interpreter: exit, fork, closed loops, Ctrl-C, pools used from
finalizers while the interpreter exits, a pool whose threads cannot all start.

Exit with calls running and queued, and a pool dropped without shutdown, are contracts of
every pool kind: test_contract_lifecycle.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import run_python


def test_exit_with_work_on_the_default_pool_and_an_unawaited_run() -> None:
    result = run_python(
        """
        import asyncio, os, offload
        async def main():
            offload.run(os.write, 1, b"fire and forget\\n")   # never awaited
            total = await offload.run(sum, [1, 2, 3])
            os.write(1, f"{total}\\n".encode())
        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert "6" in result.stdout.splitlines()
    assert "fire and forget" in result.stdout


def test_fork_child_gets_fresh_workers_and_parent_is_unaffected() -> None:
    result = run_python(
        """
        import asyncio, os, offload
        async def square(x):
            return await offload.run(pow, x, 2)
        print("parent before", asyncio.run(square(3)), flush=True)
        pid = os.fork()
        if pid == 0:
            os.write(1, f"child {asyncio.run(square(4))}\\n".encode())
            with offload.Pool(2) as p:
                os.write(1, f"child pool {p.submit(pow, 5, 2).result(timeout=10)}\\n".encode())
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status), flush=True)
        print("parent after", asyncio.run(square(6)), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "parent before 9", "child 16", "child pool 25", "child status 0", "parent after 36"]


def test_fork_while_workers_are_busy() -> None:
    result = run_python(
        """
        import asyncio, os, threading, offload
        gate = threading.Event()
        pool = offload.Pool(2)
        busy = [pool.submit(gate.wait, 10) for _ in range(2)]
        pid = os.fork()
        if pid == 0:
            os.write(1, f"child {pool.submit(pow, 2, 5).result(timeout=10)}\\n".encode())
            os._exit(0)
        gate.set()
        os.write(1, f"parent {[f.result(timeout=10) for f in busy]}\\n".encode())
        _, status = os.waitpid(pid, 0)
        print("status", os.waitstatus_to_exitcode(status), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["child 32", "parent [True, True]", "status 0"]


def test_raising_done_callback_does_not_hurt_the_worker() -> None:
    result = run_python(
        """
        import logging, offload
        logging.basicConfig(level=logging.ERROR, format="%(name)s %(message)s")
        pool = offload.Pool(1)
        fut = pool.submit(pow, 2, 3)
        fut.add_done_callback(lambda f: 1 / 0)
        fut.result(timeout=10)
        print("after", pool.submit(pow, 2, 4).result(timeout=10), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "after 16" in result.stdout
    assert "offload" in result.stderr and "ZeroDivisionError" in result.stderr


def test_keyboard_interrupt_while_awaiting_leaves_offload_usable() -> None:
    result = run_python(
        """
        import asyncio, os, signal, threading, offload
        gate = threading.Event()
        async def main():
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
            await offload.run(gate.wait, 10)
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        gate.set()
        async def again():
            return await offload.run(pow, 3, 2)
        print("again", asyncio.run(again()), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["interrupted", "again 9"]


def test_a_closed_loops_calls_still_run_and_their_results_are_freed() -> None:
    result = run_python(
        """
        import asyncio, threading, weakref, offload
        class Result:
            pass
        entered, gate, freed = threading.Event(), threading.Event(), threading.Event()
        queued_ran = []
        def make():
            entered.set()
            gate.wait(10)
            result = Result()
            weakref.finalize(result, freed.set)
            return result
        pool = offload.Pool(1)
        loop = asyncio.new_event_loop()
        async def start():
            running = pool.run(make)                          # never awaited
            queued = pool.run(queued_ran.append, True)        # queued behind it
            return running, queued
        running, queued = loop.run_until_complete(start())
        entered.wait(10)
        loop.close()                                          # with one running, one queued
        gate.set()
        async def again():
            return await pool.run(pow, 2, 5)
        print("again", asyncio.run(again()), flush=True)
        # Both ran (a closed loop cancels nothing); the running call's result is released,
        # not delivered.
        print("freed", freed.wait(10), "pending", not running.done(), "queued ran", queued_ran,
              flush=True)
        print("stats", pool.stats().cancelled, flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "again 32", "freed True pending True queued ran [True]", "stats 0"]
    assert result.stderr == ""


@pytest.mark.parametrize("kind", ["default", "uvloop"])
def test_many_short_lived_loops_do_not_leak_notifiers(kind) -> None:
    result = run_python(
        f"""
        import asyncio, gc, os, offload, uvloop
        new = uvloop.new_event_loop if {kind!r} == "uvloop" else asyncio.new_event_loop
        def fds():
            return len(os.listdir("/proc/self/fd"))
        async def main():
            return await offload.run(pow, 2, 2)
        for _ in range(5):
            loop = new(); loop.run_until_complete(main()); loop.close()
        gc.collect()
        start = fds()
        for _ in range(200):
            loop = new(); loop.run_until_complete(main()); loop.close()
        del loop
        gc.collect()
        print(fds() - start, flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) <= 2


def test_future_result_on_the_main_thread_is_interrupted_by_ctrl_c() -> None:
    result = run_python(
        """
        import os, signal, threading, offload
        gate = threading.Event()
        pool = offload.Pool(1)
        fut = pool.submit(gate.wait, 20)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            fut.result()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        gate.set()
        print("result", fut.result(timeout=10), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["interrupted", "result True"]


def test_ctrl_c_reaches_blocking_waits_in_a_child_forked_from_another_thread() -> None:
    # The forking thread is the child's main thread, where CPython runs signal handlers.
    result = run_python(
        """
        import os, signal, threading, time, warnings, offload
        warnings.simplefilter("ignore", DeprecationWarning)   # fork with threads (3.12+)
        def child():
            ch = offload.Channel(1)
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
            try:
                ch.recv_blocking()                 # no timeout: only Ctrl-C can end it
            except KeyboardInterrupt:
                os._exit(0)
            os._exit(2)
        status = []
        def forker():
            pid = os.fork()
            if pid == 0:
                child()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status.append(os.waitstatus_to_exitcode(code))
                    return
                time.sleep(0.02)  # nothing to wait on with a deadline: waitpid polls
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status.append("hung")
        offload.default_pool().submit(int).result()   # offload is in use when it forks
        t = threading.Thread(target=forker)
        t.start(); t.join()
        print(status[0], flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


@pytest.mark.parametrize("where", ["with", "exit", "exit-executor"])
def test_ctrl_c_stops_a_pool_without_waiting_for_its_queue(where: str) -> None:
    # Leaving `with Pool()` by Ctrl-C, or Ctrl-C while the exit hook joins (a Pool, or an
    # Executor): queued calls are cancelled, and a second Ctrl-C ends the wait for the call
    # still running.
    code = """
        import atexit
        # Registered before offload's exit hook, so it runs after it, even when that hook ends
        # with KeyboardInterrupt.
        atexit.register(lambda: print("queued cancelled:", all(f.cancelled() for f in queued),
                                      flush=True))
        import os, signal, sys, threading, time, offload
        started, inside = threading.Event(), threading.Event()
        def long():
            started.set()
            time.sleep(30)
        def ctrl_c_twice():
            if WHERE == "with":
                inside.wait(10)             # the main thread is in the with block
            else:
                threading.main_thread().join()   # the main thread finished: the exit hook runs
            # Nothing marks "the main thread is blocked in the wait" to wait on: the signals
            # come as a user's would, a moment apart (either lands in a wait that must end).
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)
        pool = offload.Executor(1) if WHERE == "exit-executor" else offload.Pool(1)
        fut = pool.submit(long)
        queued = [pool.submit(print, "queued ran") for _ in range(3)]
        started.wait(10)
        threading.Thread(target=ctrl_c_twice, daemon=True).start()
        t0 = time.monotonic()
    """.replace("WHERE", repr(where))
    if where == "with":
        code += """
        try:
            with pool:
                inside.set()
                time.sleep(30)              # Ctrl-C lands here, then in __exit__'s wait
        except KeyboardInterrupt:
            pass
        print("left after", round(time.monotonic() - t0), "s;",
              "queued cancelled:", all(f.cancelled() for f in queued), flush=True)
        os._exit(0)
        """
    else:
        code += """
        print("main done", flush=True)      # the exit hook now joins the running call
        """
    t0 = __import__("time").monotonic()
    result = run_python(code, timeout=60)
    elapsed = __import__("time").monotonic() - t0
    assert "queued ran" not in result.stdout
    assert elapsed < 15, (elapsed, result.stdout, result.stderr)
    assert "queued cancelled: True" in result.stdout, (result.stdout, result.stderr)
    if where == "with":
        assert result.returncode == 0, result.stderr


# -- exit: pools used from finalizers and late exit handlers; threads that cannot start --------


@pytest.mark.skipif(
    os.environ.get("OFFLOAD_SANITIZER") in ("address", "thread"),
    reason="the sanitizers reserve terabytes of address space: RLIMIT_AS would stop them first",
)
def test_a_pool_whose_threads_cannot_all_start_fails_clearly_and_leaks_no_thread() -> None:
    code = textwrap.dedent(
        """
        import os, resource, time
        import offload
        limit = 1 << 30  # 1 GiB of address space: room for a few dozen thread stacks only
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            pool = offload.Pool(workers=4000)
        except BaseException as e:
            print("error", type(e).__name__, e)
        else:
            print("built")
            pool.shutdown(wait=True)
        # The workers that did start were told to stop and exit on their own: no event
        # marks an OS thread's end, so poll the kernel's list of this process's threads.
        deadline = time.monotonic() + 20
        while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("threads", len(os.listdir("/proc/self/task")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    *outcome, threads = out.stdout.splitlines()
    assert threads == "threads 1", f"worker threads left behind: {threads}"
    if outcome != ["built"]:
        assert "workers" in outcome[0], outcome


def test_a_pool_used_during_interpreter_exit_refuses_or_runs_the_call_instead_of_hanging() -> None:
    code = textwrap.dedent(
        """
        import concurrent.futures, offload

        class Late:
            def __del__(self):
                try:
                    pool = offload.Pool(1, name="late")
                    print("result", pool.submit(int, "5").result(timeout=2), flush=True)
                except concurrent.futures.TimeoutError:
                    print("hung", flush=True)  # without a timeout: forever
                except BaseException as e:
                    print("refused", type(e).__name__, flush=True)

        keep = Late()  # finalized as the interpreter exits
        print("main done", flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "main done"
    assert lines[1] in ("result 5", "refused RuntimeError"), lines


def test_the_default_pool_used_during_interpreter_exit_refuses_clearly() -> None:
    code = textwrap.dedent(
        """
        import offload

        class Late:
            def __del__(self):
                try:
                    offload.default_pool().submit(int, "5")
                except RuntimeError as e:
                    print("refused:", e, flush=True)

        offload.default_pool().submit(int, "1").result()
        keep = Late()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused: offload: cannot submit to a pool that was shut down"


def test_calls_submitted_from_a_late_atexit_handler_run_and_the_exit_is_clean() -> None:
    # atexit runs handlers last-registered first: this one runs after offload's own, which
    # has already shut every pool down. A new pool started there still works and exits.
    code = textwrap.dedent(
        """
        import atexit, time

        def late():
            import offload
            pool = offload.Pool(2, name="late")
            futures = [pool.submit(time.sleep, 0.01) for _ in range(4)]
            futures += [pool.submit(sum, range(100)) for _ in range(2000)]
            print("late", futures[-1].result(timeout=30), flush=True)
            pool.submit(sum, range(10))  # left queued as the interpreter finalizes

        atexit.register(late)
        import offload
        offload.default_pool().submit(int, "1").result()
        print("main done", flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["main done", "late 4950"]
