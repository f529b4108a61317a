"""The programs under examples/ run to completion and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "hash_and_compress.py": (["40"], "40 blobs hashed and compressed"),
    "pipeline.py": ([], "received 10000 readings, sum 24997500.0"),
    "default_executor.py": ([], "101 calls ran on ['native'] threads"),
    "dask_cluster.py": (["40"], "40 blobs hashed and compressed on 2 Dask worker threads"),
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    args, expected = EXPECTED[name]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout, done.stdout
    assert not done.stderr, done.stderr
