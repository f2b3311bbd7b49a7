"""servers/async_tasks.py over real HTTP: every tool and state, cancel, failure, the bounded pool and its queue,
a killed worker, expiry, bad input, restart."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import mcp
import pytest

from conftest import TEST_TIME_SCALE
from lab_helpers import config
from lab_helpers.mcp_client import open_session
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually_async


#: The module server's pool: fixed, so that what is queued does not depend on this machine's CPUs.
WORKERS = 2


@pytest.fixture(scope="module")
def server(module_settings: config.Settings) -> Iterator[ServerProcess]:
    with ServerProcess("async_tasks.py", "--workers", str(WORKERS), settings=module_settings) as process:
        yield process


async def _tool(session: mcp.ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def _error(session: mcp.ClientSession, name: str, **arguments: Any) -> str:
    result = await session.call_tool(name, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def _wait_for(session: mcp.ClientSession, task_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        status = await _tool(session, "check_task_status", task_id=task_id)
        return status if status["status"] in statuses else None

    what = f"task {task_id} to be {'/'.join(statuses)}"
    return await eventually_async(reached, timeout=timeout, every=0.02, what=what)


def _seconds(status: dict[str, Any]) -> float:
    """How long a finished task's work ran, from its own timestamps."""
    finished, started = (datetime.fromisoformat(status[key]) for key in ("finished_at", "started_at"))
    return (finished - started).total_seconds()


def test_start_returns_at_once_and_results_come_from_a_new_connection(
    server: ServerProcess, module_settings: config.Settings
) -> None:
    epochs = 40  # 0.8 s of training at the test time scale

    async def start() -> tuple[dict[str, Any], float]:
        async with open_session(server.url) as session:
            started = time.monotonic()
            task = await _tool(session, "model_training", model_name="first", epochs=epochs)
            return task, time.monotonic() - started

    task, took = asyncio.run(start())
    assert task["status"] in ("submitted", "queued", "running") and task["progress"] < epochs, "the answer came before the work"
    assert uuid.UUID(task["task_id"])

    async def come_back() -> tuple[dict[str, Any], dict[str, Any]]:  # a brand-new client, only the id in hand
        async with open_session(server.url) as session:
            status = await _wait_for(session, task["task_id"], "completed")
            return status, await _tool(session, "get_task_results", task_id=task["task_id"])

    status, results = asyncio.run(come_back())
    assert status["progress"] == status["total"] == epochs and status["finished_at"] >= status["started_at"]
    assert took < _seconds(status) / 2, f"the start ({took:.2f} s) waited for the training ({_seconds(status):.2f} s)"
    assert results["task_id"] == task["task_id"] and len(results["history"]) == epochs
    assert results["val_accuracy"] > 0.85
    assert Path(results["artifact_path"]).parent == module_settings.artifacts_dir


