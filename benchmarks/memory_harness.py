"""What the memory benchmarks share (memory_per_task.py, memory_per_item.py): N things held at
once (calls pending behind a blocked worker, items buffered in a queue), measured per case in a
fresh interpreter, twice: once for RSS and times, once under tracemalloc (which slows allocation
and adds its own memory, so its run is not timed). Then the N things are drained and counted.

A script names its unit ("task", "item"), its cases and its table, and hands them to `main`:
the command line (``--tasks N`` / ``--items N``, ``--json PATH``, ``--cases a,b``), one child
process per case and run, the table on stdout and the JSON are the same for both. The JSON:
``{"tasks" or "items": N, "python", "cases": {case: figures}, "labels": {case: name}}`` plus
the script's own keys; the figures are the Meter's, per case.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

PAGE = os.sysconf("SC_PAGE_SIZE")
Row = Dict[str, float]


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss() -> int:
    """VmHWM: the highest RSS this process reached."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def malloc_trim() -> bool:
    """Asks glibc's malloc to give the memory it keeps for reuse back to the system."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    trim(0)
    return True


class Meter:
    """Memory and time around the queueing and the drain of N calls (unit="task") or of N items
    buffered in a queue (unit="item")."""

    def __init__(self, traced: bool, unit: str = "task") -> None:
        self.traced = traced
        self.unit = unit
        self.out: Dict[str, float] = {}

    def before(self) -> None:
        gc.collect()
        self.rss0 = rss()
        self.traced0 = tracemalloc.get_traced_memory()[0] if self.traced else 0
        self.t0 = time.perf_counter()

    def pending(self, n: int) -> None:
        self.out["submit_s"] = time.perf_counter() - self.t0
        self.out[f"rss_per_{self.unit}"] = (rss() - self.rss0) / n
        if self.traced:
            self.out[f"traced_per_{self.unit}"] = (tracemalloc.get_traced_memory()[0] - self.traced0) / n

    def released(self) -> None:
        self.t1 = time.perf_counter()

    def drained(self) -> None:
        self.out["drain_s"] = time.perf_counter() - self.t1

    def after(self, results: int, expected_sum: int, total: int) -> None:
        if total != expected_sum:
            raise AssertionError(f"results sum to {total}, expected {expected_sum}")
        self.out["results"] = results
        gc.collect()
        self.out["rss_after_drain"] = rss()
        self.out["rss_peak"] = peak_rss()
        self.out["rss_start"] = self.rss0
        # What is left once malloc returns what it keeps for reuse: nothing should remain.
        self.out["rss_after_trim"] = rss() if malloc_trim() else float("nan")


def mib(x: float) -> str:
    return f"{x / 2**20:,.0f} MiB"


@dataclass
class Case:
    """One case: `run(n, meter)` holds n things, measures them with the meter, drains them."""

    run: Callable[[int, Meter], None]
    label: str  # its name in the tables
    needs: Optional[str] = None  # a module it needs: without it the case is skipped


@dataclass
class MemoryBenchmark:
    """One memory benchmark: its cases and the words of its table. The title reads "Memory per
    <held> <unit>: <N> <what>"; the columns are the same for every benchmark, in its words."""

    script: str  # the script's own path: each case runs in a child process of it
    unit: str  # "task" or "item"
    held: str  # what a unit is while measured: "pending", "buffered"
    what: str  # the N things, in the title: "calls queued behind one blocked worker"
    cases: Dict[str, Case]
    # The bytes per unit that the ratio column divides by, from the rows (None: "n/a"), and
    # the column's title.
    ratio_base: Callable[[Dict[str, Row]], Optional[float]]
    ratio_title: str
    put: str = "submit"  # how the N are queued, in a column title: "time to <put>"
    drained: str = "RSS after drain"  # the title of the RSS once they were drained
    digits: int = 0  # decimals of the bytes per unit
    # Keys of the JSON beyond the shared ones, given the cases skipped.
    json_extra: Callable[[List[str]], Dict[str, Any]] = field(default=lambda skipped: {})

    def columns(self) -> List[str]:
        u = self.unit
        return ["case", f"{u}s", f"bytes/{self.held} {u} (RSS)", f"bytes/{u} (tracemalloc)", self.ratio_title,
                f"time to {self.put}", "time to drain", "peak RSS", f"{self.drained} (vs before)",
                "after malloc_trim"]

    def child(self, case: str, n: int, traced: bool) -> None:
        if traced:
            tracemalloc.start()
        meter = Meter(traced, unit=self.unit)
        self.cases[case].run(n, meter)
        if meter.out.get("results") != n:
            raise AssertionError(f"{case}: {meter.out.get('results')} results, expected {n}")
        print(json.dumps(meter.out), flush=True)

    def run_child(self, case: str, n: int, traced: bool) -> Row:
        argv = [sys.executable, os.path.abspath(self.script), "--child", case, f"--{self.unit}s", str(n)]
        if traced:
            argv.append("--traced")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"{case} (traced={traced}) failed:\n{proc.stdout}\n{proc.stderr}")
        out: Row = json.loads(proc.stdout.splitlines()[-1])
        return out

    def table(self, rows: Dict[str, Row]) -> str:
        base = self.ratio_base(rows)
        per, traced, d = f"rss_per_{self.unit}", f"traced_per_{self.unit}", self.digits
        columns = self.columns()
        lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
        for case, r in rows.items():
            ratio = f"{r[per] / base:.2f}x" if base and base > 0 else "n/a"
            after = f"{mib(r['rss_after_drain'])} ({(r['rss_after_drain'] - r['rss_start']) / 2**20:+,.0f})"
            trimmed = f"{mib(r['rss_after_trim'])} ({(r['rss_after_trim'] - r['rss_start']) / 2**20:+,.0f})"
            lines.append(
                f"| {self.cases[case].label} | {int(r['results']):,} | {r[per]:,.{d}f} "
                f"| {r.get(traced, float('nan')):,.{d}f} | {ratio} | {r['submit_s']:.2f} s "
                f"| {r['drain_s']:.2f} s | {mib(r['rss_peak'])} | {after} | {trimmed} |"
            )
        return "\n".join(lines)

    def main(self, doc: str) -> None:
        names = ", ".join(self.cases)
        parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
        parser.add_argument(f"--{self.unit}s", dest="n", metavar=f"{self.unit.upper()}S", type=int,
                            default=1_000_000)
        parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
        parser.add_argument("--cases", default=",".join(self.cases), help="comma-separated, among: " + names)
        parser.add_argument("--child", help=argparse.SUPPRESS)
        parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
        args = parser.parse_args()
        if args.child:
            self.child(args.child, args.n, args.traced)
            return

        cases = [c for c in args.cases.split(",") if c]
        unknown = set(cases) - set(self.cases)
        if unknown:
            parser.error(f"unknown cases: {sorted(unknown)}")
        rows: Dict[str, Row] = {}
        skipped = []
        for case in cases:
            module = self.cases[case].needs
            if module is not None and importlib.util.find_spec(module) is None:
                print(f"{case}: SKIPPED, {module} is not installed", file=sys.stderr, flush=True)
                skipped.append(case)
                continue
            print(f"{case}: {args.n:,} {self.unit}s ...", file=sys.stderr, flush=True)
            row = self.run_child(case, args.n, traced=False)
            row[f"traced_per_{self.unit}"] = self.run_child(case, args.n, traced=True)[f"traced_per_{self.unit}"]
            rows[case] = row
        import offload

        print(f"Memory per {self.held} {self.unit}: {args.n:,} {self.what} (Python {platform.python_version()}, "
              f"offload {offload.__version__}, {os.cpu_count()} CPUs)\n")
        print(self.table(rows))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({f"{self.unit}s": args.n, "python": platform.python_version(), "cases": rows,
                           "labels": {case: self.cases[case].label for case in rows},
                           **self.json_extra(skipped)}, f, indent=2)
