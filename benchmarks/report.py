"""Render pytest-benchmark JSONs as docs/benchmarks.md: tables of ratios, goals checked, for
the calls (test_bench_calls.py), the channels (test_bench_channels.py) and CPU work
(test_bench_cpu.py, usually in a JSON of its own: InterpreterPool needs Python >= 3.12, so
`make bench` may run it under another venv).

    python -m pytest benchmarks -q --ignore=benchmarks/test_bench_cpu.py --benchmark-json=build/bench.json
    python -m pytest benchmarks/test_bench_cpu.py -q --benchmark-json=build/bench-cpu.json
    python benchmarks/report.py build/bench.json build/bench-cpu.json > docs/benchmarks.md

Every figure is a ratio between two medians of the same run (this machine is noisy; absolute
times are shown only for orientation). `make bench` runs these commands. A JSON that does not
exist is left out with a note; the first one given sets the machine and date of the header.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Tuple

from offload.demo import fmt as fmt_time

COMMAND = (
    "make bench   # runs, after the C++ benchmarks (make bench-cpp):\n"
    "python -m pytest benchmarks -q --ignore=benchmarks/test_bench_cpu.py --ignore=benchmarks/test_bench_dask.py \\\n"
    "  --benchmark-json=build/bench.json\n"
    "python -m pytest benchmarks/test_bench_cpu.py -q --benchmark-json=build/bench-cpu.json   # Python >= 3.12.4\n"
    "python -m pytest benchmarks/test_bench_dask.py -q --benchmark-json=build/bench-dask.json\n"
    "python benchmarks/memory_per_task.py --tasks 200000 --json build/memory-task.json\n"
    "python benchmarks/memory_per_item.py --items 1000000 --json build/memory-item.json\n"
    "python benchmarks/report.py build/bench.json --cpu build/bench-cpu.json --dask build/bench-dask.json \\\n"
    "  --cpp build/bench-cpp.json --memory-task build/memory-task.json --memory-item build/memory-item.json \\\n"
    "  --plots docs/plots > docs/benchmarks.md"
)

# -- calls (test_bench_calls.py) -----------------------------------------------------------------
# Each entry's extra_info says what it is; these name the candidates and scenarios.
CALL_CANDIDATES = {
    "offload": "`offload.run`",
    "to_thread": "`asyncio.to_thread`",
    "executor": "`run_in_executor(ThreadPoolExecutor())`",
    "anyio": "`anyio.to_thread.run_sync`",
}
BULK_CANDIDATES = {
    "pool_map": "`await pool.map(fn, items)`",
    "pool_imap": "`async for r in pool.imap(fn, items)`",
    "to_thread_gather": "gather of `asyncio.to_thread`",
    "executor_map": "`ThreadPoolExecutor.map`, run in the loop's executor",
}
WORKS = {"trivial": "a trivial function", "50us": "~50 us of GIL-releasing work (sha256)"}
BURSTS = (1, 100, 10_000)
LOOPS = ("asyncio", "uvloop")


class Calls(NamedTuple):
    per_call: Dict[Tuple[str, str, int], Dict[str, float]]  # (work, loop, burst) -> candidate -> s
    bulk: Dict[str, Dict[str, float]]                        # work -> candidate -> s per item
    bulk_n: Dict[str, int]
    latency: Dict[str, Dict[str, dict]]                      # loop -> candidate -> extra_info
    paired: Dict[Tuple[str, str], float]                     # (scenario, loop) -> base / offload
    paired_runs: Dict[Tuple[str, str], dict]                 # (scenario, loop) -> the benchmark


def calls_data(benchmarks: List[dict]) -> Calls:
    per_call: Dict[Tuple[str, str, int], Dict[str, float]] = defaultdict(dict)
    bulk: Dict[str, Dict[str, float]] = defaultdict(dict)
    bulk_n: Dict[str, int] = {}
    latency: Dict[str, Dict[str, dict]] = defaultdict(dict)
    paired: Dict[Tuple[str, str], float] = {}
    paired_runs: Dict[Tuple[str, str], dict] = {}
    for b in benchmarks:
        e = b.get("extra_info", {})
        name = b["name"]
        if name.startswith("test_calls["):
            per_call[(e["work"], e["loop"], e["burst"])][e["candidate"]] = b["stats"]["median"] / e["calls"]
        elif name.startswith("test_bulk["):
            bulk[e["work"]][e["candidate"]] = b["stats"]["median"] / e["calls"]
            bulk_n[e["work"]] = e["calls"]
        elif name.startswith("test_latency["):
            latency[e["loop"]][e["candidate"]] = e
        elif b["group"] == "paired":
            m = re.match(r"test_paired_(\w+?)_vs_\w+\[(\w+)\]", name)
            if m:
                paired[(m.group(1), m.group(2))] = e["baseline_median"] / b["stats"]["median"]
                paired_runs[(m.group(1), m.group(2))] = b
    return Calls(dict(per_call), dict(bulk), bulk_n, dict(latency), paired, paired_runs)


def best_other(values: Dict[str, float], subject: str) -> Tuple[Optional[str], float]:
    """The fastest candidate other than `subject`: (name, value), or (None, nan)."""
    others = [(v, k) for k, v in values.items() if k != subject]
    if not others:
        return None, float("nan")
    value, name = min(others)
    return name, value


# Channels: test_chan_<scenario>[<candidate>-<capacity>], grouped as chan-<scenario>-<capacity>.
CHANNEL_NAME = re.compile(r"test_chan_(\w+?)\[(\w+)-(cap\d+|unbounded)\]$")
CHANNEL_CAPACITIES = {"cap0": "capacity 0", "cap1": "capacity 1", "cap256": "capacity 256",
                      "unbounded": "unbounded"}
# Capacity 0 is a rendezvous, which none of the scenarios' baselines has: offload's is compared
# with them at capacity 1, the closest semantics, and there is no goal.
CHANNEL_STAND_IN = {"cap0": "cap1"}
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
    "anyio": "anyio `create_memory_object_stream(0)` (capacity 0 only)",
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
            if capacity in CHANNEL_STAND_IN:
                continue  # no goal: see channel_rendezvous
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
    out.extend(channel_rendezvous(data))

    for scenario, (title, _, goal) in CHANNEL_SCENARIOS.items():
        caps = [c for c in CHANNEL_CAPACITIES if (scenario, c) in data and (scenario, c) in items]
        if not caps:
            continue
        w(f"### {scenario}: {title}\n")
        goal_text = f"; goal: offload >= {goal:g}x" if goal is not None else " (no goal)"
        ns = ", ".join(f"{items[(scenario, c)]:,} items ({CHANNEL_CAPACITIES[c]})" for c in caps)
        w(f"Speed-up vs {baseline_label(scenario)}{goal_text}. Per round: {ns}.")
        if "cap0" in caps:
            w("Capacity 0 (a rendezvous, which the baselines lack): speed-up vs the baseline at")
            w("capacity 1, from that column; *no rendezvous* marks the candidates without one.")
        w("")
        w("| candidate | " + " | ".join(channel_column(c) for c in caps) + " |")
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
                stand_in = data.get((scenario, CHANNEL_STAND_IN.get(c, c)), {})
                if name not in per_item:
                    no_rendezvous = c in CHANNEL_STAND_IN and name in stand_in
                    cells.append("*no rendezvous*" if no_rendezvous else "-")
                    continue
                base_name, base = channel_baseline(stand_in, scenario)
                mark = " (baseline)" if name == base_name and stand_in is per_item else ""
                ratio = f", {base / per_item[name]:.2f}x{mark}" if base_name else ""
                cells.append(f"{fmt_item(per_item[name])}{ratio}")
            w(f"| {CHANNEL_CANDIDATES.get(name, name)} | " + " | ".join(cells) + " |")
        w("")
    return out


def channel_column(capacity: str) -> str:
    """A scenario table's column header."""
    if capacity in CHANNEL_STAND_IN:
        return (f"{CHANNEL_CAPACITIES[capacity]} (rendezvous; vs the baseline at "
                f"{CHANNEL_CAPACITIES[CHANNEL_STAND_IN[capacity]]})")
    return CHANNEL_CAPACITIES[capacity]


