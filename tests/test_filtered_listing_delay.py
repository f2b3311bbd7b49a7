"""Eventual consistency where AWS has it: a new event reaches metadata-filtered ListEvents only after a while.

AgentCore users report that ListEvents with a metadata filter is eventually consistent, while the unfiltered
listing is not (aws/bedrock-agentcore-sdk-python issue 564). The emulator reproduces it with
``--filtered-listing-delay`` (``LAB_EMULATOR_FILTER_DELAY``). This module runs its own emulator with a delay longer
than any test here takes, so every read below falls inside the window, and proves the window is real with a
control read through the filter at the end of each test. In it, notebook 03's server still answers by task id after
a SIGKILL and a restart (every open task interrupted, no completed result lost), and notebook 03's agent still
restores its conversation, where the stock Strands session manager silently starts afresh.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import LOCAL_HTTP, LocalAgentCore, local_agentcore
from lab_helpers import config
from lab_helpers.emulator.__main__ import parse_args
from lab_helpers.emulator.memory_store import Store
from lab_helpers.mcp_client import open_session
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually
from patterns.caller_identity import Identity
from patterns.memory_outbox import records_in_memory
from patterns.task_records import TaskRecord

#: How long (real seconds) a new event stays out of this module's filtered listings: far longer than a test takes.
DELAY = 300.0
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@pytest.fixture(scope="module")
def agentcore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgentCore]:
    """conftest's ``agentcore``, but the emulator's filtered listings lag ``DELAY`` seconds behind its writes."""
    with local_agentcore(tmp_path_factory.mktemp("lagging-agentcore"), emulator_filter_delay=DELAY) as local:
        yield local


def metadata_filter(key: str, value: str) -> dict[str, Any]:
    return {"eventMetadata": [{"left": {"metadataKey": key}, "operator": "EQUALS_TO",
                               "right": {"metadataValue": {"stringValue": value}}}]}


# -- the emulator's option ----------------------------------------------------------------------------------------

def test_the_store_keeps_new_events_out_of_filtered_listings_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "memory.db", filtered_listing_delay=60)
    memory_id = store.create_memory({"name": "lagging", "eventExpiryDuration": 7}, "us-east-1")["id"]
    tagged = store.create_event(memory_id, {"actorId": "a", "sessionId": "s", "eventTimestamp": 1.7e9,
                                            "payload": [{"blob": "1"}], "metadata": {"k": {"stringValue": "v"}}})
    store.create_event(memory_id, {"actorId": "a", "sessionId": "s", "eventTimestamp": 1.7e9 + 1,
                                   "payload": [{"blob": "2"}]})

    def listed(flt: dict[str, Any] | None) -> list[str]:
        events, _ = store.list_events(memory_id, "a", "s", include_payloads=False, flt=flt, max_results=100,
                                      token=None)
        return [event["eventId"] for event in events]

    not_tagged = {"eventMetadata": [{"left": {"metadataKey": "k"}, "operator": "NOT_EXISTS"}]}
    assert listed(metadata_filter("k", "v")) == [] and listed(not_tagged) == []  # not indexed yet
    assert len(listed(None)) == 2, "the unfiltered listing is strongly consistent"
    assert store.get_event(memory_id, "a", "s", tagged["eventId"])["eventId"] == tagged["eventId"]
    store.filtered_listing_delay = 0  # the window has passed
    assert listed(metadata_filter("k", "v")) == [tagged["eventId"]] and len(listed(not_tagged)) == 1
    assert Store(tmp_path / "other.db").filtered_listing_delay == 0, "off by default, as the lessons run"


def test_the_delay_is_an_emulator_option_and_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_EMULATOR_FILTER_DELAY", "2.5")
    assert parse_args([]).filtered_listing_delay == 2.5
    assert parse_args(["serve", "--filtered-listing-delay", "0"]).filtered_listing_delay == 0
    with pytest.raises(SystemExit):
        parse_args(["--filtered-listing-delay", "-1"])
    monkeypatch.setenv("LAB_EMULATOR_FILTER_DELAY", "soon")
    with pytest.raises(config.ConfigError, match="LAB_EMULATOR_FILTER_DELAY must be a number, got 'soon'"):
        config.load()


def test_through_boto3_a_new_event_is_listed_unfiltered_but_not_filtered_yet(agentcore: LocalAgentCore) -> None:
    data = boto3.client("bedrock-agentcore")
    where = {"memoryId": agentcore.memory_id, "actorId": "user-1", "sessionId": f"s-{uuid.uuid4()}"}
    created = data.create_event(**where, eventTimestamp=1.7e9, payload=[{"blob": "{}"}],
                                metadata={"kind": {"stringValue": "probe"}})["event"]
    assert [e["eventId"] for e in data.list_events(**where)["events"]] == [created["eventId"]]
    assert data.list_events(**where, filter=metadata_filter("kind", "probe"))["events"] == []
    assert data.get_event(**where, eventId=created["eventId"])["event"]["eventId"] == created["eventId"]


# -- notebook 03's server and agent inside the window ---------------------------------------------------------------

async def call(server: ServerProcess, identity: Identity, tool: str, **arguments: Any) -> dict[str, Any]:
    async with open_session(server.url, headers=identity.headers()) as session:
        result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


def status(server: ServerProcess, identity: Identity, task_id: str) -> dict[str, Any]:
    return asyncio.run(call(server, identity, "check_task_status", task_id=task_id))


def recorded_ending(identity: Identity, task_id: str) -> TaskRecord:
    """The task's ending, once Memory has it (read unfiltered: the filter would not show it for DELAY seconds)."""
    client = boto3.client("bedrock-agentcore")
    return eventually(lambda: next((r for r in records_in_memory(client, identity, task_id, consistent=True)
                                    if r.finished), None), 30, what=f"the ending of task {task_id} in Memory")


