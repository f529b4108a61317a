"""Zero-change migration: make asyncio.to_thread and run_in_executor(None, ...) use offload.

Existing code keeps calling the standard library; one line at start-up routes it to
offload's native workers.

    python examples/default_executor.py
"""

from __future__ import annotations

import asyncio
import threading

import offload


def where() -> str:
    return threading.current_thread().name


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(offload.Executor(thread_name_prefix="native"))
    names = await asyncio.gather(*(asyncio.to_thread(where) for _ in range(100)))
    names += [await loop.run_in_executor(None, where)]
    print(f"{len(names)} calls ran on {sorted(set(n.split('_')[0] for n in names))} threads")


if __name__ == "__main__":
    asyncio.run(main())