def channel_rendezvous(data: ChannelData) -> List[str]:
    """Capacity 0: offload's rendezvous against each scenario's baselines at capacity 1 (none of
    them has a rendezvous) and against the alternatives that have one, from the paired runs."""
    scenarios = [s for s in CHANNEL_SCENARIOS
                 if ("paired-" + s, "cap0") in data or (s, "cap0") in data]
    if not scenarios:
        return []
    out: List[str] = []
    w = out.append
    w("### Rendezvous (capacity 0)\n")
    w("A send on `offload.Channel(0)` completes only when a receiver takes the item. None of the")
    w("baselines has such a rendezvous: janus, culsans, `asyncio.Queue` and `queue.Queue` read")
    w("`maxsize=0` as unbounded, and `aiologic.Queue` refuses it. So offload's rendezvous is")
    w("compared with them at capacity 1, the closest semantics but a weaker one (one item may wait")
    w("in the queue, and the sender goes on before it is taken). The one alternative with a real")
    w("rendezvous, anyio's `create_memory_object_stream(0)` (coroutines only), runs at capacity 0")
    w("in c2c. Paired runs as for the goals (`test_chan_paired[<scenario>-cap0]`: each baseline")
    w("and rendezvous alternative runs one round before each timed offload round); *unpaired* is")
    w("the same ratio from the scenario's tables below. No goal.\n")
    w("| scenario | offload, capacity 0 | best baseline at capacity 1 | speed-up (paired) "
      "| unpaired | alternative with a rendezvous | speed-up vs it (paired) |")
    w("|---|---|---|---|---|---|---|")
    def cell(value: float, text: str) -> str:
        return "-" if value != value else text  # NaN: not measured in this run

    for scenario in scenarios:
        paired = data.get(("paired-" + scenario, "cap0"), {})
        group = data.get((scenario, "cap0"), {})
        offload = paired.get("offload", float("nan"))
        base_name, base = channel_baseline(paired, scenario)
        _, group_base = channel_baseline(data.get((scenario, "cap1"), {}), scenario)
        unpaired = group_base / group.get("offload", float("nan"))
        ratio = base / offload
        others = [n for n in paired if n != "offload" and n not in CHANNEL_SCENARIOS[scenario][1]]
        alternative = ", ".join(f"{n} {fmt_item(paired[n])}" for n in others) or "none"
        versus = ", ".join(f"{paired[n] / offload:.2f}x" for n in others) or "-"
        w(f"| {scenario}: {CHANNEL_SCENARIOS[scenario][0]} | {cell(offload, fmt_item(offload))} "
          f"| {cell(base, f'{base_name} {fmt_item(base)}')} | {cell(ratio, f'{ratio:.2f}x')} "
          f"| {cell(unpaired, f'{unpaired:.2f}x')} | {alternative} | {versus} |")
    w("")
    return out


