"""Differential tests: the local AgentCore Memory emulator against moto 5.2.5, through boto3.

moto implements CreateEvent, GetEvent, ListEvents, DeleteEvent (data plane) and memory CRUD (control plane). The same
requests go to both servers and the response SHAPES are compared (keys, value types, nesting), never ids or times.

Where moto differs, a test asserts moto's observed behaviour (``test_moto_*``), so it fails, and gets looked at, when
a moto upgrade changes it. Observed on moto 5.2.5:

* ListEvents ignores ``filter``, returns events oldest first (insertion order) and never paginates: it truncates to
  ``maxResults`` and sends no ``nextToken``; ``includePayloads`` defaults to false (the API's default is true).
* CreateEvent accepts an unknown memory id, and adds ``branch: {name: main}`` to an event created without a branch.
* A memory is ACTIVE on its first GetMemory; the emulator (like AWS) shows CREATING once first.
* A memory without strategies has no ``strategies`` key in moto's CreateMemory/GetMemory reply.

Both servers run on 127.0.0.1 only: the emulator as a subprocess, moto as ``ThreadedMotoServer`` in this process.
Every boto3 client is given its ``endpoint_url`` and dummy credentials explicitly.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lab_helpers import config
from lab_helpers.processes import ServerProcess, free_port

moto_server = pytest.importorskip("moto.server")

from lab_helpers.agentcore import EMULATOR_SCRIPT
REGION = "us-east-1"
SIDES = ("emulator", "moto")


# -- servers and clients ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("agentcore-vs-moto")
    settings = config.load(env={}, logs_dir=tmp / "logs", artifacts_dir=tmp / "artifacts")
    with ServerProcess(EMULATOR_SCRIPT, "serve", "--db", str(tmp / "memory.db"), settings=settings,
                       name="agentcore-local") as server:
        yield server.base_url


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    port = free_port("127.0.0.1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class Side:
    """boto3 control- and data-plane clients for one server, pointed at it explicitly."""

    def __init__(self, name: str, url: str) -> None:
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                aws_session_token="testing", region_name=REGION)
        cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)
        self.name = name
        self.control = session.client("bedrock-agentcore-control", endpoint_url=url, config=cfg)
        self.data = session.client("bedrock-agentcore", endpoint_url=url, config=cfg)
        assert self.control.meta.endpoint_url == url and self.data.meta.endpoint_url == url
        self.memory_id = ""


@pytest.fixture(scope="module")
def sides(emulator_url: str, moto_url: str) -> dict[str, Side]:
    """Both servers, each with one ACTIVE memory (``side.memory_id``) for the event tests."""
    result = {"emulator": Side("emulator", emulator_url), "moto": Side("moto", moto_url)}
    for side in result.values():
        side.memory_id = side.control.create_memory(name="diff_memory", eventExpiryDuration=7)["memory"]["id"]
        for _ in range(20):
            if side.control.get_memory(memoryId=side.memory_id)["memory"]["status"] == "ACTIVE":
                break
        else:
            pytest.fail(f"{side.name}: memory never became ACTIVE")
    return result


# -- helpers ---------------------------------------------------------------------------------------
def shape(value: Any) -> Any:
    """The structure of a reply: dict keys and nesting, list element shapes, scalar type names."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            if shape(item) not in shapes:
                shapes.append(shape(item))
        return shapes
    return type(value).__name__


def both(sides: dict[str, Side], call) -> dict[str, Any]:
    return {name: call(side) for name, side in sides.items()}


def error_of(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call()
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def sid() -> str:
    return "s-" + uuid.uuid4().hex[:12]


def put(side: Side, session: str, text: str, ts: datetime, **kw: Any) -> dict:
    return side.data.create_event(
        memoryId=kw.pop("memory_id", side.memory_id), actorId="alice", sessionId=session, eventTimestamp=ts,
        payload=[{"conversational": {"content": {"text": text}, "role": "USER"}}], **kw,
    )


def texts(events: list[dict]) -> list[str]:
    return [e["payload"][0]["conversational"]["content"]["text"] for e in events]


def seeded(sides: dict[str, Side], count: int) -> tuple[str, dict[str, list[str]]]:
    """One new session per side with ``count`` events m0..m{count-1}, a second apart, metadata parity even/odd."""
    session, start = sid(), datetime.now(timezone.utc) - timedelta(hours=1)
    ids = {name: [] for name in sides}
    for name, side in sides.items():
        for i in range(count):
            event = put(side, session, f"m{i}", start + timedelta(seconds=i), branch={"name": "main"},
                        metadata={"parity": {"stringValue": "even" if i % 2 == 0 else "odd"}})["event"]
            ids[name].append(event["eventId"])
    return session, ids


EVEN = {"eventMetadata": [{"left": {"metadataKey": "parity"}, "operator": "EQUALS_TO",
                           "right": {"metadataValue": {"stringValue": "even"}}}]}


# -- control plane: same shapes --------------------------------------------------------------------
def test_create_memory_reply_shape_matches_except_moto_omits_empty_strategies(sides):
    replies = both(sides, lambda s: s.control.create_memory(name=f"shape_{s.name}", description="d",
                                                            eventExpiryDuration=7))
    emulator, moto = (shape(replies[name]["memory"]) for name in SIDES)
    assert emulator.pop("strategies") == []  # the emulator always lists strategies, moto drops an empty list
    assert "strategies" not in moto
    assert emulator == moto
    assert {replies[name]["memory"]["status"] for name in SIDES} == {"CREATING"}


def test_create_memory_with_a_strategy_has_the_same_shape(sides):
    replies = both(sides, lambda s: s.control.create_memory(
        name=f"strategy_{s.name}", eventExpiryDuration=7,
        memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}]))
    emulator, moto = (replies[name]["memory"] for name in SIDES)
    assert set(emulator) == set(moto)
    assert all(isinstance(reply["strategies"], list) and len(reply["strategies"]) == 1 for reply in (emulator, moto))


