"""CPython's own tests, run against offload where offload stands in for a standard-library piece.

Three suites, each taken from the running Python's ``test`` package (nothing of it is copied
here):

``futures``
    The thread-pool tests of ``test.test_concurrent_futures`` (a package on 3.13, one module on
    3.9-3.11): every ``TestCase`` built on its ``ThreadPoolMixin`` -- the thread-pool variants
    of ExecutorTest, ExecutorShutdownTest, WaitTests, AsCompletedTests and the initializer
    tests, and the thread-pool-only tests -- with ``offload.Executor`` as ``ThreadPoolExecutor``.
``to_thread``
    ``test.test_asyncio.test_threads`` (and the one other test_asyncio test that calls
    ``asyncio.to_thread``) with ``asyncio.to_thread`` replaced by ``offload.run``.
``default_executor``
    The test_asyncio tests that run calls on a thread pool -- a loop's default executor
    (``run_in_executor(None)``: ``to_thread``, ``getaddrinfo``/``getnameinfo``, the sendfile
    fallback), ``wrap_future`` of a thread pool's future, ``set_default_executor`` -- with
    ``offload.Executor`` as that pool. DEFAULT_EXECUTOR_TESTS lists them.

How offload is swapped in
-------------------------
Each suite runs in a child process (``python THIS_FILE run SUITE RESULTS``), so nothing leaks
into the rest of the pytest run and a hang or crash is contained. For ``futures`` and
``default_executor`` the child sets ``concurrent.futures.ThreadPoolExecutor`` to
``ThreadPoolExecutor``, a subclass of ``offload.Executor`` that adds nothing but the standard
library's class name, *before* it imports any test module. That one attribute is where every
user looks the class up:

* ``ThreadPoolMixin.executor_type = futures.ThreadPoolExecutor`` in the tests (bound at import);
* the tests that build ``futures.ThreadPoolExecutor(...)`` themselves;
* asyncio: ``run_in_executor(None, ...)`` creates a loop's default executor lazily as
  ``concurrent.futures.ThreadPoolExecutor(thread_name_prefix='asyncio')``, and
  ``set_default_executor`` checks ``isinstance(executor, concurrent.futures.ThreadPoolExecutor)``;
* the interpreters that tests start with ``assert_python_ok('-c', code)``: ``code`` imports
  ``concurrent.futures.<executor_type.__name__>`` (hence the alias keeps the name
  ``ThreadPoolExecutor``), and ``test.support.script_helper.run_python_until_end`` is wrapped so
  that the same swap is prepended to ``code``. Those children run with ``-I``, which ignores
  PYTHONPATH and PYTHONSTARTUP: prepending is what reaches them.

Subclassing the test classes instead (``executor_type = offload.Executor``) would miss the
second, third and fourth points, and setting ``asyncio.to_thread`` is the only way to put
``offload.run`` under test_threads, which looks ``asyncio.to_thread`` up at each call.

Outcomes
--------
Each stdlib test is one pytest item, ``test_stdlib[pyX.Y-SUITE-Class.test_method]``. A test in
EXCLUDED is not run (skip, with the reason). A test in KNOWN_FAILURES must fail (xfail with the
reason; strict unless marked flaky, so a fix shows up as "now passes"). Any other failure fails
the item with the stdlib test's traceback. A test that does not exist in this Python's ``test``
package is simply not collected; a missing ``test`` package or module gives one skipped item
saying which (the pyenv 3.11.7 and 3.12.1 builds here have test_asyncio but no
test_concurrent_futures). OFFLOAD_STDLIB_TEST_PATH may name a directory laid out as CPython's
``Lib/test`` whose modules fill such gaps (e.g. Debian's libpython3.11-testsuite, extracted).

Each record also says how many offload executors the test created (``futures``,
``default_executor``) or how many calls went through ``offload.run`` (``to_thread``): a stdlib
test that never reached offload fails, as it would prove nothing.

Run time is bounded: a test (or a module or class fixture) still running after PER_TEST_TIMEOUT
seconds is stopped by faulthandler, its stack dumped into the failure; the run then resumes in a
new child with the tests left. The suites run side by side, each within SUITE_TIMEOUT.

Maintenance: ``python THIS_FILE probe`` runs all of test_asyncio with the swap (about 8 minutes)
and prints the tests that created an offload executor, to refresh DEFAULT_EXECUTOR_TESTS.
OFFLOAD_STDLIB_PYTHONS (paths separated by ':') runs the suites under those interpreters, each
with offload installed, instead of sys.executable.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.abspath(__file__)

PER_TEST_TIMEOUT = 60  # seconds; the slowest tests (test_map_timeout, test_timeout) need about 6
SUITE_TIMEOUT = 600  # seconds for one suite under one Python, restarts included
MAX_RESTARTS = 3  # new children after a test killed the previous one

# --------------------------------------------------------------------------------------------
# The swaps, as source: run in the child that runs a suite, and prepended to the code of the
# interpreters that stdlib tests start with assert_python_ok('-c', code).

EXECUTOR_SWAP = """\
import concurrent.futures as _offload_cf
import offload as _offload


