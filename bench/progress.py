"""Benchmark: how much progress notifications cost, and how fast a tool call answers.

Runs servers/context_messaging.py unpaced (time scale 0) on 127.0.0.1 and prints:

* progress notifications per second a client receives during a 1000-epoch run, next
  to the same run without a progress callback (the training's own cost), so the
  per-notification overhead is the difference;
* tool-call latency (p50/p99) of the cheapest tool (`server_info`) on the
  2025-11-25 handshake (ClientSession, what Strands uses) and on 2026-07-28
  (`mcp.Client`), and of a one-epoch training call.

Figures only; nothing here passes or fails. Usage: python bench/progress.py [--epochs N] [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import mcp

from lab_helpers import config
from lab_helpers.mcp_client import open_session
from lab_helpers.processes import ServerProcess


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms"


async def _timed_calls(call, count: int) -> list[float]:
    await call()  # warm-up
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def run(url: str, epochs: int, calls: int) -> None:
    received = 0

    async def count(progress: float, total: float | None, message: str | None) -> None:
        nonlocal received
        received += 1

    async with open_session(url) as session:
        arguments = {"model_name": "bench", "epochs": epochs}

        async def timed(**options: object) -> float:
            started = time.perf_counter()
            await session.call_tool("train_model", arguments, **options)
            return time.perf_counter() - started

        await session.call_tool("train_model", {"model_name": "warm-up", "epochs": 50})
        runs: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(3):  # alternate, so drift on a shared machine hits both sides alike
            runs["without"].append(await timed())
            runs["with"].append(await timed(progress_callback=count))
        without, with_progress = statistics.median(runs["without"]), statistics.median(runs["with"])
        assert received == 3 * epochs, f"expected {3 * epochs} notifications, got {received}"
        print(f"training {epochs} epochs, no progress callback   {without:7.3f} s   (median of 3)")
        print(f"training {epochs} epochs, progress every epoch   {with_progress:7.3f} s   "
              f"{epochs / with_progress:8.0f} notifications/s received")
        print(f"overhead per progress notification (end to end)  {(with_progress - without) / epochs * 1e3:7.3f} ms")

        info = await _timed_calls(lambda: session.call_tool("server_info", {}), calls)
        print(f"server_info, ClientSession (2025-11-25)          {_percentiles(info)}")
        one_epoch = await _timed_calls(lambda: session.call_tool("train_model", {"model_name": "b", "epochs": 1}), calls)
        print(f"train_model 1 epoch, ClientSession               {_percentiles(one_epoch)}")

    async with mcp.Client(url) as client:
        modern = await _timed_calls(lambda: client.call_tool("server_info", {}), calls)
        print(f"server_info, mcp.Client (2026-07-28)             {_percentiles(modern)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1000, help="epochs of the progress run (1-1000)")
    parser.add_argument("--calls", type=int, default=300, help="calls per latency figure (1-100000)")
    args = parser.parse_args()
    if not 1 <= args.epochs <= 1000:
        parser.error(f"--epochs must be between 1 and 1000, got {args.epochs}")
    if not 1 <= args.calls <= 100_000:
        parser.error(f"--calls must be between 1 and 100000, got {args.calls}")
    with TemporaryDirectory() as scratch:
        settings = config.load(
            time_scale=0, artifacts_dir=Path(scratch) / "artifacts", logs_dir=Path(scratch) / "logs"
        )
        with ServerProcess("context_messaging.py", settings=settings) as server:
            print(f"bench/progress.py against {server.url} (time scale 0: unpaced)")
            asyncio.run(run(server.url, args.epochs, args.calls))


if __name__ == "__main__":
    main()