def test_get_memory_shape_matches_and_moto_is_active_at_once(sides):
    created = both(sides, lambda s: s.control.create_memory(name=f"get_{s.name}", eventExpiryDuration=7)["memory"])
    first = both(sides, lambda s: s.control.get_memory(memoryId=created[s.name]["id"])["memory"])
    assert first["emulator"]["status"] == "CREATING"  # like AWS: CREATING first, then ACTIVE
    assert first["moto"]["status"] == "ACTIVE"  # moto: ACTIVE on the first read
    second = both(sides, lambda s: s.control.get_memory(memoryId=created[s.name]["id"])["memory"])
    assert {reply["status"] for reply in second.values()} == {"ACTIVE"}
    emulator, moto = shape(second["emulator"]), shape(second["moto"])
    emulator.pop("strategies")
    assert emulator == moto


def test_list_memories_summary_shape_matches(sides):
    listed = both(sides, lambda s: s.control.list_memories())
    emulator, moto = (shape(listed[name]) for name in SIDES)
    assert emulator == moto
    assert set(emulator) == {"memories"}  # neither sends nextToken for one short page
    for name, side in sides.items():
        assert side.memory_id in {m["id"] for m in listed[name]["memories"]}


def test_delete_memory_shape_matches_and_then_not_found(sides):
    created = both(sides, lambda s: s.control.create_memory(name=f"del_{s.name}", eventExpiryDuration=7)["memory"])
    deleted = both(sides, lambda s: s.control.delete_memory(memoryId=created[s.name]["id"]))
    assert shape(deleted["emulator"]) == shape(deleted["moto"]) == {"memoryId": "str", "status": "str"}
    assert {reply["status"] for reply in deleted.values()} == {"DELETING"}
    for side in sides.values():
        assert error_of(lambda: side.control.get_memory(memoryId=created[side.name]["id"])) == (
            "ResourceNotFoundException", 404)


# -- data plane: same shapes -----------------------------------------------------------------------
def test_create_and_get_event_shapes_match(sides):
    session, ts = sid(), datetime.now(timezone.utc)
    created = both(sides, lambda s: put(s, session, "hello", ts, branch={"name": "main"},
                                        metadata={"topic": {"stringValue": "greeting"}}))
    assert shape(created["emulator"]) == shape(created["moto"])
    got = both(sides, lambda s: s.data.get_event(memoryId=s.memory_id, actorId="alice", sessionId=session,
                                                 eventId=created[s.name]["event"]["eventId"]))
    assert shape(got["emulator"]) == shape(got["moto"]) == shape(created["emulator"])
    for name in SIDES:
        event = got[name]["event"]
        assert event["payload"] == [{"conversational": {"content": {"text": "hello"}, "role": "USER"}}]
        assert event["metadata"] == {"topic": {"stringValue": "greeting"}} and event["branch"] == {"name": "main"}
        assert "#" in event["eventId"]


def test_blob_payload_round_trips_on_both(sides):
    session, ts = sid(), datetime.now(timezone.utc)
    created = both(sides, lambda s: s.data.create_event(memoryId=s.memory_id, actorId="alice", sessionId=session,
                                                        eventTimestamp=ts, payload=[{"blob": '{"k": [1, 2]}'}],
                                                        branch={"name": "main"}))
    assert shape(created["emulator"]) == shape(created["moto"])
    assert {name: created[name]["event"]["payload"] for name in SIDES} == {
        name: [{"blob": '{"k": [1, 2]}'}] for name in SIDES}


