"""Render the Google Benchmark JSON of cpp/bench/core_bench.cc as a Markdown section: one table
per scenario with offload's and the baseline's items/s and their ratio, and the machine.

    build/bench-cpp/core_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \\
        --benchmark_out=build/bench-cpp.json --benchmark_out_format=json
    python benchmarks/cpp_report.py build/bench-cpp.json > build/bench-cpp.md

Benchmarks are named <scenario>/<implementation>/<case>, e.g. BM_PoolThroughput/offload/workers:2;
an offload run and a baseline run of the same scenario and case make a row. Each figure is the
median over the repetitions (Google Benchmark's median aggregate, or the median of the
individual runs when the JSON has no aggregates); "cv" is the coefficient of variation over
them, when there were several. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

IMPLEMENTATIONS = ("offload", "baseline")

# Name parts that Google Benchmark appends (MinTime, UseRealTime, ...): not part of a case.
RUNNER_PREFIXES = ("min_time:", "min_warmup_time:", "iterations:", "repeats:", "threads:")
RUNNER_PARTS = ("real_time", "manual_time", "process_time")

SCENARIOS: Dict[str, Tuple[str, str]] = {
    "BM_PoolThroughput": (
        "Pool throughput",
        "One thread submits a burst of tiny tasks (an atomic increment each), then waits until "
        "the pool is idle: `offload::ThreadPool::submit` vs `baseline::ThreadPool::submit` "
        "(`std::function` queue). Items: tasks.",
    ),
    "BM_PoolRoundTrip": (
        "Pool round trip with a result",
        "Submit `batch` tasks that return an int, then get every result: `offload::run` + "
        "`offload::Future` vs `std::packaged_task` + `std::future` on the baseline pool. "
        "Batch 1 is one round trip at a time (latency). Items: results.",
    ),
    "BM_ChannelHandOff": (
        "Channel hand-off",
        "Producer threads send ints and close; consumer threads (the benchmark's thread among "
        "them) receive until closed: `offload::Channel<int>` vs `baseline::BlockingQueue<int>` "
        "(one `std::mutex`, two `std::condition_variable`s; capacity 0 is a rendezvous there "
        "too). Items: ints received.",
    ),
}


class Figure(NamedTuple):
    items_per_second: Optional[float]  # None when the benchmark reported an error
    cv: Optional[float]  # coefficient of variation over the repetitions, a fraction
    error: str


class Key(NamedTuple):
    scenario: str
    case: str  # e.g. "workers:2/batch:100"


def split_name(run_name: str) -> Optional[Tuple[Key, str]]:
    """BM_PoolThroughput/offload/workers:2/min_time:0.200/real_time
    -> (Key("BM_PoolThroughput", "workers:2"), "offload"); None for other names."""
    parts = run_name.split("/")
    if len(parts) < 2 or parts[1] not in IMPLEMENTATIONS:
        return None
    case = [
        p for p in parts[2:] if p not in RUNNER_PARTS and not p.startswith(RUNNER_PREFIXES)
    ]
    return Key(parts[0], "/".join(case)), parts[1]


def collect(benchmarks: List[Dict[str, Any]]) -> Dict[Key, Dict[str, Figure]]:
    """Key -> implementation -> Figure, in the order the benchmarks ran."""
    medians: Dict[Tuple[Key, str], float] = {}
    cvs: Dict[Tuple[Key, str], float] = {}
    runs: Dict[Tuple[Key, str], List[float]] = {}
    errors: Dict[Tuple[Key, str], str] = {}
    order: List[Tuple[Key, str]] = []
    for b in benchmarks:
        parsed = split_name(str(b.get("run_name", b["name"])))
        if parsed is None:
            continue
        if parsed not in order:
            order.append(parsed)
        if b.get("error_occurred"):
            errors[parsed] = str(b.get("error_message", "error"))
            continue
        value = b.get("items_per_second")
        if not isinstance(value, (int, float)):
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[parsed] = float(value)
            elif b.get("aggregate_name") == "cv":
                cvs[parsed] = float(value)
        else:
            runs.setdefault(parsed, []).append(float(value))

    table: Dict[Key, Dict[str, Figure]] = {}
    for key, impl in order:
        sample = runs.get((key, impl), [])
        median = medians.get((key, impl))
        if median is None and sample:
            median = statistics.median(sample)
        cv = cvs.get((key, impl))
        if cv is None and len(sample) > 1:
            cv = statistics.stdev(sample) / statistics.mean(sample)
        error = errors.get((key, impl), "" if median is not None else "no items/s")
        table.setdefault(key, {})[impl] = Figure(median if not error else None, cv, error)
    return table


def fmt_rate(figure: Optional[Figure]) -> str:
    """12345678 items/s -> "12.3 M/s", with its cv: "12.3 M/s ±4%"."""
    if figure is None:
        return "—"
    if figure.items_per_second is None:
        return f"error: {figure.error}"
    value = figure.items_per_second
    scale, unit = next(
        ((s, u) for s, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if value >= s), (1.0, "")
    )
    text = f"{value / scale:.3g} {unit}/s"
    if figure.cv is not None:
        text += f" ±{figure.cv * 100:.0f}%"
    return text


def fmt_ratio(offload: Optional[Figure], base: Optional[Figure]) -> str:
    if (
        offload is None
        or base is None
        or offload.items_per_second is None
        or not base.items_per_second
    ):
        return "—"
    return f"**{offload.items_per_second / base.items_per_second:.2f}x**"


def fmt_case(case: str) -> str:
    """"workers:2/batch:100" -> "workers 2, batch 100"."""
    return ", ".join(part.replace(":", " ") for part in case.split("/")) or "—"


def fmt_bytes(n: int) -> str:
    for scale, unit in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def machine(context: Dict[str, Any]) -> List[str]:
    """Lines describing the machine, the build and the run, from the JSON's context."""
    caches = []
    for c in context.get("caches", []):
        kind = {"Data": "d", "Instruction": "i"}.get(str(c.get("type")), "")
        caches.append(f"L{c.get('level')}{kind} {fmt_bytes(int(c.get('size', 0)))}")
    load = ", ".join(f"{x:.2f}" for x in context.get("load_avg", []))
    lines = [
        f"- Machine: `{context.get('host_name', '?')}`, {context.get('num_cpus', '?')} CPUs at "
        f"{context.get('mhz_per_cpu', '?')} MHz"
        + (f" (caches: {', '.join(caches)})" if caches else "")
        + f"; CPU frequency scaling {'on' if context.get('cpu_scaling_enabled') else 'off'}; "
        f"load average {load or '?'} when the run started.",
        f"- Run: {context.get('date', '?')}, `{context.get('executable', '?')}`.",
        f"- Build: compiler {context.get('compiler', '?')}, abseil {context.get('abseil', '?')}, "
        f"assertions {context.get('assertions', '?')}, absl::Mutex deadlock detection: "
        f"{context.get('mutex_deadlock_detection', '?')}; Google Benchmark library built as "
        f"{context.get('library_build_type', '?')} (Debian's says debug; the timed loop is "
        "inlined into the benchmark, not in the library).",
    ]
    return lines