def baseline_label(scenario: str) -> str:
    names = CHANNEL_SCENARIOS[scenario][1]
    if len(names) == 1:
        return CHANNEL_CANDIDATES.get(names[0], names[0])
    return "the best of " + ", ".join(names[:-1]) + " and " + names[-1]


# -- CPU work (test_bench_cpu.py) --------------------------------------------------------------
# test_cpu_<scenario>[<candidate>], group cpu-<scenario>; paired runs: test_cpu_paired[<scenario>].
CPU_NAME = re.compile(r"test_cpu_(spin|tiny|sha256)\[(\w+)\]$")
CPU_PAIRED_NAME = re.compile(r"test_cpu_paired\[(\w+)\]$")
CPU_SCENARIOS = {
    "spin": "16 calls of ~50 ms of pure-Python work (holds the GIL)",
    "tiny": "500 trivial calls (the function returns its argument)",
    "sha256": "sha256 of 32 blobs of 1 MiB (releases the GIL)",
}
CPU_CANDIDATES = {
    "serial": "serial loop (no pool)",
    "offload_pool_map": "`offload.Pool(2).map` (threads)",
    "offload_pool_run": "`offload.Pool(2)`, gather of `run` (threads)",
    "interpreter_pool_map": "`offload.InterpreterPool(2).map`",
    "interpreter_pool_run": "`offload.InterpreterPool(2)`, gather of `run`",
    "process_pool_map": "`offload.ProcessPool(2).map`",
    "process_pool_run": "`offload.ProcessPool(2)`, gather of `run`",
    "ppe_map": "`ProcessPoolExecutor(2).map`",
    "ppe_run_in_executor": "`ProcessPoolExecutor(2)`, gather of `run_in_executor`",
    "tpe_map": "`ThreadPoolExecutor(2).map`",
    "tpe_run_in_executor": "`ThreadPoolExecutor(2)`, gather of `run_in_executor`",
}
TPE = ("tpe_run_in_executor", "tpe_map")


class CpuGoal(NamedTuple):
    scenario: str
    text: str
    subject: str
    bases: Tuple[str, ...]  # the fastest of them is the baseline
    target: float
    speedup: bool           # True: base time / subject time >= target; False: subject / base <= target


CPU_GOALS = [
    CpuGoal("spin", "pure-Python work, `InterpreterPool(2).map` vs serial", "interpreter_pool_map",
            ("serial",), 1.6, True),
    CpuGoal("spin", "pure-Python work, `ProcessPool(2).map` vs serial", "process_pool_map",
            ("serial",), 1.6, True),
    CpuGoal("tiny", "500 tiny calls, time of `InterpreterPool(2)` gather of `run` / "
            "`ProcessPoolExecutor(2)` gather of `run_in_executor`", "interpreter_pool_run",
            ("ppe_run_in_executor",), 0.5, False),
    CpuGoal("tiny", "500 tiny calls, time of `InterpreterPool(2).map` / `ProcessPoolExecutor(2).map`",
            "interpreter_pool_map", ("ppe_map",), 0.5, False),
    CpuGoal("sha256", "GIL-releasing work, `offload.Pool(2).map` vs serial", "offload_pool_map",
            ("serial",), 1.6, True),
    CpuGoal("sha256", "GIL-releasing work, `offload.Pool(2).map` vs `ThreadPoolExecutor(2)` "
            "(the faster of its gather of `run_in_executor` and `map`)", "offload_pool_map", TPE, 0.95, True),
]


class CpuData(NamedTuple):
    groups: Dict[str, Dict[str, float]]  # scenario -> candidate -> median (unpaired runs)
    paired: Dict[str, Dict[str, float]]  # scenario -> candidate -> median (paired run)
    extra: Dict[str, dict]               # scenario -> extra_info of its paired (else any) run
    others: Dict[Tuple[str, str], float]  # (scenario, candidate or "paired") -> other processes' CPUs
    info: dict                           # the JSON's machine_info, datetime and path


def is_cpu(name: str) -> bool:
    return name.startswith("test_cpu_")


