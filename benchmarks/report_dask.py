"""Render the DaskPool benchmarks (test_bench_dask.py) as a Markdown section:

    python -m pytest benchmarks/test_bench_dask.py -q --benchmark-json=build/bench-dask.json
    python benchmarks/report_dask.py build/bench-dask.json

Ratios are between medians of the same run; times are for orientation only.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

from offload.demo import fmt as fmt_time

SEQ, BURST, SPIN_CALLS = 20, 200, 16


def section(data: Dict[str, Any]) -> List[str]:
    """The DaskPool section, from test_bench_dask.py's pytest-benchmark JSON."""
    runs: Dict[str, Dict[str, Any]] = {b["name"].replace("test_dask_", ""): b for b in data["benchmarks"]}

    def median(name: str) -> float:
        return float(runs[name]["stats"]["median"]) if name in runs else float("nan")

    out: List[str] = []
    w = out.append
    w("## DaskPool on a Dask cluster\n")
    w(f"`benchmarks/test_bench_dask.py`, Python {data['machine_info']['python_version']}, "
      f"{data['datetime'][:19]}; a `distributed.LocalCluster` of worker processes with one thread "
      "each, on this machine. Reproduce with:\n")
    w("```sh\npython -m pytest benchmarks/test_bench_dask.py -q --benchmark-json=build/bench-dask.json\n"
      "python benchmarks/report_dask.py build/bench-dask.json\n```\n")
    w("| measure | goal | measured | met |")
    w("|---|---|---|---|")
    for name, what in (("paired_round_trip", f"{SEQ} calls one at a time"),
                       ("paired_burst_200", f"gather of {BURST} calls")):
        if name not in runs:
            continue
        b = runs[name]
        ratio = b["stats"]["median"] / b["extra_info"]["baseline_median"]
        cpu = b["extra_info"].get("loop_cpu_per_call", {})
        w(f"| {what}: time of `DaskPool.run` / `client.submit` on the same client (paired, 2 workers) "
          f"| <= 1.10x | {ratio:.2f}x | {'yes' if ratio <= 1.10 else '**no**'} |")
        if cpu:
            added = cpu["daskpool"] - cpu["client"]
            w(f"| {what}: CPU of the loop's thread per call, `DaskPool.run` / `client.submit` "
              f"| - | {fmt_time(cpu['daskpool'])} / {fmt_time(cpu['client'])} "
              f"(offload adds {added * 1e6:.0f} us) | - |")
    w("")
    w("| scenario | entry | median | per call |")
    w("|---|---|---|---|")
    for name, scenario, entry, calls in (
        ("round_trip_client", f"{SEQ} calls one at a time", "`await client.submit(...)`", SEQ),
        ("round_trip_daskpool", f"{SEQ} calls one at a time", "`await pool.run(...)`", SEQ),
        ("burst_200_client", f"{BURST} calls at once", "gather of `client.submit`", BURST),
        ("burst_200_daskpool", f"{BURST} calls at once", "gather of `pool.run`", BURST),
        ("burst_200_client_map", f"{BURST} calls at once", "`client.gather(client.map(...))`", BURST),
        ("burst_200_daskpool_map", f"{BURST} calls at once", "`pool.map`", BURST),
    ):
        if name in runs:
            w(f"| {scenario} | {entry} | {fmt_time(median(name))} | {fmt_time(median(name) / calls)} |")
    w("")
    serial = median("spin_serial")
    w(f"Throughput: {SPIN_CALLS} calls of ~50 ms of pure-Python work (`bench_cpu_work.spin`, holds the GIL).\n")
    w("| entry | median | calls/s | speed-up vs serial |")
    w("|---|---|---|---|")
    for name, entry in (("spin_serial", "serial loop"),
                        ("spin_daskpool_1_worker", "`DaskPool.map`, 1 worker"),
                        ("spin_daskpool_2_workers", "`DaskPool.map`, 2 workers"),
                        ("spin_process_pool_2_workers", "`offload.ProcessPool(2).map`")):
        if name in runs:
            m = median(name)
            w(f"| {entry} | {fmt_time(m)} | {SPIN_CALLS / m:.1f} | {serial / m:.2f}x |")
    w("")
    return out


def main(path: str) -> int:
    with open(path) as f:
        print("\n".join(section(json.load(f))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "build/bench-dask.json"))
