"""A time-based heartbeat for work whose progress cannot be measured.

Progress notifications need a number to report and only reach clients that asked
for them (a ``progressToken``). A heartbeat needs neither: while the work runs, a
background task sends "still working" every few seconds, which keeps idle-timeouts
on the connection (proxies, load balancers, the client's SSE read timeout) from
firing. The one rule: the heartbeat must stop when the work stops, whether it
returned, raised or was cancelled, or it would beat for a call that is over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: ``beat(count, elapsed_seconds)``: sends one heartbeat (e.g. an MCP log notification).
Beat = Callable[[int, float], Awaitable[None]]


@dataclass
class HeartbeatStats:
    """What the heartbeat did, for the tool's result and for tests."""

    beats: int = 0
    failures: int = 0
    stopped: bool = False


@asynccontextmanager
async def heartbeat(beat: Beat, interval: float) -> AsyncIterator[HeartbeatStats]:
    """Call ``beat`` every ``interval`` seconds while the ``async with`` body runs.

    A beat that raises (say the client went away) is logged and counted, never
    propagated: the heartbeat exists to serve the work, not to break it.
    """
    if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
        raise ValueError(f"heartbeat interval must be a positive number of seconds, got {interval!r}")
    stats = HeartbeatStats()
    started = time.monotonic()

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            stats.beats += 1
            try:
                await beat(stats.beats, time.monotonic() - started)
            except Exception:  # noqa: BLE001 - see docstring: a failed beat must not end the work
                stats.failures += 1
                logger.warning("heartbeat %d could not be sent", stats.beats, exc_info=True)

    task = asyncio.create_task(loop(), name="heartbeat")
    try:
        yield stats
    finally:
        task.cancel()
        # gather(return_exceptions=True) absorbs the heartbeat's own CancelledError,
        # while a cancellation of *this* task still propagates.
        await asyncio.gather(task, return_exceptions=True)
        stats.stopped = True
