"""Contract: map and imap, on every pool kind (pool_kinds.py).

map: the results in input order however the calls finish, the iterable consumed at once, an
empty input, the failure with the lowest index, and no further work once a call failed. imap:
input order or completion order, the input read only as results are consumed (at most `window`
calls in flight, four per worker by default), the first error ending the iteration, and
leaving the loop early cancelling the calls not started. A BaseException (SystemExit,
KeyboardInterrupt, GeneratorExit, one of the user's own) ends a map or an imap as any
exception does. Bad arguments: test_contract_bad_input.py.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import cpu_work
import fault_work
from fault_work import BASE_EXCEPTIONS
from pool_kinds import TIMEOUT, Blocker, Kind, counters_add_up, skip_if_dask_reads_arguments
from pool_kinds import _dask_pool_per_test, blocker, kind, new_pool  # noqa: F401


class Source:
    """An endless iterable that counts the items read from it."""

    def __init__(self, make: Any = lambda i: i) -> None:
        self.pulled = 0
        self.make = make

    def __iter__(self) -> Iterator[Any]:
        for i in itertools.count():
            self.pulled += 1
            yield self.make(i)


# -- map ------------------------------------------------------------------------------------


def test_map_returns_the_results_in_input_order(kind: Kind) -> None:
    async def main() -> Any:
        return await kind.pool.map(cpu_work.square, range(50))

    assert kind.on_loop(main) == [x * x for x in range(50)]


def test_map_keeps_the_input_order_when_calls_finish_out_of_order(kind: Kind, blocker: Blocker) -> None:
    # Item 0 is held until two calls started: at least one later item has run by then, and
    # item 0 cannot finish before it is released.
    skip_if_dask_reads_arguments(kind)
    items = [(cpu_work.block, (*blocker.args()[:2], TIMEOUT, "first"))]
    items += [(cpu_work.signal_then, (blocker.started_path, i)) for i in range(1, 6)]

    async def main() -> Any:
        mapped = kind.pool.map(cpu_work.apply, items)
        await asyncio.to_thread(blocker.wait_started, 2)
        blocker.release()
        return await mapped

    assert kind.on_loop(main) == ["first", 1, 2, 3, 4, 5]


def test_map_consumes_its_iterable_at_once(kind: Kind) -> None:
    read: List[int] = []

    def items() -> Iterator[int]:
        for i in range(10):
            read.append(i)
            yield i

    async def main() -> Any:
        mapped = kind.pool.map(cpu_work.square, items())
        assert read == list(range(10))  # before anything is awaited
        return await mapped

    assert kind.on_loop(main) == [x * x for x in range(10)]


def test_map_of_an_empty_iterable_is_an_empty_list(kind: Kind) -> None:
    async def main() -> Any:
        return await kind.pool.map(cpu_work.square, [])

    assert kind.on_loop(main) == []


def test_map_raises_the_lowest_indexed_failure_and_the_pool_goes_on(kind: Kind, tmp_path: Path) -> None:
    # Item 7 fails just after item 3 did. A native pool's map raises the lowest-indexed failure
    # among the calls that ran: item 3's. A map that raises as the first failure arrives
    # raises the lowest-indexed failure among those known then: which of two failures a
    # cluster reports first is its own (test_dask.py pins down the rest).
    failed = str(tmp_path / "item-3-failed")
    expected = "^item [37]$" if kind.promises.map_fails_fast else "^item 3$"

    async def main() -> Any:
        with pytest.raises(ValueError, match=expected) as raised:
            await kind.pool.map(cpu_work.fail_3_before_7, [(x, failed, failed) for x in range(10)])
        return raised.value, await kind.pool.map(cpu_work.square, [1, 2])

    error, after = kind.on_loop(main)
    assert after == [1, 4]
    if not kind.promises.local:
        assert error.__cause__.text.splitlines()[-1] == f"ValueError: {error}"


def test_a_failing_map_starts_no_further_item(
    kind: Kind, new_pool: Any, blocker: Blocker, tmp_path: Path
) -> None:
    if kind.promises.map_fails_fast:
        # Raised as the first failure arrives, while the other calls still run (held here
        # until the end); every call still pending is cancelled: the scheduler forgets them all.
        pool = kind.pool

        async def main() -> Any:
            with pytest.raises(ValueError, match="^first$"):
                await pool.map(cpu_work.fail_or_block, [None] + [blocker.args()] * 6)

        kind.on_loop(main)
        assert blocker.count_started() >= 1  # raised while a call was held
        kind.scheduler_forgot(pool, "fail_or_block")
        return
    # One worker: items run in order, so everything after the failing item is "further".
    pool = new_pool(1)
    log = str(tmp_path / "log")

    async def stops() -> Any:
        with pytest.raises(ValueError, match="^item 2$"):
            await pool.map(cpu_work.note_or_fail, [(x, log, 2) for x in range(6)])
        return await pool.map(cpu_work.square, [3])

    assert kind.on_loop(stops) == [9]
    assert Path(log).read_text().split() == ["0", "1", "2"]


# -- imap -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_imap_yields_every_result_in_the_order_asked(kind: Kind, ordered: bool) -> None:
    async def main() -> Any:
        return [r async for r in kind.pool.imap(cpu_work.square, range(30), ordered=ordered, window=3)]

    results = kind.on_loop(main)
    expected = [x * x for x in range(30)]
    assert (results if ordered else sorted(results)) == expected


def test_imap_unordered_yields_results_as_they_complete(kind: Kind, tmp_path: Path) -> None:
    release = str(tmp_path / "release")
    items = [(0, release)] + [(i, None) for i in range(1, 5)]  # item 0 waits for the others

    async def main() -> Any:
        seen = []
        async for value in kind.pool.imap(cpu_work.value_after, items, ordered=False, window=5):
            seen.append(value)
            if len(seen) == 4:
                cpu_work.touch(release)
        return seen

    seen = kind.on_loop(main)
    assert seen[-1] == 0 and sorted(seen) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_imap_reads_the_input_only_as_results_are_consumed(kind: Kind, ordered: bool) -> None:
    source = Source()

    async def main() -> Any:
        ahead, results = [], []
        stream = kind.pool.imap(cpu_work.square, source, ordered=ordered, window=4)
        async for value in stream:
            results.append(value)
            ahead.append(source.pulled - len(results))
            if len(results) == 20:
                break
        # Left suspended: the loop finalizes it, cancelling its calls in flight, while the
        # calls made next on the same pool run (a DaskPool's were once cancelled with them).
        del stream
        after = await asyncio.gather(*[kind.run(kind.pool)(cpu_work.square, x) for x in range(8)])
        return ahead, results, after

    ahead, results, after = kind.on_loop(main)
    assert after == [x * x for x in range(8)]
    assert ahead[0] == 3  # the window was filled before the first result, no more
    assert max(ahead) <= 4, ahead
    assert source.pulled <= 24
    if ordered:
        assert results == [x * x for x in range(20)]


def test_imap_has_four_calls_in_flight_per_worker_by_default(kind: Kind) -> None:
    source = Source()

    async def main() -> int:
        stream = kind.pool.imap(cpu_work.square, source)
        await stream.__anext__()
        await stream.aclose()
        return source.pulled

    assert kind.on_loop(main) == 4 * kind.workers(kind.pool)


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_imap_ends_with_the_first_error_and_reads_no_further(kind: Kind, ordered: bool) -> None:
    source = Source()

    async def main() -> Any:
        got = []
        with pytest.raises(ValueError, match="^item [37]$"):
            async for value in kind.pool.imap(cpu_work.fail_if_3_or_7, source, ordered=ordered, window=4):
                got.append(value)
        return got

    got = kind.on_loop(main)
    assert 3 not in got
    if ordered:
        assert got == [0, 1, 2]
    assert source.pulled <= len(got) + 1 + 4  # the failure, and at most a window past it


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_leaving_imap_early_cancels_the_calls_not_started(
    kind: Kind, blocker: Blocker, tmp_path: Path, ordered: bool
) -> None:
    skip_if_dask_reads_arguments(kind)
    pool = kind.pool
    workers = kind.workers(pool)
    marker = tmp_path / "never"
    # A quick call and one blocking call per worker fill the window; the next item is read,
    # and its call made, once the quick result was consumed: it waits behind the blockers.
    items = [(cpu_work.square, (3,))] + [(cpu_work.block, blocker.args())] * workers
    items.append((cpu_work.touch, (str(marker),)))
    cancelled_before = pool.stats().cancelled

    async def main() -> Any:
        results = pool.imap(cpu_work.apply, items, ordered=ordered, window=1 + workers)
        first = await results.__anext__()
        await asyncio.to_thread(blocker.wait_started, workers)
        waiting = asyncio.ensure_future(results.__anext__())
        await asyncio.sleep(0)  # its first step makes the last call, then waits
        waiting.cancel()  # as when the consuming task is cancelled (or leaves by break)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await results.aclose()
        return first

    assert kind.on_loop(main) == 9
    kind.scheduler_forgot(pool, "apply")
    blocker.release()
    kind.settle(pool, tmp_path / "settle")
    assert not marker.exists()
    assert blocker.count_started() == workers
    assert pool.stats().cancelled - cancelled_before >= 1


# -- BaseException subclasses end a map or an imap as any exception does ----------------------


@pytest.mark.parametrize("name", list(BASE_EXCEPTIONS))
def test_base_exception_from_map_is_raised_and_stops_the_map(
    kind: Kind, new_pool: Any, blocker: Blocker, tmp_path: Path, name: str
) -> None:
    skip_if_dask_reads_arguments(kind)
    exc_type = BASE_EXCEPTIONS[name]
    raising = (fault_work.raise_base, (name,))
    if kind.promises.map_fails_fast:
        # As test_a_failing_map_starts_no_further_item: raised as it arrives, while the other
        # calls are held; every call still pending is cancelled.
        pool = kind.pool

        async def fails_fast() -> Any:
            with pytest.raises(exc_type, match="from the call"):
                await pool.map(cpu_work.apply, [raising] + [(cpu_work.block, blocker.args())] * 6)

        kind.on_loop(fails_fast)
        assert blocker.count_started() >= 1
        kind.scheduler_forgot(pool, "apply")
        return
    pool = new_pool(1)  # one worker: items run in order
    log = str(tmp_path / "log")
    items = [(cpu_work.append_line, (log, str(x))) for x in range(6)]
    items[2] = raising

    async def main() -> Any:
        with pytest.raises(exc_type, match="from the call"):
            await pool.map(cpu_work.apply, items)
        return await pool.map(abs, [-1, -2])

    assert kind.on_loop(main) == [1, 2]
    assert Path(log).read_text().split() == ["0", "1"]  # no item started after the failure
    assert counters_add_up(pool).submitted == 2  # one worker: one task per map


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
@pytest.mark.parametrize("name", list(BASE_EXCEPTIONS))
def test_base_exception_from_imap_ends_the_iteration(kind: Kind, new_pool: Any, name: str, ordered: bool) -> None:
    skip_if_dask_reads_arguments(kind)
    if name == "GeneratorExit" and ordered:
        pytest.skip(
            "CPython: a GeneratorExit raised at an await inside an async generator leaves the "
            "generator marked running (aclose() then fails); plain asyncio futures do the same"
        )
    exc_type = BASE_EXCEPTIONS[name]
    pool = new_pool(1)
    items = [(cpu_work.identity, (x,)) for x in range(6)]
    items[2] = (fault_work.raise_base, (name,))

    async def main() -> Any:
        got: List[Any] = []
        caught = None
        try:
            async for r in pool.imap(cpu_work.apply, items, ordered=ordered, window=1):
                got.append(r)
        except exc_type as e:
            caught = e
        return caught, got, [r async for r in pool.imap(abs, [-3], ordered=ordered)]

    caught, got, after = kind.on_loop(main)
    assert type(caught) is exc_type
    assert got == [0, 1] and after == [3]
    s = counters_add_up(pool)
    assert (s.submitted, s.failed) == (4, 1)  # window=1: item 3 was never submitted