def cpu_data(data: dict, path: str) -> Optional[CpuData]:
    groups: Dict[str, Dict[str, float]] = defaultdict(dict)
    paired: Dict[str, Dict[str, float]] = {}
    extra: Dict[str, dict] = {}
    others: Dict[Tuple[str, str], float] = {}
    for b in data["benchmarks"]:
        m = CPU_NAME.match(b["name"])
        e = b.get("extra_info", {})
        if m:
            groups[m.group(1)][m.group(2)] = b["stats"]["median"]
            extra.setdefault(m.group(1), e)
            if "other_cpus" in e:
                others[(m.group(1), m.group(2))] = e["other_cpus"]
            continue
        m = CPU_PAIRED_NAME.match(b["name"])
        if m and "subject" in e and "medians" in e:
            paired[m.group(1)] = dict(e["medians"], **{e["subject"]: b["stats"]["median"]})
            extra[m.group(1)] = e
            if "other_cpus" in e:
                others[(m.group(1), "paired")] = e["other_cpus"]
    if not groups and not paired:
        return None
    info = {"python": data.get("machine_info", {}).get("python_version", "?"),
            "datetime": data.get("datetime", "")[:19], "path": path}
    return CpuData(dict(groups), paired, extra, others, info)


class CpuResult(NamedTuple):
    goal: CpuGoal
    ratio: float           # as the goal states it: a speed-up, or a time ratio
    subject: float
    base_name: str
    base: float
    paired: bool
    unpaired_ratio: float

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal.target if self.goal.speedup else self.ratio <= self.goal.target


def cpu_ratio(goal: CpuGoal, medians: Dict[str, float]) -> Tuple[float, float, str, float]:
    """(ratio, subject median, baseline name, baseline median) from one set of medians."""
    present = [(medians[b], b) for b in goal.bases if b in medians]
    if goal.subject not in medians or not present:
        return float("nan"), float("nan"), "-", float("nan")
    base, base_name = min(present)
    subject = medians[goal.subject]
    return (base / subject if goal.speedup else subject / base), subject, base_name, base


def cpu_results(cpu: CpuData) -> List[CpuResult]:
    rows = []
    for goal in CPU_GOALS:
        unpaired = cpu_ratio(goal, cpu.groups.get(goal.scenario, {}))
        paired = cpu_ratio(goal, cpu.paired.get(goal.scenario, {}))
        source, is_paired = (paired, True) if paired[1] == paired[1] else (unpaired, False)
        rows.append(CpuResult(goal, source[0], source[1], source[2], source[3], is_paired, unpaired[0]))
    return rows


def fmt_ratio(goal: CpuGoal, value: float) -> str:
    if value != value:
        return "not measured"
    return f"{value:.2f}x" if goal.speedup else f"{value:.2f}x the time"


def cpu_goal_rows(cpu: Optional[CpuData]) -> List[Tuple[str, float, bool, str, str]]:
    """The CPU goals for the summary table: (text, value, met, target text, value text)."""
    if cpu is None:
        return []
    rows = []
    for r in cpu_results(cpu):
        op = ">=" if r.goal.speedup else "<="
        paired = ", paired" if r.paired else ""
        rows.append((f"CPU work: {r.goal.text} (Python {cpu.info['python']}{paired})", r.ratio,
                     r.met, f"{op} {r.goal.target:g}x", fmt_ratio(r.goal, r.ratio)))
    return rows


def cpu_baseline(scenario: str, name: str, medians: Dict[str, float]) -> Tuple[str, Optional[float]]:
    """The baseline an entry's table row is compared with: serial, or for tiny calls the
    ProcessPoolExecutor call of the same shape (map with map, gather with gather)."""
    if scenario == "tiny":
        base = "ppe_map" if name.endswith("_map") else "ppe_run_in_executor"
    else:
        base = "serial"
    return base, medians.get(base)


def fmt_others(cpus: Optional[float]) -> str:
    return "-" if cpus is None else f"{cpus:.2f} CPUs"


