"""The emulator's HTTP side: AgentCore Memory and Runtime, data and control planes (rest-json), on one Starlette app.

Paths, members and status codes follow botocore's service models ``bedrock-agentcore`` 2024-02-28 and
``bedrock-agentcore-control`` 2023-06-05. Requests are routed on the raw (still percent-encoded) path, because
botocore encodes a ``/`` inside an actor id as ``%2F``. SigV4 signatures are accepted without being checked (the
region is read from the credential scope for ARNs). Every failure is answered as AWS does: an HTTP status, the
``x-amzn-ErrorType`` header and a JSON body with ``message`` (ValidationException also ``reason``), so boto3
raises a ``ClientError`` with the matching code; nothing is ever answered with a bare 500 and a traceback.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from datetime import datetime
from pathlib import Path
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lab_helpers import config
from lab_helpers.emulator.runtime_sessions import SESSION_HEADER, RuntimeService
from lab_helpers.emulator.errors import Invalid, NotFound, StoreError
from lab_helpers.emulator.memory_store import STRATEGY_TYPES, Store, _encode_token, _offset_token

log = logging.getLogger(__name__)

# Patterns from the service models (full matches).
MEMORY_ID = re.compile(r"(arn:(aws|aws-cn|aws-us-gov):bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:memory/)?"
                       r"[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}")
ACTOR_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_/]*(?::[a-zA-Z0-9-_/]+)*[a-zA-Z0-9-_/]*")
SESSION_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]*")
EVENT_ID = re.compile(r"[0-9]+#[a-fA-F0-9]+")
BRANCH_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]*")
METADATA_TEXT = re.compile(r"[a-zA-Z0-9\s._:/=+@-]*")
MEMORY_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")
STRATEGY_NAME = MEMORY_NAME
RECORD_ID = re.compile(r"mem-[a-zA-Z0-9-_]*")
ROLES = {"ASSISTANT", "USER", "TOOL", "OTHER"}
OPERATORS = {"EQUALS_TO", "EXISTS", "NOT_EXISTS"}
CREDENTIAL_REGION = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/")


# -- validation helpers ---------------------------------------------------------------------------
def _fail(message: str) -> Invalid:
    return Invalid(message)


def need(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise _fail(f"1 validation error detected: Value null at '{name}' failed to satisfy constraint: "
                    "Member must not be null")
    return body[name]


def check_str(value: Any, name: str, pattern: re.Pattern[str] | None = None, lo: int = 1, hi: int | None = None
              ) -> str:
    if not isinstance(value, str):
        raise _fail(f"Value at '{name}' must be a string")
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise _fail(f"Value at '{name}' failed to satisfy constraint: Member must have length between "
                    f"{lo} and {hi if hi is not None else 'unbounded'}")
    if pattern is not None and not pattern.fullmatch(value):
        raise _fail(f"Value {value!r} at '{name}' failed to satisfy constraint: Member must satisfy regular "
                    f"expression pattern: {pattern.pattern}")
    return value


def opt_str(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None, lo: int = 1,
            hi: int | None = None) -> str | None:
    value = body.get(name)
    return None if value is None else check_str(value, name, pattern, lo, hi)


def check_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"Value at '{name}' must be an integer")
    if not lo <= value <= hi:
        raise _fail(f"Value {value} at '{name}' failed to satisfy constraint: Member must have value between "
                    f"{lo} and {hi}")
    return value


def opt_int(body: dict[str, Any], name: str, lo: int, hi: int, default: int) -> int:
    value = body.get(name)
    return default if value is None else check_int(value, name, lo, hi)


def check_dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"Value at '{name}' must be a structure (JSON object)")
    return value


def check_list(value: Any, name: str, lo: int = 0, hi: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"Value at '{name}' must be a list")
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise _fail(f"Value at '{name}' failed to satisfy constraint: Member must have length between {lo} and {hi}")
    return value


def union(value: Any, name: str, members: set[str]) -> tuple[str, Any]:
    value = check_dict(value, name)
    keys = [k for k in value if value[k] is not None]
    if len(keys) != 1 or keys[0] not in members:
        raise _fail(f"Value at '{name}' must set exactly one of: {', '.join(sorted(members))}")
    return keys[0], value[keys[0]]


def timestamp(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise _fail(f"Value at '{name}' must be a timestamp")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            try:
                result = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError as exc:
                raise _fail(f"Value at '{name}' must be a timestamp") from exc
    else:
        raise _fail(f"Value at '{name}' must be a timestamp")
    if not math.isfinite(result) or not 0 <= result < 253402300800:
        raise _fail(f"Value at '{name}' is out of range")
    return result


def memory_id_of(raw: str) -> str:
    check_str(raw, "memoryId", MEMORY_ID, lo=12)
    return raw.rsplit("/", 1)[-1]


def check_metadata_map(value: Any) -> dict[str, Any]:
    value = check_dict(value, "metadata")
    if len(value) > 15:
        raise _fail("Value at 'metadata' failed to satisfy constraint: Member must have at most 15 entries")
    for key, item in value.items():
        check_str(key, "metadata.key", METADATA_TEXT, 1, 128)
        kind, text = union(item, f"metadata.{key}", {"stringValue"})
        check_str(text, f"metadata.{key}.stringValue", METADATA_TEXT, 0, 256)
    return value


# -- request/response plumbing ----------------------------------------------------------------
def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def ok(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(dumps(doc), status_code=status, media_type="application/json",
                    headers={"x-amzn-RequestId": str(uuid.uuid4())})


def error(code: str, status: int, message: str, reason: str | None = None) -> Response:
    body: dict[str, Any] = {"message": message}
    if reason:
        body["reason"] = reason
    return Response(dumps(body), status_code=status, media_type="application/json",
                    headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())})


class Call:
    """One parsed request: path parameters, query, JSON body, region."""

    def __init__(self, request: Request, params: dict[str, str], body: dict[str, Any]) -> None:
        self.request = request
        self.params = params
        self.body = body
        self.query = {k: v[-1] for k, v in parse_qs(request.scope.get("query_string", b"").decode()).items()}
        match = CREDENTIAL_REGION.search(request.headers.get("authorization", ""))
        self.region = match.group(1) if match else "us-east-1"


Handler = Callable[[Store, Call], Response]


# -- control plane --------------------------------------------------------------------------------
def create_memory(store: Store, call: Call) -> Response:
    body = call.body
    check_str(need(body, "name"), "name", MEMORY_NAME)
    check_int(need(body, "eventExpiryDuration"), "eventExpiryDuration", 3, 3650)
    opt_str(body, "description", None, 1, 4096)
    opt_str(body, "clientToken", None, 0, 500)
    strategies = check_list(body.get("memoryStrategies") or [], "memoryStrategies")
    for i, item in enumerate(strategies):
        kind, conf = union(item, f"memoryStrategies.{i}", set(STRATEGY_TYPES))
        conf = check_dict(conf, f"memoryStrategies.{i}.{kind}")
        check_str(need(conf, "name"), f"memoryStrategies.{i}.{kind}.name", STRATEGY_NAME)
        for key in ("namespaceTemplates", "namespaces"):
            if conf.get(key) is not None:
                for ns in check_list(conf[key], f"memoryStrategies.{i}.{kind}.{key}", 1, 1):
                    check_str(ns, f"memoryStrategies.{i}.{kind}.{key}", None, 1, 512)
    return ok({"memory": store.create_memory(body, call.region)}, 202)


def get_memory(store: Store, call: Call) -> Response:
    return ok({"memory": store.get_memory(memory_id_of(call.params["memoryId"]))})


def list_memories(store: Store, call: Call) -> Response:
    max_results = opt_int(call.body, "maxResults", 1, 100, 100)
    memories, token = store.list_memories(max_results, opt_str(call.body, "nextToken"))
    return ok({"memories": memories, **({"nextToken": token} if token else {})})


def delete_memory(store: Store, call: Call) -> Response:
    memory_id = memory_id_of(call.params["memoryId"])
    store.delete_memory(memory_id)
    return ok({"memoryId": memory_id, "status": "DELETING"}, 202)


# -- data plane: events ---------------------------------------------------------------------------
def check_payload(value: Any) -> list[Any]:
    payload = check_list(value, "payload", 1, 100)
    for i, item in enumerate(payload):
        kind, part = union(item, f"payload.{i}", {"conversational", "blob", "json"})
        if kind == "conversational":
            part = check_dict(part, f"payload.{i}.conversational")
            _, text = union(need(part, "content"), f"payload.{i}.conversational.content", {"text"})
            check_str(text, f"payload.{i}.conversational.content.text", None, 1, 100000)
            if need(part, "role") not in ROLES:
                raise _fail(f"Value at 'payload.{i}.conversational.role' must be one of {sorted(ROLES)}")
        elif kind == "json":
            check_dict(need(check_dict(part, f"payload.{i}.json"), "content"), f"payload.{i}.json.content")
    return payload


def create_event(store: Store, call: Call) -> Response:
    body = call.body
    memory_id = memory_id_of(call.params["memoryId"])
    check_str(need(body, "actorId"), "actorId", ACTOR_ID, 1, 255)
    check_str(need(body, "sessionId"), "sessionId", SESSION_ID, 1, 100)
    body["eventTimestamp"] = timestamp(need(body, "eventTimestamp"), "eventTimestamp")
    check_payload(need(body, "payload"))
    if body.get("branch") is not None:
        branch = check_dict(body["branch"], "branch")
        check_str(need(branch, "name"), "branch.name", BRANCH_NAME, 1, 100)
        opt_str(branch, "rootEventId", EVENT_ID)
    if body.get("metadata") is not None:
        check_metadata_map(body["metadata"])
    opt_str(body, "clientToken", None, 0)
    if body.get("extractionMode") not in (None, "SKIP"):
        raise _fail("Value at 'extractionMode' must be SKIP")
    if body.get("extractionConfig") is not None:
        conf = check_dict(body["extractionConfig"], "extractionConfig")
        if conf.get("namespaceVariables") is not None:
            for key, val in check_dict(conf["namespaceVariables"], "extractionConfig.namespaceVariables").items():
                check_str(val, f"extractionConfig.namespaceVariables.{key}", None, 1, 64)
    return ok({"event": store.create_event(memory_id, body)}, 201)


def _event_path(call: Call) -> tuple[str, str, str, str]:
    p = call.params
    return (memory_id_of(p["memoryId"]), check_str(p["actorId"], "actorId", ACTOR_ID, 1, 255),
            check_str(p["sessionId"], "sessionId", SESSION_ID, 1, 100), check_str(p["eventId"], "eventId", EVENT_ID))


def get_event(store: Store, call: Call) -> Response:
    return ok({"event": store.get_event(*_event_path(call))})


def delete_event(store: Store, call: Call) -> Response:
    path = _event_path(call)
    store.delete_event(*path)
    return ok({"eventId": path[3]})


def check_event_filter(value: Any) -> dict[str, Any]:
    flt = check_dict(value, "filter")
    if flt.get("branch") is not None:
        branch = check_dict(flt["branch"], "filter.branch")
        check_str(need(branch, "name"), "filter.branch.name", BRANCH_NAME, 1, 100)
        if not isinstance(branch.get("includeParentBranches", False), bool):
            raise _fail("Value at 'filter.branch.includeParentBranches' must be a boolean")
    if flt.get("eventMetadata") is not None:
        for i, expr in enumerate(check_list(flt["eventMetadata"], "filter.eventMetadata", 1, 5)):
            name = f"filter.eventMetadata.{i}"
            expr = check_dict(expr, name)
            _, key = union(need(expr, "left"), f"{name}.left", {"metadataKey"})
            check_str(key, f"{name}.left.metadataKey", METADATA_TEXT, 1, 128)
            if need(expr, "operator") not in OPERATORS:
                raise _fail(f"Value at '{name}.operator' must be one of {sorted(OPERATORS)}")
            if expr["operator"] == "EQUALS_TO":
                _, value = union(need(expr, "right"), f"{name}.right", {"metadataValue"})
                _, text = union(value, f"{name}.right.metadataValue", {"stringValue"})
                check_str(text, f"{name}.right.metadataValue.stringValue", None, 0, 256)
    return flt


def list_events(store: Store, call: Call) -> Response:
    p, body = call.params, call.body
    memory_id = memory_id_of(p["memoryId"])
    actor_id = check_str(p["actorId"], "actorId", ACTOR_ID, 1, 255)
    session_id = check_str(p["sessionId"], "sessionId", SESSION_ID, 1, 100)
    include = body.get("includePayloads", True)
    if not isinstance(include, bool):
        raise _fail("Value at 'includePayloads' must be a boolean")
    flt = check_event_filter(body["filter"]) if body.get("filter") is not None else None
    events, token = store.list_events(memory_id, actor_id, session_id, include_payloads=include, flt=flt,
                                      max_results=opt_int(body, "maxResults", 1, 100, 20),
                                      token=opt_str(body, "nextToken"))
    return ok({"events": events, **({"nextToken": token} if token else {})})


def list_sessions(store: Store, call: Call) -> Response:
    body = call.body
    memory_id = memory_id_of(call.params["memoryId"])
    actor_id = check_str(call.params["actorId"], "actorId", ACTOR_ID, 1, 255)
    has_events = False
    if body.get("filter") is not None:
        flt = check_dict(body["filter"], "filter")
        if flt.get("eventFilter") not in (None, "HAS_EVENTS"):
            raise _fail("Value at 'filter.eventFilter' must be HAS_EVENTS")
        has_events = flt.get("eventFilter") == "HAS_EVENTS"
    sessions, token = store.list_sessions(memory_id, actor_id, opt_int(body, "maxResults", 1, 100, 20),
                                          opt_str(body, "nextToken"), has_events)
    return ok({"sessionSummaries": sessions, **({"nextToken": token} if token else {})})


def list_actors(store: Store, call: Call) -> Response:
    body = call.body
    actors, token = store.list_actors(memory_id_of(call.params["memoryId"]),
                                      opt_int(body, "maxResults", 1, 100, 20), opt_str(body, "nextToken"))
    return ok({"actorSummaries": actors, **({"nextToken": token} if token else {})})


# -- data plane: long-term records ----------------------------------------------------------------
def _namespaces(body: dict[str, Any]) -> tuple[str | None, str | None]:
    namespace = opt_str(body, "namespace", None, 1, 1024)
    namespace_path = opt_str(body, "namespacePath", None, 1, 1024)
    if (namespace is None) == (namespace_path is None):
        raise _fail("Exactly one of namespace or namespacePath is required")
    return namespace, namespace_path


def retrieve_records(store: Store, call: Call) -> Response:
    body = call.body
    memory_id = memory_id_of(call.params["memoryId"])
    namespace, namespace_path = _namespaces(body)
    criteria = check_dict(need(body, "searchCriteria"), "searchCriteria")
    query = check_str(need(criteria, "searchQuery"), "searchCriteria.searchQuery", None, 1, 10000)
    top_k = opt_int(criteria, "topK", 1, 100, 10)
    max_results = opt_int(body, "maxResults", 1, 100, 20)
    strategy_id = opt_str(criteria, "memoryStrategyId", None, 1, 100)
    records = store.retrieve_records(memory_id, query, namespace, namespace_path, strategy_id,
                                     min(top_k, max_results))
    return ok({"memoryRecordSummaries": records})


def list_records(store: Store, call: Call) -> Response:
    body = call.body
    memory_id = memory_id_of(call.params["memoryId"])
    namespace, namespace_path = _namespaces(body)
    records, token = store.list_records(memory_id, namespace, namespace_path,
                                        opt_str(body, "memoryStrategyId", None, 1, 100),
                                        opt_int(body, "maxResults", 1, 100, 20), opt_str(body, "nextToken"))
    return ok({"memoryRecordSummaries": records, **({"nextToken": token} if token else {})})


def get_record(store: Store, call: Call) -> Response:
    record_id = check_str(call.params["memoryRecordId"], "memoryRecordId", RECORD_ID, 40, 50)
    return ok({"memoryRecord": store.get_record(memory_id_of(call.params["memoryId"]), record_id)})


def delete_record(store: Store, call: Call) -> Response:
    record_id = check_str(call.params["memoryRecordId"], "memoryRecordId", RECORD_ID, 40, 50)
    store.delete_record(memory_id_of(call.params["memoryId"]), record_id)
    return ok({"memoryRecordId": record_id})


# -- routing ----------------------------------------------------------------------------------------
ROUTES: list[tuple[str, str, Handler]] = [
    # control plane (bedrock-agentcore-control)
    ("POST", "/memories/create", create_memory),
    ("GET", "/memories/{memoryId}/details", get_memory),
    ("POST", "/memories/", list_memories),
    ("POST", "/memories", list_memories),
    ("DELETE", "/memories/{memoryId}/delete", delete_memory),
    # data plane (bedrock-agentcore)
    ("POST", "/memories/{memoryId}/events", create_event),
    ("GET", "/memories/{memoryId}/actor/{actorId}/sessions/{sessionId}/events/{eventId}", get_event),
    ("DELETE", "/memories/{memoryId}/actor/{actorId}/sessions/{sessionId}/events/{eventId}", delete_event),
    ("POST", "/memories/{memoryId}/actor/{actorId}/sessions/{sessionId}", list_events),
    ("POST", "/memories/{memoryId}/actor/{actorId}/sessions", list_sessions),
    ("POST", "/memories/{memoryId}/actors", list_actors),
    ("POST", "/memories/{memoryId}/retrieve", retrieve_records),
    ("POST", "/memories/{memoryId}/memoryRecords", list_records),
    ("GET", "/memories/{memoryId}/memoryRecord/{memoryRecordId}", get_record),
    ("DELETE", "/memories/{memoryId}/memoryRecords/{memoryRecordId}", delete_record),
]


# -- AgentCore Runtime (see runtime_sessions.py) ---------------------------------------------------------
RuntimeHandler = Callable[[RuntimeService, Request, dict[str, str]], Awaitable[Response]]


async def _json_body(request: Request) -> dict[str, Any]:
    data = await request.body()
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("Request body is not valid JSON", "CannotParse") from None
    if not isinstance(body, dict):
        raise Invalid("Request body must be a JSON object", "CannotParse")
    return body


def _region(request: Request) -> str:
    found = CREDENTIAL_REGION.search(request.headers.get("authorization", ""))
    return found.group(1) if found else "us-east-1"


async def create_runtime(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    return ok(rt.create(await _json_body(request), _region(request)), status=202)


async def get_runtime(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    return ok(rt.get(params["agentRuntimeId"]))


async def list_runtimes(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    body = await _json_body(request)
    runtimes, following = rt.list(opt_int(body, "maxResults", 1, 100, 100), _offset_token(body.get("nextToken")))
    return ok({"agentRuntimes": runtimes, **({"nextToken": _encode_token(following)} if following else {})})


async def update_runtime(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    return ok(rt.update(params["agentRuntimeId"], await _json_body(request)), status=202)


async def delete_runtime(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    return ok(await rt.delete(params["agentRuntimeId"]), status=202)


async def invoke_runtime(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    return await rt.invoke(request, params["agentRuntimeArn"])


async def stop_runtime_session(rt: RuntimeService, request: Request, params: dict[str, str]) -> Response:
    return await rt.stop_session(params["agentRuntimeArn"], request.headers.get(SESSION_HEADER, ""))


RUNTIME_ROUTES: list[tuple[str, str, RuntimeHandler]] = [
    ("PUT", "/runtimes/", create_runtime),
    ("POST", "/runtimes/", list_runtimes),
    ("GET", "/runtimes/{agentRuntimeId}/", get_runtime),
    ("PUT", "/runtimes/{agentRuntimeId}/", update_runtime),
    ("DELETE", "/runtimes/{agentRuntimeId}/", delete_runtime),
    # data plane; MCP clients also GET and DELETE the runtime URL, as they would the server's /mcp
    ("POST", "/runtimes/{agentRuntimeArn}/invocations", invoke_runtime),
    ("GET", "/runtimes/{agentRuntimeArn}/invocations", invoke_runtime),
    ("DELETE", "/runtimes/{agentRuntimeArn}/invocations", invoke_runtime),
    ("POST", "/runtimes/{agentRuntimeArn}/stopruntimesession", stop_runtime_session),
]


def _compile(routes: list[tuple[str, str, Any]]) -> list[tuple[str, list[str], Any]]:
    return [(method, template.split("/"), handler) for method, template, handler in routes]


_COMPILED = _compile(ROUTES)
_RUNTIME_COMPILED = _compile(RUNTIME_ROUTES)


def match(method: str, raw_path: str, table: list[tuple[str, list[str], Any]] = _COMPILED
          ) -> tuple[Any, dict[str, str]] | None | str:
    """(handler, path params), or None when no path matches, or "method" when only the method is wrong."""
    segments = raw_path.split("/")
    wrong_method = False
    for route_method, template, handler in table:
        if len(template) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(template, segments):
            if want.startswith("{"):
                if not got:
                    break
                params[want[1:-1]] = unquote(got)
            elif want != got:
                break
        else:
            if route_method == method:
                return handler, params
            wrong_method = True
    return "method" if wrong_method else None


def create_app(db_path: str | Path, endpoint: str = "http://127.0.0.1:8787",
               settings: config.Settings | None = None) -> Starlette:
    """The emulator as an ASGI app on the database at ``db_path`` (created when missing).

    ``endpoint`` is where the emulator itself answers: runtime session processes get it as their AgentCore
    endpoint. ``settings`` (default: from the environment) gives the time scale of the runtimes that do not set
    their own ``LAB_TIME_SCALE`` (see :mod:`lab_helpers.emulator.runtime_sessions`).
    """
    store = Store(db_path)
    runtime = RuntimeService(store, endpoint, settings)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "server": "agentcore-local", "db": str(db_path),
                             "time_scale": runtime.settings.time_scale})

    async def runtime_sessions(_: Request) -> JSONResponse:
        return JSONResponse(runtime.report())

    async def dispatch(request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        found_runtime = match(request.method, raw_path, _RUNTIME_COMPILED)
        is_runtime = isinstance(found_runtime, tuple)
        found = found_runtime if is_runtime else match(request.method, raw_path)
        if found is None and found_runtime == "method":
            found = "method"
        if found is None:
            return error("UnknownOperationException", 404, f"No operation at {request.method} {raw_path}")
        if found == "method":
            return error("UnknownOperationException", 405, f"Method {request.method} not allowed on {raw_path}")
        handler, params = found  # type: ignore[misc]
        try:
            if is_runtime:  # Runtime handlers read the request themselves (an invocation's body is raw)
                return await handler(runtime, request, params)
            return handler(store, Call(request, params, await _json_body(request)))
        except StoreError as exc:
            return error(exc.code, exc.status, exc.message, exc.reason)
        except Exception:  # noqa: BLE001 - answer as AWS would, keep the traceback in the log
            log.exception("internal error in %s %s", request.method, raw_path)
            internal = "InternalServerException" if is_runtime else "ServiceException"
            return error(internal, 500, "Internal error in the local emulator (see its log)")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        runtime.start_monitor()
        try:
            yield
        finally:
            await runtime.shutdown()

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app = Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/local/runtime-sessions", runtime_sessions, methods=["GET"]),
        Route("/{path:path}", dispatch, methods=methods),
    ], lifespan=lifespan)
    app.state.store = store
    app.state.runtime = runtime
    return app


__all__ = ["create_app", "match", "ROUTES", "Invalid", "NotFound"]
