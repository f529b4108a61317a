"""offload: a native thread pool, futures and channels for asyncio.

Offload blocking and CPU work from an event loop without stalling it, at a fraction of the
cost of :func:`asyncio.to_thread`::

    import asyncio, hashlib, offload

    async def main(blob: bytes) -> bytes:
        digest = await offload.run(hashlib.sha256, blob)           # like asyncio.to_thread
        async with offload.Pool(workers=4) as pool:
            sizes = await pool.map(len, [b"a", b"bb"])             # ordered list
        return digest.digest()

The awaitables are the loop's own futures, completed on the loop's thread in batches: one
wake-up per burst of results, whatever the number of results.
"""

from ._executor import Executor
from ._pool import Future, Pool, PoolStats, cancelled, default_pool, run

__all__ = [
    "Executor",
    "Future",
    "Pool",
    "PoolStats",
    "cancelled",
    "default_pool",
    "run",
]
__version__ = "0.1.0"
