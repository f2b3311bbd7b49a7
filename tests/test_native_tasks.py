"""servers/native_tasks.py over real HTTP: the training tool as an MCP task (io.modelcontextprotocol/tasks).

Status, progress as the status message, the plain call, cancel, failure, bad input, a clean SIGTERM, and
what a restart keeps: everything with the in-memory backend; nothing with Redis.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp_tasks import ToolTask, call_tool_task
from lab_helpers.mcp_client import task_by_id  # tasks/get by id alone: the handle does not survive a restart
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult

from conftest import LOCAL_HTTP, TEST_TIME_SCALE
from native_tasks_kit import native_tasks_server, run
from lab_helpers import config
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually, eventually_async

EPOCH = TEST_TIME_SCALE  # seconds per training epoch at the test time scale
#: A task's status message while it trains: the latest epoch's scores (``EpochScores.summary()``).
STATUS_LINE = re.compile(r"epoch (\d+)/30: train acc [\d.]+ loss [\d.]+ \| val acc [\d.]+ loss [\d.]+")


@pytest.fixture(scope="module")
def server(module_settings: config.Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with native_tasks_server("memory", module_settings, tmp_path_factory.mktemp("redis")) as process:
        yield process


@pytest.fixture(scope="module")
def redis_server(module_settings: config.Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with native_tasks_server("redis", module_settings, tmp_path_factory.mktemp("redis")) as process:
        yield process


async def poll(task: ToolTask, until: Callable[[Any], bool], timeout: float = 15.0) -> list[Any]:
    """Every ``tasks/get`` answer until one satisfies ``until`` (the last), or fail after ``timeout`` s."""
    answers: list[Any] = []

    async def next_answer() -> bool:
        answers.append(await task.status())
        return bool(until(answers[-1]))

    await eventually_async(next_answer, timeout=timeout, every=0.01, what=f"task {task.task_id} to reach the state")
    return answers


def wait_for_log(server: ServerProcess, pattern: str, timeout: float = 10.0) -> re.Match[str]:
    return eventually(lambda: re.search(pattern, server.log_text()), timeout=timeout, every=0.02,
                      what=f"{pattern!r} in the server's log")


def artifacts(settings: config.Settings, model_name: str) -> list[Path]:
    return sorted(settings.artifacts_dir.glob(f"{model_name}-*.npz"))


def test_a_task_reports_each_epoch_and_completes_with_the_real_scores(
    server: ServerProcess, module_settings: config.Settings
) -> None:
    epochs = 30

    async def body(client: Client) -> tuple[Any, list[Any], Any]:
        task = await call_tool_task(client, "model_training", {"model_name": "polled", "epochs": epochs})
        answers = await poll(task, lambda answer: answer.status != "working")
        return task.create_result, answers, await task.result()

    created, answers, result = run(server, body)
    # "working", not "completed": the task-augmented call returned without waiting for the training
    assert created.status == "working" and created.poll_interval_ms == 50  # 0.5 lesson s at 0.02: the 50 ms floor
    assert answers[-1].status == "completed" and answers[-1].result["structuredContent"] == result.structured_content
    epochs_seen = [int(m.group(1)) for a in answers if (m := STATUS_LINE.fullmatch(a.status_message or ""))]
    assert len(set(epochs_seen)) > 3 and epochs_seen == sorted(epochs_seen), epochs_seen
    scores = result.structured_content
    assert scores["epochs"] == epochs and scores["val_accuracy"] > 0.5 and "history" not in scores
    assert [Path(scores["artifact_path"])] == artifacts(module_settings, "polled")


def test_the_same_tool_called_plainly_returns_the_final_result(server: ServerProcess) -> None:
    async def body(client: Client) -> tuple[Any, float]:
        started = time.monotonic()
        result = await client.call_tool("model_training", {"model_name": "plain", "epochs": 10})
        return result, time.monotonic() - started

    result, took = run(server, body)
    assert result.data["model_name"] == "plain" and result.data["val_accuracy"] > 0.5 and "history" not in result.data
    assert took >= 10 * EPOCH, "the plain call returned before the training ended"


def test_cancel_stops_the_training_at_its_next_epoch(server: ServerProcess, module_settings: config.Settings) -> None:
    epochs = 100

    async def body(client: Client) -> tuple[Any, Any, float]:
        task = await call_tool_task(client, "model_training", {"model_name": "to-cancel", "epochs": epochs})
        would_end = time.monotonic() + epochs * EPOCH
        await poll(task, lambda answer: re.match(r"epoch ([3-9]|\d\d)/", answer.status_message or ""))
        await task.cancel()
        status = await task.status()
        with pytest.raises(ToolError, match="was cancelled"):
            await task.result()
        return task, status, would_end

    task, status, would_end = run(server, body)
    assert status.status == "cancelled"
    stopped_at = int(wait_for_log(server, r"training to-cancel cancelled after epoch (\d+)/100").group(1))
    assert 3 <= stopped_at < epochs
    time.sleep(max(0.0, would_end + 0.3 - time.monotonic()))  # past the moment an uncancelled run would have ended
    assert artifacts(module_settings, "to-cancel") == [] and "training to-cancel finished" not in server.log_text()
    assert run(server, lambda client: task_by_id(client, task.task_id)).status == "cancelled"


def test_a_diverging_run_ends_failed_with_the_error(server: ServerProcess) -> None:
    arguments = {"model_name": "diverging", "epochs": 20, "learning_rate": 1e5}

    async def body(client: Client) -> Any:
        task = await call_tool_task(client, "model_training", arguments)
        final = await task.wait(timeout=10)
        with pytest.raises(ToolError, match=r"training 'diverging' diverged at epoch 1/20"):
            await task.result()
        with pytest.raises(ToolError, match="diverged"):  # the plain call: the same failed task, polled for you
            await client.call_tool("model_training", arguments)
        return final

    final = run(server, body)
    assert final.status == "failed" and "diverged" in final.status_message and "diverged" in final.error["message"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model_name": "neg", "epochs": -3}, "epochs must be between 1 and 500, got -3"),
        ({"model_name": "huge", "epochs": 10**9}, "epochs must be between 1 and 500, got 1000000000"),
        ({"model_name": "../escape"}, "model_name must be 1-64 characters"),
        ({"model_name": "lr", "learning_rate": -1.0}, "learning_rate must be a finite number greater than 0"),
        # JSON true, "10" and 10.5 are no epochs (pydantic's lax mode alone would take the first two).
        ({"model_name": "bool", "epochs": True}, "epochs must be a whole number between 1 and 500, got True"),
        ({"model_name": "text", "epochs": "10"}, "epochs must be a whole number between 1 and 500, got '10'"),
        ({"model_name": "half", "epochs": 10.5}, "epochs must be a whole number between 1 and 500, got 10.5"),
        ({"model_name": "lr-text", "learning_rate": "0.1"}, "learning_rate must be a finite number"),
    ],
)
def test_bad_input_is_refused_before_any_task_exists(
    server: ServerProcess, arguments: dict[str, Any], message: str
) -> None:
    async def body(client: Client) -> tuple[Any, str]:
        # The raw task-augmented call: the answer is an error result, not a task (so there is no task id).
        answer = await client.session.call_tool("model_training", arguments, allow_claimed=True)
        with pytest.raises(ToolError) as plain:
            await client.call_tool("model_training", arguments)
        return answer, str(plain.value)

    answer, plain_error = run(server, body)
    assert isinstance(answer, CallToolResult) and answer.is_error
    assert message in answer.content[0].text and message in plain_error
    assert f"training {arguments['model_name']} started" not in server.log_text()


def test_an_integer_is_a_number_a_learning_rate_of_1_is_accepted(server: ServerProcess) -> None:
    async def body(client: Client) -> Any:
        return await client.call_tool("model_training", {"model_name": "whole-rate", "epochs": 1, "learning_rate": 1})

    assert run(server, body).data["learning_rate"] == 1.0


def test_an_unknown_task_id_is_a_clear_error(server: ServerProcess) -> None:
    with pytest.raises(MCPError, match="^Task no-such-task not found$") as unknown:
        run(server, lambda client: task_by_id(client, "no-such-task"))
    assert unknown.value.code == INVALID_PARAMS  # what notebook 05's restart step asserts on the in-memory backend


def test_server_info_and_health_say_which_backend(server: ServerProcess, module_settings: config.Settings) -> None:
    info = run(server, lambda client: client.call_tool("server_info", {})).data
    assert info == {"server": "native-tasks", "pid": server.pid, "backend": "memory", "backend_url": "memory://",
                    "time_scale": module_settings.time_scale, "epoch_seconds": EPOCH,
                    "max_epochs": module_settings.max_epochs}  # the same fields as every server's server_info
    health = LOCAL_HTTP.get(server.base_url + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["backend"] == "memory"


def test_sigterm_ends_a_running_task_and_the_process_promptly(server: ServerProcess) -> None:
    async def body(client: Client) -> None:
        task = await call_tool_task(client, "model_training", {"model_name": "sigterm", "epochs": 400})
        await poll(task, lambda answer: answer.status_message is not None)

    run(server, body)
    try:
        code = server.stop()
    finally:
        server.start()  # for the tests after this one
    # Ended by the signal itself (not killed after stop()'s grace period), with the run stopped before its end:
    # the process did not wait for the training.
    assert code == -signal.SIGTERM, f"exit code {code}"
    stopped_at = int(re.search(r"training 'sigterm' stopped at epoch (\d+)", server.log_text()).group(1))
    assert stopped_at < 400, "the worker ran the whole training before it stopped"


def test_memory_backend_forgets_every_task_when_the_server_restarts(server: ServerProcess) -> None:
    async def finish(client: Client) -> str:
        task = await call_tool_task(client, "model_training", {"model_name": "forgotten", "epochs": 3})
        await task.result()
        assert (await task.status()).status == "completed"
        return task.task_id

    task_id = run(server, finish)
    server.kill()
    server.start()
    with pytest.raises(MCPError, match=f"Task {re.escape(task_id)} not found"):
        run(server, lambda client: task_by_id(client, task_id))


def test_redis_backend_keeps_a_finished_task_across_a_kill(redis_server: ServerProcess) -> None:
    async def finish(client: Client) -> tuple[dict[str, Any], str, dict[str, Any]]:
        info = (await client.call_tool("server_info", {})).data
        task = await call_tool_task(client, "model_training", {"model_name": "durable", "epochs": 5})
        return info, task.task_id, (await task.result()).structured_content

    before, task_id, scores = run(redis_server, finish)
    assert before["backend"] == "redis" and before["backend_url"].startswith("redis://127.0.0.1:")
    redis_server.kill()
    redis_server.start()

    async def read_back(client: Client) -> tuple[dict[str, Any], Any]:
        return (await client.call_tool("server_info", {})).data, await task_by_id(client, task_id)

    after, task = run(redis_server, read_back)
    assert after["pid"] != before["pid"] and after["pid"] == redis_server.pid
    assert task.status == "completed" and task.result["structuredContent"] == scores
    assert scores["val_accuracy"] > 0.5


def test_redis_backend_runs_again_a_task_the_killed_server_was_running(redis_server: ServerProcess) -> None:
    async def start(client: Client) -> str:
        task = await call_tool_task(client, "model_training", {"model_name": "crashed", "epochs": 60})
        await poll(task, lambda answer: re.match(r"epoch ([5-9]|\d\d)/", answer.status_message or ""))
        return task.task_id

    task_id = run(redis_server, start)
    redis_server.kill()  # mid-run: no chance to record anything
    redis_server.start()

    async def wait_completed(client: Client) -> Any:
        async def ended() -> Any:
            task = await task_by_id(client, task_id)
            return task if task.status != "working" else None

        return await eventually_async(ended, timeout=15, what=f"the redelivered task {task_id} to end")

    task = run(redis_server, wait_completed)
    assert task.status == "completed" and task.result["structuredContent"]["epochs"] == 60
    assert redis_server.log_text().count("training crashed started") == 2  # from epoch 1 again, in the new process


def test_redis_backend_records_a_run_ended_by_sigterm_as_failed(redis_server: ServerProcess) -> None:
    async def start(client: Client) -> str:
        task = await call_tool_task(client, "model_training", {"model_name": "stopped", "epochs": 400})
        await poll(task, lambda answer: answer.status_message is not None)
        return task.task_id

    task_id = run(redis_server, start)
    assert redis_server.stop() == -signal.SIGTERM
    redis_server.start()
    task = run(redis_server, lambda client: task_by_id(client, task_id))
    assert task.status == "failed" and "the server shut down; start it again" in task.error["message"]
