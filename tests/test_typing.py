"""The public types, as mypy --strict sees them from an installed offload (py.typed, the
_core stub): tests/typed_usage.py states what user code gets and which misuse is an error, and
the examples under examples/ type-check too."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is in the test extras")

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / f"mypy-cache-{sys.version_info[0]}.{sys.version_info[1]}"


def mypy(*args: str) -> str:
    out, err, status = api.run(["--strict", "--cache-dir", str(CACHE), *args])
    assert not err, err
    return out if status == 0 else f"exit {status}\n{out}"


def test_typed_usage_and_examples_pass_mypy_strict() -> None:
    examples: List[str] = sorted(str(p) for p in (ROOT / "examples").glob("*.py"))
    assert examples
    out = mypy(str(ROOT / "tests" / "typed_usage.py"), *examples)
    assert out.startswith("Success"), out


def test_mypy_sees_the_real_types_of_the_installed_package() -> None:
    # The control: a wrong claim about offload's types must fail, so the check above is not
    # passing because offload reads as Any.
    program = (
        "import asyncio, offload\n"
        "from typing_extensions import assert_type\n"
        "async def main() -> None:\n"
        "    assert_type(await offload.run(len, 'abc'), str)\n"
    )
    out = mypy("-c", program)
    assert 'Expression is of type "int", not "str"' in out, out
