"""The demo (`make demo`): its workloads agree with their baselines and it prints every row."""

from __future__ import annotations

import asyncio

import pytest

from offload import demo


def test_both_pipelines_deliver_every_record_of_the_reader_thread() -> None:
    stream = demo.records(5_000)
    expected = sum(len(r) for r in stream)
    assert asyncio.run(demo.pipeline_stdlib(stream)) == expected
    assert asyncio.run(demo.pipeline_offload(stream)) == expected


def test_quick_demo_prints_a_row_per_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for row in ("tiny calls, gather", "pool.map", "256 KiB blobs", "4 KiB blobs",
                "thread -> coroutine pipeline", "pure-Python scoring", "median round trip"):
        assert row in out
    assert "Same results both ways (checked)" in out
