"""Smoke test of an installed offload wheel; tools/wheel/check.sh runs it.

Run it from outside the source tree with ``python -I``, so that only the installed package can
be imported. It uses each main piece once (``offload.run``, ``Pool.map``, a ``Channel`` from a
thread to a coroutine), then reads ``/proc/self/maps``: every abseil library in the process
must have been loaded from the wheel's own ``offload.libs/`` directory.

``OFFLOAD_SMOKE_SYSTEM_ABSL`` says what check.sh did with the system's abseil:

* ``hidden``: its files are covered by empty ones in a private mount namespace. The test then
  also checks that the system abseil really cannot be loaded, proving the import above did
  not need it.
* ``absent``: the machine has none.
* ``visible``: it could not be hidden; only the ``/proc/self/maps`` check applies.

Exit status 0 when everything holds, 1 with the list of problems otherwise.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import re
import sys
import threading
from pathlib import Path
from typing import List, Set

SHARED_OBJECT = re.compile(r"\.so(\.|$)")


def mapped_libraries() -> Set[Path]:
    """The shared objects mapped into this process."""
    libraries = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                path = Path(fields[5].rstrip("\n"))
                if SHARED_OBJECT.search(path.name):
                    libraries.add(path)
    return libraries


def square(x: int) -> int:
    return x * x


async def exercise() -> None:
    import offload  # main() imports it first, between two readings of the mapped libraries

    assert await offload.run(sum, [1, 2, 3]) == 6

    async with offload.Pool(workers=2, name="smoke") as pool:
        assert await pool.map(square, range(1000)) == [x * x for x in range(1000)]

    channel: offload.Channel[int] = offload.Channel(capacity=4)

    def produce() -> None:
        for i in range(500):
            channel.send_blocking(i)
        channel.close()

    producer = threading.Thread(target=produce)
    producer.start()
    received = [item async for item in channel]
    producer.join()
    assert received == list(range(500)), received[:10]


def system_absl_loads() -> str:
    """Tries to load the system's libabsl_base by name; says what happened."""
    name = ctypes.util.find_library("absl_base")
    if name is None:
        return "not in the dynamic loader's cache"
    try:
        ctypes.CDLL(name)
    except OSError as error:
        return f"cannot be loaded ({error})"
    return f"LOADED {name}"


def main() -> int:
    before = mapped_libraries()
    import offload

    loaded_by_import = sorted(mapped_libraries() - before)
    asyncio.run(exercise())

    package = Path(offload.__file__).resolve().parent
    bundled = package.parent / "offload.libs"
    print(f"python:  {sys.executable} {sys.version.split()[0]}")
    print(f"offload: {offload.__file__}")
    print(f"core:    {sys.modules['offload._core'].__file__}")
    print("libraries loaded by `import offload` (site-packages/ is the venv's):")
    for library in loaded_by_import:
        shown = library.relative_to(package.parent) if package.parent in library.parents else library
        print(f"  {'site-packages/' if shown is not library else ''}{shown}")

    problems: List[str] = []
    if Path(sys.prefix).resolve() not in package.parents:
        problems.append(f"offload imported from {package}, not from the venv {sys.prefix}")
    absl = sorted(lib for lib in mapped_libraries() if lib.name.startswith("libabsl_"))
    if not absl:
        problems.append("no libabsl_* mapped: the extension should load the bundled ones")
    for library in absl:
        if library.parent != bundled:
            problems.append(f"{library} is not from the wheel's {bundled}")
    print(f"abseil: {len(absl)} libraries mapped, "
          f"{sum(lib.parent == bundled for lib in absl)} from {bundled}")

    state = os.environ.get("OFFLOAD_SMOKE_SYSTEM_ABSL", "visible")
    if state == "hidden":
        # Only now: loading a visible system abseil here would fail the check above.
        outcome = system_absl_loads()
        print(f"system abseil (hidden): libabsl_base {outcome}")
        if outcome.startswith("LOADED"):
            problems.append("the system abseil was meant to be hidden but loads")
    else:
        print(f"system abseil: {state}")

    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("smoke test passed: run, Pool.map, Channel thread -> coroutine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
