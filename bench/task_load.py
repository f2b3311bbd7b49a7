"""Benchmark: does a status check stay cheap with a thousand live background tasks?

The same load, one server after the other, each on 127.0.0.1 at time scale 1 (one
epoch per second), with N long trainings (600 epochs, so none ends during the run):

* ``async_tasks``: notebook 02's servers/async_tasks.py, tasks by hand: the
  ``model_training`` tool answers with a task id, ``check_task_status`` is the
  status check. The trainings run in a bounded pool of worker processes, one per
  CPU (``servers/patterns/worker_pool.py``): that many train, the rest are
  ``queued``, and the event loop that answers is left to answering.
* ``native_memory`` / ``native_redis``: notebook 05's servers/native_tasks.py,
  the same training as a protocol-native MCP task (SEP-2663): submitted with a
  task-augmented ``tools/call`` (``fastmcp_tasks.call_tool_task``), checked with
  ``tasks/get`` (``lab_helpers.mcp_client.task_by_id``), on the in-memory Docket
  backend or on Redis (a ``redis-server`` of its own; skipped with a note when
  it is not installed). These tasks run on a Docket worker with a concurrency
  limit (fastmcp_tasks' default: 10), so of N submitted tasks only that many
  train at once and the rest wait in the queue, all reported ``working``. The
  run counts which ones really train (a ``working`` task whose status message
  names an epoch, and the server log's "started" lines) instead of assuming N.

For each server it measures, then prints in one table, a column per server:

* the start rate (tasks/s) of calls issued one after the other on one session
  and of calls issued by C concurrent clients (own sessions), in alternating
  chunks so both see the same number of live tasks; every call must return a
  task id, and every task must then be live (``running`` / ``working``);
* the status check's latency (p50/p99) for every task id, round after round,
  next to ``server_info`` (the cheapest tool) called alternately in the same loop
  under the same load, and next to ``server_info`` on the same server while it
  was idle (no task yet): the floor of the issue's target, status p50 within 1.5x
  and p99 within 5x of the idle floor at 1000 live tasks (a floor measured under
  the load would hide a saturated loop: it would be slow too);
* for async_tasks, the other floor: the start rate of the same server script
  with ``--workers 0``, whose tasks are accepted and queued and never do any work,
  measured first in the same run; the target: starting real tasks at least half
  as fast as starting tasks that do no work;
* ``list_tasks`` latency at N tasks (async_tasks only: SEP-2663 has no tasks/list);
* the server's memory (RSS) before and after starting the tasks (per task), and
  its growth while polling (per call: memory a call leaves behind, for a while);
  for Redis also redis-server's RSS, where the native tasks' state lives;
* the server's (and Redis', and this client's) CPU use while polling: the load
  the latency figures were measured under. Each server is one Python process, so
  near 100 % of one core its event loop is saturated and the p99s show it.

By default async_tasks gets 1000 tasks and the native servers 500 each, and
every server gets one status round (1000 status checks and 1000 floor calls), so
that the default run of all three stays near 3 minutes on 2 cores. (Before the
worker pool, async_tasks trained all 1000 on its event loop: 14.6 s to start
them on a quiet machine, status p99 1.9 s, 170 s for one round.)
``--tasks N`` gives every server N; ``--rounds R`` polls more. A native task's
status check is a few key look-ups whatever N is. Figures only; "target missed"
does not fail the run, an error does (exit 1).
Usage: python bench/task_load.py [--servers async_tasks,native_memory,native_redis]
                                 [--tasks N] [--rounds R] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psutil
from fastmcp import Client
from fastmcp_tasks import ToolTask, call_tool_task
from fastmcp_tasks.settings import DocketSettings
from mcp import ClientSession

from lab_helpers import config
from lab_helpers.mcp_client import open_session, task_by_id
from lab_helpers.redis_server import redis_available, start_redis
from lab_helpers.processes import ServerProcess, stop_all

#: Epochs per task: at one epoch per second, no task finishes during the run.
EPOCHS = 600
#: Polling rounds are added until each latency figure has at least this many samples.
MIN_SAMPLES = 1000
#: The issue's targets, against server_info on the same server while idle: status p50 and p99 within these.
TARGET_P50, TARGET_P99 = 1.5, 5.0
#: And the start rate at least this share of the rate of starting tasks that do no work.
TARGET_START_SHARE = 0.5
#: Live tasks per server unless --tasks says otherwise.
DEFAULT_TASKS = {"async_tasks": 1000, "native_memory": 500, "native_redis": 500}
#: Pause between starting the tasks and polling them: more than one epoch (one second at time scale 1).
SETTLE_SECONDS = 1.5
#: Longest wait for any one request to the native servers (fastmcp Client timeout), seconds.
CALL_TIMEOUT = 60.0
MB = 1024 * 1024
SERVERS = tuple(DEFAULT_TASKS)
TITLES = {"async_tasks": "async_tasks.py", "native_memory": "native, memory://", "native_redis": "native, redis://"}


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / MB


async def _call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool call's structured result; a tool error raises with its text."""
    result = await session.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        text = " ".join(getattr(part, "text", "") for part in result.content)
        raise RuntimeError(f"{tool}({arguments}) failed: {text or 'no structured result'}")
    return result.structured_content


