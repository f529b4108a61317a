"""The native side of worker interpreters, driven directly: what happens when a worker's
interpreter cannot start, and calls made where there is no worker interpreter."""

import sys

import pytest

import offload
from offload import _core

needs_interpreters = pytest.mark.skipif(
    not _core.interpreters_supported, reason="own-GIL subinterpreters need Python 3.12+"
)


@needs_interpreters
def test_a_failed_bootstrap_fails_each_call_with_its_cause_and_is_retried() -> None:
    # A bootstrap that raises: the worker has no interpreter, every call says why (the
    # start is retried per call), and nothing hangs.
    pool = _core.Pool(1, "broken-interp", None, (), "raise ValueError('no bootstrap today')")
    try:
        for _ in range(2):
            future = pool.submit(_core.run_in_interpreter, (b"payload",), None, None)
            with pytest.raises(RuntimeError, match="no bootstrap today"):
                future.result(10)
    finally:
        pool.shutdown(True, False)


@needs_interpreters
def test_a_bootstrap_without_run_is_reported() -> None:
    pool = _core.Pool(1, "no-run", None, (), "x = 1\n")
    try:
        future = pool.submit(_core.run_in_interpreter, (b"",), None, None)
        with pytest.raises(RuntimeError, match=r"did not define run\(\)"):
            future.result(10)
    finally:
        pool.shutdown(True, False)


@needs_interpreters
def test_a_run_that_raises_or_returns_no_bytes_is_reported() -> None:
    source = "def run(payload):\n    if payload == b'raise':\n        raise KeyError('k')\n    return 42\n"
    pool = _core.Pool(1, "odd-run", None, (), source)
    try:
        raised = pool.submit(_core.run_in_interpreter, (b"raise",), None, None)
        with pytest.raises(RuntimeError, match="KeyError"):
            raised.result(10)
        wrong = pool.submit(_core.run_in_interpreter, (b"x",), None, None)
        with pytest.raises(RuntimeError, match="returned int, not bytes"):
            wrong.result(10)
    finally:
        pool.shutdown(True, False)


@needs_interpreters
def test_payloads_and_replies_are_copied_byte_for_byte() -> None:
    pool = _core.Pool(2, "echo", None, (), "def run(payload):\n    return payload[::-1]\n")
    try:
        blobs = [bytes(range(256)) * 4096, b"", b"\x00" * 3]
        futures = [pool.submit(_core.run_in_interpreter, (blob,), None, None) for blob in blobs]
        assert [f.result(10) for f in futures] == [blob[::-1] for blob in blobs]
    finally:
        pool.shutdown(True, False)


def test_run_in_interpreter_off_a_worker_is_refused() -> None:
    with pytest.raises(RuntimeError, match="InterpreterPool|3.12"):
        _core.run_in_interpreter(b"x")
    with pytest.raises(TypeError if _core.interpreters_supported else RuntimeError):
        _core.run_in_interpreter("not bytes")  # type: ignore[arg-type]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="InterpreterPool exists here")
def test_interpreter_pool_before_312_points_to_process_pool() -> None:
    with pytest.raises(RuntimeError, match="ProcessPool"):
        offload.InterpreterPool(1)
