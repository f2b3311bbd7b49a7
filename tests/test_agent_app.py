"""servers/agent_app.py through /invocations with the offline model, its memory in the local emulator.

The agent starts a task at once; a new agent process, with the task server dead, answers
from Memory with the real scores; the conversation survives an emulator restart; the
restored conversation stays valid for the Bedrock Converse API; bad invocations get 400s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from conftest import LOCAL_HTTP, LocalAgentCore
from patterns.caller_identity import Identity
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import WaitTimeout, eventually
from patterns.memory_outbox import records_in_memory
from patterns.task_records import (
    TaskRecord, acknowledgement_text, conversation_problems, notice_text, settle_notices,
)

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@pytest.fixture(scope="module")
def task_server(agentcore: LocalAgentCore) -> Iterator[ServerProcess]:
    with ServerProcess("persistent_tasks.py", settings=agentcore.settings) as process:
        yield process


@pytest.fixture(scope="module")
def agent(agentcore: LocalAgentCore, task_server: ServerProcess) -> Iterator[ServerProcess]:
    env = {"LAB_TASKS_MCP_URL": task_server.url, "LAB_MEMORY_ID": agentcore.memory_id, "LAB_MODEL": "offline"}
    with ServerProcess("agent_app.py", settings=agentcore.settings, ready_path="/ping", env=env) as process:
        yield process


def new_session() -> str:
    return f"test-session-{uuid.uuid4()}"


def ask(agent: ServerProcess, prompt: str, session: str, actor: str = "user-1") -> dict[str, Any]:
    reply = LOCAL_HTTP.post(agent.base_url + "/invocations", json={"prompt": prompt, "actor_id": actor},
                       headers={SESSION_HEADER: session}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def recorded(identity: Identity, condition: Any, task_id: str | None = None, timeout: float = 30) -> list[TaskRecord]:
    """Task records in Memory, newest first, once they satisfy ``condition`` (the server writes them a moment later)."""
    client = boto3.client("bedrock-agentcore")
    found: list[TaskRecord] = []

    def satisfied() -> bool:
        found[:] = records_in_memory(client, identity, task_id)
        return bool(condition(found))

    try:
        eventually(satisfied, timeout, what="task records in Memory that satisfy the test")
    except WaitTimeout as error:
        raise WaitTimeout(f"{error}; the records: {found}") from None
    return found


def ending(identity: Identity, task_id: str) -> TaskRecord:
    return recorded(identity, lambda records: records and records[0].finished, task_id)[0]


def test_the_agent_starts_a_task_and_a_new_agent_process_answers_from_memory(
    agent: ServerProcess, task_server: ServerProcess, agentcore: LocalAgentCore
) -> None:
    session = new_session()
    started = ask(agent, "Train a model called spiral-net for 40 epochs", session)
    assert started["model"].startswith("offline model") and started["answer"].startswith("[offline model]")
    assert started["tool_calls"] == [{"name": "model_training", "input": {"model_name": "spiral-net", "epochs": 40}}]
    (record,) = recorded(Identity(agentcore.memory_id, "user-1", session), bool)
    assert record.status == "started" and record.task_id in started["answer"]

    agent.stop()
    done = ending(Identity(agentcore.memory_id, "user-1", session), record.task_id)
    task_server.kill()
    try:
        agent.start()
        reply = ask(agent, "What happened while I was away?", session)
    finally:
        task_server.start()
    assert reply["tasks_server"].startswith("unreachable") and reply["tool_calls"] == []
    assert f"val accuracy {done.result['val_accuracy']:.3f}" in reply["answer"]
    assert done.task_id in reply["answer"]


def test_the_conversation_survives_an_emulator_restart(
    agent: ServerProcess, agentcore: LocalAgentCore
) -> None:
    session = new_session()
    identity = Identity(agentcore.memory_id, "user-1", session)
    started = ask(agent, "please start a training run named durable with 5 epochs", session)
    assert [call["name"] for call in started["tool_calls"]] == ["model_training"]
    (record,) = recorded(identity, bool)
    done = ending(identity, record.task_id)
    agentcore.process.kill()
    agentcore.process.start()
    reply = ask(agent, "Any news?", session)
    assert reply["restored_messages"] >= 6
    assert f"val accuracy {done.result['val_accuracy']:.3f}" in reply["answer"]


def test_a_notice_written_during_a_turn_is_restored_after_it(agent: ServerProcess, agentcore: LocalAgentCore) -> None:
    """Cancelling records the ending while the agent's cancel_task call is still open."""
    from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig
    from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager

    session = new_session()
    ask(agent, "Train a model called long-haul for 400 epochs", session)
    cancelled = ask(agent, "Cancel my training", session)
    assert [call["name"] for call in cancelled["tool_calls"]] == ["cancel_task"]
    config = AgentCoreMemoryConfig(memory_id=agentcore.memory_id, session_id=session, actor_id="user-1")
    stored = [m.message for m in AgentCoreMemorySessionManager(config).list_messages(session, "default")]
    assert conversation_problems(stored), "the notice really lands inside the tool round in Memory"
    assert conversation_problems(settle_notices(stored)) == []
    reply = ask(agent, "What happened while I was away?", session)
    assert "long-haul" in reply["answer"] and "cancelled" in reply["answer"]


