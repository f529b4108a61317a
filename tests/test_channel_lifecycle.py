"""Channels across the life of a process, each in a fresh interpreter: Ctrl-C in a blocking
wait, exit with blocked threads, and waiters whose loop or channel went away."""

from __future__ import annotations

from conftest import run_python


def test_ctrl_c_interrupts_recv_blocking_on_the_main_thread_and_leaves_no_waiter() -> None:
    result = run_python(
        """
        import os, signal, threading, offload
        ch = offload.Channel(1)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            ch.recv_blocking()
        except KeyboardInterrupt:
            print("interrupted", ch.stats().waiting_receivers, flush=True)
        ch.send_nowait("later")
        print(ch.recv_nowait(), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["interrupted 0", "later"]


def test_ctrl_c_interrupts_send_blocking_and_the_item_is_not_delivered() -> None:
    result = run_python(
        """
        import os, signal, threading, offload
        ch = offload.Channel(1)
        ch.send_nowait("first")
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            ch.send_blocking("second")
        except KeyboardInterrupt:
            s = ch.stats()
            print("interrupted", s.waiting_senders, s.sent, flush=True)
        ch.close()
        print(list(ch), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["interrupted 0 1", "['first']"]


def test_exit_with_daemon_threads_blocked_in_channel_waits_is_clean() -> None:
    result = run_python(
        """
        import threading, offload
        empty, full = offload.Channel(0), offload.Channel(1)
        full.send_nowait(0)
        for target in (empty.recv_blocking, lambda: full.send_blocking(1)):
            threading.Thread(target=target, daemon=True).start()
        while empty.stats().waiting_receivers < 1 or full.stats().waiting_senders < 1:
            pass
        print("main exits", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["main exits"]


def test_close_at_exit_wakes_blocked_threads_which_see_channel_closed() -> None:
    result = run_python(
        """
        import atexit, threading, offload
        ch = offload.Channel(0)
        def consumer():
            try:
                ch.recv_blocking()
            except offload.ChannelClosed:
                print("consumer woken by close", flush=True)
        threading.Thread(target=consumer).start()     # not a daemon: exit waits for it
        while ch.stats().waiting_receivers < 1:
            pass
        ch.close()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["consumer woken by close"]


def test_a_receiver_on_a_closed_loop_gives_items_back_when_its_channel_is_used_again() -> None:
    result = run_python(
        """
        import asyncio, gc, offload
        ch = offload.Channel(4)
        loop = asyncio.new_event_loop()
        task = loop.create_task(ch.recv())
        async def until(pred):
            while not pred():
                await asyncio.sleep(0)
        loop.run_until_complete(until(lambda: ch.stats().waiting_receivers == 1))
        loop.close()                                     # with the task still pending
        del task, loop
        gc.collect()
        for i in range(3):
            ch.send_nowait(i)                            # none may vanish into the dead task
        print(sorted(ch.recv_nowait() for _ in range(len(ch))), ch.stats().waiting_receivers)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[0, 1, 2] 0"]


def test_a_channel_dropped_while_a_dead_loop_still_waits_on_it_is_freed_cleanly() -> None:
    result = run_python(
        """
        import asyncio, gc, weakref, offload
        empty, full = offload.Channel(0), offload.Channel(1)
        full.send_nowait("buffered")
        loop = asyncio.new_event_loop()
        pending = [loop.create_task(empty.recv()), loop.create_task(full.send("x"))]
        async def until(pred):
            while not pred():
                await asyncio.sleep(0)
        loop.run_until_complete(
            until(lambda: empty.stats().waiting_receivers == 1 and full.stats().waiting_senders == 1))
        loop.close()
        refs = [weakref.ref(empty), weakref.ref(full)]
        del empty, full, pending, loop
        gc.collect()
        print(["freed" if r() is None else "alive" for r in refs], flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['freed', 'freed']"]
