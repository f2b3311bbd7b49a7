"""Scale out (notebook 09): one MCP server that runs no task, and worker processes on the same Redis queue.

servers/native_tasks.py --no-worker accepts the calls; two servers/task_worker.py processes (one run at a time
each, so a second task must go to the other) do the work. Over real HTTP: both workers share the queue and the
server runs nothing; kill -9 of the MCP server mid-task loses nothing; kill -9 of the worker running a task and
the other worker runs it again after the lease and finishes it. Which worker ran a task is in its log.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client
from fastmcp_tasks import call_tool_task  # importing fastmcp_tasks makes the client declare the tasks extension

from lab_helpers import config
from lab_helpers.mcp_client import task_by_id
from lab_helpers.processes import ServerProcess
from lab_helpers.redis_server import redis_available, start_redis
from lab_helpers.waiting import eventually, eventually_async

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed: no queue to share")


@pytest.fixture(scope="module")
def cluster(module_settings: config.Settings, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[ServerProcess, list[ServerProcess]]]:
    """Redis, the MCP server without a worker, and two workers of concurrency 1."""
    redis = start_redis(tmp_path_factory.mktemp("redis"), module_settings)
    server = ServerProcess("native_tasks.py", "--backend", redis.redis_url, "--no-worker", settings=module_settings)
    workers = [ServerProcess("task_worker.py", "--backend", redis.redis_url, "--concurrency", "1",
                             settings=module_settings, name=f"worker-{n}") for n in (1, 2)]
    try:
        for process in [server, *workers]:  # not from threads: a child gets SIGTERM when its starting thread ends
            process.start()
        yield server, workers
    finally:
        for process in [server, *workers, redis]:
            process.stop()


@pytest.fixture
def server(cluster: tuple[ServerProcess, list[ServerProcess]]) -> ServerProcess:
    return cluster[0]


@pytest.fixture
def workers(cluster: tuple[ServerProcess, list[ServerProcess]]) -> list[ServerProcess]:
    """Both workers, running: one a test killed is started again first."""
    for worker in cluster[1]:
        if not worker.is_running:
            worker.start()
    return cluster[1]


def ran(workers: list[ServerProcess], model_name: str, what: str = "started") -> list[str]:
    """The names of the workers whose log (all runs) says ``training <model_name> <what>``, once per line."""
    return [worker.name for worker in workers
            for _ in worker.log_lines(rf"training {model_name} {what}\b", all_runs=True)]


async def submit(server: ServerProcess, model_name: str, epochs: int) -> str:
    async with Client(server.url) as client:
        return (await call_tool_task(client, "model_training", {"model_name": model_name, "epochs": epochs})).task_id


async def wait_until_done(server: ServerProcess, task_id: str, timeout: float = 60.0) -> Any:
    """``tasks/get`` on a new connection until the task has ended; its last answer."""
    async with Client(server.url) as client:
        return await eventually_async(lambda: _ended(client, task_id), timeout=timeout, every=0.05,
                                      what=f"task {task_id} to end")


async def _ended(client: Client, task_id: str) -> Any:
    answer = await task_by_id(client, task_id)
    return answer if answer.status != "working" else None


def test_two_workers_share_the_queue_and_the_server_runs_nothing(
    server: ServerProcess, workers: list[ServerProcess]
) -> None:
    names = [f"shared-{n}" for n in range(4)]

    async def body() -> list[Any]:
        task_ids = [await submit(server, name, 30) for name in names]
        return [await wait_until_done(server, task_id) for task_id in task_ids]

    answers = asyncio.run(body())
    assert [answer.status for answer in answers] == ["completed"] * 4
    assert [answer.result["structuredContent"]["model_name"] for answer in answers] == names
    runs = {name: ran(workers, name) for name in names}
    assert all(len(by) == 1 for by in runs.values()), f"each task runs exactly once: {runs}"
    assert {by[0] for by in runs.values()} == {"worker-1", "worker-2"}, f"both workers do work: {runs}"
    assert server.log_lines(r"training ") == [], "the server that accepts the calls trained nothing itself"


def test_kill_9_of_the_mcp_server_mid_task_loses_nothing(server: ServerProcess, workers: list[ServerProcess]) -> None:
    task_id = asyncio.run(submit(server, "through-restart", 100))
    eventually(lambda: ran(workers, "through-restart"), timeout=30, what="a worker to start the run")
    server.kill()
    server.start()  # the same port and URL; the run went on in its worker all along

    answer = asyncio.run(wait_until_done(server, task_id))
    assert answer.status == "completed" and answer.result["structuredContent"]["epochs"] == 100
    assert len(ran(workers, "through-restart")) == 1, "the run was never started again"


def test_kill_9_of_a_worker_mid_task_and_the_other_finishes_it(
    server: ServerProcess, workers: list[ServerProcess]
) -> None:
    epochs = 150

    async def run_then_kill() -> tuple[ServerProcess, Any]:
        async with Client(server.url) as client:
            task = await call_tool_task(client, "model_training", {"model_name": "survivor", "epochs": epochs})

            async def a_few_epochs_in() -> bool:
                match = re.match(r"epoch (\d+)/", (await task.status()).status_message or "")
                return match is not None and int(match[1]) >= 2

            await eventually_async(a_few_epochs_in, timeout=30, every=0.01, what="the run to be a few epochs in")
            victim = next(worker for worker in workers if ran([worker], "survivor"))
            victim.kill()
            return victim, await wait_until_done(server, task.task_id)

    victim, answer = asyncio.run(run_then_kill())
    assert answer.status == "completed" and answer.result["structuredContent"]["epochs"] == epochs
    other = next(worker for worker in workers if worker is not victim)
    assert sorted(ran(workers, "survivor")) == sorted([victim.name, other.name]), "the other one ran it again"
    assert ran(workers, "survivor", "finished") == [other.name]
