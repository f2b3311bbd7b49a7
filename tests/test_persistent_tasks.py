"""servers/persistent_tasks.py over real HTTP against the local emulator: every outcome reaches Memory.

Completed, failed, cancelled and interrupted (a SIGKILL mid-run), queued beyond the worker pool, a killed worker, identity in both header
styles and broken ones, status and results read back from Memory after a restart, the
records as the Strands session manager restores them, and Memory being down while a
task ends (the record waits on local disk and arrives later).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from conftest import LocalAgentCore
from patterns.caller_identity import ACTOR_HEADER, MCP_SESSION_HEADER, Identity
from lab_helpers.mcp_client import open_session
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually, eventually_async
from patterns.task_records import TaskRecord, parse_notice, record_from_event


#: The module server's pool: fixed, so that what is queued does not depend on this machine's CPUs.
WORKERS = 2


@pytest.fixture(scope="module")
def server(agentcore: LocalAgentCore) -> Iterator[ServerProcess]:
    with ServerProcess("persistent_tasks.py", "--workers", str(WORKERS), settings=agentcore.settings) as process:
        yield process


def who(agentcore: LocalAgentCore, actor: str = "user-1", session: str = "session-tests-0001") -> Identity:
    return Identity(agentcore.memory_id, actor, session)


async def call(server: ServerProcess, headers: dict[str, str], tool: str, **arguments: Any) -> dict[str, Any]:
    async with open_session(server.url, headers=headers) as session:
        result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def error(server: ServerProcess, headers: dict[str, str], tool: str, **arguments: Any) -> str:
    async with open_session(server.url, headers=headers) as session:
        result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def settled(server: ServerProcess, identity: Identity, task_id: str, timeout: float = 30) -> dict[str, Any]:
    """Poll until the task has ended and its ending is recorded in Memory."""

    async def ended() -> dict[str, Any] | None:
        status = await call(server, identity.headers(), "check_task_status", task_id=task_id)
        done = status["status"] in ("completed", "failed", "cancelled", "interrupted") and status["recorded"] == "memory"
        return status if done else None

    return await eventually_async(ended, timeout, what=f"task {task_id} to end and be recorded in Memory")


def status_of(server: ServerProcess, identity: Identity, task_id: str) -> dict[str, Any]:
    return asyncio.run(call(server, identity.headers(), "check_task_status", task_id=task_id))


def trained_an_epoch(server: ServerProcess, identity: Identity, task_id: str) -> None:
    """Wait until the task has trained at least one epoch (so its start is recorded and it has progress to lose)."""
    eventually(lambda: status_of(server, identity, task_id)["progress"] >= 1, 30, what=f"task {task_id}'s first epoch")


def finished_task(
    server: ServerProcess, identity: Identity, model_name: str, epochs: int, **options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start a training run and wait until its ending is recorded in Memory: (the start answer, the final status)."""
    started = asyncio.run(call(server, identity.headers(), "model_training", model_name=model_name, epochs=epochs,
                               **options))
    return started, asyncio.run(settled(server, identity, started["task_id"]))


def events(identity: Identity) -> list[dict[str, Any]]:
    data = boto3.client("bedrock-agentcore")
    return data.list_events(memoryId=identity.memory_id, actorId=identity.actor_id, sessionId=identity.session_id,
                            includePayloads=True, maxResults=100)["events"]


def records(identity: Identity) -> list[TaskRecord]:
    """The task records in the caller's Memory session, newest first."""
    return [r for r in map(record_from_event, events(identity)) if r]


def test_a_completed_run_is_recorded_with_its_real_scores(server: ServerProcess, agentcore: LocalAgentCore) -> None:
    identity = who(agentcore, session="session-completed-001")
    started, status = finished_task(server, identity, "spiral-net", 15)
    results = asyncio.run(call(server, identity.headers(), "get_task_results", task_id=started["task_id"]))
    assert status["status"] == "completed" and status["source"] == "live"
    assert results["val_accuracy"] > 0.7 and "history" not in results

    records = [record_from_event(event) for event in events(identity)]
    assert [r.status for r in records if r] == ["completed", "started"]  # newest first
    completed = records[0]
    assert completed.result["val_accuracy"] == results["val_accuracy"]
    assert completed.result["artifact_path"] == results["artifact_path"]


