"""The boundary between the Python package and the native module (cpp/binding/package.h,
checks.h): one call hands the package's objects over, the native entry points refuse to work
without it, and each argument check lives in one layer, so both layers give the same error."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, List

import pytest

import offload
from offload import _core
from conftest import run_python


def test_the_package_is_connected_once_imported() -> None:
    assert _core.connected()


def test_the_native_core_refuses_to_work_before_the_package_connects() -> None:
    # offload._core loaded without offload/__init__.py (which connects it): every entry point
    # that needs the package's objects says so, rather than crash on a null object.
    result = run_python(
        """
        import importlib.util, os, sys, types
        spec = importlib.util.find_spec("offload")
        package = types.ModuleType("offload")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["offload"] = package       # the package without its __init__
        from offload import _core
        print("connected", _core.connected())
        for name, make in [
            ("Pool", lambda: _core.Pool(1, "p")),
            ("Channel", lambda: _core.Channel(1)),
            ("run", lambda: _core.run_on_default(print)),
        ]:
            try:
                make()
                print(name, "worked")
            except RuntimeError as error:
                print(name, "RuntimeError", "connect" in str(error))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "connected False",
        "Pool RuntimeError True",
        "Channel RuntimeError True",
        "run RuntimeError True",
    ]


def test_connect_names_what_it_needs() -> None:
    with pytest.raises(TypeError, match="channel_closed"):
        _core.connect()  # type: ignore[call-arg]
    good: Any = dict(
        channel_closed=offload.ChannelClosed,
        would_block=offload.WouldBlock,
        channel_empty=object(),
        channel_recv=object(),
        recv_wait=print,
        send_wait=print,
        anext_wait=print,
        default_pool=print,
        thread_started=print,
        thread_stopping=print,
    )
    with pytest.raises(TypeError, match="exception class for channel_closed"):
        _core.connect(**{**good, "channel_closed": 42})
    with pytest.raises(TypeError, match="expected a callable, got int"):
        _core.connect(**{**good, "default_pool": 42})
    assert _core.connected()  # a refused connect changed nothing


BAD_TIMEOUTS: List[Any] = [True, "1", b"1", [1], object(), float("nan"), 10**400, complex(1, 0)]
GOOD_TIMEOUTS: List[Any] = [0, 0.5, 2, Decimal("0.25"), Fraction(1, 4), -1]


def timeout_error(check: Callable[[Any], Any], timeout: Any) -> "tuple[type, str]":
    with pytest.raises((TypeError, ValueError)) as info:
        check(timeout)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
def test_every_blocking_call_rejects_a_bad_timeout_with_the_same_error(timeout: Any) -> None:
    # The channel's native fast functions, select (Python), and Future.result (Python) share one
    # check: the same bad value gets the same exception and message everywhere.
    ch: offload.Channel[int] = offload.Channel(1)
    ch.send_nowait(1)  # recv_blocking could complete at once: the check still comes first
    with offload.Pool(1) as pool:
        future = pool.submit(int)
        errors = {
            timeout_error(_core.check_timeout, timeout),
            timeout_error(lambda t: ch.recv_blocking(t), timeout),
            timeout_error(lambda t: ch.send_blocking(2, timeout=t), timeout),
            timeout_error(lambda t: offload.select_blocking(ch.recv_op(), timeout=t), timeout),
            timeout_error(lambda t: future.result(t), timeout),
        }
    assert len(errors) == 1, errors
    (kind, message), = errors
    assert message.startswith("offload: timeout")


@pytest.mark.parametrize("timeout", GOOD_TIMEOUTS, ids=repr)
def test_every_number_is_a_timeout_in_seconds(timeout: Any) -> None:
    seconds = _core.check_timeout(timeout)
    assert isinstance(seconds, float) and math.isclose(seconds, float(timeout))
    ch: offload.Channel[int] = offload.Channel(1)
    ch.send_nowait(7)
    assert ch.recv_blocking(timeout) == 7


def test_every_entry_point_rejects_a_non_callable_with_the_same_error() -> None:
    async def main() -> "set[str]":
        messages = set()
        with offload.Pool(1) as pool:
            attempts: List[Callable[[], Any]] = [
                lambda: _core.check_callable(42),
                lambda: offload.run(42),  # type: ignore[arg-type]  # native fast path
                lambda: pool.run(42),  # type: ignore[arg-type]
                lambda: pool.submit(42),  # type: ignore[arg-type]
                lambda: pool.map(42, [1]),  # type: ignore[arg-type]
                lambda: offload.from_thread.run_sync(42),  # type: ignore[arg-type]
            ]
            for attempt in attempts:
                with pytest.raises(TypeError) as info:
                    attempt()
                messages.add(str(info.value))
        return messages

    assert asyncio.run(main()) == {"offload: expected a callable, got int object"}


def test_a_closed_channel_says_so_in_one_way_everywhere() -> None:
    ch: offload.Channel[int] = offload.Channel(1)
    ch.close()
    messages = set()
    for attempt in [
        lambda: ch.send_nowait(1),
        lambda: ch.send_blocking(1),
        lambda: ch.recv_nowait(),
        lambda: offload.select_nowait(ch.send_op(1)),
        lambda: _core.channel_closed_error().__class__,
    ]:
        try:
            outcome = attempt()
        except offload.ChannelClosed as error:
            messages.add(str(error))
        else:
            assert outcome is offload.ChannelClosed
    assert messages == {"offload: the channel is closed"}