def render(data: Dict[str, Any]) -> str:
    context: Dict[str, Any] = data.get("context", {})
    benchmarks: List[Dict[str, Any]] = data.get("benchmarks", [])
    table = collect(benchmarks)
    repetitions = max((int(b.get("repetitions", 1)) for b in benchmarks), default=1)

    out = [
        "## C++ core: offload vs a plain std::mutex + std::condition_variable baseline",
        "",
        "Google Benchmark (`cpp/bench/core_bench.cc`, the baseline in `cpp/bench/baseline.h`). "
        f"Each figure is the median of {repetitions} repetition(s) in items per second "
        "(higher is better), ± its coefficient of variation; the ratio is offload / baseline "
        "(above 1: offload is faster). Offload and the baseline of one row ran one right "
        "after the other.",
        "",
        *machine(context),
    ]
    scenarios: List[str] = []
    for key in table:
        if key.scenario not in scenarios:
            scenarios.append(key.scenario)
    for scenario in scenarios:
        title, what = SCENARIOS.get(scenario, (scenario, ""))
        out += ["", f"### {title}", ""]
        if what:
            out += [what, ""]
        out += [
            "| case | offload | baseline | offload / baseline |",
            "|---|---:|---:|---:|",
        ]
        for key, figures in table.items():
            if key.scenario != scenario:
                continue
            offload, base = figures.get("offload"), figures.get("baseline")
            out.append(
                f"| {fmt_case(key.case)} | {fmt_rate(offload)} | {fmt_rate(base)} "
                f"| {fmt_ratio(offload, base)} |"
            )
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Render core_bench's JSON as Markdown.")
    parser.add_argument("json", help="Google Benchmark output (--benchmark_out_format=json)")
    args = parser.parse_args(argv)
    with open(args.json, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        print(f"{args.json}: not a Google Benchmark JSON", file=sys.stderr)
        return 1
    sys.stdout.write(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
