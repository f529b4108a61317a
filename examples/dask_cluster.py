"""Hash and compress blobs on a Dask cluster, from asyncio, with offload's Pool API.

The same workload as hash_and_compress.py, on offload.DaskPool: without an address it starts
a distributed.LocalCluster of two worker processes on this machine; with one, it connects to
that scheduler (start one with `dask scheduler` and `dask worker tcp://HOST:8786`, on any
machines that can import this file's functions — here they travel by value, being in
__main__). Needs `pip install offload[dask]`.

    python examples/dask_cluster.py [BLOBS] [SCHEDULER_ADDRESS]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import zlib
from typing import Optional, Tuple

import offload


def digest_and_pack(blob: bytes) -> Tuple[str, int]:
    """The blob's SHA-256 and its compressed size: runs on a Dask worker."""
    return hashlib.sha256(blob).hexdigest(), len(zlib.compress(blob, 6))


async def main(count: int, address: Optional[str]) -> None:
    blobs = [os.urandom(1024) * 64 for _ in range(count)]  # 64 KiB each, compressible
    if address is None:
        # Two worker processes, one thread each; the dashboard on any free port.
        pool = offload.DaskPool(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    else:
        pool = offload.DaskPool(address)
    async with pool:
        workers = pool.stats().workers
        packed = done = 0
        # At most 16 blobs on their way at once, whatever the input's size.
        async for _digest, size in pool.imap(digest_and_pack, blobs, ordered=False, window=16):
            packed += size
            done += 1
            if done % 50 == 0 or done == count:
                print(f"\r{done}/{count} blobs", end="", flush=True)
    raw = sum(len(b) for b in blobs)
    print(
        f"\n{count} blobs hashed and compressed on {workers} Dask worker threads: "
        f"{raw / 2**20:.1f} MiB -> {packed / 2**20:.1f} MiB"
    )


if __name__ == "__main__":  # the worker processes import this file: start nothing then
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, sys.argv[2] if len(sys.argv) > 2 else None))
