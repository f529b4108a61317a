"""Hash and compress a few hundred in-memory blobs from an asyncio program, with progress.

hashlib and zlib release the GIL on large buffers, so offload's native workers run them in
parallel while the event loop stays free. `pool.imap` streams the results back with a
bounded number of calls in flight, which is also what drives the progress line.

    python examples/hash_and_compress.py [BLOBS]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import zlib
from typing import Tuple

import offload


def digest_and_pack(blob: bytes) -> Tuple[str, int]:
    """The blob's SHA-256 and its compressed size: runs on a worker thread."""
    return hashlib.sha256(blob).hexdigest(), len(zlib.compress(blob, 6))


async def main(count: int) -> None:
    blobs = [os.urandom(1024) * 64 for _ in range(count)]  # 64 KiB each, compressible
    packed = 0
    async with offload.Pool(name="hasher") as pool:
        done = 0
        async for _digest, size in pool.imap(digest_and_pack, blobs, ordered=False, window=32):
            packed += size
            done += 1
            if done % 50 == 0 or done == count:
                print(f"\r{done}/{count} blobs", end="", flush=True)
    raw = sum(len(b) for b in blobs)
    print(f"\n{count} blobs hashed and compressed: {raw / 2**20:.1f} MiB -> {packed / 2**20:.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