def cpu_section(cpu: Optional[CpuData], missing: List[str]) -> List[str]:
    out: List[str] = []
    w = out.append
    w("## CPU work\n")
    if cpu is None:
        w("Not measured in this run" + (f" ({', '.join(missing)} not found)" if missing else "") + ".\n")
        return out
    w(f"`benchmarks/test_bench_cpu.py`, run under Python {cpu.info['python']} "
      f"(`{cpu.info['path']}`, {cpu.info['datetime']}):")
    w("offload's CPU pools, one worker interpreter or process per worker thread, and its thread")
    w("pool, against serial code and `concurrent.futures`, 2 workers each.")
    w("Every pool is created once and warmed (each worker has answered a call) before any timed")
    w("round; rounds run on one persistent default asyncio loop. The `ProcessPoolExecutor` uses")
    w("the forkserver start method, like `ProcessPool`. Functions are in `benchmarks/bench_cpu_work.py`.\n")
    spin = cpu.extra.get("spin", {})
    if "spin_n" in spin:
        w(f"The pure-Python function is a loop of `spin_n` = {spin['spin_n']:,} iterations, calibrated")
        w(f"at the start of the session to ~50 ms a call (the 16 calls took "
          f"{fmt_time(spin.get('spin_serial_seconds_at_calibration', float('nan')))} serially then).")
    if cpu.others:
        w("The *others* columns give how busy the machine was with other work meanwhile: the CPU")
        w("time that every other process used during the benchmark, as an average number of CPUs")
        w("(of 2; this benchmark and its worker processes excluded).")
    interp = next((e["interpreter_pool"] for e in cpu.extra.values()
                   if e.get("interpreter_pool") not in (None, "available")), None)
    if interp:
        w(f"\n**InterpreterPool not measured**: {interp}.")
    w("")

    w("### Goals (CPU work)\n")
    w("Judged on paired runs (`test_cpu_paired`): before each timed round of the subject, every")
    w("other candidate of the scenario runs one round, timed by hand, so all see the same machine")
    w("conditions. The last column gives the same ratio from the scenario's table below, where")
    w("the candidates ran one after another.\n")
    w("| goal | subject | baseline | measured (paired) | met | unpaired | others (paired run) |")
    w("|---|---|---|---|---|---|---|")
    for r in cpu_results(cpu):
        op = ">=" if r.goal.speedup else "<="
        measured = r.ratio == r.ratio
        source = "" if r.paired or not measured else " (unpaired)"
        met = "-" if not measured else "yes" if r.met else "**no**"
        base = f"{r.base_name} {fmt_time(r.base)}" if r.base == r.base else "-"
        subject = fmt_time(r.subject) if r.subject == r.subject else "-"
        w(f"| {r.goal.text}: {op} {r.goal.target:g}x | {subject} | {base} "
          f"| {fmt_ratio(r.goal, r.ratio)}{source} | {met} | {fmt_ratio(r.goal, r.unpaired_ratio)} "
          f"| {fmt_others(cpu.others.get((r.goal.scenario, 'paired')))} |")
    w("")

    for scenario, title in CPU_SCENARIOS.items():
        medians = cpu.groups.get(scenario)
        if not medians:
            continue
        calls = cpu.extra.get(scenario, {}).get("calls")
        w(f"### {scenario}: {title}\n")
        if scenario == "tiny":
            w("Speed-up = the `ProcessPoolExecutor` median of the same shape (`map` for a map, the gather")
            w("of `run_in_executor` for a gather) / the entry's median.\n")
        else:
            w("Speed-up = the serial median / the entry's median.\n")
        w("| candidate | median | per call | speed-up | others |")
        w("|---|---|---|---|---|")
        order = list(CPU_CANDIDATES)
        for name in sorted(medians, key=lambda n: order.index(n) if n in order else 99):
            base_name, base = cpu_baseline(scenario, name, medians)
            speed = f"{base / medians[name]:.2f}x" if base else "-"
            if name == base_name:
                speed += " (baseline)"
            per_call = fmt_item(medians[name] / calls) if calls else "-"
            w(f"| {CPU_CANDIDATES.get(name, name)} | {fmt_time(medians[name])} | {per_call} | {speed} "
              f"| {fmt_others(cpu.others.get((scenario, name)))} |")
        w("")
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load(path: Optional[str], missing: List[str]) -> Optional[dict]:
    """A JSON file's content; a path that does not exist is noted in `missing`."""
    if path is None:
        return None
    if not os.path.exists(path):
        missing.append(path)
        return None
    with open(path) as f:
        data: dict = json.load(f)
    return data


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description="Render the benchmark JSONs as docs/benchmarks.md.")
    parser.add_argument("main", nargs="?", default="build/bench.json",
                        help="pytest-benchmark JSON of the calls and channels (sets the header)")
    parser.add_argument("--cpu", help="pytest-benchmark JSON of test_bench_cpu.py")
    parser.add_argument("--dask", help="pytest-benchmark JSON of test_bench_dask.py")
    parser.add_argument("--cpp", help="Google Benchmark JSON of cpp/bench/core_bench")
    parser.add_argument("--memory-task", help="JSON of benchmarks/memory_per_task.py")
    parser.add_argument("--memory-item", help="JSON of benchmarks/memory_per_item.py")
    parser.add_argument("--plots", help="directory for the PNG plots (relative links assume docs/plots)")
    args = parser.parse_args(argv)

    missing: List[str] = []
    data = load(args.main, missing)
    if data is None:
        parser.error(f"{args.main} does not exist")
    assert data is not None
    cpu = cpu_data(data, args.main)
    more = load(args.cpu, missing)
    if more is not None:
        cpu = cpu_data(more, args.cpu) or cpu
        data["benchmarks"] = data["benchmarks"] + [b for b in more["benchmarks"] if not is_cpu(b["name"])]
    calls = calls_data(data["benchmarks"])
    plots: List[str] = []
    if args.plots:
        try:
            import plots as plotting

            plots = plotting.render(data["benchmarks"], args.plots)
        except ImportError as error:  # matplotlib is in the bench extras
            missing.append(f"the plots ({error})")

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
    if cpu is not None and cpu.info["path"] != args.main:
        w(f"- CPU work: Python {cpu.info['python']}, date {cpu.info['datetime']} (`{cpu.info['path']}`)")
    w(f"- Versions: {versions()}")
    if missing:
        w(f"- Not measured in this run: {', '.join(missing)}")
    w("")

    chan, chan_items = channel_data(data["benchmarks"])

    w("## Goals\n")
    w("| goal | measured | met |")
    w("|---|---|---|")
    goals = []
    for loop in LOOPS:
        group = calls.per_call.get(("trivial", loop, 10_000), {})
        if "offload" in group and "to_thread" in group:
            speed = group["to_thread"] / group["offload"]
            goals.append((f"gather of 10,000 `offload.run` vs `asyncio.to_thread` ({loop})", speed, speed >= 16, ">= 16x"))
        if ("gather_10000", loop) in calls.paired:
            floor = calls.paired[("gather_10000", loop)]
            goals.append((f"gather of 10,000 `offload.run` vs the asyncio floor ({loop}, paired)", floor, floor >= 0.95, ">= 0.95x"))
        if ("create_task_10000", loop) in calls.paired:
            ct = calls.paired[("create_task_10000", loop)]
            goals.append((f"10,000 `create_task(offload.run(f))` vs `create_task(asyncio.to_thread(f))` ({loop}, paired)", ct, ct >= 5, ">= 5x"))
        if ("from_thread", loop) in calls.paired:
            ft = calls.paired[("from_thread", loop)]
            goals.append((f"`from_thread.run_sync` round trip vs the best of `run_coroutine_threadsafe(...).result()` and `anyio.from_thread.run_sync` ({loop}, paired)", ft, ft >= 3, ">= 3x"))
    trivial_bulk = calls.bulk.get("trivial", {})
    if "pool_map" in trivial_bulk and "to_thread_gather" in trivial_bulk:
        mp = trivial_bulk["to_thread_gather"] / trivial_bulk["pool_map"]
        goals.append(("`await pool.map(f, range(10_000))` vs gather of `to_thread`", mp, mp >= 20, ">= 20x"))
    for loop in LOOPS:
        if ("round_trip", loop) in calls.paired:
            rt = 1 / calls.paired[("round_trip", loop)]
            goals.append((f"sequential round trip, offload time / to_thread time ({loop}, paired)", rt, rt <= 0.8, "<= 0.8x"))
    for g in channel_goals(chan):
        paired_text = ", paired" if g.paired else ""
        goals.append((f"channel, {CHANNEL_SCENARIOS[g.scenario][0]} ({CHANNEL_CAPACITIES[g.capacity]}"
                      f"{paired_text}), offload vs {baseline_label(g.scenario)}", g.ratio,
                      g.ratio >= g.goal, f">= {g.goal:g}x"))
    for text, value, met, target in goals:
        w(f"| {text} (target {target}) | {value:.2f}x | {'yes' if met else '**no**'} |")
    for text, value, met, target, value_text in cpu_goal_rows(cpu):
        w(f"| {text} (target {target}) | {value_text} | {'-' if value != value else 'yes' if met else '**no**'} |")
    w("")
    w("Details, every candidate and the explanations in the sections below: [calls](#calls),")
    w("[bulk](#bulk), [latency](#latency), [channels](#channels), [CPU work](#cpu-work),")
    w("[memory](#memory), [the C++ core](#c-core-offload-vs-a-plain-std-mutex-std-condition-variable-baseline)"
      " and [DaskPool](#daskpool-on-a-dask-cluster).\n")

    out.extend(calls_section(calls, plots))
    out.extend(dropin_section(calls))
    out.extend(channel_section(chan, chan_items))
    if cpu is not None or args.cpu:
        out.extend(cpu_section(cpu, [p for p in missing if p == args.cpu]))
    memory_task, memory_item = load(args.memory_task, []), load(args.memory_item, [])
    if memory_task is not None or memory_item is not None:
        out.extend(memory_section(memory_task, memory_item))
    cpp = load(args.cpp, [])
    if cpp is not None:
        import cpp_report

        out.append(cpp_report.render(cpp))
    dask = load(args.dask, [])
    if dask is not None:
        import report_dask

        out.extend(report_dask.section(dask))
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):  # hand-written history and notes, kept across runs
        with open(notes) as f:
            out.append("")
            out.append(f.read().rstrip())
    print("\n".join(out))
    return 0


