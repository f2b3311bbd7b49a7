"""Benchmark: does a status check stay cheap with a thousand live background tasks?

Runs servers/async_tasks.py paced at time scale 1 (one epoch per second) on
127.0.0.1, starts N long trainings (600 epochs, so none ends during the run) and
prints:

* the start rate (tasks/s) of ``model_training`` calls issued one after the
  other on one ClientSession and of calls issued by C concurrent clients (own
  sessions), in alternating chunks so both see the same number of live tasks;
  every call must return a task id and ``list_tasks`` must then count N running;
* ``check_task_status`` latency (p50/p99) for every task id, round after round,
  next to ``server_info`` (the cheapest tool: the floor) called alternately in
  the same loop, so both see the same background load (N trainings, ~0.6 ms of
  CPU per task per second), and their ratio against the issue's target: status
  checks within 1.5x of the floor at 1000 live tasks;
* ``list_tasks`` latency at N tasks (it returns every task, so it grows with N);
* the server's memory (RSS) before and after starting the tasks (per task), and
  its growth while polling (per call: memory a call leaves behind, for a while);
* the server's (and this client's) CPU use while polling: the load both latency
  figures were measured under. The server is one Python process, so near 100 %
  of one core its event loop is saturated and the p99s show it.

Figures only; "target missed" does not fail the run.
Usage: python bench/task_load.py [--tasks N] [--rounds R] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psutil
from mcp import ClientSession

from lab_helpers import config
from lab_helpers.mcp_client import open_session
from lab_helpers.servers import ServerProcess

#: Epochs per task: at one epoch per second, no task finishes during the run.
EPOCHS = 600
#: Polling rounds are added until each latency figure has at least this many samples.
MIN_SAMPLES = 2000
#: The issue's target: status p50 and p99 within this multiple of the no-op floor.
TARGET_RATIO = 1.5
MB = 1024 * 1024


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _percentiles(samples: list[float]) -> str:
    p50, p99 = _p50_p99(samples)
    return f"p50 {p50 * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms   ({len(samples)} calls)"


async def _call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool call's structured result; a tool error raises with its text."""
    result = await session.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        text = " ".join(getattr(part, "text", "") for part in result.content)
        raise RuntimeError(f"{tool}({arguments}) failed: {text or 'no structured result'}")
    return result.structured_content


