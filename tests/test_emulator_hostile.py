"""Well over a thousand malformed and hostile requests: each one a modelled 4xx, none a 5xx, nothing changed.

The requests come in classes, most of them generated from botocore's input shapes so that every member of every
operation is tried: a wrong type, an enum value that is a list or an object, a number out of range or beyond 64
bits, a string too long or off its pattern, a required member missing; then forged page tokens on every listing,
JSON nested 200,000 deep or just past the emulator's bound, unpaired surrogates, bodies over the size limit,
unknown routes and methods, path parameters with CR/LF, traversal and SQL-like ids, and runtimes whose entry point
leaves its code directory. Every answer must be a client error of a type the service model defines, with its
status, (or AWS's ``UnknownOperationException`` for a path that is no operation); afterwards no memory, event,
record or runtime has changed, no session process was started, and the emulator answers normally.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from conftest import LOCAL_HTTP
from emulator_kit import ROLE, SIGNED, artifact, clients, start_emulator, write_agent
from lab_helpers.emulator import shapes
from lab_helpers.emulator.api import MAX_JSON_BYTES, MAX_JSON_DEPTH
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually

#: AWS's answer for a path that is no operation of the service: not in a service model, common to all.
PROTOCOL_ERRORS = {"UnknownOperationException": {404, 405}}


def _modelled_errors() -> dict[str, set[int]]:
    """Every exception the two service models define, with its HTTP status."""
    errors: dict[str, set[int]] = {name: set(codes) for name, codes in PROTOCOL_ERRORS.items()}
    for name in shapes.SERVICES:
        for shape in shapes.service(name).error_shapes:
            errors.setdefault(shape.name, set()).add(shape.metadata["error"]["httpStatusCode"])
    return errors


@dataclass(frozen=True)
class Hostile:
    kind: str  # the class of hostility, for the failure report
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class World:
    emulator: ServerProcess
    control: Any
    data: Any
    memory_id: str
    event_id: str
    record_id: str
    runtime_id: str
    runtime_arn: str
    code_dir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hostile")
    emulator = start_emulator(tmp)
    try:
        control, data = clients(emulator.base_url)
        code_dir = write_agent(tmp / "code")
        (code_dir / "escape.py").symlink_to("/bin/sh")  # inside by name, outside once resolved
        memory = control.create_memory(name="hostile", eventExpiryDuration=7,
                                       memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
        event = data.create_event(memoryId=memory["id"], actorId="ada", sessionId="s", eventTimestamp=time.time(),
                                  payload=[{"conversational": {"role": "USER", "content": {
                                      "text": "I am testing the emulator with hostile requests."}}}],
                                  metadata={"kind": {"stringValue": "note"}})["event"]
        # Extraction is asynchronous: its record must exist before the hostile requests, which must change nothing.
        record = eventually(lambda: data.list_memory_records(memoryId=memory["id"])["memoryRecordSummaries"], 30,
                            0.05, what="the record extracted from the event")[0]
        runtime = control.create_agent_runtime(agentRuntimeName="hostile_rt", agentRuntimeArtifact=artifact(code_dir),
                                               roleArn=ROLE)
        yield World(emulator, control, data, memory["id"], event["eventId"], record["memoryRecordId"],
                    runtime["agentRuntimeId"], runtime["agentRuntimeArn"], code_dir)
    finally:
        emulator.stop()


# -- invalid values for a member, from its shape ------------------------------------------------------------
def _invalid_values(shape: Any) -> list[Any]:
    """Values the shape refuses, whatever else the request says (never an absent or an allowed one)."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        values: list[Any] = [12345, ["a", "list"], {"an": "object"}, True]
        if getattr(shape, "enum", None):
            values += ["NOT_A_VALUE", [shape.enum[0]], {shape.enum[0]: shape.enum[0]}]
        if meta.get("max") is not None:
            values.append("x" * (meta["max"] + 1))
        if meta.get("min", 0) >= 1:
            values.append("")
        if meta.get("pattern") and shapes._regex(meta["pattern"]) and not shapes._regex(meta["pattern"]).fullmatch(
                "bad value\r\n' OR 1=1 --"):
            values.append("bad value\r\n' OR 1=1 --")
        return values
    if kind in ("integer", "long"):
        values = ["7", 1.5, True, [], {"n": 1}, 10**39, -(10**39)]
        if "min" in meta:
            values.append(meta["min"] - 1)
        if "max" in meta:
            values.append(meta["max"] + 1)
        return values
    if kind == "boolean":
        return ["true", 1, [], {"b": True}]
    if kind == "timestamp":
        return ["soon", True, [], {"t": 1}, 10**39, -1, 10**400]
    if kind == "list":
        values = ["x", 5, {"not": "a list"}, [12345 if shape.member.type_name != "string" else {"x": 1}]]
        if meta.get("min", 0) >= 1:
            values.append([])
        return values
    if kind == "map":
        return ["x", ["a"], 5, {"key": 12345}, {"key": ["v"]}]
    if kind == "structure" and not getattr(shape, "is_document_type", False):
        values = ["x", ["a"], 5, True]
        if getattr(shape, "is_tagged_union", False):
            values.append({})
        return values
    return []  # documents and blobs take anything JSON


