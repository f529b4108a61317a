"""PNG plots of the call benchmarks for docs/benchmarks.md (matplotlib, no display needed):

* ``calls-throughput.png``: calls per second against the burst size (1, 100, 10,000), one
  panel per work (trivial, ~50 us) and loop (asyncio, uvloop), one line per candidate;
* ``latency.png``: the distribution (CDF) of one round trip, one panel per loop.

    python benchmarks/plots.py build/bench.json docs/plots

report.py calls ``render`` when matplotlib is installed (it is in the bench extras).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Tuple

STYLE = {  # candidate: (label, colour, marker)
    "offload": ("offload.run", "#d62728", "o"),
    "to_thread": ("asyncio.to_thread", "#1f77b4", "s"),
    "executor": ("run_in_executor(ThreadPoolExecutor)", "#2ca02c", "^"),
    "anyio": ("anyio.to_thread.run_sync", "#9467bd", "D"),
}
WORK_TITLES = {"trivial": "trivial function", "50us": "~50 us of sha256 (releases the GIL)"}
LOOPS = ("asyncio", "uvloop")


def order(candidate: str) -> int:
    """Legend order: offload first, then the alternatives as STYLE lists them."""
    return list(STYLE).index(candidate) if candidate in STYLE else len(STYLE)


def throughput(benchmarks: List[Dict[str, Any]]) -> Dict[Tuple[str, str], Dict[str, List[Tuple[int, float]]]]:
    """(work, loop) -> candidate -> [(burst, calls per second)], bursts in order."""
    out: Dict[Tuple[str, str], Dict[str, List[Tuple[int, float]]]] = {}
    for b in benchmarks:
        if not b["name"].startswith("test_calls["):
            continue
        e = b["extra_info"]
        series = out.setdefault((e["work"], e["loop"]), {}).setdefault(e["candidate"], [])
        series.append((int(e["burst"]), e["calls"] / b["stats"]["median"]))
    for panel in out.values():
        for series in panel.values():
            series.sort()
    return out


def render(benchmarks: List[Dict[str, Any]], directory: str) -> List[str]:
    """Writes the PNGs into `directory`; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written: List[str] = []

    data = throughput(benchmarks)
    if data:
        works = [w for w in WORK_TITLES if any(k[0] == w for k in data)]
        fig, axes = plt.subplots(len(works), len(LOOPS), figsize=(11, 4.2 * len(works)), squeeze=False)
        for row, work in enumerate(works):
            for col, loop in enumerate(LOOPS):
                ax = axes[row][col]
                panel = data.get((work, loop), {})
                for candidate, series in sorted(panel.items(), key=lambda kv: order(kv[0])):
                    label, colour, marker = STYLE.get(candidate, (candidate, None, "o"))
                    ax.plot([b for b, _ in series], [v for _, v in series], marker=marker,
                            color=colour, label=label, linewidth=2 if candidate == "offload" else 1.2)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xticks([1, 100, 10_000])
                ax.set_xticklabels(["1 (one at a time)", "100", "10,000"])
                ax.set_xlabel("burst size (calls awaited together)")
                ax.set_ylabel("calls per second")
                ax.set_title(f"{WORK_TITLES[work]}, {loop}")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=8)
        fig.suptitle("Throughput against burst size (higher is better)")
        fig.tight_layout()
        fig.savefig(os.path.join(directory, "calls-throughput.png"), dpi=90)
        plt.close(fig)
        written.append("calls-throughput.png")

    latency: Dict[str, Dict[str, List[float]]] = {}
    for b in benchmarks:
        if b["name"].startswith("test_latency["):
            e = b["extra_info"]
            latency.setdefault(e["loop"], {})[e["candidate"]] = e["cdf"]
    if latency:
        loops = [loop for loop in LOOPS if loop in latency]
        fig, axes = plt.subplots(1, len(loops), figsize=(5.5 * len(loops), 4.2), squeeze=False)
        for col, loop in enumerate(loops):
            ax = axes[0][col]
            for candidate, cdf in sorted(latency[loop].items(), key=lambda kv: order(kv[0])):
                label, colour, _ = STYLE.get(candidate, (candidate, None, "o"))
                ys = [(i + 1) / len(cdf) for i in range(len(cdf))]
                ax.plot([s * 1e6 for s in cdf], ys, color=colour, label=label,
                        linewidth=2 if candidate == "offload" else 1.2)
            ax.set_xscale("log")
            ticks = [t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
                     if min(c[0] for c in latency[loop].values()) * 1e6 / 2 <= t
                     <= max(c[-1] for c in latency[loop].values()) * 1e6 * 2]
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(t) for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("round trip of one call (us, log scale)")
            ax.set_ylabel("fraction of calls at most this long")
            ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
            ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
            ax.set_title(f"One call at a time, {loop}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
        fig.suptitle("Round-trip latency distribution (left is better; dotted: p50, p99)")
        fig.tight_layout()
        fig.savefig(os.path.join(directory, "latency.png"), dpi=90)
        plt.close(fig)
        written.append("latency.png")
    return written


def main(argv: List[str]) -> int:
    path = argv[0] if argv else "build/bench.json"
    directory = argv[1] if len(argv) > 1 else "docs/plots"
    with open(path) as f:
        written = render(json.load(f)["benchmarks"], directory)
    print("wrote " + ", ".join(os.path.join(directory, name) for name in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
