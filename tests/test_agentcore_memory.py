"""The local AgentCore Memory emulator, through the real clients: boto3, MemoryClient, the Strands session manager.

The emulator runs as a real process (``lab_helpers.processes.ServerProcess``); boto3 reaches it through
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE(_CONTROL)`` with dummy credentials, so no request can leave the machine.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import LOCAL_HTTP
from lab_helpers import config
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually

from lab_helpers.agentcore import EMULATOR_SCRIPT
from lab_helpers.emulator.api import LOCAL_AUTHORIZATION

SIGNED = {"Authorization": LOCAL_AUTHORIZATION}  # a plain-HTTP caller that the emulator takes for a signed client
REGION = "us-east-1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("agentcore")
    # CI's time scale: long-term records are extracted asynchronously, a fraction of a second after their event.
    settings = config.load(env={}, time_scale=0.02, logs_dir=tmp / "logs", artifacts_dir=tmp / "artifacts")
    server = ServerProcess(EMULATOR_SCRIPT, "serve", "--db", str(tmp / "memory.db"), settings=settings,
                           name="agentcore-local")
    with server:
        url = server.base_url
        env = {
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        }
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("AWS_PROFILE", raising=False)
            for key, value in env.items():
                mp.setenv(key, value)
            yield server


@pytest.fixture(scope="module")
def control(emulator: ServerProcess):
    client = boto3.Session().client("bedrock-agentcore-control", region_name=REGION)
    assert client.meta.endpoint_url == emulator.base_url
    return client


@pytest.fixture(scope="module")
def data(emulator: ServerProcess):
    client = boto3.Session().client("bedrock-agentcore", region_name=REGION)
    assert client.meta.endpoint_url == emulator.base_url
    return client


@pytest.fixture(scope="module")
def memory_client(emulator: ServerProcess):
    from bedrock_agentcore.memory import MemoryClient

    client = MemoryClient(region_name=REGION)
    assert client.gmdp_client.meta.endpoint_url == emulator.base_url
    return client


@pytest.fixture(scope="module")
def memory(memory_client) -> dict:
    """A memory with one semantic strategy, made the way the SDK makes one (CREATING, polled to ACTIVE)."""
    return memory_client.create_memory_and_wait(
        name="lab_memory",
        strategies=[{"semanticMemoryStrategy": {"name": "facts"}}],
        event_expiry_days=30,
        poll_interval=0.05,
        max_wait=10,
    )


def now() -> datetime:
    return datetime.now(timezone.utc)


def text_event(data, memory_id: str, actor: str, session: str, text: str, role: str = "USER", **kw) -> dict:
    return data.create_event(
        memoryId=memory_id, actorId=actor, sessionId=session, eventTimestamp=kw.pop("ts", now()),
        payload=[{"conversational": {"content": {"text": text}, "role": role}}], **kw,
    )["event"]


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def sid() -> str:
    return "s-" + uuid.uuid4().hex[:12]


# -- control plane ---------------------------------------------------------------------------------
def test_create_memory_is_creating_then_active_and_listed(control):
    created = control.create_memory(name="plain_memory", eventExpiryDuration=7)["memory"]
    memory_id = created["id"]
    assert created["status"] == "CREATING"
    assert memory_id.startswith("plain_memory-") and len(memory_id) == len("plain_memory-") + 10
    assert created["arn"].endswith(f":memory/{memory_id}") and f":{REGION}:" in created["arn"]
    assert control.get_memory(memoryId=memory_id)["memory"]["status"] == "CREATING"
    got = control.get_memory(memoryId=memory_id)["memory"]
    assert got["status"] == "ACTIVE" and got["name"] == "plain_memory" and got["eventExpiryDuration"] == 7
    listed = {m["id"]: m for m in control.list_memories()["memories"]}
    assert listed[memory_id]["status"] == "ACTIVE"
    deleted = control.delete_memory(memoryId=memory_id)
    assert deleted["memoryId"] == memory_id and deleted["status"] == "DELETING"
    with pytest.raises(ClientError) as excinfo:
        control.get_memory(memoryId=memory_id)
    assert error_of(excinfo)[:2] == ("ResourceNotFoundException", 404)


def test_memory_client_create_memory_and_wait(memory):
    assert memory["status"] == "ACTIVE"
    assert memory["memoryId"] == memory["id"]
    (strategy,) = memory["strategies"]
    assert strategy["type"] == "SEMANTIC" and strategy["name"] == "facts"
    assert strategy["namespaceTemplates"] == ["/strategies/{memoryStrategyId}/actors/{actorId}/"]


def test_duplicate_name_is_validation_already_exists_and_create_or_get_memory_works(control, memory_client, memory):
    with pytest.raises(ClientError) as excinfo:
        control.create_memory(name="lab_memory", eventExpiryDuration=30)
    code, status, message = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400) and "already exists" in message
    again = memory_client.create_or_get_memory(name="lab_memory", event_expiry_days=30)
    assert again["id"] == memory["id"]


def test_client_token_reused_for_another_memory_is_conflict(control):
    token = str(uuid.uuid4())
    first = control.create_memory(name="token_memory", eventExpiryDuration=7, clientToken=token)["memory"]
    same = control.create_memory(name="token_memory", eventExpiryDuration=7, clientToken=token)["memory"]
    assert same["id"] == first["id"]
    with pytest.raises(ClientError) as excinfo:
        control.create_memory(name="other_memory", eventExpiryDuration=7, clientToken=token)
    code, status, message = error_of(excinfo)
    assert (code, status) == ("ConflictException", 409) and message


# -- events ----------------------------------------------------------------------------------------
def test_create_get_delete_event_with_blob_metadata_and_branch(data, memory):
    memory_id, session = memory["id"], sid()
    event = data.create_event(
        memoryId=memory_id, actorId="alice", sessionId=session, eventTimestamp=now(),
        payload=[{"conversational": {"content": {"text": "hello"}, "role": "USER"}},
                 {"blob": json.dumps({"k": [1, 2]})}],
        metadata={"topic": {"stringValue": "greeting"}},
        branch={"name": "main"},
    )["event"]
    got = data.get_event(memoryId=memory_id, actorId="alice", sessionId=session, eventId=event["eventId"])["event"]
    assert got["payload"] == event["payload"]
    assert json.loads(got["payload"][1]["blob"]) == {"k": [1, 2]}
    assert got["metadata"] == {"topic": {"stringValue": "greeting"}}
    assert got["branch"] == {"name": "main"}
    assert got["eventId"] == event["eventId"] and "#" in got["eventId"]
    assert data.delete_event(memoryId=memory_id, actorId="alice", sessionId=session,
                             eventId=event["eventId"])["eventId"] == event["eventId"]
    with pytest.raises(ClientError) as excinfo:
        data.get_event(memoryId=memory_id, actorId="alice", sessionId=session, eventId=event["eventId"])
    assert error_of(excinfo)[:2] == ("ResourceNotFoundException", 404)


def test_client_token_makes_create_event_idempotent(data, memory):
    memory_id, session, token = memory["id"], sid(), str(uuid.uuid4())
    first = text_event(data, memory_id, "alice", session, "once", clientToken=token)
    second = text_event(data, memory_id, "alice", session, "once", clientToken=token)
    assert second["eventId"] == first["eventId"]
    events = data.list_events(memoryId=memory_id, actorId="alice", sessionId=session)["events"]
    assert [e["eventId"] for e in events] == [first["eventId"]]


def test_pagination_returns_every_event_newest_first_without_duplicates(data, memory_client, memory):
    memory_id, session = memory["id"], sid()
    start = now() - timedelta(hours=1)
    created = [text_event(data, memory_id, "pager", session, f"message {i}", ts=start + timedelta(seconds=i))
               ["eventId"] for i in range(250)]
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = data.list_events(memoryId=memory_id, actorId="pager", sessionId=session, maxResults=100,
                                includePayloads=False, **kwargs)
        assert all("payload" not in e for e in page["events"])
        seen += [e["eventId"] for e in page["events"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert pages == 3
    assert seen == created[::-1]
    everything = memory_client.list_events(memory_id, "pager", session, max_results=1000)
    assert [e["eventId"] for e in everything] == created[::-1]
    assert everything[0]["payload"][0]["conversational"]["content"]["text"] == "message 249"
    assert len(data.list_events(memoryId=memory_id, actorId="pager", sessionId=session)["events"]) == 20


def test_events_with_equal_timestamps_page_newest_write_first(data, memory):
    memory_id, session, ts = memory["id"], sid(), now()
    created = [text_event(data, memory_id, "tie", session, f"m{i}", ts=ts)["eventId"] for i in range(30)]
    seen, token = [], None
    while True:
        page = data.list_events(memoryId=memory_id, actorId="tie", sessionId=session, maxResults=7,
                                **({"nextToken": token} if token else {}))
        seen += [e["eventId"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == created[::-1]


def test_cli_accepts_serve_and_options_in_any_order():
    from lab_helpers.emulator.__main__ import parse_args

    a = parse_args(["--host", "127.0.0.1", "--port", "9001", "serve", "--db", "x.db"])
    b = parse_args(["serve", "--port", "9001", "--db", "x.db"])
    c = parse_args(["--port", "9001", "--db", "x.db"])
    assert (a.port, str(a.db), a.host) == (b.port, str(b.db), b.host) == (c.port, str(c.db), c.host)
    assert parse_args([]).db.name == "memory.db"


def test_cli_resolves_the_auto_extractor_from_lab_model(monkeypatch, capsys):
    from lab_helpers.emulator.__main__ import parse_args

    monkeypatch.delenv("LAB_EMULATOR_EXTRACTOR", raising=False)
    monkeypatch.setenv("LAB_MODEL", "offline")
    assert parse_args([]).extractor == "rules"
    assert parse_args(["--extractor", "verbatim"]).extractor == "verbatim"
    with pytest.raises(SystemExit):
        parse_args(["--extractor", "model"])
    assert "--extractor model needs LAB_MODEL" in capsys.readouterr().err
    monkeypatch.setenv("LAB_MODEL", "http://127.0.0.1:8080")
    assert parse_args([]).extractor == "model"


def test_memory_client_create_event_and_last_k_turns(memory_client, memory):
    memory_id, session = memory["id"], sid()
    for i in range(3):
        memory_client.create_event(memory_id, "bob", session, [(f"question {i}", "USER"), (f"answer {i}", "ASSISTANT")],
                                   event_timestamp=now() + timedelta(milliseconds=i))
    turns = memory_client.get_last_k_turns(memory_id, "bob", session, k=2)
    assert len(turns) == 2
    assert [m["content"]["text"] for m in turns[0]] == ["question 2", "answer 2"]
    events = memory_client.list_events(memory_id, "bob", session)
    assert len(events) == 3


def test_metadata_and_branch_filters(data, memory_client, memory):
    memory_id, session = memory["id"], sid()
    root = text_event(data, memory_id, "carol", session, "root", metadata={"kind": {"stringValue": "a"}})
    text_event(data, memory_id, "carol", session, "plain", ts=now() + timedelta(milliseconds=5))
    text_event(data, memory_id, "carol", session, "bee", metadata={"kind": {"stringValue": "b"}},
               ts=now() + timedelta(milliseconds=10))
    alt = text_event(data, memory_id, "carol", session, "alt", branch={"name": "alt", "rootEventId": root["eventId"]},
                     ts=now() + timedelta(milliseconds=20))

    def texts(**flt):
        events = data.list_events(memoryId=memory_id, actorId="carol", sessionId=session, filter=flt)["events"]
        return [e["payload"][0]["conversational"]["content"]["text"] for e in events]

    eq = {"left": {"metadataKey": "kind"}, "operator": "EQUALS_TO", "right": {"metadataValue": {"stringValue": "b"}}}
    assert texts(eventMetadata=[eq]) == ["bee"]
    assert texts(eventMetadata=[{"left": {"metadataKey": "kind"}, "operator": "EXISTS"}]) == ["bee", "root"]
    assert texts(eventMetadata=[{"left": {"metadataKey": "kind"}, "operator": "NOT_EXISTS"}]) == ["alt", "plain"]
    assert texts(branch={"name": "alt"}) == ["alt"]
    assert texts(branch={"name": "alt", "includeParentBranches": True}) == ["alt", "root"]
    assert [e["eventId"] for e in memory_client.list_events(memory_id, "carol", session, branch_name="alt")] == [
        alt["eventId"]]


def test_actors_and_sessions_are_isolated(data, memory):
    memory_id, s1, s2 = memory["id"], sid(), sid()
    mine = text_event(data, memory_id, "dave", s1, "dave's secret")
    text_event(data, memory_id, "erin", s1, "erin's note")
    text_event(data, memory_id, "dave", s2, "dave elsewhere")
    assert [e["eventId"] for e in data.list_events(memoryId=memory_id, actorId="dave", sessionId=s1)["events"]] == [
        mine["eventId"]]
    for actor, session in (("erin", s1), ("dave", s2), ("nobody", s1)):
        with pytest.raises(ClientError) as excinfo:
            data.get_event(memoryId=memory_id, actorId=actor, sessionId=session, eventId=mine["eventId"])
        assert error_of(excinfo)[0] == "ResourceNotFoundException"
        with pytest.raises(ClientError):
            data.delete_event(memoryId=memory_id, actorId=actor, sessionId=session, eventId=mine["eventId"])
    assert data.list_events(memoryId=memory_id, actorId="nobody", sessionId=s1)["events"] == []
    sessions = data.list_sessions(memoryId=memory_id, actorId="dave")["sessionSummaries"]
    assert {s["sessionId"] for s in sessions} >= {s1, s2}
    assert all(s["actorId"] == "dave" for s in sessions)
    assert s1 in {s["sessionId"] for s in data.list_sessions(memoryId=memory_id, actorId="erin")["sessionSummaries"]}
    assert s2 not in {s["sessionId"] for s in data.list_sessions(memoryId=memory_id, actorId="erin")["sessionSummaries"]}
    actors = {a["actorId"] for a in data.list_actors(memoryId=memory_id, maxResults=100)["actorSummaries"]}
    assert {"dave", "erin"} <= actors and "nobody" not in actors


def test_actor_id_with_slash_and_colon_round_trips(data, memory):
    memory_id, session = memory["id"], sid()
    event = text_event(data, memory_id, "org/team:user-1", session, "slashes")
    got = data.get_event(memoryId=memory_id, actorId="org/team:user-1", sessionId=session, eventId=event["eventId"])
    assert got["event"]["actorId"] == "org/team:user-1"
    assert data.list_events(memoryId=memory_id, actorId="org", sessionId=session)["events"] == []


# -- long-term records -------------------------------------------------------------------------------
def test_retrieve_memories_finds_extracted_records_per_actor(data, memory_client, memory):
    memory_id = memory["id"]
    strategy_id = memory["strategies"][0]["strategyId"]
    # The skipped event first: had it been queued, it would be extracted before the others.
    text_event(data, memory_id, "frank", sid(), "I also drink jasmine tea at night.", extractionMode="SKIP")
    text_event(data, memory_id, "frank", sid(), "I drink jasmine green tea every morning.")
    text_event(data, memory_id, "frank", sid(), "I drive a blue bicycle to work.")
    text_event(data, memory_id, "grace", sid(), "Grace also drinks jasmine tea.")
    namespace = f"/strategies/{strategy_id}/actors/frank/"

    def listed_per_actor() -> dict[str, list[dict]]:
        return {actor: data.list_memory_records(memoryId=memory_id, namespace=f"/strategies/{strategy_id}/actors/"
                                                f"{actor}/")["memoryRecordSummaries"] for actor in ("frank", "grace")}

    eventually(lambda: [len(records) for records in listed_per_actor().values()] == [2, 1], 30, 0.05,
               what="the facts extracted from frank's and grace's events", show=lambda: str(listed_per_actor()))
    found = memory_client.retrieve_memories(memory_id=memory_id, namespace=namespace, query="jasmine tea", top_k=5)
    assert [r["content"]["text"] for r in found] == ["The user drinks jasmine green tea every morning."]
    assert found[0]["namespaces"] == [namespace] and found[0]["memoryStrategyId"] == strategy_id
    assert 0 < found[0]["score"] <= 1
    everyone = data.retrieve_memory_records(memoryId=memory_id, namespacePath=f"/strategies/{strategy_id}/",
                                            searchCriteria={"searchQuery": "jasmine", "topK": 10})
    assert len(everyone["memoryRecordSummaries"]) == 2, "frank's morning tea and grace's, not the skipped event"
    assert memory_client.retrieve_memories(memory_id=memory_id, namespace=namespace, query="submarine") == []
    listed = listed_per_actor()["frank"]
    assert {r["content"]["text"] for r in listed} == {"The user drinks jasmine green tea every morning.",
                                                      "The user drives a blue bicycle to work."}
    record_id = listed[0]["memoryRecordId"]
    assert data.get_memory_record(memoryId=memory_id, memoryRecordId=record_id)["memoryRecord"]["memoryRecordId"] \
        == record_id
    data.delete_memory_record(memoryId=memory_id, memoryRecordId=record_id)
    assert len(data.list_memory_records(memoryId=memory_id, namespace=namespace)["memoryRecordSummaries"]) == 1


# -- errors ------------------------------------------------------------------------------------------
def test_errors_come_back_as_aws_error_codes(data, control, memory):
    memory_id = memory["id"]
    unknown_memory = "nosuchmemory-ABCDEFGHIJ"
    cases = [
        (lambda: control.get_memory(memoryId=unknown_memory), "ResourceNotFoundException", 404),
        (lambda: control.delete_memory(memoryId=unknown_memory), "ResourceNotFoundException", 404),
        (lambda: text_event(data, unknown_memory, "a", "s", "x"), "ResourceNotFoundException", 404),
        (lambda: data.list_events(memoryId=unknown_memory, actorId="a", sessionId="s"),
         "ResourceNotFoundException", 404),
        (lambda: data.get_event(memoryId=memory_id, actorId="a", sessionId="s", eventId="1#ab"),
         "ResourceNotFoundException", 404),
        (lambda: text_event(data, memory_id, "a", "s", "x", role="KING"), "ValidationException", 400),
        (lambda: data.create_event(memoryId=memory_id, actorId="a", eventTimestamp=now(), payload=[{"blob": "x"}],
                                   metadata={"bad key!": {"stringValue": "v"}}), "ValidationException", 400),
        (lambda: data.create_event(memoryId=memory_id, actorId="a", sessionId="s", eventTimestamp=now(),
                                   payload=[{"blob": "x"}] * 101), "ValidationException", 400),
        (lambda: text_event(data, memory_id, "bad actor!", "s", "x"), "ValidationException", 400),
        (lambda: data.list_events(memoryId=memory_id, actorId="a", sessionId="s", nextToken="garbage"),
         "ValidationException", 400),
        (lambda: data.list_events(memoryId=memory_id, actorId="a", sessionId="s",
                                  filter={"eventMetadata": [{"left": {"metadataKey": "k"}, "operator": "LIKE"}]}),
         "ValidationException", 400),
        (lambda: data.retrieve_memory_records(memoryId=memory_id, namespace="a", namespacePath="b",
                                              searchCriteria={"searchQuery": "x"}), "ValidationException", 400),
        (lambda: control.create_memory(name="bad-name", eventExpiryDuration=7), "ValidationException", 400),
    ]
    for call, code, status in cases:
        with pytest.raises(ClientError) as excinfo:
            call()
        got_code, got_status, message = error_of(excinfo)
        assert (got_code, got_status) == (code, status), message
        assert message


def test_malformed_requests_never_crash(emulator, memory):
    url = f"{emulator.base_url}/memories/{memory['id']}/events"
    for body in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        response = LOCAL_HTTP.post(url, content=body, headers={"content-type": "application/json", **SIGNED})
        assert response.status_code == 400
        assert response.headers["x-amzn-ErrorType"] == "ValidationException"
        assert response.json()["message"]
    weird = LOCAL_HTTP.post(url, json={"actorId": 5, "sessionId": [], "eventTimestamp": "soon", "payload": {}},
                       headers=SIGNED)
    assert weird.status_code == 400 and weird.headers["x-amzn-ErrorType"] == "ValidationException"
    nowhere = LOCAL_HTTP.get(f"{emulator.base_url}/no/such/operation", headers=SIGNED)
    assert nowhere.status_code == 404 and nowhere.json()["message"]
    assert LOCAL_HTTP.get(f"{emulator.base_url}/health").json()["status"] == "ok"


# -- durability and the Strands session manager -----------------------------------------------------
def test_session_manager_state_survives_a_killed_emulator(emulator, data, memory):
    from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig
    from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager
    from strands.types.session import SessionAgent, SessionMessage

    session_id = sid()
    cfg = AgentCoreMemoryConfig(memory_id=memory["id"], session_id=session_id, actor_id="henry")
    manager = AgentCoreMemorySessionManager(cfg, region_name=REGION)  # creates the session (read -> create)
    manager.create_agent(session_id, SessionAgent(agent_id="agent1", state={"step": 3},
                                                  conversation_manager_state={"removed_message_count": 0}))
    sent = [{"role": "user", "content": [{"text": "train the model"}]},
            {"role": "assistant", "content": [{"text": "task 42 started"}]},
            {"role": "user", "content": [{"text": "what is the result?"}]}]
    for message in sent:
        created = manager.create_message(session_id, "agent1", SessionMessage.from_message(message, 0))
        assert "#" in created["eventId"]
    plain = text_event(data, memory["id"], "henry", "plain-" + session_id, "acknowledged before the crash")

    emulator.kill()
    emulator.start()

    fresh = AgentCoreMemorySessionManager(cfg, region_name=REGION)
    assert fresh._is_new_session is False
    session = fresh.read_session(session_id)
    assert session is not None and session.session_id == session_id
    agent = fresh.read_agent(session_id, "agent1")
    assert agent is not None and agent.state == {"step": 3}
    assert [m.message for m in fresh.list_messages(session_id, "agent1")] == sent
    assert data.get_event(memoryId=memory["id"], actorId="henry", sessionId="plain-" + session_id,
                          eventId=plain["eventId"])["event"]["payload"] == plain["payload"]


def test_a_strands_agent_turn_is_restored_by_a_new_agent(memory):
    """A real Strands Agent (with a scripted model, no LLM) persists its turns; a new Agent gets them back."""
    from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig
    from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager
    from strands import Agent
    from strands.models import Model

    class Echo(Model):
        def update_config(self, **kwargs):
            pass

        def get_config(self):
            return {}

        async def structured_output(self, *args, **kwargs):  # pragma: no cover - not used
            raise NotImplementedError
            yield

        async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):
            text = "echo: " + messages[-1]["content"][-1].get("text", "?")
            yield {"messageStart": {"role": "assistant"}}
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": text}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}
            yield {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                                "metrics": {"latencyMs": 1}}}

    cfg = AgentCoreMemoryConfig(memory_id=memory["id"], session_id=sid(), actor_id="ivy")
    agent = Agent(model=Echo(), session_manager=AgentCoreMemorySessionManager(cfg, region_name=REGION),
                  callback_handler=None)
    assert str(agent("first question")).strip() == "echo: first question"
    agent("second question")
    restored = Agent(model=Echo(), session_manager=AgentCoreMemorySessionManager(cfg, region_name=REGION),
                     callback_handler=None)
    assert [m["content"][0]["text"] for m in restored.messages] == [
        "first question", "echo: first question", "second question", "echo: second question"]


def test_a_body_that_is_not_a_json_object_is_a_validation_error(emulator: ServerProcess, memory) -> None:
    url = f"{emulator.base_url}/memories/{memory['id']}/events"
    for body, message in ((b"{not json", "Request body is not valid JSON"),
                          (b"[1, 2]", "Request body must be a JSON object")):
        answer = LOCAL_HTTP.post(url, content=body, headers=SIGNED)
        assert answer.status_code == 400 and answer.headers["x-amzn-ErrorType"] == "ValidationException"
        assert answer.json() == {"message": message, "reason": "CannotParse"}
