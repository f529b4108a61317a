"""Render a pytest-benchmark JSON as docs/benchmarks.md: tables of ratios, goals checked, for
the calls (test_bench_calls.py) and the channels (test_bench_channels.py).

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
from typing import Dict, List, NamedTuple, Optional, Tuple

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


# Channels: test_chan_<scenario>[<candidate>-<capacity>], grouped as chan-<scenario>-<capacity>.
CHANNEL_NAME = re.compile(r"test_chan_(\w+?)\[(\w+)-(cap\d+|unbounded)\]$")
CHANNEL_CAPACITIES = {"cap1": "capacity 1", "cap256": "capacity 256", "unbounded": "unbounded"}
# scenario: (title, baseline candidates (the fastest of them is the baseline), goal or None)
CHANNEL_SCENARIOS: Dict[str, Tuple[str, Tuple[str, ...], Optional[float]]] = {
    "t2c": ("thread producer -> coroutine consumer", ("janus", "culsans", "aiologic"), 3.0),
    "c2c": ("coroutine -> coroutine on one loop", ("asyncio",), 1.0),
    "t2t": ("thread -> thread", ("queue",), 1.0),
    "c2t": ("coroutine producer -> thread consumer", ("janus", "culsans", "aiologic"), None),
}
CHANNEL_CANDIDATES = {
    "offload": "`offload.Channel`",
    "asyncio": "`asyncio.Queue`",
    "queue": "`queue.Queue`",
    "simplequeue": "`queue.SimpleQueue` (unbounded only)",
    "janus": "janus",
    "culsans": "culsans",
    "aiologic": "aiologic",
    "asyncio_threadsafe": "`call_soon_threadsafe(asyncio.Queue.put_nowait)` (unbounded only)",
}


# Paired goal measurements: test_chan_paired[<scenario>-<capacity>], group chan-paired.
CHANNEL_PAIRED_NAME = re.compile(r"test_chan_paired\[(\w+)-(cap\d+|unbounded)\]$")


def parse_channel(name: str) -> Optional[Tuple[str, str, str]]:
    """test_chan_t2c[offload-cap256] -> ("t2c", "offload", "cap256"); None for other names."""
    m = CHANNEL_NAME.match(name)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def is_channel(name: str) -> bool:
    return name.startswith("test_chan_")


def fmt_item(seconds: float) -> str:
    """A time per item: 0.71 us, 12.9 us, 1.23 ms."""
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    us = seconds * 1e6
    return f"{us:.2f} us" if us < 10 else f"{us:.1f} us"


def channel_baseline(per_item: Dict[str, float], scenario: str) -> Tuple[Optional[str], float]:
    """The scenario's baseline in one group: the fastest of its baseline candidates."""
    present = [(per_item[c], c) for c in CHANNEL_SCENARIOS[scenario][1] if c in per_item]
    if not present:
        return None, float("nan")
    value, name = min(present)
    return name, value


ChannelData = Dict[Tuple[str, str], Dict[str, float]]


def channel_data(benchmarks: List[dict]) -> Tuple[ChannelData, Dict[Tuple[str, str], int]]:
    """(scenario, capacity) -> candidate -> median time per item; and the items per round."""
    data: ChannelData = defaultdict(dict)
    items: Dict[Tuple[str, str], int] = {}
    for b in benchmarks:
        parsed = parse_channel(b["name"])
        n = b.get("extra_info", {}).get("items")
        if parsed is None or not n:
            continue
        scenario, candidate, capacity = parsed
        data[(scenario, capacity)][candidate] = b["stats"]["median"] / n
        items[(scenario, capacity)] = n
    # the paired runs: offload and each baseline, per item, keyed like `data`
    for b in benchmarks:
        m = CHANNEL_PAIRED_NAME.match(b["name"])
        extra = b.get("extra_info", {})
        if not m or not extra.get("items") or "baseline_medians" not in extra:
            continue
        n = extra["items"]
        paired = {name: median / n for name, median in extra["baseline_medians"].items()}
        paired["offload"] = b["stats"]["median"] / n
        data[("paired-" + m.group(1), m.group(2))] = paired
    return data, items