def test_the_ending_is_a_conversation_turn_the_strands_session_manager_restores(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig
    from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager

    identity = who(agentcore, session="session-restored-001")
    started, _ = finished_task(server, identity, "restored", 5)
    manager = AgentCoreMemorySessionManager(AgentCoreMemoryConfig(
        memory_id=identity.memory_id, session_id=identity.session_id, actor_id=identity.actor_id))
    messages = [m.to_message() for m in manager.list_messages(identity.session_id, "default")]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    notice = parse_notice(messages[0]["content"][0]["text"])
    assert notice is not None and notice.task_id == started["task_id"] and notice.status == "completed"
    assert "val accuracy" in messages[0]["content"][0]["text"]


def test_a_failed_run_is_recorded_with_its_error(server: ServerProcess, agentcore: LocalAgentCore) -> None:
    identity = who(agentcore, session="session-failed-0001")
    started, status = finished_task(server, identity, "too-hot", 20, learning_rate=1e5)
    assert status["status"] == "failed" and "diverged" in status["error"]
    message = asyncio.run(error(server, identity.headers(), "get_task_results", task_id=started["task_id"]))
    assert "status is failed" in message and "diverged" in message
    (record, *_) = records(identity)
    assert record.status == "failed" and "diverged" in record.error


def test_a_cancelled_run_is_recorded(server: ServerProcess, agentcore: LocalAgentCore) -> None:
    identity = who(agentcore, session="session-cancel-0001")
    started = asyncio.run(call(server, identity.headers(), "model_training", model_name="long-one", epochs=400))
    cancelled = asyncio.run(call(server, identity.headers(), "cancel_task", task_id=started["task_id"]))
    status = asyncio.run(settled(server, identity, started["task_id"]))
    assert cancelled["status"] == status["status"] == "cancelled" and status["progress"] < 400
    again = asyncio.run(error(server, identity.headers(), "cancel_task", task_id=started["task_id"]))
    assert "already cancelled" in again


def test_status_and_results_survive_a_restart_read_back_from_memory(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-restart-001")
    started, _ = finished_task(server, identity, "survivor", 5)
    before = asyncio.run(call(server, identity.headers(), "get_task_results", task_id=started["task_id"]))
    server.kill()
    server.start()
    status = asyncio.run(call(server, identity.headers(), "check_task_status", task_id=started["task_id"]))
    after = asyncio.run(call(server, identity.headers(), "get_task_results", task_id=started["task_id"]))
    listed = asyncio.run(call(server, identity.headers(), "list_tasks"))
    assert status["status"] == "completed" and status["source"] == "memory"
    assert after["source"] == "memory" and after["val_accuracy"] == before["val_accuracy"]
    assert [t["task_id"] for t in listed["tasks"]] == [started["task_id"]] and listed["counts"] == {"completed": 1}


def test_a_task_killed_mid_run_is_recorded_as_interrupted_when_the_server_comes_back(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-crash-00001")
    started = asyncio.run(call(server, identity.headers(), "model_training", model_name="doomed", epochs=400))
    trained_an_epoch(server, identity, started["task_id"])
    server.kill()
    server.start()
    status = asyncio.run(call(server, identity.headers(), "check_task_status", task_id=started["task_id"]))
    assert status["status"] == "interrupted" and status["source"] == "memory"
    assert "1 interrupted task" in server.log_text()
    (record, *_) = records(identity)
    assert record.status == "interrupted" and (record.model_name, record.epochs) == ("doomed", 400)
    notice_texts = [item["conversational"]["content"]["text"] for event in events(identity)
                    for item in event["payload"] if "conversational" in item]
    assert any("was interrupted" in text for text in notice_texts), "the user is told, not left with silence"


def test_the_seed_header_and_the_explicit_headers_name_the_same_caller(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-seed-000001")
    seed = {MCP_SESSION_HEADER: f"{identity.session_id}@@@{identity.memory_id}@@@{identity.actor_id}"}
    started = asyncio.run(call(server, seed, "model_training", model_name="seeded", epochs=3))
    asyncio.run(settled(server, identity, started["task_id"]))
    assert asyncio.run(call(server, seed, "check_task_status", task_id=started["task_id"]))["status"] == "completed"
    # Explicit headers win over the Mcp-Session-Id form when both are sent.
    other = who(agentcore, actor="user-2", session="session-seed-000001")
    both = {**seed, **other.headers()}
    message = asyncio.run(error(server, both, "check_task_status", task_id=started["task_id"]))
    assert "unknown task" in message and "'user-2'" in message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "the call carries no caller identity"),
        ({MCP_SESSION_HEADER: "just-a-session-id"}, "3 parts expected, found 1"),
        ({MCP_SESSION_HEADER: "s@@@m@@@a@@@x"}, "3 parts expected, found 4"),
        ({MCP_SESSION_HEADER: "session-1@@@short@@@user-1"}, "memory_id 'short' from Mcp-Session-Id is too short"),
        ({ACTOR_HEADER: "user-1"}, "custom identity headers are incomplete: missing memory_id, session_id"),
    ],
)
def test_missing_or_malformed_identity_gets_a_clear_tool_error(
    server: ServerProcess, headers: dict[str, str], expected: str
) -> None:
    for tool, arguments in (("model_training", {"model_name": "m", "epochs": 1}), ("list_tasks", {})):
        assert expected in asyncio.run(error(server, headers, tool, **arguments))


def test_another_actor_sees_none_of_the_tasks(server: ServerProcess, agentcore: LocalAgentCore) -> None:
    owner = who(agentcore, session="session-private-001")
    started, _ = finished_task(server, owner, "private", 3)
    stranger = who(agentcore, actor="stranger", session="session-private-001")
    assert asyncio.run(call(server, stranger.headers(), "list_tasks"))["tasks"] == []
    for tool in ("check_task_status", "get_task_results", "cancel_task"):
        assert "unknown task" in asyncio.run(error(server, stranger.headers(), tool, task_id=started["task_id"]))


WHOLE_EPOCHS = "epochs must be a whole number (a JSON integer such as 10)"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("check_task_status", {"task_id": "nope"}, "malformed task_id 'nope'"),
        ("get_task_results", {"task_id": "00000000-0000-4000-8000-000000000000"}, "unknown task"),
        ("model_training", {"model_name": "m", "epochs": -3}, "epochs must be between 1 and 500, got -3"),
        ("model_training", {"model_name": "m", "epochs": 10**9}, "epochs must be between 1 and 500"),
        ("model_training", {"model_name": "bad name!", "epochs": 3}, "model_name must be"),
        ("model_training", {"model_name": "m", "epoch": 3}, "unknown argument(s) epoch"),
        # JSON types as the input schema declares them: pydantic's lax mode alone would take true as 1, "10" as 10.
        ("model_training", {"model_name": "m", "epochs": True}, f"model_training: {WHOLE_EPOCHS}, got true"),
        ("model_training", {"model_name": "m", "epochs": "10"}, f'{WHOLE_EPOCHS}, got "10"'),
        ("model_training", {"model_name": "m", "epochs": 10.5}, f"{WHOLE_EPOCHS}, got 10.5"),
    ],
)
def test_bad_input_gets_a_clear_error(
    server: ServerProcess, agentcore: LocalAgentCore, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    assert expected in asyncio.run(error(server, who(agentcore).headers(), tool, **arguments))


def test_an_integer_is_a_number_a_learning_rate_of_1_is_accepted(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-whole-rate-01")
    started, status = finished_task(server, identity, "whole-rate", 1, learning_rate=1)
    assert status["status"] == "completed" and records(identity)[0].learning_rate == 1.0


def test_memory_down_when_a_task_ends_keeps_the_record_on_disk_until_memory_is_back(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-outage-0001")
    started = asyncio.run(call(server, identity.headers(), "model_training", model_name="outage", epochs=30))
    eventually(lambda: [r.status for r in records(identity)] == ["started"], 30, what="the started record in Memory")
    agentcore.process.stop()
    try:
        status = eventually(
            lambda: (s := status_of(server, identity, started["task_id"]))["status"] == "completed"
            and "Memory said" in s["recorded"] and s, 30, every=0.1, what="the ending to wait on disk")
        assert status["recorded"].startswith("local disk, waiting for Memory")
        results = asyncio.run(call(server, identity.headers(), "get_task_results", task_id=started["task_id"]))
        assert results["val_accuracy"] > 0.5  # nothing is lost while Memory is away
    finally:
        agentcore.process.start()
    status = asyncio.run(settled(server, identity, started["task_id"]))
    assert status["recorded"] == "memory"
    assert [r.status for r in records(identity)] == ["completed", "started"]


def test_a_graceful_stop_records_running_tasks_as_interrupted_before_the_process_exits(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-sigterm-0001")
    started = asyncio.run(call(server, identity.headers(), "model_training", model_name="redeployed", epochs=400))
    trained_an_epoch(server, identity, started["task_id"])
    server.stop()  # SIGTERM, and no restart: the record must reach Memory from the stopping process itself
    try:
        (record, *_) = records(identity)
        assert record.task_id == started["task_id"] and record.status == "interrupted"
        assert "shut down" in record.message and 0 < record.progress < 400
    finally:
        server.start()
    assert "1 interrupted task" not in server.log_tail(3), "nothing was left open for the next start"


def test_a_queued_task_is_recorded_from_the_start_and_a_cancelled_one_never_runs(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-queued-00001")
    start = lambda name: asyncio.run(call(server, identity.headers(), "model_training", model_name=name, epochs=400))  # noqa: E731
    busy = [start(f"busy-{n}") for n in range(WORKERS)]
    queued = start("queued")
    try:
        assert queued["status"] == "queued"
        eventually(lambda: queued["task_id"] in {r.task_id for r in records(identity)}, 30,
                   what="the queued task's record in Memory")
        (record,) = [r for r in records(identity) if r.task_id == queued["task_id"]]
        assert record.status == "started" and record.message.startswith("queued")
        cancelled = asyncio.run(call(server, identity.headers(), "cancel_task", task_id=queued["task_id"]))
        assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
        assert asyncio.run(settled(server, identity, queued["task_id"]))["progress"] == 0
    finally:
        for task in busy:
            asyncio.run(call(server, identity.headers(), "cancel_task", task_id=task["task_id"]))


def test_a_killed_worker_is_a_failed_task_recorded_with_the_reason(
    server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    identity = who(agentcore, session="session-worker-kill1")
    started = asyncio.run(call(server, identity.headers(), "model_training", model_name="victim", epochs=400))
    trained_an_epoch(server, identity, started["task_id"])
    (pid,) = asyncio.run(call(server, identity.headers(), "server_info"))["busy_pids"]
    os.kill(pid, signal.SIGKILL)
    status = asyncio.run(settled(server, identity, started["task_id"]))
    assert status["status"] == "failed" and f"(pid {pid}) was killed by SIGKILL" in status["error"]
    (record, *_) = records(identity)
    assert record.status == "failed" and "killed by SIGKILL" in record.error
