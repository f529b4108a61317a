"""The worker side of InterpreterPool and ProcessPool: one pickled call in, one pickled reply out.

This module imports nothing from offload and only the standard library, because it runs where
offload's native core cannot be loaded: inside worker interpreters (each InterpreterPool
worker loads it from its file at start) and inside worker processes.

A call is ``pickle.dumps((fn, args, kwargs))``. A reply is a pickled tuple whose first item
says what happened:

    (OK, result)
    (RAISED, pickled exception or None, type name, message, traceback text)
    (LOAD_FAILED, type name, message, traceback text)   the call could not be unpickled here
    (DUMP_FAILED, type name, message, traceback text)   the result could not be pickled

The caller's side (offload._cpu) turns a reply back into a result or an exception.
"""

import pickle
import signal
import traceback

# True inside an InterpreterPool worker interpreter; set there by the bootstrap after loading.
subinterpreter = False

OK, RAISED, LOAD_FAILED, DUMP_FAILED = range(4)
PROTOCOL = pickle.HIGHEST_PROTOCOL


def _type_name(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except BaseException:  # a __str__ that raises must not lose the error itself
        return f"<{type(error).__name__} whose str() raised>"


def _traceback_text(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except BaseException:
        return f"{_type_name(error)}: {_message(error)}\n"


def _failure(tag: int, error: BaseException) -> bytes:
    return pickle.dumps(
        (tag, _type_name(error), _message(error), _traceback_text(error)), protocol=PROTOCOL
    )


def _raised(error: BaseException) -> bytes:
    try:
        blob = pickle.dumps(error, protocol=PROTOCOL)
    except BaseException:
        blob = None  # the caller rebuilds it as offload.RemoteError
    return pickle.dumps(
        (RAISED, blob, _type_name(error), _message(error), _traceback_text(error)),
        protocol=PROTOCOL,
    )


def run(payload: bytes) -> bytes:
    """Runs one pickled call and returns the pickled reply. Never raises."""
    try:
        fn, args, kwargs = pickle.loads(payload)
    except BaseException as error:
        return _failure(LOAD_FAILED, error)
    try:
        result = fn(*args, **kwargs)
    except BaseException as error:
        return _raised(error)
    finally:
        del fn, args, kwargs
    try:
        return pickle.dumps((OK, result), protocol=PROTOCOL)
    except BaseException as error:
        return _failure(DUMP_FAILED, error)


def serve(conn) -> None:  # type: ignore[no-untyped-def]
    """The main loop of a ProcessPool worker process: answers calls until the pipe closes.

    Ctrl-C in a terminal signals the whole process group; the parent decides what happens,
    so the worker ignores SIGINT and ends when the parent closes its end of the pipe.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            break
        reply = run(payload)
        try:
            conn.send_bytes(reply)
        except (BrokenPipeError, OSError):
            break
    conn.close()