def test_status_moves_from_running_to_completed_and_results_wait_for_it(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with open_session(server.url) as session:
            task = await _tool(session, "model_training", model_name="watched", epochs=30)
            running = await _wait_for(session, task["task_id"], "running")
            assert running["started_at"] is not None and running["finished_at"] is None
            message = await _error(session, "get_task_results", task_id=task["task_id"])
            assert f"task {task['task_id']} is not finished: status is running" in message
            done = await _wait_for(session, task["task_id"], "completed")
            assert done["message"] == "completed" and done["percent"] == 100.0

    asyncio.run(scenario())


def test_cancel_and_failure_end_in_their_states_with_readable_messages(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with open_session(server.url) as session:
            long = await _tool(session, "model_training", model_name="long", epochs=500)
            doomed = await _tool(session, "model_training", model_name="doomed", epochs=20, learning_rate=1e5)
            await _wait_for(session, long["task_id"], "running")
            cancelled = await _tool(session, "cancel_task", task_id=long["task_id"])
            assert cancelled["status"] == "cancelled"
            progress = cancelled["progress"]
            await asyncio.sleep(5 * TEST_TIME_SCALE)
            assert (await _tool(session, "check_task_status", task_id=long["task_id"]))["progress"] == progress
            assert "already cancelled" in await _error(session, "cancel_task", task_id=long["task_id"])
            assert "was cancelled, so it has no results" in await _error(
                session, "get_task_results", task_id=long["task_id"])

            failed = await _wait_for(session, doomed["task_id"], "failed")
            assert "diverged at epoch 1/20" in failed["error"]
            assert "failed, so it has no results" in await _error(session, "get_task_results", task_id=doomed["task_id"])
            listed = await _tool(session, "list_tasks")
            ids = [row["task_id"] for row in listed["tasks"]]
            assert ids.index(doomed["task_id"]) < ids.index(long["task_id"]), "newest first"
            assert listed["counts"]["cancelled"] >= 1 and listed["counts"]["failed"] >= 1

    asyncio.run(scenario())


WHOLE_EPOCHS = "epochs must be a whole number (a JSON integer such as 10)"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("model_training", {"model_name": "x", "epochs": 0}, "epochs must be between 1 and 500, got 0"),
        ("model_training", {"model_name": "x", "epochs": -3}, "epochs must be between 1 and 500, got -3"),
        ("model_training", {"model_name": "x", "epochs": 10**6}, "epochs must be between 1 and 500"),
        ("model_training", {"model_name": "", "epochs": 3}, "model_name must be 1-64 characters"),
        ("model_training", {"model_name": "x", "epochs": 3, "priority": 1}, "unknown argument(s) priority"),
        # JSON types as the input schema declares them: pydantic's lax mode alone would take true as 1, "10" as 10.
        ("model_training", {"model_name": "x", "epochs": True}, f"model_training: {WHOLE_EPOCHS}, got true"),
        ("model_training", {"model_name": "x", "epochs": "10"}, f'{WHOLE_EPOCHS}, got "10"'),
        ("model_training", {"model_name": "x", "epochs": 10.5}, f"{WHOLE_EPOCHS}, got 10.5"),
        ("model_training", {"model_name": "x", "learning_rate": False}, "learning_rate must be a number"),
        ("check_task_status", {"task_id": 7}, "task_id must be a string, got 7"),
        ("check_task_status", {"task_id": "abc"}, "malformed task_id 'abc'"),
        ("check_task_status", {"task_id": str(uuid.UUID(int=7))}, "unknown task 00000000-0000-0000-0000-000000000007"),
        ("get_task_results", {"task_id": "'; DROP TABLE tasks"}, "malformed task_id"),
        ("cancel_task", {"task_id": str(uuid.UUID(int=8))}, "unknown task"),
        ("check_task_status", {}, "task_id"),
    ],
)
def test_bad_input_gets_a_clear_tool_error(server: ServerProcess, tool: str, arguments: dict, message: str) -> None:
    async def scenario() -> str:
        async with open_session(server.url) as session:
            return await _error(session, tool, **arguments)

    assert message in asyncio.run(scenario())


def test_an_integer_is_a_number_a_learning_rate_of_1_is_accepted(server: ServerProcess) -> None:
    async def scenario() -> dict[str, Any]:
        async with open_session(server.url) as session:
            task = await _tool(session, "model_training", model_name="whole-rate", epochs=1, learning_rate=1)
            await _wait_for(session, task["task_id"], "completed")
            return await _tool(session, "get_task_results", task_id=task["task_id"])

    assert asyncio.run(scenario())["learning_rate"] == 1.0


def test_a_hundred_tasks_at_once_wait_queued_and_all_complete(server: ServerProcess) -> None:
    """Beyond the pool's two workers every task waits queued, and they all end completed, oldest first."""

    async def scenario() -> tuple[dict[str, int], list[dict[str, Any]]]:
        async with open_session(server.url) as session:
            ids = [(await _tool(session, "model_training", model_name=f"many-{n}", epochs=2))["task_id"]
                   for n in range(100)]
            counts = (await _tool(session, "list_tasks"))["counts"]
            return counts, [await _wait_for(session, task_id, "completed") for task_id in ids]

    counts, statuses = asyncio.run(scenario())
    assert counts["running"] + counts["submitted"] <= WORKERS and counts["queued"] > 0, counts
    assert [status["status"] for status in statuses] == ["completed"] * 100
    starts = [status["started_at"] for status in statuses]
    assert starts == sorted(starts), "queued tasks start in the order they were submitted"