class ChannelGoal(NamedTuple):
    scenario: str
    capacity: str
    goal: float
    offload: float        # per item, from the paired run when there is one
    base_name: str
    base: float           # the baseline per item, same source
    paired: bool          # whether offload / base come from the paired run
    unpaired_ratio: float  # base / offload from the scenario's group

    @property
    def ratio(self) -> float:
        return self.base / self.offload


def channel_goals(data: ChannelData) -> List[ChannelGoal]:
    """One row per goal and capacity, judged on the paired run when the JSON has it."""
    rows = []
    for scenario, (_, _, goal) in CHANNEL_SCENARIOS.items():
        if goal is None:
            continue
        for capacity in CHANNEL_CAPACITIES:
            group = data.get((scenario, capacity), {})
            paired = data.get(("paired-" + scenario, capacity), {})
            if not group and not paired:
                continue
            _, g_base = channel_baseline(group, scenario)
            unpaired = g_base / group.get("offload", float("nan"))
            source = paired if "offload" in paired else group
            base_name, base = channel_baseline(source, scenario)
            rows.append(ChannelGoal(scenario, capacity, goal, source.get("offload", float("nan")),
                                    base_name or "-", base, source is paired, unpaired))
    return rows


def channel_section(data: ChannelData, items: Dict[Tuple[str, str], int]) -> List[str]:
    """The channels section: goals, then one table per scenario (time per item and speed-up)."""
    if not data:
        return []
    out: List[str] = []
    w = out.append
    w("## Channels\n")
    w("`offload.Channel` against the queues that cross threads and coroutines. Each round makes a")
    w("fresh queue (untimed), moves n ints from the producer to the consumer, and the consumer")
    w("asserts it received exactly 0..n-1 in order; a thread side is a new thread started inside")
    w("the round, for every candidate alike; coroutines run on one persistent default asyncio")
    w("loop. Each candidate uses its own calls for the role (offload: `send_blocking` /")
    w("`recv_blocking` in threads, `await send` / `await recv` in coroutines), the fastest correct")
    w("ones of each library (see `benchmarks/test_bench_channels.py`). Times are medians per item;")
    w("speed-up = the baseline's time per item / the entry's (higher is better), from the same run.\n")

    w("### Goals (channels)\n")
    w("Judged on paired runs: before each timed offload round, every baseline candidate of the")
    w("scenario runs one round, timed by hand, so both sides see the same machine conditions")
    w("(`test_chan_paired`); the baseline is the fastest of them by median (one more than 4x slower")
    w("than the fastest in the warm-up round is left out of the pairs). The last column gives the")
    w("same ratio from the scenario's own tables below, measured one candidate after another.\n")
    w("| goal | capacity | offload per item | baseline per item | measured (paired) | met "
      "| unpaired |")
    w("|---|---|---|---|---|---|---|")
    for g in channel_goals(data):
        met = "yes" if g.ratio >= g.goal else "**no**"
        source = "" if g.paired else " (unpaired)"
        w(f"| {CHANNEL_SCENARIOS[g.scenario][0]}: offload >= {g.goal:g}x "
          f"{baseline_label(g.scenario)} | {CHANNEL_CAPACITIES[g.capacity]} | {fmt_item(g.offload)} "
          f"| {g.base_name} {fmt_item(g.base)} | {g.ratio:.2f}x{source} | {met} "
          f"| {g.unpaired_ratio:.2f}x |")
    w("")

    for scenario, (title, _, goal) in CHANNEL_SCENARIOS.items():
        caps = [c for c in CHANNEL_CAPACITIES if (scenario, c) in data and (scenario, c) in items]
        if not caps:
            continue
        w(f"### {scenario}: {title}\n")
        goal_text = f"; goal: offload >= {goal:g}x" if goal is not None else " (no goal)"
        ns = ", ".join(f"{items[(scenario, c)]:,} items ({CHANNEL_CAPACITIES[c]})" for c in caps)
        w(f"Speed-up vs {baseline_label(scenario)}{goal_text}. Per round: {ns}.\n")
        w("| candidate | " + " | ".join(CHANNEL_CAPACITIES[c] for c in caps) + " |")
        w("|---|" + "---|" * len(caps))
        candidates: List[str] = []
        for c in caps:
            for name in sorted(data[(scenario, c)], key=data[(scenario, c)].get):
                if name not in candidates:
                    candidates.append(name)
        order = list(CHANNEL_CANDIDATES)
        candidates.sort(key=lambda name: (name != "offload", order.index(name) if name in order else 99))
        for name in candidates:
            cells = []
            for c in caps:
                per_item = data[(scenario, c)]
                if name not in per_item:
                    cells.append("-")
                    continue
                base_name, base = channel_baseline(per_item, scenario)
                mark = " (baseline)" if name == base_name else ""
                cells.append(f"{fmt_item(per_item[name])}, {base / per_item[name]:.2f}x{mark}")
            w(f"| {CHANNEL_CANDIDATES.get(name, name)} | " + " | ".join(cells) + " |")
        w("")
    return out