def test_the_task_server_recovers_and_answers_by_id_while_filtered_listings_lag(agentcore: LocalAgentCore) -> None:
    identity = Identity(agentcore.memory_id, "user-1", "session-lagging-tasks-1")
    with ServerProcess("persistent_tasks.py", settings=agentcore.settings) as server:
        done = asyncio.run(call(server, identity, "model_training", model_name="finished", epochs=3))["task_id"]
        scores = recorded_ending(identity, done).result
        eventually(lambda: status(server, identity, done)["recorded"] == "memory", 30, what="the outbox to drain")
        doomed = asyncio.run(call(server, identity, "model_training", model_name="doomed", epochs=400))["task_id"]
        eventually(lambda: status(server, identity, doomed)["progress"] >= 1, 30, what="the first epoch of 400")
        server.kill()  # mid-run: the next process finds the open mark
        server.start()
        assert "1 interrupted task(s) recorded" in server.log_text()
        after_crash = status(server, identity, doomed)
        completed = status(server, identity, done)
        results = asyncio.run(call(server, identity, "get_task_results", task_id=done))
        listed = asyncio.run(call(server, identity, "list_tasks"))
    assert (after_crash["status"], after_crash["source"]) == ("interrupted", "memory")
    assert (completed["status"], completed["source"]) == ("completed", "memory")
    assert results["source"] == "memory" and results["val_accuracy"] == scores["val_accuracy"]
    assert listed["counts"] == {"completed": 1, "interrupted": 1}
    client = boto3.client("bedrock-agentcore")  # the control: the filter still shows none of it
    assert records_in_memory(client, identity, done) == [] and records_in_memory(client, identity, doomed) == []
    assert records_in_memory(client, identity) == [], "listing every task through the filter lags too"


def ask(agent: ServerProcess, prompt: str, session: str) -> dict[str, Any]:
    reply = LOCAL_HTTP.post(agent.base_url + "/invocations", json={"prompt": prompt, "actor_id": "user-1"},
                       headers={SESSION_HEADER: session}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_agent_restores_its_conversation_while_filtered_listings_lag(agentcore: LocalAgentCore) -> None:
    from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig
    from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager
    from strands import Agent

    from lab_helpers.models import OfflineModel

    session = f"lagging-session-{uuid.uuid4()}"
    identity = Identity(agentcore.memory_id, "user-1", session)
    with ServerProcess("persistent_tasks.py", settings=agentcore.settings) as tasks:
        env = {"LAB_TASKS_MCP_URL": tasks.url, "LAB_MEMORY_ID": agentcore.memory_id, "LAB_MODEL": "offline"}
        with ServerProcess("agent_app.py", settings=agentcore.settings, ready_path="/ping", env=env) as agent:
            first = ask(agent, "Train a model called spiral-net for 5 epochs", session)
            (call_made,) = first["tool_calls"]
            # The task's "started" record reaches Memory through the server's outbox, just after the reply.
            task_id = eventually(lambda: next((r.task_id for r in records_in_memory(
                boto3.client("bedrock-agentcore"), identity, consistent=True)), None),
                timeout=30, what="the task's first record in Memory")
            done = recorded_ending(identity, task_id)
            reply = ask(agent, "What happened while I was away?", session)
    assert call_made["name"] == "model_training" and first["filtered_reads_missed"] == []  # a new session
    assert reply["restored_messages"] >= 4 and f"val accuracy {done.result['val_accuracy']:.3f}" in reply["answer"]
    assert reply["filtered_reads_missed"] == ["SESSION", "AGENT"], "detected: the filter missed both markers"
    # The control, after the turn it checks: at this moment the stock session manager restores nothing, silently.
    config_ = AgentCoreMemoryConfig(memory_id=agentcore.memory_id, session_id=session, actor_id="user-1")
    stock = Agent(model=OfflineModel(), session_manager=AgentCoreMemorySessionManager(config_),
                  callback_handler=None)
    assert stock.messages == []
