"""Work for the contract suites (test_contract_*.py) and the CPU-pool tests (test_cpu_*.py).

Every function here is sent by reference to InterpreterPool worker interpreters, to ProcessPool
worker processes and to Dask's workers, so this module is importable there: module-level functions,
standard library only, pure Python. It imports offload on purpose, to show that works inside
a worker interpreter (where offload's names are stand-ins).

Python 3.12.0-3.12.3 can crash at exit once a subinterpreter has called an extension function
with keyword arguments (CPython gh-119213): functions run in worker interpreters call C
functions positionally only and avoid C accelerators (hashlib, zlib, json...).

Blocking is done through the file system, which works across interpreters and processes:
a worker signals "started" by writing one byte into a FIFO the test opened for reading (the
test waits on it with select, an event), and waits until the test creates a "release" file
(polling inside the worker is fine: it waits for an outside event, with a deadline).
"""

import contextvars
import os
import signal
import sys
import time

import offload

# Per-interpreter state: a fresh worker interpreter or process sees the initial value.
STATE = "initial"
_calls = 0

POLL_INTERVAL = 0.002

# Set by a test in its own context: a call that does not run in a copy of it sees the default.
VAR = contextvars.ContextVar("offload_contract", default="default")


# --- plain work ----------------------------------------------------------------------------


def square(x):
    return x * x


def add(a, b=0, *, scale=1):
    return (a + b) * scale


def echo(*args, **kwargs):
    return args, kwargs


def identity(x):
    return x


def count_calls():
    """How many times this function ran in this interpreter/process (1 on the first call)."""
    global _calls
    _calls += 1
    return _calls


def read_state():
    return STATE


def getpid():
    return os.getpid()


def process_name():
    """The multiprocessing name of this worker process."""
    import multiprocessing

    return multiprocessing.current_process().name


def in_subinterpreter():
    """True inside an InterpreterPool worker interpreter (set by its bootstrap)."""
    worker = sys.modules.get("offload._worker")
    return bool(getattr(worker, "subinterpreter", False))


def fail_if_3_or_7(x):
    if x in (3, 7):
        raise ValueError(f"item {x}")
    return x


def collatz_steps(n):
    """Some pure-Python CPU work."""
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def read_var_then_set(value):
    """VAR as the call sees it; then sets it to `value` in the call's own context."""
    seen = VAR.get()
    VAR.set(value)
    return seen


def apply(item):
    """``(fn, args)``: fn(*args), for a map or an imap of calls of different functions."""
    fn, args = item
    return fn(*args)


def fail_3_before_7(item):
    """``(x, failed, go)``: x, but item 3 raises after creating the file `failed`, and item 7
    raises once the file `go` exists."""
    x, failed, go = item
    if x == 3:
        touch(failed)
        raise ValueError("item 3")
    if x == 7:
        wait_for_file(go, 30.0)
        raise ValueError("item 7")
    return x


def note_or_fail(item):
    """``(x, log, fail_at)``: appends x to the file `log`, then raises if x == fail_at."""
    x, log, fail_at = item
    append_line(log, str(x))
    if x == fail_at:
        raise ValueError(f"item {x}")
    return x


def fail_or_block(item):
    """For map: ``None`` raises at once; anything else is the arguments of block()."""
    if item is None:
        raise ValueError("first")
    return block(*item)


def value_after(item):
    """``(value, path)``: returns `value` once `path` exists (at once if it is None)."""
    value, path = item
    if path is not None:
        wait_for_file(path, 30.0)
    return value


# --- errors --------------------------------------------------------------------------------


class CustomError(Exception):
    """A picklable exception with extra state."""

    def __init__(self, message, code):
        super().__init__(message, code)
        self.message = message
        self.code = code

    def __str__(self):
        return f"{self.message} (code {self.code})"


class UnpicklableError(Exception):
    """Cannot be pickled in the worker."""

    def __reduce__(self):
        raise TypeError("UnpicklableError refuses to be pickled")


class NeedsTwoArgs(Exception):
    """Pickles in the worker, but unpickling calls NeedsTwoArgs(message) and fails."""

    def __init__(self, message, extra):
        super().__init__(message)
        self.extra = extra


def _deep_in_the_worker(message):
    raise ValueError(message)


def raise_value_error(message):
    _deep_in_the_worker(message)


def raise_custom(message, code):
    raise CustomError(message, code)


def raise_unpicklable(message):
    raise UnpicklableError(message)


def raise_needs_two_args(message):
    raise NeedsTwoArgs(message, "extra")


def raise_with_cause(message):
    try:
        raise KeyError("the inner cause")
    except KeyError as inner:
        raise RuntimeError(message) from inner


def raise_send_error(message):
    """Raises offload.SendError from the worker: a real class even in a worker interpreter."""
    raise offload.SendError(message)


def sys_exit(code):
    sys.exit(code)


def _refuse_to_load():
    raise RuntimeError("this object refuses to be unpickled")


class LoadFails:
    """Pickles fine; unpickling it anywhere raises RuntimeError."""

    def __reduce__(self):
        return (_refuse_to_load, ())


def return_load_fails():
    return LoadFails()


def return_generator():
    """A result that cannot be pickled."""
    return (x for x in range(3))


def len_of(value):
    return len(value)


