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

import json
import os
import platform
import re
import sys
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Tuple

from offload.demo import fmt as fmt_time

COMMAND = (
    "make bench   # runs:\n"
    "python -m pytest benchmarks -q --ignore=benchmarks/test_bench_cpu.py --benchmark-json=build/bench.json\n"
    "python -m pytest benchmarks/test_bench_cpu.py -q --benchmark-json=build/bench-cpu.json   # Python >= 3.12.4\n"
    "python benchmarks/report.py build/bench.json build/bench-cpu.json > docs/benchmarks.md"
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


def main(paths: List[str]) -> int:
    """paths: the main JSON (calls, channels; sets the header), then any others (the CPU run)."""
    with open(paths[0]) as f:
        data = json.load(f)
    cpu = cpu_data(data, paths[0])
    missing = []
    for path in paths[1:]:
        if not os.path.exists(path):
            missing.append(path)
            continue
        with open(path) as f:
            more = json.load(f)
        cpu = cpu_data(more, path) or cpu
        data["benchmarks"] = data["benchmarks"] + [b for b in more["benchmarks"] if not is_cpu(b["name"])]
    groups: Dict[str, Dict[Tuple[str, str], float]] = defaultdict(dict)
    for b in data["benchmarks"]:
        if is_channel(b["name"]) or is_cpu(b["name"]):
            continue  # the channels and CPU sections read these themselves
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
    if cpu is not None and cpu.info["path"] != paths[0]:
        w(f"- CPU work: Python {cpu.info['python']}, date {cpu.info['datetime']} (`{cpu.info['path']}`)")
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
    for text, value, met, target, value_text in cpu_goal_rows(cpu):
        w(f"| {text} (target {target}) | {value_text} | {'-' if value != value else 'yes' if met else '**no**'} |")
    w("")
    if chan:
        w("Channel goals: details and every candidate in [Channels](#channels) below.\n")
    if cpu is not None:
        w("CPU goals: details and every candidate in [CPU work](#cpu-work) below.\n")
    if has_calls:
        calls_notes(w, groups)
    out.extend(channel_section(chan, chan_items))
    if cpu is not None or missing:
        out.extend(cpu_section(cpu, missing))
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
    raise SystemExit(main(sys.argv[1:] or ["build/bench.json"]))