class ThreadPoolExecutor(_offload.Executor):
    '''offload.Executor under the standard library's class name (nothing added).'''


_offload_cf.ThreadPoolExecutor = ThreadPoolExecutor
del _offload_cf, _offload
"""

TO_THREAD_SWAP = """\
import asyncio as _offload_asyncio
import offload as _offload

_offload_asyncio.to_thread = _offload.run
del _offload_asyncio, _offload
"""

# --------------------------------------------------------------------------------------------
# Which stdlib tests, per suite: (module, patterns of "Class.test_method"); a module missing
# from the running Python's test package is reported, a pattern matching nothing is not.

# From `python THIS_FILE probe` on 3.9, 3.11, 3.12 and 3.13: the test_asyncio tests during
# which an offload executor was created (test_threads is in it too, whole).
DEFAULT_EXECUTOR_TESTS: List[Tuple[str, List[str]]] = [
    ("test.test_asyncio.test_threads", ["*"]),
    ("test.test_asyncio.test_base_events", [
        "BaseEventLoopTests.test_set_default_executor",
        "BaseEventLoopTests.test_shutdown_default_executor_timeout",
        "BaseEventLoopTests.test_asyncgen_finalization_by_gc_in_other_thread",
        "BaseEventLoopWithSelectorTests.test_create_connection_bluetooth",
        "BaseEventLoopWithSelectorTests.test_create_connection_ipv6_scope",
        "BaseEventLoopWithSelectorTests.test_create_connection_no_inet_pton",
        "BaseEventLoopWithSelectorTests.test_create_connection_service_name",
        "BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_no_addrinfo",
        "BaseEventLoopWithSelectorTests.test_getnameinfo",
        "BaseLoopSockSendfileTests.test__sock_sendfile_native_failure",
        "BaseLoopSockSendfileTests.test_sock_sendfile_fallback*",
        "BaseLoopSockSendfileTests.test_sock_sendfile_no_fallback",
    ]),
    ("test.test_asyncio.test_events", [
        "*EventLoopTests.test_run_in_executor",
        "*EventLoopTests.test_run_in_executor_cancel",
        "*EventLoopTests.test_create_connection_local_addr_nomatch_family",
        "*EventLoopTests.test_create_connection_local_addr_skip_different_family",
        "*EventLoopTests.test_create_connection_sock",
        "*EventLoopTests.test_create_datagram_endpoint_sock",
        "*EventLoopTests.test_create_server_dual_stack",
    ]),
    ("test.test_asyncio.test_futures", [
        "*FutureTests.test_wrap_future",
        "*FutureTests.test_wrap_future_without_loop",
        "*FutureTests.test_wrap_future_use_running_loop",
        "*FutureTests.test_wrap_future_use_global_loop",
    ]),
    ("test.test_asyncio.test_tasks", ["RunCoroutineThreadsafeTests.*"]),
    ("test.test_asyncio.test_selector_events", [
        "BaseSelectorEventLoopTests.test_sock_connect_resolve_using_socket_params",
    ]),
    ("test.test_asyncio.test_sendfile", [
        "*EventLoopTests.test_sendfile_force_fallback",
        "*EventLoopTests.test_sendfile_fallback_close_peer_in_the_middle_of_receiving",
        "*EventLoopTests.test_sendfile_ssl*",
    ]),
    ("test.test_asyncio.test_unix_events", ["SelectorEventLoopUnixSockSendfileTests.*"]),
    ("test.test_asyncio.test_streams", ["StreamTests.test_unhandled_*"]),
    ("test.test_asyncio.test_subprocess", ["GenericWatcherTests.test_create_subprocess_with_pidfd"]),
]

TO_THREAD_TESTS: List[Tuple[str, List[str]]] = [
    ("test.test_asyncio.test_threads", ["*"]),
    # 3.12+: asyncio.to_thread(asyncio.run, ...), a loop with a pidfd watcher inside a worker
    ("test.test_asyncio.test_subprocess", ["GenericWatcherTests.test_create_subprocess_with_pidfd"]),
]


def _futures_plan() -> List[Tuple[str, Callable[[type, str], bool]]]:
    """The thread-pool classes of test_concurrent_futures: those built on ThreadPoolMixin.
    Not test_future (Future itself, which offload uses unchanged), test_process_pool and
    test_deadlock (process pools only), nor the process-pool variants of shared tests."""
    import importlib
    import importlib.util

    package = importlib.import_module("test.test_concurrent_futures")
    if hasattr(package, "__path__"):  # 3.12+: a package
        mixin = importlib.import_module("test.test_concurrent_futures.util").ThreadPoolMixin
        names = ["test_thread_pool", "test_shutdown", "test_wait", "test_as_completed", "test_init"]
        modules = [f"test.test_concurrent_futures.{n}" for n in names
                   if importlib.util.find_spec(f"test.test_concurrent_futures.{n}")]
    else:
        mixin = package.ThreadPoolMixin
        modules = ["test.test_concurrent_futures"]
    return [(m, lambda cls, method: issubclass(cls, mixin)) for m in modules]


def _by_patterns(plan: List[Tuple[str, List[str]]]) -> List[Tuple[str, Callable[[type, str], bool]]]:
    def select(patterns: List[str]) -> Callable[[type, str], bool]:
        return lambda cls, method: any(fnmatch.fnmatchcase(f"{cls.__name__}.{method}", p) for p in patterns)

    return [(module, select(patterns)) for module, patterns in plan]


def _probe_plan() -> List[Tuple[str, Callable[[type, str], bool]]]:
    import pkgutil

    import test.test_asyncio as package

    return [(f"test.test_asyncio.{m.name}", lambda cls, method: True)
            for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("test_")]


SUITES: Dict[str, Dict[str, Any]] = {
    "futures": {"swaps": [EXECUTOR_SWAP], "plan": _futures_plan, "measure": "executors"},
    "to_thread": {"swaps": [TO_THREAD_SWAP], "plan": lambda: _by_patterns(TO_THREAD_TESTS), "measure": "run_calls"},
    "default_executor": {"swaps": [EXECUTOR_SWAP], "plan": lambda: _by_patterns(DEFAULT_EXECUTOR_TESTS),
                         "measure": "executors"},
}
PROBE = {"swaps": [EXECUTOR_SWAP], "plan": _probe_plan, "measure": "executors"}

# --------------------------------------------------------------------------------------------
# Deliberate exclusions (not run) and known failures (run; they must fail), per suite, as
# "Class.test_method" (the same in every Python's test package). A known failure is a reason,
# or (reason, options) with "until": (3, N) / "since": (3, N) to limit it to Pythons up to /
# from 3.N, and for a known failure "flaky": True when it does not always fail.

PIDFD_ALONE = (
    "fails without offload too when run apart from the rest of test_asyncio on 3.12 "
    "(3.12.1: its first assertion, get_event_loop() raising RuntimeError, holds only after an "
    "earlier test called asyncio.set_event_loop); 3.13's version of the test runs alone",
    {"until": (3, 12)})

EXCLUDED: Dict[str, Dict[str, Any]] = {
    "futures": {},
    "to_thread": {"GenericWatcherTests.test_create_subprocess_with_pidfd": PIDFD_ALONE},
    "default_executor": {"GenericWatcherTests.test_create_subprocess_with_pidfd": PIDFD_ALONE},
}

KNOWN_FAILURES: Dict[str, Dict[str, Any]] = {
    "futures": {},
    "to_thread": {},
    "default_executor": {},
}


def _applies(entry: Any, version: Tuple[int, int]) -> Tuple[Optional[str], bool]:
    """An EXCLUDED or KNOWN_FAILURES entry on this Python: (reason, flaky), or (None, False)."""
    if entry is None:
        return None, False
    reason, options = (entry, {}) if isinstance(entry, str) else entry
    if version > tuple(options.get("until", version)) or version < tuple(options.get("since", version)):
        return None, False
    return reason, bool(options.get("flaky"))


def _known_failure(suite: str, test_id: str, version: Tuple[int, int]) -> Tuple[Optional[str], bool]:
    """(the reason it fails, whether it may pass), or (None, False) when it must pass."""
    return _applies(KNOWN_FAILURES.get(suite, {}).get(test_id), version)


# --------------------------------------------------------------------------------------------
# The child: lists or runs one suite, one JSON line per event in the results file.


def _extra_test_path() -> str:
    extra = os.environ.get("OFFLOAD_STDLIB_TEST_PATH")
    if not extra:
        return ""
    return f"import test as _offload_test\n_offload_test.__path__.append({extra!r})\ndel _offload_test\n"


def _install(spec: Dict[str, Any]) -> str:
    """Swaps offload in, here and in the interpreters the tests start; returns the source."""
    swaps = _extra_test_path() + "\n".join(spec["swaps"])
    exec(compile(swaps, "<offload swap>", "exec"), {"__name__": "offload_stdlib_swap"})

    from test.support import script_helper

    original = script_helper.run_python_until_end

    @functools.wraps(original)
    def run_python_until_end(*args: Any, **env_vars: Any) -> Any:
        args_list = list(args)
        if "-c" in args_list:
            index = args_list.index("-c") + 1
            code = args_list[index]
            args_list[index] = swaps + "\n" + (code.decode() if isinstance(code, bytes) else code)
        return original(*args_list, **env_vars)

    script_helper.run_python_until_end = run_python_until_end
    return swaps


def _load(spec: Dict[str, Any]) -> Tuple[List[Any], List[str]]:
    """The tests of a suite, in run order, and the problems met (modules missing)."""
    import importlib
    import unittest

    loader = unittest.TestLoader()
    try:
        plan = spec["plan"]()
    except ImportError as e:
        return [], [f"{e.name}: not in this Python's test package"]
    tests, problems = [], []
    for module_name, select in plan:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            problems.append(f"{module_name}: not importable ({e})")
            continue
        except unittest.SkipTest as e:
            problems.append(f"{module_name}: skipped by the module itself ({e})")
            continue
        for name in sorted(dir(module)):
            cls = getattr(module, name)
            if isinstance(cls, type) and issubclass(cls, unittest.TestCase) and cls.__module__ == module.__name__:
                tests.extend(cls(m) for m in loader.getTestCaseNames(cls) if select(cls, m))
    return tests, problems


def _key(test: Any) -> str:
    return f"{type(test).__name__}.{test._testMethodName}"


def _offload_measure(kind: str) -> Callable[[], int]:
    if kind == "executors":
        import concurrent.futures

        cls = concurrent.futures.ThreadPoolExecutor
        count = [0]
        original = cls.__init__

        def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
            count[0] += 1
            original(self, *args, **kwargs)

        cls.__init__ = counting_init  # on the alias only: offload.Executor stays untouched
        return lambda: count[0]

    def run_calls() -> int:
        from offload import _default_pool

        pool = _default_pool._default  # not created here: that would start threads mid-test
        return 0 if pool is None else pool.stats().submitted

    return run_calls


def _run_child(suite: str, out_path: str, mode: str, only: Optional[List[str]]) -> int:
    import faulthandler
    import unittest

    spec = PROBE if suite == "probe" else SUITES[suite]
    _install(spec)
    tests, problems = _load(spec)
    out = open(out_path, "a", buffering=1)

    def emit(**record: Any) -> None:
        out.write(json.dumps(record) + "\n")

    if mode == "list":
        for problem in problems:
            emit(kind="problem", detail=problem)
        for test in tests:
            emit(kind="test", id=_key(test))
        return 0

    if only is not None:
        wanted = set(only)
        tests = [t for t in tests if _key(t) in wanted]
    version = sys.version_info[:2]
    for test in tests:
        reason = _applies(EXCLUDED.get(suite, {}).get(_key(test)), version)[0]
        if reason:
            setattr(test, test._testMethodName, unittest.skip(f"excluded: {reason}")(getattr(test, test._testMethodName)))

    measure = _offload_measure(spec["measure"])

    def watchdog() -> None:
        faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True, file=sys.stderr)

    class Result(unittest.TextTestResult):
        current: Optional[Dict[str, Any]] = None

        def startTest(self, test: Any) -> None:
            self.current = {"outcome": "passed", "detail": "", "t0": time.monotonic(), "m0": measure()}
            watchdog()
            emit(kind="start", id=_key(test))
            super().startTest(test)

        def _set(self, test: Any, outcome: str, detail: str) -> None:
            record = self.current
            if record is None or not isinstance(test, unittest.TestCase):
                # a class or module fixture: setUpClass skip or error, tearDownModule error...
                emit(kind="fixture", outcome=outcome, id=str(test), detail=detail)
                return
            if record["outcome"] in ("failed", "error") and outcome in ("failed", "error"):
                record["detail"] += "\n" + detail  # several failed subtests
            elif record["outcome"] == "passed" or outcome in ("failed", "error"):
                record["outcome"], record["detail"] = outcome, detail

        def addError(self, test: Any, err: Any) -> None:
            super().addError(test, err)
            self._set(test, "error", self._exc_info_to_string(err, test))

        def addFailure(self, test: Any, err: Any) -> None:
            super().addFailure(test, err)
            self._set(test, "failed", self._exc_info_to_string(err, test))

        def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
            super().addSubTest(test, subtest, err)
            if err is not None:
                outcome = "failed" if issubclass(err[0], test.failureException) else "error"
                self._set(test, outcome, f"{subtest._subDescription()}\n" + self._exc_info_to_string(err, test))

        def addSkip(self, test: Any, reason: str) -> None:
            super().addSkip(test, reason)
            if self.current is None and isinstance(test, unittest.TestCase):
                # 3.12+ reports a skipped test without startTest
                emit(kind="result", id=_key(test), module=type(test).__module__, outcome="skipped",
                     detail=reason, seconds=0, offload=0)
                return
            self._set(test, "skipped", reason)

        def addExpectedFailure(self, test: Any, err: Any) -> None:
            super().addExpectedFailure(test, err)
            self._set(test, "skipped", "an expected failure in CPython's own suite")

        def addUnexpectedSuccess(self, test: Any) -> None:
            super().addUnexpectedSuccess(test)
            self._set(test, "failed", "unexpected success of a test CPython expects to fail")

        def stopTest(self, test: Any) -> None:
            super().stopTest(test)
            watchdog()  # re-armed, not cancelled: fixtures between tests are watched too
            record, self.current = self.current, None
            if record is None:
                return
            emit(kind="result", id=_key(test), module=type(test).__module__, outcome=record["outcome"], detail=record["detail"],
                 seconds=round(time.monotonic() - record["t0"], 3), offload=measure() - record["m0"])

    watchdog()
    suite_obj = unittest.TestSuite(tests)
    unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Result).run(suite_obj)
    faulthandler.cancel_dump_traceback_later()
    emit(kind="end")
    out.close()
    return 0


# --------------------------------------------------------------------------------------------
# The parent: one child per (Python, suite), restarted after a test killed it.


class SuiteRun:
    def __init__(self, python: str, suite: str, planned: List[str]) -> None:
        self.python, self.suite, self.planned = python, suite, planned
        self.tmp = tempfile.mkdtemp(prefix="offload-stdlib-")
        self.results: Dict[str, Dict[str, Any]] = {}
        self.died: Dict[str, str] = {}  # test -> log of the child it killed
        self.fixtures: List[Dict[str, Any]] = []
        self.logs: List[str] = []
        self.t0 = time.monotonic()
        self.elapsed = 0.0
        self.proc: Optional[subprocess.Popen[str]] = None
        self._restarts = 0
        self._start(None)

    def _start(self, only: Optional[List[str]]) -> None:
        n = len(self.logs)
        self.out_path = os.path.join(self.tmp, f"results{n}.jsonl")
        args = [self.python, HERE, "run", self.suite, self.out_path]
        if only is not None:
            only_path = os.path.join(self.tmp, f"only{n}.json")
            with open(only_path, "w") as f:
                json.dump(only, f)
            args.append(only_path)
        self.log_file = open(os.path.join(self.tmp, f"log{n}.txt"), "w+")
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, text=True, cwd=self.tmp)

    def wait(self) -> "SuiteRun":
        while self.proc is not None:
            left = SUITE_TIMEOUT - (time.monotonic() - self.t0)
            try:
                rc = self.proc.wait(timeout=max(left, 1))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            self.proc = None
            self.log_file.seek(0)
            log = self.log_file.read()
            self.log_file.close()
            self.logs.append(log)
            records = _read(self.out_path)
            started = [r["id"] for r in records if r["kind"] == "start"]
            self.results.update({r["id"]: r for r in records if r["kind"] == "result"})
            self.fixtures += [r for r in records if r["kind"] == "fixture"]
            ended = any(r["kind"] == "end" for r in records)
            if not ended:
                culprit = next((t for t in reversed(started) if t not in self.results), None)
                self.died[culprit or "(between tests)"] = f"exit status {rc}\n{log[-8000:]}"
                left_over = [t for t in self.planned if t not in self.results and t not in self.died]
                timed_out = time.monotonic() - self.t0 >= SUITE_TIMEOUT
                if left_over and not timed_out and self._restarts < MAX_RESTARTS:
                    self._restarts += 1
                    self._start(left_over)
        self.elapsed = time.monotonic() - self.t0
        return self


def _read(path: str) -> List[Dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _pythons() -> List[str]:
    listed = os.environ.get("OFFLOAD_STDLIB_PYTHONS")
    return [p for p in listed.split(os.pathsep) if p] if listed else [sys.executable]


def _version(python: str) -> Tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60)
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _list(python: str) -> Dict[str, Tuple[List[str], List[str]]]:
    """Per suite: (test ids, problems), listed by children started side by side."""
    tmp = tempfile.mkdtemp(prefix="offload-stdlib-list-")
    procs = {}
    for suite in SUITES:
        path = os.path.join(tmp, f"{suite}.jsonl")
        procs[suite] = (path, subprocess.Popen([python, HERE, "list", suite, path], cwd=tmp,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    listed = {}
    for suite, (path, proc) in procs.items():
        log, _ = proc.communicate(timeout=120)
        records = _read(path)
        tests = [r["id"] for r in records if r["kind"] == "test"]
        problems = [r["detail"] for r in records if r["kind"] == "problem"]
        if proc.returncode != 0:
            problems.append(f"listing failed, exit status {proc.returncode}:\n{log[-3000:]}")
        listed[suite] = (tests, problems)
    return listed


try:
    import pytest
except ImportError:  # a child only needs unittest
    pytest = None  # type: ignore[assignment]

if pytest is not None and __name__ != "__main__":
    _PLANS: Dict[str, Tuple[Tuple[int, int], Dict[str, Tuple[List[str], List[str]]]]] = {}
    _RUNS: Dict[Tuple[str, str], SuiteRun] = {}

    def _params() -> List[Any]:
        params = []
        for python in _pythons():
            version = _version(python)
            _PLANS[python] = (version, _list(python))
            label = "py%d.%d" % version
            for suite, (tests, problems) in _PLANS[python][1].items():
                if not tests:
                    why = "; ".join(problems) or "no test selected"
                    params.append(pytest.param(python, suite, None, why, id=f"{label}-{suite}-unavailable"))
                for test_id in tests:
                    params.append(pytest.param(python, suite, test_id, None, id=f"{label}-{suite}-{test_id}"))
        return params

    def _run(python: str, suite: str) -> SuiteRun:
        if (python, suite) not in _RUNS:
            # Start every suite of this Python at once: they mostly sleep, in parallel.
            for other, (tests, _) in _PLANS[python][1].items():
                if tests and (python, other) not in _RUNS:
                    _RUNS[python, other] = SuiteRun(python, other, tests)
        run = _RUNS[python, suite]
        if run.proc is not None:
            run.wait()
            sys.stderr.write(f"\n[stdlib suite {suite} under {python}: {len(run.results)} tests in "
                             f"{run.elapsed:.1f} s, {len(run.logs)} child process(es)]\n")
        return run

    @pytest.mark.parametrize("python, suite, test_id, unavailable", _params())
    def test_stdlib(python: str, suite: str, test_id: Optional[str], unavailable: Optional[str]) -> None:
        if test_id is None:
            pytest.skip(f"{suite}: {unavailable}")
        run = _run(python, suite)
        version = _PLANS[python][0]
        known, flaky = _known_failure(suite, test_id, version)
        record = run.results.get(test_id)
        if record is None:
            if test_id in run.died:
                detail = f"killed its suite's process (hang, timeout or crash):\n{run.died[test_id]}"
            else:
                detail = f"never ran; fixture errors: {run.fixtures}; last log:\n{run.logs[-1][-4000:] if run.logs else ''}"
            if known:
                pytest.xfail(f"{known}\n{detail}")
            pytest.fail(detail, pytrace=False)
        outcome, detail = record["outcome"], record["detail"]
        if outcome == "skipped":
            pytest.skip(detail)
        if outcome == "passed":
            if not record["offload"]:
                pytest.fail("passed without reaching offload (no offload executor created, no "
                            "offload.run call): the swap did not take", pytrace=False)
            if known and not flaky:
                pytest.fail(f"known failure now passes, take it out of KNOWN_FAILURES: {known}", pytrace=False)
            return
        if known:
            pytest.xfail(f"{known}\n--- the stdlib test's failure:\n{detail}")
        pytest.fail(f"{outcome}:\n{detail}", pytrace=False)


def _probe() -> int:
    """Runs all of test_asyncio with the executor swap; prints the tests that made one."""
    path = os.path.join(tempfile.mkdtemp(prefix="offload-stdlib-probe-"), "probe.jsonl")
    subprocess.run([sys.executable, HERE, "run", "probe", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    for record in _read(path):
        if record["kind"] == "result" and record["offload"]:
            print(record["module"], record["id"], record["outcome"])
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        sys.exit(_probe())
    mode, suite_name, results_path = sys.argv[1:4]
    only_ids = None
    if len(sys.argv) > 4:
        with open(sys.argv[4]) as f:
            only_ids = json.load(f)
    sys.exit(_run_child(suite_name, results_path, mode, only_ids))