def baseline_label(scenario: str) -> str:
    names = CHANNEL_SCENARIOS[scenario][1]
    if len(names) == 1:
        return CHANNEL_CANDIDATES.get(names[0], names[0])
    return "the best of " + ", ".join(names[:-1]) + " and " + names[-1]


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
        if is_channel(b["name"]):
            continue  # the channels section reads these itself
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

    chan, chan_items = channel_data(data["benchmarks"])
    has_calls = bool(groups)

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
    for loop in ("asyncio", "uvloop") if has_calls else ():
        speed = ratio("gather-10000", ("to_thread", loop), ("offload_run", loop))
        floor = paired.get(("gather_10000", loop), float("nan"))
        goals.append((f"gather of 10,000 `offload.run` vs `asyncio.to_thread` ({loop})", speed, speed >= 10, ">= 10x"))
        goals.append((f"gather of 10,000 `offload.run` vs the asyncio floor ({loop}, paired)", floor, floor >= 0.8, ">= 0.8x"))
    if has_calls:
        mp = ratio("map-10000", ("to_thread", "asyncio"), ("offload_pool_map", "asyncio"))
        goals.append(("`await pool.map(f, range(10_000))` vs gather of `to_thread`", mp, mp >= 20, ">= 20x"))
    for loop in ("asyncio", "uvloop") if has_calls else ():
        rt = 1 / paired.get(("round_trip", loop), float("nan"))
        goals.append((f"sequential round trip, offload time / to_thread time ({loop}, paired)", rt, rt <= 0.8, "<= 0.8x"))
    for g in channel_goals(chan):
        paired_text = ", paired" if g.paired else ""
        goals.append((f"channel, {CHANNEL_SCENARIOS[g.scenario][0]} ({CHANNEL_CAPACITIES[g.capacity]}"
                      f"{paired_text}), offload vs {baseline_label(g.scenario)}", g.ratio,
                      g.ratio >= g.goal, f">= {g.goal:g}x"))
    for text, value, met, target in goals:
        w(f"| {text} (target {target}) | {value:.2f}x | {'yes' if met else '**no**'} |")
    w("")
    if chan:
        w("Channel goals: details and every candidate in [Channels](#channels) below.\n")
    if has_calls:
        calls_notes(w, groups)
    out.extend(channel_section(chan, chan_items))
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):  # hand-written history and notes, kept across runs
        with open(notes) as f:
            out.append("")
            out.append(f.read().rstrip())
    print("\n".join(out))
    return 0


def calls_notes(w, groups: Dict[str, Dict[Tuple[str, str], float]]) -> None:
    """The calls part after the goals table: the floor explained and every call scenario."""
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


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "build/bench.json"))