def test_another_actor_in_a_session_of_the_same_name_sees_nothing(agent: ServerProcess) -> None:
    session = new_session()
    ask(agent, "Train a model called mine for 3 epochs", session)
    reply = ask(agent, "What happened while I was away?", session, actor="someone-else")
    assert reply["restored_messages"] == 0 and "Nothing was recorded" in reply["answer"]


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"actor_id": "user-1"}, {SESSION_HEADER: "s" * 40}, "non-empty 'prompt'"),
        ({"prompt": "hi"}, {SESSION_HEADER: "s" * 40}, "needs actor_id"),
        ({"prompt": "hi", "actor_id": "user-1"}, {}, "needs session_id"),
        ({"prompt": "hi", "actor_id": "user 1"}, {SESSION_HEADER: "s" * 40}, "actor_id 'user 1'"),
        ({"prompt": "hi", "actor_id": "u", "memory_id": "short"}, {SESSION_HEADER: "s" * 40}, "too short"),
        ([1, 2], {SESSION_HEADER: "s" * 40}, "must be a JSON object"),
    ],
)
def test_bad_invocations_get_a_400_with_the_reason(
    agent: ServerProcess, body: Any, headers: dict[str, str], expected: str
) -> None:
    reply = LOCAL_HTTP.post(agent.base_url + "/invocations", json=body, headers=headers, timeout=30)
    assert reply.status_code == 400 and expected in reply.json()["error"], reply.text


def test_settle_notices_moves_a_pair_out_of_a_tool_round_and_keeps_everything() -> None:
    record = TaskRecord("3f1c2a9e-7b4d-4c1e-9a57-0d2f6e8b1c44", "cancelled", "m", 3, 0.3)
    tool_use = {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "cancel_task", "input": {}}}]}
    tool_result = {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "status": "success",
                                                               "content": [{"text": "ok"}]}}]}
    notice = {"role": "user", "content": [{"text": notice_text(record)}]}
    ack = {"role": "assistant", "content": [{"text": acknowledgement_text(record)}]}
    ask_ = {"role": "user", "content": [{"text": "Cancel it"}]}
    final = {"role": "assistant", "content": [{"text": "Cancelled."}]}
    stored = [ask_, tool_use, notice, ack, tool_result, final]
    assert conversation_problems(stored)
    assert settle_notices(stored) == [ask_, tool_use, tool_result, final, notice, ack]
    assert conversation_problems(settle_notices(stored)) == []
    in_order = [ask_, final, notice, ack]
    assert settle_notices(in_order) == in_order