def test_delete_event_shape_matches_and_then_not_found(sides):
    session, ts = sid(), datetime.now(timezone.utc)
    ids = both(sides, lambda s: put(s, session, "bye", ts)["event"]["eventId"])
    deleted = both(sides, lambda s: s.data.delete_event(memoryId=s.memory_id, actorId="alice", sessionId=session,
                                                        eventId=ids[s.name]))
    assert shape(deleted["emulator"]) == shape(deleted["moto"]) == {"eventId": "str"}
    assert {name: deleted[name]["eventId"] for name in SIDES} == ids
    for side in sides.values():
        assert error_of(lambda: side.data.get_event(memoryId=side.memory_id, actorId="alice", sessionId=session,
                                                    eventId=ids[side.name])) == ("ResourceNotFoundException", 404)


def test_get_unknown_event_is_not_found_on_both(sides):
    for side in sides.values():
        assert error_of(lambda: side.data.get_event(memoryId=side.memory_id, actorId="alice", sessionId=sid(),
                                                    eventId="1700000000000#deadbeef")) == (
            "ResourceNotFoundException", 404)


def test_list_events_single_page_shape_matches(sides):
    session, ids = seeded(sides, 3)
    listed = both(sides, lambda s: s.data.list_events(memoryId=s.memory_id, actorId="alice", sessionId=session,
                                                      includePayloads=True, maxResults=100))
    assert shape(listed["emulator"]) == shape(listed["moto"])
    assert set(shape(listed["emulator"])) == {"events"}  # no nextToken on the last page
    for name in SIDES:
        assert sorted(texts(listed[name]["events"])) == ["m0", "m1", "m2"]
        assert {e["eventId"] for e in listed[name]["events"]} == set(ids[name])
    without = both(sides, lambda s: s.data.list_events(memoryId=s.memory_id, actorId="alice", sessionId=session,
                                                       includePayloads=False))
    assert shape(without["emulator"]) == shape(without["moto"])
    assert all("payload" not in e for name in SIDES for e in without[name]["events"])


# -- where moto differs (asserted, so a moto change shows up here) ---------------------------------
def test_moto_list_events_returns_oldest_first_the_emulator_newest_first(sides):
    session, _ = seeded(sides, 4)
    listed = both(sides, lambda s: texts(s.data.list_events(memoryId=s.memory_id, actorId="alice",
                                                            sessionId=session, includePayloads=True)["events"]))
    assert listed["emulator"] == ["m3", "m2", "m1", "m0"]
    assert listed["moto"] == ["m0", "m1", "m2", "m3"]


def test_moto_list_events_ignores_filter(sides):
    session, _ = seeded(sides, 4)
    listed = both(sides, lambda s: texts(s.data.list_events(memoryId=s.memory_id, actorId="alice",
                                                            sessionId=session, includePayloads=True,
                                                            filter=EVEN)["events"]))
    assert listed["emulator"] == ["m2", "m0"]
    assert listed["moto"] == ["m0", "m1", "m2", "m3"]


def test_moto_list_events_never_paginates(sides):
    session, ids = seeded(sides, 5)
    emulator, moto = sides["emulator"], sides["moto"]
    page = moto.data.list_events(memoryId=moto.memory_id, actorId="alice", sessionId=session, maxResults=2)
    assert [e["eventId"] for e in page["events"]] == ids["moto"][:2]  # truncated to the two oldest...
    assert "nextToken" not in page  # ...and no way to reach the other three
    seen, token = [], None
    while True:
        page = emulator.data.list_events(memoryId=emulator.memory_id, actorId="alice", sessionId=session,
                                         maxResults=2, **({"nextToken": token} if token else {}))
        assert len(page["events"]) <= 2
        seen += [e["eventId"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == ids["emulator"][::-1]


def test_moto_list_events_include_payloads_defaults_to_false(sides):
    session, _ = seeded(sides, 2)
    listed = both(sides, lambda s: s.data.list_events(memoryId=s.memory_id, actorId="alice",
                                                      sessionId=session)["events"])
    assert all("payload" in e for e in listed["emulator"])  # the API's default: includePayloads true
    assert all("payload" not in e for e in listed["moto"]) and len(listed["moto"]) == 2


def test_moto_adds_a_main_branch_to_events_created_without_one(sides):
    session, ts = sid(), datetime.now(timezone.utc)
    created = both(sides, lambda s: put(s, session, "no branch", ts)["event"])
    assert "branch" not in created["emulator"]
    assert created["moto"]["branch"] == {"name": "main"}
    assert set(created["moto"]) - set(created["emulator"]) == {"branch"}


def test_moto_accepts_events_for_an_unknown_memory(sides):
    ts = datetime.now(timezone.utc)
    emulator, moto = sides["emulator"], sides["moto"]
    assert error_of(lambda: put(emulator, sid(), "x", ts, memory_id="no_such_memory-0123456789")) == (
        "ResourceNotFoundException", 404)
    assert put(moto, sid(), "x", ts, memory_id="no_such_memory-0123456789")["event"]["memoryId"] == (
        "no_such_memory-0123456789")