def _member_mutations(shape: Any, value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(where, invalid value) for every member present in ``value`` (a valid body), at every depth; and every
    required member removed (value ``...``)."""
    if shape.type_name == "structure" and not getattr(shape, "is_document_type", False) and isinstance(value, dict):
        for name in shape.required_members:
            if name in value and not getattr(shape, "is_tagged_union", False):
                yield path + (name,), ...
        for name, item in value.items():
            member = shape.members[name]
            for bad in _invalid_values(member):
                yield path + (name,), bad
            yield from _member_mutations(member, item, path + (name,))
    elif shape.type_name == "list" and isinstance(value, list) and value:
        yield from _member_mutations(shape.member, value[0], path + (0,))
    elif shape.type_name == "map" and isinstance(value, dict) and value:
        key = next(iter(value))
        yield from _member_mutations(shape.value, value[key], path + (key,))


def _mutated(body: dict[str, Any], where: tuple[Any, ...], bad: Any) -> dict[str, Any]:
    result = copy.deepcopy(body)
    target = result
    for step in where[:-1]:
        target = target[step]
    if bad is ...:
        del target[where[-1]]
    else:
        target[where[-1]] = bad
    return result


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


FORGED_TOKENS = [_token(v) for v in ([1, 2, 3], [[1], [2]], [[[[1]]]], 10**30, -1, 1.5, True, "x", None, {"a": 1},
                                     [1e308, 10**30], [1, -1], [1, 2**64], ["a", "b"])] + [
    _token(json.loads("[" * 500 + "]" * 500)), base64.urlsafe_b64encode(b"[" * 5000).decode(), "!!!not base64",
    "A" * 3000]
HOSTILE_IDS = ["..", "../../../etc/passwd", "..%2F..%2Fetc", "' OR 1=1 --", "1; DROP TABLE events", "a\r\nX-Evil: 1",
               "\x00", "ünïcødé", "😀" * 20, "A" * 5000, "%ZZ", "-", "a" * 300 + "-0123456789", "\ud800".encode(
                   "utf-8", "surrogatepass").decode("latin-1")]


def hostile_requests(w: World) -> list[Hostile]:
    now = time.time()
    mid, rid, arn = w.memory_id, w.runtime_id, quote(w.runtime_arn, safe="")
    runtime_body = {
        "agentRuntimeName": "hostile_new", "agentRuntimeArtifact": artifact(w.code_dir), "roleArn": ROLE,
        "protocolConfiguration": {"serverProtocol": "HTTP"}, "description": "d",
        "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 60, "maxLifetime": 120},
        "environmentVariables": {"A": "b"}, "networkConfiguration": {"networkMode": "PUBLIC"},
        "requestHeaderConfiguration": {"requestHeaderAllowlist": ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-A"]},
        "clientToken": "c" * 40}
    update_body = {k: v for k, v in runtime_body.items() if k not in ("agentRuntimeName", "clientToken")}
    bodies: list[tuple[str, str, str, str, dict[str, Any]]] = [  # service, operation, method, path, a valid body
        (shapes.SERVICES[1], "CreateMemory", "POST", "/memories/create", {
            "name": "hostile_new", "eventExpiryDuration": 7, "description": "d", "clientToken": "t",
            "memoryStrategies": [{"semanticMemoryStrategy": {"name": "s", "namespaces": ["/x/{actorId}"]}}]}),
        (shapes.SERVICES[1], "ListMemories", "POST", "/memories/", {"maxResults": 5}),
        (shapes.SERVICES[0], "CreateEvent", "POST", f"/memories/{mid}/events", {
            "actorId": "ada", "sessionId": "s", "eventTimestamp": now, "clientToken": "t",
            "payload": [{"conversational": {"role": "USER", "content": {"text": "hi"}}}],
            "metadata": {"kind": {"stringValue": "note"}}, "branch": {"name": "b", "rootEventId": w.event_id},
            "extractionMode": "SKIP", "extractionConfig": {"namespaceVariables": {"k": "v"}}}),
        (shapes.SERVICES[0], "ListEvents", "POST", f"/memories/{mid}/actor/ada/sessions/s", {
            "includePayloads": True, "maxResults": 5, "nextToken": _token([1.0, 1]),
            "filter": {"branch": {"name": "b", "includeParentBranches": True}, "eventMetadata": [
                {"left": {"metadataKey": "kind"}, "operator": "EQUALS_TO",
                 "right": {"metadataValue": {"stringValue": "note"}}}]}}),
        (shapes.SERVICES[0], "ListSessions", "POST", f"/memories/{mid}/actor/ada/sessions",
         {"maxResults": 5, "filter": {"eventFilter": "HAS_EVENTS"}}),
        (shapes.SERVICES[0], "ListActors", "POST", f"/memories/{mid}/actors", {"maxResults": 5}),
        (shapes.SERVICES[0], "RetrieveMemoryRecords", "POST", f"/memories/{mid}/retrieve", {
            "namespace": "/x", "maxResults": 5, "searchCriteria": {"searchQuery": "q", "topK": 3}}),
        (shapes.SERVICES[0], "ListMemoryRecords", "POST", f"/memories/{mid}/memoryRecords",
         {"namespace": "/x", "maxResults": 5, "memoryStrategyId": "facts-0123456789"}),
        (shapes.SERVICES[1], "CreateAgentRuntime", "PUT", "/runtimes/", runtime_body),
        (shapes.SERVICES[1], "UpdateAgentRuntime", "PUT", f"/runtimes/{rid}/", update_body),
        (shapes.SERVICES[0], "StopRuntimeSession", "POST", f"/runtimes/{arn}/stopruntimesession",
         {"clientToken": "c" * 40}),
    ]
    out: list[Hostile] = []

    def send(kind: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> None:
        content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        out.append(Hostile(kind, method, path, content, tuple({**SIGNED, **(headers or {})}.items())))

    stop_headers = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "x" * 10}  # too short: never a real session
    for service, name, method, path, body in bodies:
        input_shape = shapes.operation(service, name).input_shape
        extra = stop_headers if name == "StopRuntimeSession" else {}
        for where, bad in _member_mutations(input_shape, body):
            send(f"shape {name}", method, path, _mutated(body, where, bad), headers=extra)
        for raw in (b"{", b"[1, 2]", b'"text"', b"\xff\xfe\x00", b'{"a": NaN}', b'{"a": -Infinity}', b"null",
                    b"1" + b"0" * 5000, b"[" * 200_000, b'{"a":' * 200_000):
            send(f"body {name}", method, path, raw=raw, headers=extra)
        deep: Any = "end"
        for _ in range(MAX_JSON_DEPTH + 5):
            deep = {"d": deep}
        send(f"depth {name}", method, path, {**body, "deep": deep}, headers=extra)
        send(f"surrogate {name}", method, path, raw=json.dumps({**body, "x": "\ud800"}).encode(), headers=extra)
    oversize = b'{"actorId": "' + b"a" * (MAX_JSON_BYTES + 1) + b'"}'
    for path in (f"/memories/{mid}/events", "/runtimes/"):
        send("oversize", "PUT" if path == "/runtimes/" else "POST", path, raw=oversize)

    # a payload that would be stored if its document were not checked: depth and surrogates inside documents
    event = bodies[2][4]
    for payload in ([{"blob": json.loads("[" * 100 + "]" * 100)}], [{"json": {"content": {"t": "\udc00"}}}]):
        send("document", "POST", f"/memories/{mid}/events", raw=json.dumps({**event, "payload": payload}).encode())

    for path in ("/memories/", f"/memories/{mid}/actor/ada/sessions/s", f"/memories/{mid}/actor/ada/sessions",
                 f"/memories/{mid}/actors", f"/memories/{mid}/memoryRecords"):
        for token in FORGED_TOKENS:
            send("forged token", "POST", path, {"nextToken": token})
    send("forged token", "POST", f"/memories/{mid}/actor/ada/sessions/s", {"nextToken": _token(5)})  # an offset
    for token in FORGED_TOKENS:
        send("forged token", "POST", f"/runtimes/?nextToken={quote(token, safe='')}")
    for query in ("maxResults=abc", "maxResults=0", "maxResults=101", f"maxResults={10**30}", "maxResults=-1",
                  "maxResults=1.5", "maxResults=%00"):
        send("query", "POST", f"/runtimes/?{query}")

    templates = [("GET", "/memories/{m}/details"), ("DELETE", "/memories/{m}/delete"),
                 ("GET", "/memories/{m}/actor/{a}/sessions/{s}/events/{e}"),
                 ("DELETE", "/memories/{m}/actor/{a}/sessions/{s}/events/{e}"),
                 ("POST", "/memories/{m}/actor/{a}/sessions/{s}"), ("POST", "/memories/{m}/actor/{a}/sessions"),
                 ("GET", "/memories/{m}/memoryRecord/{r}"), ("DELETE", "/memories/{m}/memoryRecords/{r}"),
                 ("GET", "/runtimes/{rt}/"), ("DELETE", "/runtimes/{rt}/")]
    valid = {"m": mid, "a": "ada", "s": "s", "e": w.event_id, "r": w.record_id, "rt": rid}
    for method, template in templates:
        names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
        for name in names:
            for hostile in HOSTILE_IDS:
                ids = {**valid, name: quote(hostile, safe="")}
                for key in valid:
                    if key != name:
                        ids[key] = quote(valid[key], safe="")
                send("path id", method, template.format(**ids), {} if method == "POST" else None)
            send("CR/LF", method, template.format(**{**{k: quote(v, safe="") for k, v in valid.items()},
                                                     name: "bad%0D%0Aid"}), {} if method == "POST" else None)
        for wrong in ("HEAD", "OPTIONS", "PATCH", "TRACE", "PUT" if method != "PUT" else "POST"):
            send("method", wrong, template.format(**{k: quote(v, safe="") for k, v in valid.items()}))
    for path in ("/", "/admin", "/.git/config", "/memories/x/y/z/w/v", "/runtimes", "/%00", "/memories/create/..%2F..",
                 "/runtimes/" + "a/" * 50, "/local", "/" + "x" * 4000):
        for method in ("GET", "POST", "DELETE"):
            send("unknown route", method, path)

    # the Runtime: entry points that leave the code directory, artifacts the emulator cannot run
    code = runtime_body["agentRuntimeArtifact"]["codeConfiguration"]
    escapes = [["../../../bin/sh"], ["/bin/sh"], ["escape.py"], ["../" + w.code_dir.name + "/../../agent.py"],
               ["sub/../../agent.py"], ["missing.py"], ["."], ["a" * 128]]
    for entry in escapes:
        for method, path, body in (("PUT", "/runtimes/", runtime_body), ("PUT", f"/runtimes/{rid}/", update_body)):
            changed = copy.deepcopy(body)
            changed["agentRuntimeArtifact"]["codeConfiguration"]["entryPoint"] = entry
            send("entry point", method, path, changed)
    for change in ({"code": {"s3": {"bucket": "agentcore-local", "prefix": "relative/dir"}}},
                   {"code": {"s3": {"bucket": "agentcore-local", "prefix": str(w.code_dir / "agent.py")}}},
                   {"code": {"s3": {"bucket": "my-bucket", "prefix": str(w.code_dir)}}},
                   {"runtime": "NODE_22"}):
        changed = copy.deepcopy(runtime_body)
        changed["agentRuntimeArtifact"]["codeConfiguration"] = {**code, **change}
        send("artifact", "PUT", "/runtimes/", changed)
    for protocol in ("A2A", "SMTP", ["HTTP"]):
        send("protocol", "PUT", "/runtimes/", {**runtime_body, "protocolConfiguration": {"serverProtocol": protocol}})
    send("lifecycle", "PUT", "/runtimes/", {**runtime_body, "lifecycleConfiguration": {
        "idleRuntimeSessionTimeout": 600, "maxLifetime": 300}})
    for scale in ("fast", "-1", "1e999", "nan"):
        send("time scale", "PUT", "/runtimes/", {**runtime_body, "environmentVariables": {"LAB_TIME_SCALE": scale}})

    # InvokeAgentRuntime: never a valid session id with the real runtime, so no process may start
    invoke = f"/runtimes/{arn}/invocations"
    for headers in ({}, {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "short"},
                    {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "!" * 40},
                    {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "a" * 257},
                    {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "../../" + "a" * 40},
                    {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "a" * 40, "Mcp-Session-Id": "m" * 2000},
                    {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "a" * 40, "traceparent": "t" * 200},
                    {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "a" * 40, "Content-Type": ""}):
        for method in ("POST", "GET", "DELETE"):
            send("invoke", method, invoke, raw=b'{"prompt": "hi"}', headers=headers)
    good_session = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": f"hostile-{uuid.uuid4().hex}"}
    for path in (f"{invoke}?accountId=abc", f"/runtimes/{quote('arn:aws:bedrock-agentcore:us-east-1:1:runtime/x')}"
                 "/invocations", "/runtimes/nothere-0123456789/invocations", "/runtimes/%0D%0A/invocations"):
        send("invoke", "POST", path, raw=b"{}", headers=good_session)
    return out


async def _send_all(url: str, requests: list[Hostile]) -> list[tuple[Hostile, int, str, bytes]]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def one(request: Hostile) -> tuple[Hostile, int, str, bytes]:
            async with limit:
                answer = await http.request(request.method, request.path, content=request.body,
                                            headers=dict(request.headers))
                return request, answer.status_code, answer.headers.get("x-amzn-errortype", ""), answer.content
        return await asyncio.gather(*(one(request) for request in requests))


def _state(w: World) -> dict[str, Any]:
    """Everything a rejected request could have changed."""
    memories = sorted(m["id"] for m in w.control.list_memories()["memories"])
    runtimes = sorted((r["agentRuntimeId"], r["agentRuntimeVersion"], r.get("description"))
                      for r in w.control.list_agent_runtimes()["agentRuntimes"])
    events = [(e["eventId"], json.dumps(e.get("payload"))) for e in
              w.data.list_events(memoryId=w.memory_id, actorId="ada", sessionId="s", maxResults=100)["events"]]
    sessions = w.data.list_sessions(memoryId=w.memory_id, actorId="ada")["sessionSummaries"]
    actors = w.data.list_actors(memoryId=w.memory_id)["actorSummaries"]
    records = w.data.list_memory_records(memoryId=w.memory_id, maxResults=100)["memoryRecordSummaries"]
    runtime = w.control.get_agent_runtime(agentRuntimeId=w.runtime_id)
    runtime.pop("ResponseMetadata")
    runtime.pop("status")
    return {"memories": memories, "runtimes": runtimes, "events": events, "sessions": sessions, "actors": actors,
            "records": [r["memoryRecordId"] for r in records], "runtime": runtime}


def test_hostile_requests_get_modelled_client_errors_and_change_nothing(world: World) -> None:
    requests = hostile_requests(world)
    assert len(requests) >= 1000, len(requests)
    before = _state(world)
    answers = asyncio.run(_send_all(world.emulator.base_url, requests))

    modelled = _modelled_errors()
    wrong = []
    for request, status, code, body in answers:
        fine = 400 <= status < 500 and status in modelled.get(code, set())
        if fine and request.method != "HEAD":
            fine = isinstance(message := json.loads(body).get("message"), str) and bool(message)
        if not fine:
            wrong.append(f"{request.kind}: {request.method} {request.path[:120]} -> {status} {code} {body[:200]!r}")
    assert not wrong, f"{len(wrong)} of {len(answers)} answers are not modelled client errors:\n" + "\n".join(wrong[:40])
    kinds = {request.kind.split()[0] for request in requests}
    assert {"shape", "body", "depth", "surrogate", "oversize", "forged", "path", "CR/LF", "method", "unknown",
            "entry", "invoke"} <= kinds

    assert _state(world) == before
    report = LOCAL_HTTP.get(world.emulator.base_url + "/local/runtime-sessions").json()
    assert report["sessions"] == [] and report["transitions"] == [], "a rejected request started a process"

    # and it answers normally afterwards
    assert LOCAL_HTTP.get(world.emulator.base_url + "/health").json()["status"] == "ok"
    made = world.data.create_event(memoryId=world.memory_id, actorId="ada", sessionId="after", eventTimestamp=time.time(),
                                   payload=[{"conversational": {"role": "USER", "content": {"text": "still here"}}}])
    listed = world.data.list_events(memoryId=world.memory_id, actorId="ada", sessionId="after")["events"]
    assert [e["eventId"] for e in listed] == [made["event"]["eventId"]]
    assert world.control.get_agent_runtime(agentRuntimeId=world.runtime_id)["status"] == "READY"
