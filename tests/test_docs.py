"""Every example in the documentation runs, and says what it shows.

Two sources, as `make docs` (Sphinx's doctest builder) reads them, so `make test` needs no
Sphinx:

* the docstrings of the public API: every ``>>>`` example, and every public object has one;
* the pages under docs/: MyST ``{doctest}`` blocks, and ``{testcode}`` blocks with the
  ``{testoutput}`` that follows them. The blocks of a page share one namespace, in order, as
  in Sphinx's default doctest group; ``doctest_global_setup`` from docs/conf.py runs first.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import inspect
import io
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import offload

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
FENCE = re.compile(r"^(`{3,}|:{3,})\{(doctest|testcode|testoutput)\}[^\n]*\n", re.M)


def global_setup() -> str:
    """doctest_global_setup from docs/conf.py, read without importing Sphinx."""
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "doctest_global_setup" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise AssertionError("docs/conf.py defines no doctest_global_setup")


def fresh_namespace() -> Dict[str, Any]:
    ns: Dict[str, Any] = {"__name__": "__docs__"}
    exec(global_setup(), ns)
    return ns


def run_doctest(text: str, ns: Dict[str, Any], name: str, filename: str, lineno: int) -> None:
    test = doctest.DocTestParser().get_doctest(text, ns, name, filename, lineno)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=out.write, clear_globs=False)
    ns.update(test.globs)
    assert runner.failures == 0, out.getvalue()


# --------------------------------------------------------------------------------------------
# Docstrings


def public_objects() -> Iterator[Tuple[str, Any]]:
    for name in offload.__all__:
        yield f"offload.{name}", getattr(offload, name)


def docstring_tests() -> List[doctest.DocTest]:
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    tests: List[doctest.DocTest] = []
    for name, obj in public_objects():
        module = inspect.getmodule(obj)
        tests.extend(t for t in finder.find(obj, name, module=module or False, globs={}) if t.examples)
    unique = {t.name: t for t in tests}  # a class reached twice (an alias) counts once
    return sorted(unique.values(), key=lambda t: t.name)


DOCSTRING_TESTS = docstring_tests()


@pytest.mark.parametrize("test", DOCSTRING_TESTS, ids=[t.name for t in DOCSTRING_TESTS])
def test_docstring_examples_run(test: doctest.DocTest) -> None:
    ns = fresh_namespace()
    run_doctest(test.docstring or "", ns, test.name, test.filename or "?", test.lineno or 0)


def test_every_public_object_has_a_docstring_with_an_example() -> None:
    without = [name for name, obj in public_objects() if ">>>" not in (obj.__doc__ or "")]
    assert not without, f"public objects whose docstring has no >>> example: {without}"


def test_the_docstring_examples_were_found() -> None:
    names = {t.name.split(".")[1] for t in DOCSTRING_TESTS}
    assert names >= {"Pool", "Channel", "run", "select"}, names


# --------------------------------------------------------------------------------------------
# Pages


def blocks(text: str) -> Iterator[Tuple[str, str, int]]:
    """(kind, body, line) of each doctest/testcode/testoutput block, directive options
    (``:option: value`` lines right after the fence) left out."""
    for match in FENCE.finditer(text):
        fence, kind = match.group(1), match.group(2)
        start = match.end()
        end = text.index("\n" + fence, start - 1)
        lines = text[start:end + 1].splitlines(keepends=True)
        while lines and lines[0].startswith(":"):
            lines.pop(0)
        yield kind, "".join(lines), text.count("\n", 0, start) + 1


PAGES = sorted(p for p in DOCS.rglob("*.md") if FENCE.search(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page: Path) -> None:
    ns = fresh_namespace()
    pending_output: List[Tuple[str, int]] = []  # what the last testcode printed
    checker = doctest.OutputChecker()
    for kind, body, line in blocks(page.read_text()):
        where = f"{page.relative_to(ROOT)}:{line}"
        if kind == "doctest":
            run_doctest(body, ns, where, str(page), line)
        elif kind == "testcode":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, where, "exec"), ns)
            pending_output = [(out.getvalue(), line)]
        else:
            assert pending_output, f"{where}: a testoutput block with no testcode before it"
            printed, code_line = pending_output.pop()
            assert checker.check_output(body, printed, FLAGS), (
                f"{where}: the testcode at line {code_line} printed\n{printed}\nexpected\n{body}"
            )


def test_the_guides_have_examples() -> None:
    guides = {p.name for p in PAGES if p.parent.name == "guides"}
    assert len(guides) >= 5, guides
