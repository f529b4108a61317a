"""What every benchmark file shares: how a round is driven on a persistent loop, and paired
rounds for goals (the baseline timed by hand before every timed offload round, so both see the
same machine conditions)."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union


def collect_garbage() -> None:
    """Before every round: each round starts from the same heap, whatever ran before it (a
    full collection left over from an earlier scenario would otherwise land in a later one)."""
    gc.collect()


def drive(benchmark: Any, loop: asyncio.AbstractEventLoop, make: Callable[[], Awaitable[Any]],
          rounds: int, check: Optional[List[Any]] = None) -> None:
    result = benchmark.pedantic(
        lambda: loop.run_until_complete(make()), setup=collect_garbage, rounds=rounds, warmup_rounds=1)
    if check is not None:
        assert result == check


def drive_paired(benchmark: Any, loop: asyncio.AbstractEventLoop, make_offload: Callable[[], Awaitable[Any]],
                 make_baseline: Union[Callable[[], Awaitable[Any]], Dict[str, Callable[[], Awaitable[Any]]]],
                 rounds: int) -> None:
    """Times offload's rounds, each after one round of the baseline (or of each baseline of a
    dict, named), timed by hand on the same loop. extra_info gets the baselines' medians and,
    as ``baseline_median``, the best of them."""
    baselines = make_baseline if isinstance(make_baseline, dict) else {"baseline": make_baseline}
    times: Dict[str, List[float]] = {name: [] for name in baselines}

    def setup() -> None:
        for name, make in baselines.items():
            gc.collect()
            start = time.perf_counter()
            loop.run_until_complete(make())
            times[name].append(time.perf_counter() - start)
        gc.collect()

    benchmark.pedantic(lambda: loop.run_until_complete(make_offload()), setup=setup,
                       rounds=rounds, warmup_rounds=1)
    medians = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    benchmark.extra_info["baseline_medians"] = medians
    benchmark.extra_info["baseline_median"] = min(medians.values())
