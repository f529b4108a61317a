"""A thread -> coroutine pipeline through a channel, with a shutdown signal via select.

A plain thread (standing for a driver callback or a blocking reader) produces readings; a
coroutine consumes them and stops when the producer closes the channel or when told to stop,
whichever comes first. Nothing is lost: the readings buffered at the close are still received.

    python examples/pipeline.py
"""

from __future__ import annotations

import asyncio
import threading
from typing import List

import offload


def sensor(readings: offload.Channel[float], count: int) -> None:
    """A blocking producer: waits (GIL released) while the channel is full."""
    for i in range(count):
        readings.send_blocking(i * 0.5)
    readings.close()


async def consume(readings: offload.Channel[float], stop: offload.Channel[None]) -> List[float]:
    received: List[float] = []
    while True:
        try:
            op, value = await offload.select(stop.recv_op(), readings.recv_op())
        except offload.ChannelClosed:  # the producer closed readings and it is drained
            return received
        if op.channel is stop:
            return received
        received.append(value)


async def main() -> None:
    readings: offload.Channel[float] = offload.Channel(capacity=64)
    stop: offload.Channel[None] = offload.Channel(capacity=1)
    producer = threading.Thread(target=sensor, args=(readings, 10_000), name="sensor")
    producer.start()
    received = await consume(readings, stop)
    producer.join()
    print(f"received {len(received)} readings, sum {sum(received):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