# --- blocking and signalling ---------------------------------------------------------------


def touch(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    return path


def append_line(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)
    return text


def signal_fifo(path):
    """Writes one byte into a FIFO the test holds open for reading."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def wait_for_file(path, timeout):
    """Returns once `path` exists; raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(POLL_INTERVAL)
    return True


def block(started_fifo, release_path, timeout=30.0, result="released"):
    """Signals `started_fifo` (if any), then waits until `release_path` exists."""
    if started_fifo is not None:
        signal_fifo(started_fifo)
    wait_for_file(release_path, timeout)
    return result


def signal_then(started_fifo, value):
    """Signals `started_fifo`, then returns `value` (a call that runs without waiting)."""
    signal_fifo(started_fifo)
    return value


def block_item(args):
    """block() for map and imap: the item is its arguments."""
    return block(*args)


def block_then_append(started_fifo, release_path, log_path, text, timeout):
    """As block(), then appends `text` to the file `log_path`."""
    block(started_fifo, release_path, timeout)
    return append_line(log_path, text)


def block_then_note_cancelled(started_fifo, release_path, log_path, timeout):
    """As block(), then appends offload.cancelled(), as seen inside the call, to `log_path`."""
    block(started_fifo, release_path, timeout)
    return append_line(log_path, str(offload.cancelled()))


def block_then_report_cancelled(started_fifo, release_path, timeout):
    """As block(), then returns offload.cancelled() as seen inside the worker."""
    block(started_fifo, release_path, timeout)
    return offload.cancelled()


def rendezvous(mine, theirs, timeout):
    """Creates `mine`, then waits for `theirs`: two of these calls return only if they run at
    the same time; run one after the other, the first raises TimeoutError."""
    touch(mine)
    wait_for_file(theirs, timeout)
    return os.getpid()


def meet(mine, everyone, timeout):
    """rendezvous() for any number of calls: creates `mine`, waits for every path in
    `everyone`; returns (pid, whether this runs in a worker interpreter)."""
    touch(mine)
    for path in everyone:
        wait_for_file(path, timeout)
    return os.getpid(), in_subinterpreter()


# --- worker deaths (ProcessPool only: these would end the test process itself) -------------


def _refuse_in_subinterpreter():
    if in_subinterpreter():
        raise RuntimeError("refusing to end the whole process from a worker interpreter")


def die(code):
    _refuse_in_subinterpreter()
    os._exit(code)


def kill_self():
    _refuse_in_subinterpreter()
    os.kill(os.getpid(), signal.SIGKILL)


def die_on_13(x):
    if x == 13:
        die(13)
    return x


def signal_then_die(started_fifo, code):
    _refuse_in_subinterpreter()
    signal_fifo(started_fifo)
    os._exit(code)


# --- offload inside a worker ---------------------------------------------------------------


def _try(fn):
    try:
        fn()
    except RuntimeError as error:
        return "RuntimeError: " + str(error)
    except BaseException as error:  # reported, not raised: the test asserts on it
        return f"{type(error).__name__}: {error}"
    return "no error"


def probe_offload():
    """What offload looks like from inside a worker (interpreter or process)."""
    return {
        "in_subinterpreter": in_subinterpreter(),
        "cancelled": offload.cancelled(),
        "SendError_is_TypeError": issubclass(offload.SendError, TypeError),
        "errors_are_the_real_classes": all(
            getattr(offload, name) is getattr(sys.modules["offload._errors"], name)
            for name in ("SendError", "WorkerDied", "RemoteError", "RemoteTraceback")
        ),
        "WorkerDied_is_RuntimeError": issubclass(offload.WorkerDied, RuntimeError),
        "RemoteError_module": offload.RemoteError.__module__,
        "RemoteTraceback_text": str(offload.RemoteTraceback("tb text")),
        "RemoteError_fields": (
            offload.RemoteError("T", "m").type_name,
            offload.RemoteError("T", "m").message,
        ),
    }


def probe_stand_ins():
    """offload's stand-ins inside a worker interpreter: each use reports what it raised."""
    if not in_subinterpreter():
        raise RuntimeError("probe_stand_ins is meant for worker interpreters")
    return {
        "Pool": _try(lambda: offload.Pool(1)),
        "InterpreterPool": _try(lambda: offload.InterpreterPool(1)),
        "ProcessPool": _try(lambda: offload.ProcessPool(1)),
        "Executor": _try(lambda: offload.Executor()),
        "Channel": _try(lambda: offload.Channel(1)),
        "default_pool": _try(offload.default_pool),
        "run": _try(lambda: offload.run(square, 2)),
        "select": _try(lambda: offload.select()),
        "Future_subscript": _try(lambda: offload.Future[int]),
        "subclass": _try(lambda: type("MyPool", (offload.Pool,), {})),
        "subclass_instance": _try(lambda: type("MyPool", (offload.Pool,), {})(2)),
        "all_defined": [name for name in offload.__all__ if not hasattr(offload, name)],
    }


def run_in_child_process(x):
    """Starts a process of its own (refused inside daemonic processes)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as children:
        return children.apply(identity, (x,))


def pid_exists(pid):
    """True while process `pid` exists (test helper, run in the test process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_exit(pid, timeout=20.0):
    """Waits on a pidfd (no polling) until `pid` has exited; True if it did in time."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)