async def _timed(session: ClientSession, tool: str, arguments: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    answer = await _call(session, tool, arguments)
    return time.perf_counter() - started, answer


async def _start_each(
    start: Callable[[ClientSession, int], Awaitable[float]], session: ClientSession, indices: range
) -> None:
    for index in indices:
        await start(session, index)


def _line(label: str, figures: str) -> None:
    print(f"{label:<48}{figures}")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / MB


async def run(url: str, server: psutil.Process, tasks: int, rounds: int, concurrency: int) -> None:
    ids: list[str] = []

    async def start(session: ClientSession, index: int) -> float:
        elapsed, task = await _timed(session, "model_training", {"model_name": f"bench-{index}", "epochs": EPOCHS})
        if not isinstance(task.get("task_id"), str):
            raise RuntimeError(f"model_training returned no task id: {task}")
        ids.append(task["task_id"])
        return elapsed

    async with open_session(url) as session:
        for tool in ("server_info", "list_tasks"):  # warm-up: schemas cached, connection open
            await _call(session, tool, {})
        idle = [(await _timed(session, "server_info", {}))[0] for _ in range(300)]
        rss_before = _rss_mb(server)
        _line("server_info, idle server (0 tasks)", _percentiles(idle))

        # -- start rate: sequential on this session and from C concurrent clients, in alternating
        # chunks, so both ways of starting see the same growing number of live tasks --
        async with AsyncExitStack() as stack:
            others = [await stack.enter_async_context(open_session(url)) for _ in range(concurrency)]
            for other in others:
                await _call(other, "server_info", {})  # warm-up outside the timed part
            chunk = max(concurrency, math.ceil(tasks / 20))
            spent = {"sequential": 0.0, "concurrent": 0.0}
            started = {"sequential": 0, "concurrent": 0}
            sequential_latency: list[float] = []
            for number, first in enumerate(range(0, tasks, chunk)):
                indices = range(first, min(tasks, first + chunk))
                mode = "sequential" if number % 2 == 0 else "concurrent"
                began = time.perf_counter()
                if mode == "sequential":
                    sequential_latency += [await start(session, index) for index in indices]
                else:
                    await asyncio.gather(*(
                        _start_each(start, other, indices[client::concurrency]) for client, other in enumerate(others)
                    ))
                spent[mode] += time.perf_counter() - began
                started[mode] += len(indices)
        labels = {"sequential": "sequential, 1 session", "concurrent": f"{concurrency} concurrent clients"}
        for mode, label in labels.items():
            if started[mode]:
                _line(f"start rate, {label}", f"{started[mode] / spent[mode]:8.0f} tasks/s   "
                      f"({started[mode]} tasks in {spent[mode]:.2f} s)")
            else:
                _line(f"start rate, {label}", f"skipped (--tasks {tasks} fills one sequential chunk)")
        _line("model_training call, sequential", _percentiles(sequential_latency))
        if len(set(ids)) != tasks:
            raise RuntimeError(f"expected {tasks} distinct task ids, got {len(set(ids))}")

        # -- every task is live; list_tasks latency grows with N --
        listing: list[float] = []
        for _ in range(5):
            elapsed, answer = await _timed(session, "list_tasks", {})
            listing.append(elapsed)
        counts = answer["counts"]
        if counts["running"] != tasks or {task["task_id"] for task in answer["tasks"]} != set(ids):
            raise RuntimeError(f"expected {tasks} running tasks (ours), list_tasks counts {counts}")
        rss_started = _rss_mb(server)
        _line(f"list_tasks, {tasks} running tasks",
              f"p50 {statistics.median(listing) * 1000:6.2f} ms   max {max(listing) * 1000:6.2f} ms   (5 calls)")

        # -- status checks against the floor, alternating in one loop under the same load --
        rounds = max(rounds, math.ceil(MIN_SAMPLES / tasks))
        status: list[float] = []
        floor: list[float] = []

        async def check(task_id: str) -> None:
            elapsed, task = await _timed(session, "check_task_status", {"task_id": task_id})
            if task["task_id"] != task_id or task["status"] != "running":
                raise RuntimeError(f"task {task_id} is not running: {task}")
            status.append(elapsed)

        async def no_op(_: str) -> None:
            floor.append((await _timed(session, "server_info", {}))[0])

        server_cpu, client_cpu, began = _cpu(server), time.process_time(), time.perf_counter()
        for _ in range(rounds):
            for number, task_id in enumerate(ids):
                for call in (check, no_op) if number % 2 == 0 else (no_op, check):  # neither always goes first
                    await call(task_id)
        seconds = time.perf_counter() - began
        server_cpu, client_cpu = (_cpu(server) - server_cpu) / seconds, (time.process_time() - client_cpu) / seconds
        rss_polled = _rss_mb(server)
        _line(f"check_task_status, {tasks} live tasks, {rounds} rounds", _percentiles(status))
        _line("server_info (floor), same loop", _percentiles(floor))
        (status_p50, status_p99), (floor_p50, floor_p99) = _p50_p99(status), _p50_p99(floor)
        ratio_p50, ratio_p99 = status_p50 / floor_p50, status_p99 / floor_p99
        verdict = "target met" if max(ratio_p50, ratio_p99) <= TARGET_RATIO else "target missed"
        _line("status / floor", f"p50 {ratio_p50:6.2f} x    p99 {ratio_p99:6.2f} x    "
              f"{verdict} (<= {TARGET_RATIO:g}x)")
        _line("server CPU while polling", f"{server_cpu * 100:8.0f} % of one core   "
              f"(client {client_cpu * 100:.0f} %, {seconds:.1f} s of polling)")
        _line("server RSS before starting tasks", f"{rss_before:8.1f} MB")
        _line(f"server RSS with {tasks} tasks started",
              f"{rss_started:8.1f} MB   {(rss_started - rss_before) * 1024 / tasks:6.1f} KB per task")
        _line("server RSS after polling", f"{rss_polled:8.1f} MB   "
              f"{(rss_polled - rss_started) * 1024 / (len(status) + len(floor)):6.1f} KB per polling call")

        # -- clean up: cancel every task, then the server is stopped by the caller --
        began = time.perf_counter()
        for task_id in ids:
            await _call(session, "cancel_task", {"task_id": task_id})
        seconds = time.perf_counter() - began
        counts = (await _call(session, "list_tasks", {}))["counts"]
        if counts["cancelled"] != tasks:
            raise RuntimeError(f"expected {tasks} cancelled tasks, list_tasks counts {counts}")
        _line("cancel_task, every task", f"{tasks / seconds:8.0f} tasks/s   "
              f"({tasks} tasks in {seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000, help="live tasks to start (1-5000)")
    parser.add_argument(
        "--rounds", type=int, default=2,
        help=f"status rounds over every task (1-100); more are added until there are {MIN_SAMPLES} samples",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients starting tasks (1-64)")
    args = parser.parse_args()
    if not 1 <= args.tasks <= 5000:
        parser.error(f"--tasks must be between 1 and 5000, got {args.tasks}")
    if not 1 <= args.rounds <= 100:
        parser.error(f"--rounds must be between 1 and 100, got {args.rounds}")
    if not 1 <= args.concurrency <= 64:
        parser.error(f"--concurrency must be between 1 and 64, got {args.concurrency}")
    with TemporaryDirectory() as scratch:
        settings = config.load(
            time_scale=1.0,
            artifacts_dir=Path(scratch) / "artifacts",
            logs_dir=Path(scratch) / "logs",
            max_epochs=max(EPOCHS, 1000),
        )
        with ServerProcess("async_tasks.py", settings=settings) as server:
            print(f"bench/task_load.py against {server.url} (time scale 1: one epoch per second, "
                  f"{EPOCHS}-epoch tasks)")
            asyncio.run(run(server.url, psutil.Process(server.pid), args.tasks, args.rounds, args.concurrency))
        pid = server.pid
    if server.is_running or (pid is not None and psutil.pid_exists(pid)):
        raise SystemExit(f"server pid {pid} is still running after stop")
    print(f"server stopped (pid {pid} gone)")


if __name__ == "__main__":
    main()