def versions() -> str:
    """The versions of what was compared, as installed."""
    from importlib import metadata

    names = ["offload", "uvloop", "anyio", "janus", "culsans", "aiologic", "distributed"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        import offload

        found[0:1] = [f"{found[0]} (default pool of {offload.default_pool().workers} workers)"]
    except (ImportError, IndexError):
        pass
    return ", ".join(found)


def fmt_ratio_to_best(values: Dict[str, float], subject: str = "offload") -> str:
    """`subject`'s speed-up over the fastest other candidate: its time / subject's time."""
    name, best = best_other(values, subject)
    if name is None or subject not in values:
        return "-"
    return f"**{best / values[subject]:.2f}x** (vs {name})"


def calls_section(calls: Calls, plots: List[str]) -> List[str]:
    """Per-call scenarios (bursts x work x loop), bulk and latency."""
    out: List[str] = []
    w = out.append
    if calls.per_call:
        w("## Calls\n")
        w("`benchmarks/test_bench_calls.py`. A burst of 1 is 200 calls awaited one after the other;")
        w("bursts of 100 and 10,000 are one `asyncio.gather`. Each cell is the median time per call")
        w("(lower is better); the last column is offload's speed-up over the fastest alternative of")
        w("the same row. `run_in_executor` uses a `ThreadPoolExecutor()` of the default size; the")
        w("default pool behind `offload.run` has one worker per CPU.\n")
        if "calls-throughput.png" in plots:
            w("![Throughput against burst size](plots/calls-throughput.png)\n")
        for work, title in WORKS.items():
            rows = [(loop, burst) for loop in LOOPS for burst in BURSTS if (work, loop, burst) in calls.per_call]
            if not rows:
                continue
            w(f"### Calls of {title}\n")
            w("| loop | burst | " + " | ".join(CALL_CANDIDATES.values()) + " | offload vs best alternative |")
            w("|---|---|" + "---|" * len(CALL_CANDIDATES) + "---|")
            for loop, burst in rows:
                values = calls.per_call[(work, loop, burst)]
                cells = [fmt_item(values[c]) if c in values else "-" for c in CALL_CANDIDATES]
                w(f"| {loop} | {burst:,} | " + " | ".join(cells) + f" | {fmt_ratio_to_best(values)} |")
            w("")
        w("The asyncio floor of the goals is 10,000 `loop.create_future()` resolved with")
        w("`loop.call_soon(fut.set_result, i)` and gathered: the cost of the futures and the gather")
        w("alone, with no thread and no call. A ratio above 1 against it means the native side costs")
        w("less than the asyncio bookkeeping that both share. *Paired* goals alternate the two sides")
        w("round by round in the same loop, so both see the same machine conditions.\n")
    if calls.bulk:
        w("## Bulk\n")
        w("Many items in one call, on the default loop: offload's `map` (items handed to the workers")
        w("in blocks) and `imap` (a stream, four calls per worker in flight) against a gather of")
        w("`asyncio.to_thread` and `ThreadPoolExecutor.map`. Median time per item.\n")
        w("| work | items | " + " | ".join(BULK_CANDIDATES.values()) + " | `map` vs best alternative | `imap` vs best alternative |")
        w("|---|---|" + "---|" * len(BULK_CANDIDATES) + "---|---|")
        for work, title in WORKS.items():
            values = calls.bulk.get(work)
            if not values:
                continue
            cells = [fmt_item(values[c]) if c in values else "-" for c in BULK_CANDIDATES]
            alternatives = {k: v for k, v in values.items() if not k.startswith("pool_")}
            ratios = []
            for subject in ("pool_map", "pool_imap"):
                ratios.append(fmt_ratio_to_best(dict(alternatives, **{subject: values[subject]}), subject)
                              if subject in values else "-")
            w(f"| {title} | {calls.bulk_n[work]:,} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        w("")
    if calls.latency:
        w("## Latency\n")
        w("One call at a time, each round trip timed alone (submit, run on a worker, the awaiting")
        w("coroutine resumed): 3,000 calls of a trivial function after 200 of warm-up. Lower is")
        w("better; the ratio is the fastest alternative's percentile / offload's.\n")
        if "latency.png" in plots:
            w("![Round-trip latency distribution](plots/latency.png)\n")
        w("| loop | candidate | p50 | p90 | p99 | offload vs best alternative (p50 / p99) |")
        w("|---|---|---|---|---|---|")
        for loop in LOOPS:
            entries = calls.latency.get(loop, {})
            for candidate in sorted(entries, key=lambda c: list(CALL_CANDIDATES).index(c) if c in CALL_CANDIDATES else 99):
                p = entries[candidate]["percentiles"]
                ratio = "-"
                if candidate == "offload":
                    parts = []
                    for q in ("50", "99"):
                        _, best = best_other({c: e["percentiles"][q] for c, e in entries.items()}, "offload")
                        parts.append(f"{best / p[q]:.2f}x")
                    ratio = " / ".join(parts)
                w(f"| {loop} | {CALL_CANDIDATES.get(candidate, candidate)} | {fmt_item(p['50'])} "
                  f"| {fmt_item(p['90'])} | {fmt_item(p['99'])} | {ratio} |")
        w("")
    return out


# -- Memory (memory_per_task.py, memory_per_item.py) -------------------------------------------
# Their JSONs: {"tasks" or "items": N, "python", "cases": {case: figures}, "labels": {case: name}}
# (memory_per_item.py adds "floor": a case that is no alternative). Cases named offload* are
# offload's; the leanest of the others by RSS is the best alternative.
MEMORY_KINDS = (
    # (JSON count key, per-unit key suffix, heading, what one unit is, script, JSON path)
    ("tasks", "task", "Per pending task", "calls queued behind a blocked one-worker pool",
     "memory_per_task.py", "build/memory-task.json"),
    ("items", "item", "Per buffered channel item",
     "items waiting in an unbounded channel or queue (made beforehand: only the queue's own "
     "memory counts)", "memory_per_item.py", "build/memory-item.json"),
)


DROPIN = {
    "create_task_10000": ("10,000 calls each handed to `asyncio.create_task`, then gathered",
                          {"baseline": "`create_task(asyncio.to_thread(f))`"}, "`create_task(offload.run(f))`"),
    "from_thread": ("a worker calling a function on the loop and waiting for its result, 500 in a row",
                    {"run_coroutine_threadsafe": "`asyncio.run_coroutine_threadsafe(coro, loop).result()`",
                     "anyio": "`anyio.from_thread.run_sync`"}, "`offload.from_thread.run_sync`"),
}


def dropin_section(calls: Calls) -> List[str]:
    """The drop-in patterns (test_bench_dropin.py): time per call, from the paired runs."""
    out: List[str] = []
    w = out.append
    runs = {key: b for key, b in calls.paired_runs.items() if key[0] in DROPIN}
    if not runs:
        return out
    w("## Drop-in patterns\n")
    w("Paired runs (`benchmarks/test_bench_dropin.py`): before each timed offload round, each")
    w("baseline runs once, timed by hand on the same loop. Time per call (median round / calls).\n")
    for scenario, (title, baselines, subject) in DROPIN.items():
        for loop in LOOPS:
            b = runs.get((scenario, loop))
            if b is None:
                continue
            e = b["extra_info"]
            n = e.get("calls", 1)
            w(f"**{title}** ({loop}):\n")
            w("| candidate | per call | offload is |")
            w("|---|---|---|")
            own = b["stats"]["median"] / n
            w(f"| {subject} | {fmt_time(own)} | - |")
            for name, median in sorted(e.get("baseline_medians", {}).items(), key=lambda kv: kv[1]):
                w(f"| {baselines.get(name, name)} | {fmt_time(median / n)} | {median / n / own:.1f}x faster |")
            w("")
    return out


def memory_section(task_json: Optional[dict], item_json: Optional[dict]) -> List[str]:
    """The memory section: bytes per pending task and per buffered channel item, each against
    the best (leanest) alternative, from the JSONs of memory_per_task.py / memory_per_item.py
    (None: not measured, said so)."""
    if task_json is None and item_json is None:
        return []
    out: List[str] = []
    w = out.append
    w("## Memory\n")
    w("Each case runs in a fresh interpreter: N units are created and held while the process's")
    w("RSS is measured, then every one is drained and checked; a second run of the case, under")
    w("tracemalloc, gives the Python allocations alone (offload's native jobs and channel buffer")
    w("are invisible to it). *vs best alternative* = the case's bytes (RSS) / the leanest")
    w("alternative's (lower is better). *Left*: the RSS once drained, collected and handed back")
    w("with `malloc_trim(0)`, against before (a few MiB of allocator fragmentation is usual).\n")
    for (count_key, unit, heading, what, script, path), data in zip(MEMORY_KINDS, (task_json, item_json)):
        command = f"python benchmarks/{script} --{count_key} N --json {path}"
        if data is None:
            w(f"### {heading}\n")
            w(f"Not measured in this run (no `{path}`): `{command}`.\n")
            continue
        n = data[count_key]
        command = command.replace(" N ", f" {n} ")
        cases: Dict[str, dict] = data["cases"]
        labels: Dict[str, str] = data.get("labels", {})
        floor = data.get("floor")
        alternatives = {c: r[f"rss_per_{unit}"] for c, r in cases.items()
                        if not c.startswith("offload") and c != floor}
        best = min(alternatives, key=alternatives.get) if alternatives else None
        w(f"### {heading}\n")
        w(f"{n:,} {what}; Python {data.get('python', '?')}: `{command}`.")
        if best is not None:
            w(f"The best alternative: {labels.get(best, best)}.")
        if data.get("skipped"):
            w("Not installed, so not measured: " + ", ".join(data["skipped"]) + ".")
        w("")
        w(f"| case | bytes per {unit} (RSS) | bytes per {unit} (tracemalloc) | vs best alternative "
          "| time to queue | time to drain | left |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        order = sorted(cases, key=lambda c: (not c.startswith("offload"), c == floor))
        for case in order:
            r = cases[case]
            per = r[f"rss_per_{unit}"]
            traced = r.get(f"traced_per_{unit}", float("nan"))
            if best is None or alternatives[best] <= 0:
                ratio = "-"
            else:
                mark = " (best alternative)" if case == best else " (floor)" if case == floor else ""
                ratio = f"{per / alternatives[best]:.2f}x{mark}"
            left = (r["rss_after_trim"] - r["rss_start"]) / 2**20
            w(f"| {labels.get(case, case)} | {per:,.1f} | {traced:,.1f} | {ratio} "
              f"| {r['submit_s']:.2f} s | {r['drain_s']:.2f} s | {left:+,.1f} MiB |")
        w("")
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
