"""Render a pytest-benchmark JSON as docs/benchmarks.md: tables of ratios, goals checked.

    python -m pytest benchmarks -q --benchmark-json=build/bench.json
    python benchmarks/report.py build/bench.json > docs/benchmarks.md

Every figure is a ratio between two medians of the same run (this machine is noisy; absolute
times are shown only for orientation). `make bench` runs both commands.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections import defaultdict
from typing import Dict, List, Tuple

from offload.demo import fmt as fmt_time

COMMAND = (
    "python -m pytest benchmarks -q --benchmark-json=build/bench.json\n"
    "python benchmarks/report.py build/bench.json > docs/benchmarks.md   # or: make bench"
)

# Per group: the baseline entry ("to_thread" on the same loop where the entry has a loop).
BASELINE = "to_thread"


def parse(name: str) -> Tuple[str, str]:
    """test_gather_10000_offload_run[uvloop] -> ("offload_run", "uvloop")."""
    m = re.match(r"test_(?:gather_10000|map_10000|round_trip|burst_100|gather_1000_50us)_(.+?)(?:\[(\w+)\])?$", name)
    if not m:
        return name, "asyncio"
    return m.group(1), m.group(2) or "asyncio"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(path: str) -> int:
    with open(path) as f:
        data = json.load(f)
    groups: Dict[str, Dict[Tuple[str, str], float]] = defaultdict(dict)
    for b in data["benchmarks"]:
        entry, loop = parse(b["name"])
        groups[b["group"]][(entry, loop)] = b["stats"]["median"]

    def ratio(group: str, num: Tuple[str, str], den: Tuple[str, str]) -> float:
        g = groups.get(group, {})
        return g[num] / g[den] if num in g and den in g else float("nan")

    out: List[str] = []
    w = out.append
    info = data.get("machine_info", {})
    w("# Benchmarks\n")
    w("offload against the standard library and the usual alternatives, measured side by side in")
    w("one run. Every figure that matters is a **ratio of medians from the same run**; absolute")
    w("times are for orientation only (a shared, noisy 2-core VM).\n")
    w("Reproduce with:\n")
    w("```sh\n" + COMMAND + "\n```\n")
    w(f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs (this report was rendered on the machine that ran it)")
    w(f"- Python {info.get('python_version', platform.python_version())}, "
      f"date {data.get('datetime', '')[:19]}")
    try:
        import offload

        w(f"- offload {offload.__version__}, default pool of {offload.default_pool().workers} workers")
    except ImportError:
        pass
    w("")

    w("## Goals\n")
    w("| goal | measured | met |")
    w("|---|---|---|")
    paired: Dict[Tuple[str, str], float] = {}
    for b in data["benchmarks"]:
        if b["group"] == "paired":
            m = re.match(r"test_paired_(\w+?)_vs_\w+\[(\w+)\]", b["name"])
            if m:
                paired[(m.group(1), m.group(2))] = b["extra_info"]["baseline_median"] / b["stats"]["median"]
    goals = []
    for loop in ("asyncio", "uvloop"):
        speed = ratio("gather-10000", ("to_thread", loop), ("offload_run", loop))
        floor = paired.get(("gather_10000", loop), float("nan"))
        goals.append((f"gather of 10,000 `offload.run` vs `asyncio.to_thread` ({loop})", speed, speed >= 10, ">= 10x"))
        goals.append((f"gather of 10,000 `offload.run` vs the asyncio floor ({loop}, paired)", floor, floor >= 0.8, ">= 0.8x"))
    mp = ratio("map-10000", ("to_thread", "asyncio"), ("offload_pool_map", "asyncio"))
    goals.append(("`await pool.map(f, range(10_000))` vs gather of `to_thread`", mp, mp >= 20, ">= 20x"))
    for loop in ("asyncio", "uvloop"):
        rt = 1 / paired.get(("round_trip", loop), float("nan"))
        goals.append((f"sequential round trip, offload time / to_thread time ({loop}, paired)", rt, rt <= 0.8, "<= 0.8x"))
    for text, value, met, target in goals:
        w(f"| {text} (target {target}) | {value:.2f}x | {'yes' if met else '**no**'} |")
    w("")
    w("The asyncio floor is 10,000 `loop.create_future()` resolved with `loop.call_soon(fut.set_result, i)`")
    w("and gathered: the cost of the futures and the gather alone, with no thread and no call.")
    w("A ratio above 1 against it means the native side costs less than the asyncio bookkeeping")
    w("that both share. Rows marked *paired* alternate the two sides round by round in the same")
    w("loop (the baseline runs, timed, before each timed offload round), so both see the same")
    w("machine conditions; they are the figures the goals are judged on.\n")

    w("## All scenarios\n")
    w("Speed-up = the group's `to_thread` median on the same loop / the entry's median (higher is")
    w("better); for `floor`, the row shows how much cheaper than offload it is.\n")
    titles = {
        "gather-10000": "gather of 10,000 trivial calls",
        "map-10000": "10,000 trivial calls as one map",
        "round-trip-200": "200 calls one at a time (sequential await)",
        "burst-100": "gather of 100 trivial calls",
        "gather-1000-50us": "1,000 calls of ~50 us of GIL-releasing work (sha256)",
    }
    groups.pop("paired", None)
    for group in sorted(groups, key=lambda g: list(titles).index(g) if g in titles else 99):
        w(f"### {group}: {titles.get(group, group)}\n")
        w("| entry | loop | median | speed-up vs to_thread |")
        w("|---|---|---|---|")
        entries = groups[group]
        for (entry, loop), median in sorted(entries.items(), key=lambda kv: kv[1]):
            base = entries.get((BASELINE, loop)) or entries.get((BASELINE, "asyncio"))
            speed = f"{base / median:.1f}x" if base else "-"
            w(f"| {entry} | {loop} | {fmt_time(median)} | {speed} |")
        w("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "build/bench.json"))