async def _timed(call: Awaitable[Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = await call
    return time.perf_counter() - started, answer


# -- the servers: how to reach each one and ask it the benchmark's questions --------------------


class Target:
    """One server under load. ``conn`` is whatever :meth:`connect` yields (a session or a client)."""

    key: str
    status_call: str  # what one status check is on the wire

    def __init__(self, server: ServerProcess, backend: ServerProcess | None = None) -> None:
        self.server = server
        self.backend = backend  # the process that holds the task state, when it is not the server (Redis)

    def connect(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def no_op(self, conn: Any) -> None:
        raise NotImplementedError

    async def start(self, conn: Any, index: int) -> str:
        """Start training ``bench-<index>``; its task id."""
        raise NotImplementedError

    async def status(self, conn: Any, task_id: str) -> bool:
        """Check a task; raise unless it is live. True when it is training now, False when it waits in a queue."""
        raise NotImplementedError

    async def cancel(self, conn: Any, task_id: str) -> None:
        raise NotImplementedError

    def cancel_order(self, ids: list[str]) -> list[str]:
        return ids

    async def after_start(self, conn: Any, ids: list[str], figures: dict[str, str]) -> None:
        """Checks (and figures) once every task is started."""

    async def after_cancel(self, conn: Any, ids: list[str]) -> None:
        """Check that every task ended cancelled."""
        raise NotImplementedError

    def log_counts(self) -> dict[str, int] | None:
        """Trainings started and ended according to the server's log, if it says."""
        return None


class AsyncTasksTarget(Target):
    """servers/async_tasks.py: task ids by hand, on an mcp ``ClientSession`` (the 2025-11-25 handshake)."""

    key = "async_tasks"
    status_call = "check_task_status"

    def connect(self) -> AbstractAsyncContextManager[ClientSession]:
        return open_session(self.server.url)

    async def no_op(self, conn: ClientSession) -> None:
        await _call(conn, "server_info", {})

    async def start(self, conn: ClientSession, index: int) -> str:
        task = await _call(conn, "model_training", {"model_name": f"bench-{index}", "epochs": EPOCHS})
        if not isinstance(task.get("task_id"), str):
            raise RuntimeError(f"model_training returned no task id: {task}")
        return task["task_id"]

    async def status(self, conn: ClientSession, task_id: str) -> bool:
        task = await _call(conn, "check_task_status", {"task_id": task_id})
        if task["task_id"] != task_id or task["status"] not in ("submitted", "queued", "running"):
            raise RuntimeError(f"task {task_id} is not live: {task}")
        return task["status"] == "running"

    async def cancel(self, conn: ClientSession, task_id: str) -> None:
        await _call(conn, "cancel_task", {"task_id": task_id})

    async def after_start(self, conn: ClientSession, ids: list[str], figures: dict[str, str]) -> None:
        listing: list[float] = []
        for _ in range(5):  # list_tasks returns every task, so it grows with N
            elapsed, answer = await _timed(_call(conn, "list_tasks", {}))
            listing.append(elapsed)
        counts = answer["counts"]
        live = counts["submitted"] + counts["queued"] + counts["running"]
        if live != len(ids) or {task["task_id"] for task in answer["tasks"]} != set(ids):
            raise RuntimeError(f"expected {len(ids)} live tasks (ours), list_tasks counts {counts}")
        figures["list_tasks p50 / max (5 calls)"] = f"{_ms(statistics.median(listing))} / {max(listing) * 1000:.0f}"

    async def after_cancel(self, conn: ClientSession, ids: list[str]) -> None:
        counts = (await _call(conn, "list_tasks", {}))["counts"]
        if counts["cancelled"] != len(ids):
            raise RuntimeError(f"expected {len(ids)} cancelled tasks, list_tasks counts {counts}")


class NativeTarget(Target):
    """servers/native_tasks.py: SEP-2663 tasks on a fastmcp ``Client`` (the modern protocol, tasks extension)."""

    status_call = "tasks/get"
    _started = re.compile(r"training bench-\d+ started")
    _ended = re.compile(r"training bench-\d+ (?:cancelled|failed|finished)")

    def __init__(self, key: str, server: ServerProcess, backend: ServerProcess | None = None) -> None:
        super().__init__(server, backend)
        self.key = key
        self.created: dict[str, Any] = {}  # task id -> its CreateTaskResult, to rebuild a handle on any client

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Client]:
        async with Client(self.server.url, timeout=CALL_TIMEOUT) as client:
            yield client

    async def no_op(self, conn: Client) -> None:
        # The session's own tools/call, as for async_tasks (not Client.call_tool, which does more client-side work).
        result = await conn.session.call_tool("server_info", {})
        if result.is_error or not result.structured_content:
            raise RuntimeError(f"server_info failed: {result}")

    async def start(self, conn: Client, index: int) -> str:
        task = await call_tool_task(conn, "model_training", {"model_name": f"bench-{index}", "epochs": EPOCHS})
        self.created[task.task_id] = task.create_result
        return task.task_id

    async def status(self, conn: Client, task_id: str) -> bool:
        task = await task_by_id(conn, task_id)  # one tasks/get, as the client that started it would send
        if task.task_id != task_id or task.status != "working":
            raise RuntimeError(f"task {task_id} is not working: {task.status} {task.status_message or ''}")
        # Queued and running are both "working" on the wire; only a running training has an epoch to report.
        return (task.status_message or "").startswith("epoch ")

    async def cancel(self, conn: Client, task_id: str) -> None:
        # The handle that started the task belongs to a client that is closed by now: the same task on this one.
        await ToolTask(conn, "model_training", self.created[task_id]).cancel()

    def cancel_order(self, ids: list[str]) -> list[str]:
        # Newest first, so the queued tasks go before the running ones: cancelling a running task first
        # frees a worker slot that the next queued task takes (and starts training) before its own cancel.
        return ids[::-1]

    async def after_cancel(self, conn: Client, ids: list[str]) -> None:
        statuses: dict[str, int] = {}
        for task_id in ids:
            status = (await task_by_id(conn, task_id)).status
            statuses[status] = statuses.get(status, 0) + 1
        if statuses.get("cancelled") != len(ids):
            raise RuntimeError(f"expected {len(ids)} cancelled tasks, tasks/get says {statuses}")

    def log_counts(self) -> dict[str, int]:
        log = self.server.log_text()
        return {"started": len(self._started.findall(log)), "ended": len(self._ended.findall(log))}


# -- the load ----------------------------------------------------------------------------------


async def _start_each(start: Callable[[Any, int], Awaitable[float]], conn: Any, indices: range) -> None:
    for index in indices:
        await start(conn, index)


async def start_tasks(
    target: Target, conn: Any, tasks: int, concurrency: int
) -> tuple[list[str], dict[str, str], float]:
    """Start ``tasks`` tasks, sequentially on ``conn`` and from C concurrent clients in alternating chunks (so both
    ways see the same growing number of live tasks): their ids, the figures, and the overall start rate (tasks/s)."""
    ids: list[str] = []

    async def start(conn: Any, index: int) -> float:
        elapsed, task_id = await _timed(target.start(conn, index))
        ids.append(task_id)
        return elapsed

    figures: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        others = [await stack.enter_async_context(target.connect()) for _ in range(concurrency)]
        for other in others:
            await target.no_op(other)  # warm-up outside the timed part
        chunk = max(concurrency, math.ceil(tasks / 20))
        spent = {"sequential": 0.0, "concurrent": 0.0}
        started = {"sequential": 0, "concurrent": 0}
        sequential_latency: list[float] = []
        for number, first in enumerate(range(0, tasks, chunk)):
            indices = range(first, min(tasks, first + chunk))
            mode = "sequential" if number % 2 == 0 else "concurrent"
            began = time.perf_counter()
            if mode == "sequential":
                sequential_latency += [await start(conn, index) for index in indices]
            else:
                await asyncio.gather(*(
                    _start_each(start, other, indices[client::concurrency]) for client, other in enumerate(others)
                ))
            spent[mode] += time.perf_counter() - began
            started[mode] += len(indices)
    labels = {"sequential": "start rate, 1 session", "concurrent": f"start rate, {concurrency} concurrent clients"}
    for mode, label in labels.items():
        figures[label] = f"{started[mode] / spent[mode]:.0f} tasks/s" if started[mode] else "skipped (1 chunk)"
    p50, p99 = _p50_p99(sequential_latency)
    figures["start call p50 / p99 (sequential)"] = f"{_ms(p50)} / {p99 * 1000:.0f}"
    if len(set(ids)) != tasks:
        raise RuntimeError(f"expected {tasks} distinct task ids, got {len(set(ids))}")
    return ids, figures, tasks / sum(spent.values())


async def no_work_start_rate(target: Target, tasks: int, concurrency: int) -> float:
    """The start-rate floor: ``tasks`` starts on a server whose tasks never run (``--workers 0``), in tasks/s."""
    async with target.connect() as conn:
        for _ in range(3):
            await target.no_op(conn)
        ids, _, rate = await start_tasks(target, conn, tasks, concurrency)
        for task_id in ids:
            await target.cancel(conn, task_id)
    return rate


async def run(target: Target, tasks: int, rounds: int, concurrency: int,
              no_work_rate: float | None = None) -> dict[str, str]:
    """Put the load on one server; its figures, row label -> cell."""
    server = psutil.Process(target.server.pid)
    backend = psutil.Process(target.backend.pid) if target.backend else None
    figures: dict[str, str] = {}
    say = lambda text: print(f"  [{target.key}] {text}", flush=True)  # noqa: E731

    async with target.connect() as conn:
        for _ in range(3):  # warm-up: schemas cached, connection open
            await target.no_op(conn)
        idle_p50, idle_p99 = _p50_p99([(await _timed(target.no_op(conn)))[0] for _ in range(MIN_SAMPLES)])
        rss_before = _rss_mb(server)
        backend_before = _rss_mb(backend) if backend else 0.0
        figures["floor: server_info idle p50 / p99"] = f"{_ms(idle_p50)} / {idle_p99 * 1000:.2f}"
        if no_work_rate is not None:
            figures["floor: start rate, tasks doing no work"] = f"{no_work_rate:.0f} tasks/s"

        began_all = time.perf_counter()
        ids, started_figures, start_rate = await start_tasks(target, conn, tasks, concurrency)
        figures.update(started_figures)
        figures["start rate, overall"] = f"{start_rate:.0f} tasks/s"
        say(f"{tasks} tasks started in {time.perf_counter() - began_all:.1f} s")
        if no_work_rate is not None:
            share = start_rate / no_work_rate
            met = "met" if share >= TARGET_START_SHARE else "missed"
            figures[f"target: start >= {TARGET_START_SHARE:g}x no-work rate"] = f"{share:.2f} x, {met}"
        await target.after_start(conn, ids, figures)
        rss_started = _rss_mb(server)
        backend_started = _rss_mb(backend) if backend else 0.0
        # A training reports its first epoch a second after it starts: from then on a native task that is
        # "working" without an epoch in its status message is one that waits in the queue, not one starting.
        await asyncio.sleep(SETTLE_SECONDS)

        # -- status checks against the floor, alternating in one loop under the same load --
        rounds = max(rounds, math.ceil(MIN_SAMPLES / tasks))
        status: list[float] = []
        floor: list[float] = []
        training: list[int] = []  # per round: how many tasks were training (the rest were queued)

        async def check(task_id: str) -> None:
            elapsed, is_training = await _timed(target.status(conn, task_id))
            status.append(elapsed)
            training[-1] += is_training

        async def no_op(_: str) -> None:
            floor.append((await _timed(target.no_op(conn)))[0])

        say(f"polling: {rounds} rounds of {target.status_call} + server_info over {tasks} tasks")
        server_cpu, client_cpu, began = _cpu(server), time.process_time(), time.perf_counter()
        backend_cpu = _cpu(backend) if backend else 0.0
        for _ in range(rounds):
            training.append(0)
            for number, task_id in enumerate(ids):
                for call in (check, no_op) if number % 2 == 0 else (no_op, check):  # neither always goes first
                    await call(task_id)
        seconds = time.perf_counter() - began
        server_cpu, client_cpu = (_cpu(server) - server_cpu) / seconds, (time.process_time() - client_cpu) / seconds
        backend_cpu = (_cpu(backend) - backend_cpu) / seconds if backend else 0.0
        rss_polled = _rss_mb(server)
        log = target.log_counts()

        figures["live tasks (all checked live)"] = f"{tasks}"
        low, high = min(training), max(training)
        running = f"{low}" if low == high else f"{low}-{high}"
        figures["of which training (rest queued)"] = f"{running} ({tasks - high} queued)" if high < tasks else running
        if log is not None:
            figures["  training per server log, after polling"] = f"{log['started'] - log['ended']}"
        figures["status checks (tasks x rounds)"] = f"{tasks} x {rounds}"
        figures["status check p50"] = _ms(_p50_p99(status)[0])
        figures["status check p99"] = _ms(_p50_p99(status)[1])
        figures["server_info floor p50, same loop"] = _ms(_p50_p99(floor)[0])
        figures["server_info floor p99"] = _ms(_p50_p99(floor)[1])
        (status_p50, status_p99), (floor_p50, floor_p99) = _p50_p99(status), _p50_p99(floor)
        same_loop = f"{status_p50 / floor_p50:.2f} x / {status_p99 / floor_p99:.2f} x"
        figures["status / same-loop floor, p50 / p99"] = same_loop
        ratio_p50, ratio_p99 = status_p50 / idle_p50, status_p99 / idle_p99
        figures[f"target: status p50 <= {TARGET_P50:g}x idle floor"] = (
            f"{ratio_p50:.2f} x, {'met' if ratio_p50 <= TARGET_P50 else 'missed'}")
        figures[f"target: status p99 <= {TARGET_P99:g}x idle floor"] = (
            f"{ratio_p99:.2f} x, {'met' if ratio_p99 <= TARGET_P99 else 'missed'}")
        figures["server CPU while polling"] = f"{server_cpu * 100:.0f} % of a core"
        if backend:
            figures["redis-server CPU while polling"] = f"{backend_cpu * 100:.0f} % of a core"
        figures["client (this script) CPU"] = f"{client_cpu * 100:.0f} % of a core"
        figures["polling time"] = f"{seconds:.1f} s"
        figures["server RSS before tasks"] = f"{rss_before:.1f} MB"
        figures["server RSS per task"] = f"{(rss_started - rss_before) * 1024 / tasks:.1f} KB"
        if backend:
            figures["redis-server RSS per task"] = f"{(backend_started - backend_before) * 1024 / tasks:.1f} KB"
        calls = len(status) + len(floor)
        figures["server RSS growth per polling call"] = f"{(rss_polled - rss_started) * 1024 / calls:.2f} KB"
        say(f"polled in {seconds:.1f} s; cancelling")

        # -- clean up: cancel every task, then the server is stopped by the caller --
        began = time.perf_counter()
        for task_id in target.cancel_order(ids):
            await target.cancel(conn, task_id)
        seconds = time.perf_counter() - began
        await target.after_cancel(conn, ids)
        figures["cancel rate"] = f"{tasks / seconds:.0f} tasks/s"
        log = target.log_counts()
        if log is not None:
            figures["trainings ever started (server log)"] = f"{log['started']}"
    return figures


# -- the table ---------------------------------------------------------------------------------


def print_table(columns: dict[str, dict[str, str]]) -> None:
    rows: list[str] = []
    for figures in columns.values():  # every row once, a row only some servers have next to its neighbours
        previous = -1
        for row in figures:
            if row not in rows:
                rows.insert(previous + 1, row)
            previous = rows.index(row)
    width = max(len(row) for row in rows) + 2
    cell = max(22, *(len(value) + 2 for figures in columns.values() for value in figures.values()))
    print()
    print(f"{'':<{width}}" + "".join(f"{TITLES[key]:>{cell}}" for key in columns))
    print("-" * (width + cell * len(columns)))
    for row in rows:
        print(f"{row:<{width}}" + "".join(f"{columns[key].get(row, '-'):>{cell}}" for key in columns))


# -- the command line --------------------------------------------------------------------------


def _servers(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SERVERS)}, got {text!r}")
    return list(dict.fromkeys(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=_servers, default=None,
                        help=f"comma-separated, from {','.join(SERVERS)} (default: all; native_redis only "
                        "when redis-server is installed)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="live tasks to start on every server (1-5000; default: "
                        + ", ".join(f"{key} {count}" for key, count in DEFAULT_TASKS.items()) + ")")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help=f"status rounds over every task (1-100); more are added until there are {MIN_SAMPLES} samples",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients starting tasks (1-64)")
    args = parser.parse_args()
    if args.tasks is not None and not 1 <= args.tasks <= 5000:
        parser.error(f"--tasks must be between 1 and 5000, got {args.tasks}")
    if not 1 <= args.rounds <= 100:
        parser.error(f"--rounds must be between 1 and 100, got {args.rounds}")
    if not 1 <= args.concurrency <= 64:
        parser.error(f"--concurrency must be between 1 and 64, got {args.concurrency}")
    servers = args.servers or list(SERVERS)
    if "native_redis" in servers and not redis_available():
        print("note: native_redis skipped: redis-server is not installed (apt-get install redis-server)")
        servers.remove("native_redis")
    if not servers:
        raise SystemExit("no server left to benchmark")
    counts = {key: args.tasks or DEFAULT_TASKS[key] for key in servers}

    print(f"bench/task_load.py: time scale 1 (one epoch per second), {EPOCHS}-epoch tasks, on 127.0.0.1")
    print("tasks per server: " + ", ".join(f"{key} {count}" for key, count in counts.items())
          + ("" if args.tasks else "  (defaults: fewer for the native servers to keep the run near 3 min; "
             "--tasks N sets every server)"))
    if any(key.startswith("native") for key in servers):
        print(f"native servers: Docket worker concurrency {DocketSettings().concurrency} "
              "(fastmcp_tasks default, FASTMCP_DOCKET_CONCURRENCY): at most that many trainings run at once, "
              "the other tasks wait queued")
    columns: dict[str, dict[str, str]] = {}
    failed: list[str] = []
    pids: list[int] = []
    try:
        with TemporaryDirectory() as scratch:
            settings = config.load(
                time_scale=1.0,
                artifacts_dir=Path(scratch) / "artifacts",
                logs_dir=Path(scratch) / "logs",
                max_epochs=max(EPOCHS, 1000),
            )
            for key in servers:
                began = time.perf_counter()
                redis: ServerProcess | None = None
                try:
                    no_work_rate = None
                    if key == "async_tasks":
                        with ServerProcess("async_tasks.py", "--workers", "0", settings=settings,
                                           name="async_tasks-no-work") as floor:
                            pids.append(floor.pid)
                            print(f"{key}: the no-work floor first, --workers 0 (pid {floor.pid})", flush=True)
                            no_work_rate = asyncio.run(no_work_start_rate(AsyncTasksTarget(floor), counts[key],
                                                                          args.concurrency))
                        server = ServerProcess("async_tasks.py", settings=settings)
                    else:
                        backend_url = "memory://"
                        if key == "native_redis":
                            redis = start_redis(Path(scratch) / "redis", settings)
                            pids.append(redis.pid)
                            backend_url = redis.redis_url
                        server = ServerProcess("native_tasks.py", "--backend", backend_url, settings=settings,
                                               name=f"native_tasks-{key}")
                    with server:
                        pids.append(server.pid)
                        print(f"{key}: {server.url} (pid {server.pid})", flush=True)
                        target = (AsyncTasksTarget(server) if key == "async_tasks"
                                  else NativeTarget(key, server, redis))
                        columns[key] = asyncio.run(run(target, counts[key], args.rounds, args.concurrency,
                                                       no_work_rate))
                except Exception as error:  # noqa: BLE001 - one server's failure is reported, the others still run
                    failed.append(key)
                    columns[key] = {"error": type(error).__name__}
                    print(f"  [{key}] FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                finally:
                    if redis is not None:
                        redis.stop()
                columns[key]["run time (start to stop)"] = f"{time.perf_counter() - began:.0f} s"
    finally:
        stop_all()
    print_table(columns)
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    if alive:
        raise SystemExit(f"still running after stop: pids {alive}")
    print(f"\nevery server stopped (pids {', '.join(map(str, pids))} gone)")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