def test_beyond_the_pool_a_task_is_queued_runs_when_a_worker_is_free_and_both_cancel(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with open_session(server.url) as session:
            busy = [await _tool(session, "model_training", model_name=f"busy-{n}", epochs=500) for n in range(WORKERS)]
            waiting = await _tool(session, "model_training", model_name="waiting", epochs=3)
            dropped = await _tool(session, "model_training", model_name="dropped", epochs=3)
            assert waiting["status"] == dropped["status"] == "queued"
            assert "waiting for a free worker" in waiting["message"] and waiting["started_at"] is None

            # Saturated: the status checks still answer, and the running work moves on between them.
            first = await _wait_for(session, busy[0]["task_id"], "running")
            seen = [(await _tool(session, "check_task_status", task_id=busy[0]["task_id"]))["progress"]
                    for _ in range(5)]
            later = await eventually_async(
                lambda: _progressed(session, busy[0]["task_id"], max(seen)), timeout=30, every=0.02,
                what="the running task's next epoch")
            assert first["status"] == "running" and later["progress"] > max(seen)
            info = await eventually_async(lambda: _busy(session, WORKERS), timeout=30,
                                          what="every worker running a job")
            assert info["busy"] == WORKERS

            cancelled = await _tool(session, "cancel_task", task_id=dropped["task_id"])  # a queued task
            assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
            stopped = await _tool(session, "cancel_task", task_id=busy[0]["task_id"])  # a running one
            done = await _wait_for(session, waiting["task_id"], "completed")  # it takes the freed worker
            assert done["started_at"] >= stopped["finished_at"]
            assert (await _tool(session, "check_task_status", task_id=busy[0]["task_id"]))["progress"] == (
                stopped["progress"]), "the cancelled run stopped"
            never = await _tool(session, "check_task_status", task_id=dropped["task_id"])
            assert never["status"] == "cancelled" and never["started_at"] is None and never["progress"] == 0
            for task in busy[1:]:
                await _tool(session, "cancel_task", task_id=task["task_id"])

    asyncio.run(scenario())


async def _busy(session: mcp.ClientSession, count: int) -> dict[str, Any] | None:
    """``server_info`` once ``count`` worker processes run a job ("running" comes first: a worker may be starting)."""
    info = await _tool(session, "server_info")
    return info if len(info["busy_pids"]) == count else None


async def _progressed(session: mcp.ClientSession, task_id: str, progress: int) -> dict[str, Any] | None:
    status = await _tool(session, "check_task_status", task_id=task_id)
    return status if status["progress"] > progress else None


def test_a_killed_worker_fails_its_task_with_the_reason_and_the_next_task_gets_a_new_one(
    server: ServerProcess,
) -> None:
    async def scenario() -> None:
        async with open_session(server.url) as session:
            victim = await _tool(session, "model_training", model_name="victim", epochs=500)
            await _wait_for(session, victim["task_id"], "running")
            info = await eventually_async(lambda: _busy(session, 1), timeout=30, what="the victim's worker")
            (pid,) = info["busy_pids"]
            os.kill(pid, signal.SIGKILL)
            failed = await _wait_for(session, victim["task_id"], "failed")
            assert f"worker process running it (pid {pid}) was killed by SIGKILL" in failed["error"]
            assert "no results" in await _error(session, "get_task_results", task_id=victim["task_id"])
            after = await _tool(session, "model_training", model_name="after", epochs=2)
            assert (await _wait_for(session, after["task_id"], "completed"))["progress"] == 2

    asyncio.run(scenario())


def test_finished_tasks_expire_after_the_retention_time(module_settings: config.Settings) -> None:
    short = dataclasses.replace(module_settings, task_retention_seconds=25)  # 0.5 s at the test time scale

    async def scenario(url: str) -> tuple[str, str]:
        async with open_session(url) as session:
            task = await _tool(session, "model_training", model_name="brief", epochs=2)
            await _wait_for(session, task["task_id"], "completed")
            kept = (await _tool(session, "get_task_results", task_id=task["task_id"]))["model_name"]
            await asyncio.sleep(25 * TEST_TIME_SCALE + 0.2)
            return kept, await _error(session, "check_task_status", task_id=task["task_id"])

    with ServerProcess("async_tasks.py", settings=short, name="async-short-retention") as process:
        kept, gone = asyncio.run(scenario(process.url))
    assert kept == "brief"
    assert "has expired: finished tasks are kept for 0.5 s" in gone


def test_a_restart_forgets_every_task(module_settings: config.Settings) -> None:
    async def start(url: str) -> tuple[str, str]:
        async with open_session(url) as session:
            done = await _tool(session, "model_training", model_name="before", epochs=2)
            running = await _tool(session, "model_training", model_name="during", epochs=400)
            await _wait_for(session, done["task_id"], "completed")
            return done["task_id"], running["task_id"]

    async def ask(url: str, task_id: str) -> str:
        async with open_session(url) as session:
            return await _error(session, "check_task_status", task_id=task_id)

    with ServerProcess("async_tasks.py", settings=module_settings, name="async-restart") as process:
        done_id, running_id = asyncio.run(start(process.url))
        process.kill()
        process.start()
        for task_id in (done_id, running_id):
            assert f"unknown task {task_id}" in asyncio.run(ask(process.url, task_id))
