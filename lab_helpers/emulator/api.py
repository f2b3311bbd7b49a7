"""The emulator's HTTP side: AgentCore Memory and Runtime, data and control planes (rest-json), on one Starlette app.

Paths, members and status codes follow botocore's service models ``bedrock-agentcore`` 2024-02-28 and
``bedrock-agentcore-control`` 2023-06-05. Requests are routed on the raw (still percent-encoded) path, because
botocore encodes a ``/`` inside an actor id as ``%2F``. Every failure is answered as AWS does: an HTTP status, the
``x-amzn-ErrorType`` header and a JSON body with ``message`` (ValidationException also ``reason``), so boto3
raises a ``ClientError`` with the matching code; nothing is ever answered with a bare 500 and a traceback. Every
answer, errors and streamed invocations included, carries an ``x-amzn-RequestId`` (botocore's
``ResponseMetadata.RequestId``).

What a request goes through, in this order, before anything is stored or any process started:

1. who may call (:class:`Front`): the ``Host`` must be a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``,
   any port; more with ``LAB_EMULATOR_ALLOWED_HOSTS``, for a container) or the emulator answers 421, as the MCP
   SDK does on loopback: a web page that rebinds its own domain name to 127.0.0.1 gets nothing. A browser's
   ``Origin`` from anywhere but such a host gets 403. The AWS API (every path but ``/health`` and ``/local/...``)
   also needs a SigV4-shaped ``Authorization`` header (boto3 always signs; the signature is not checked, its
   region names the ARNs); InvokeAgentRuntime also takes an OAuth ``Bearer`` token, as AWS does for a runtime with
   an inbound authorizer. A browser cannot send either header without a CORS preflight, and the emulator answers
   no preflight. With local IAM on (a principals file, :mod:`lab_helpers.emulator.local_iam`), the signature is
   checked too: an unknown access key gets ``UnrecognizedClientException``, a wrong signature
   ``InvalidSignatureException`` (both 403, as AWS answers), before the body is parsed;
2. the body: at most :data:`MAX_JSON_BYTES` of JSON (an invocation's raw payload: AWS's 100,000,000 bytes),
   nested at most :data:`MAX_JSON_DEPTH` deep, no ``NaN``/``Infinity`` and no unpaired surrogate in any string;
3. the operation's input shape (:mod:`lab_helpers.emulator.shapes`): types, required members, enum values,
   lengths, ranges and patterns, for the path, query string, headers and body alike, in one place. Handlers see
   only what passed, then add the checks the model cannot express (a local code directory, a forged token);
4. with local IAM on, the call's action, resource and condition keys against the signer's identity policies:
   ``AccessDeniedException`` (403) unless allowed. A Bearer-token invocation skips 1's signature and 4 (AWS checks
   the token with the runtime's authorizer instead).

Where the emulator and the model part ways, on purpose:

* accepted as AWS accepts them: CreateEvent without ``sessionId`` (AWS generates one, a UUID) and with an empty
  ``payload``; ListMemoryRecords and RetrieveMemoryRecords without a namespace (every record of the memory);
  protocol ``AGUI`` (served like ``HTTP``: ``/invocations`` and ``/ping``);
* refused with a ValidationException that says so, because the emulator cannot do them: a namespace and a
  namespacePath together, a record metadataFilters operator other than EQUALS_TO, EXISTS, NOT_EXISTS
  (BatchCreateMemoryRecords answers a record without a memoryStrategyId of the memory as a failed record, 400), container artifacts, protocol ``A2A``, runtime ``NODE_22``, an entry point outside
  its code directory;
* ListEvents with ``includePayloads: false`` omits each event's ``payload`` although the model marks it
  required: AWS does the same (measured against AWS in floci-io/floci pull request 3556);
* a runtime created without a description has none: GetAgentRuntime and ListAgentRuntimes omit it (the model
  allows no empty one).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab_helpers import config
from lab_helpers.emulator import local_iam, shapes
from lab_helpers.emulator.errors import Invalid, NotFound, StoreError
from lab_helpers.emulator.memory_store import Store
from lab_helpers.emulator.page_tokens import encode_token, offset_token
from lab_helpers.emulator.runtime_sessions import MAX_PAYLOAD_BYTES, SESSION_HEADER, RuntimeService

log = logging.getLogger(__name__)

#: The largest JSON body the emulator reads (an invocation's payload has AWS's own limit, MAX_PAYLOAD_BYTES).
MAX_JSON_BYTES = 10 * 1024 * 1024
#: How deep a JSON body may nest (objects and arrays); a CreateEvent's JSON payload needs a handful of levels.
MAX_JSON_DEPTH = 64
#: Extra hosts the emulator answers besides loopback ones: comma-separated names (``*`` for any), for a container.
ALLOWED_HOSTS_VARIABLE = "LAB_EMULATOR_ALLOWED_HOSTS"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Paths of the emulator's own (non-AWS) routes: no Authorization needed.
LOCAL_PATHS = ("/health", "/local/")
CREDENTIAL_REGION = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/")
SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/\s,]+/\d{8}/[a-z0-9-]+/[a-z0-9-]+/aws4_request,\s*"
                   r"SignedHeaders=[a-z0-9;-]+,\s*Signature=[0-9a-f]{64}")
BEARER = re.compile(r"Bearer [A-Za-z0-9\-._~+/]+=*")
#: An Authorization header of the SigV4 shape, for a caller that sends plain HTTP on purpose (a test, a benchmark):
#: the emulator checks the shape of a signature, never its value.
LOCAL_AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=local-emulator/20250101/us-east-1/bedrock-agentcore/aws4_request, "
                       "SignedHeaders=host, Signature=" + "0" * 64)
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- request/response plumbing ----------------------------------------------------------------
def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def ok(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(dumps(doc), status_code=status, media_type="application/json")


def error(code: str, status: int, message: str, reason: str | None = None,
          fields: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"message": message}
    if reason:
        body["reason"] = reason
    if fields:
        body["fieldList"] = fields
    return Response(dumps(body), status_code=status, media_type="application/json",
                    headers={"x-amzn-ErrorType": code})


def memory_id_of(raw: str) -> str:
    """The memory id in a (validated) memoryId, which may be the memory's ARN."""
    return raw.rsplit("/", 1)[-1]


@dataclass
class Call:
    """One request that passed the checks: its operation's input members (validated), region, raw request."""

    request: Request
    input: dict[str, Any]
    region: str


Handler = Callable[[Store, Call], Response]
RuntimeHandler = Callable[[RuntimeService, Call], Awaitable[Response]]


# -- the body: bounded size, bounded depth ------------------------------------------------------
async def read_body(request: Request, limit: int, what: str = "Request body") -> bytes:
    """The request body, refused (ValidationException) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Invalid(f"{what} of {int(declared)} bytes is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Invalid(f"{what} of more than {limit} bytes is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes) -> dict[str, Any]:
    """A JSON object body (empty: ``{}``), or a ValidationException that says what is wrong with it."""
    if not data.strip():
        return {}
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise Invalid(f"Request body nests deeper than {MAX_JSON_DEPTH} levels", "CannotParse") from None
    except (ValueError, UnicodeDecodeError):
        raise Invalid("Request body is not valid JSON", "CannotParse") from None
    if not isinstance(body, dict):
        raise Invalid("Request body must be a JSON object", "CannotParse")
    _check_tree(body)
    return body


def _check_tree(doc: dict[str, Any]) -> None:
    """Depth at most MAX_JSON_DEPTH, and no unpaired surrogate (``"\\ud800"``) in a key or string: text that
    cannot be stored or sent back as UTF-8."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Invalid(f"Request body nests deeper than {MAX_JSON_DEPTH} levels", "CannotParse")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                raise Invalid("Request body has a string with an unpaired surrogate (not Unicode text)", "CannotParse")
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif isinstance(item, str) and not item.isascii() and _SURROGATE.search(item):
                raise Invalid("Request body has a string with an unpaired surrogate (not Unicode text)", "CannotParse")


# -- control plane: Memory ------------------------------------------------------------------------
def create_memory(store: Store, call: Call) -> Response:
    return ok({"memory": store.create_memory(call.input, call.region)}, 202)


def get_memory(store: Store, call: Call) -> Response:
    return ok({"memory": store.get_memory(memory_id_of(call.input["memoryId"]))})


def list_memories(store: Store, call: Call) -> Response:
    memories, token = store.list_memories(call.input.get("maxResults", 100), call.input.get("nextToken"))
    return ok({"memories": memories, **({"nextToken": token} if token else {})})


def update_memory(store: Store, call: Call) -> Response:
    return ok({"memory": store.update_memory(call.input["memoryId"], call.input)}, 202)


def delete_memory(store: Store, call: Call) -> Response:
    memory_id = memory_id_of(call.input["memoryId"])
    store.delete_memory(memory_id)
    return ok({"memoryId": memory_id, "status": "DELETING"}, 202)


# -- data plane: events ---------------------------------------------------------------------------
def create_event(store: Store, call: Call) -> Response:
    body = call.input
    body.setdefault("sessionId", str(uuid.uuid4()))  # optional: AWS makes one up (floci-io/floci pull 3556)
    body["eventTimestamp"] = float(body["eventTimestamp"])
    return ok({"event": store.create_event(memory_id_of(body["memoryId"]), body)}, 201)


def _event_path(call: Call) -> tuple[str, str, str, str]:
    p = call.input
    return memory_id_of(p["memoryId"]), p["actorId"], p["sessionId"], p["eventId"]


def get_event(store: Store, call: Call) -> Response:
    return ok({"event": store.get_event(*_event_path(call))})


def delete_event(store: Store, call: Call) -> Response:
    path = _event_path(call)
    store.delete_event(*path)
    return ok({"eventId": path[3]})


def list_events(store: Store, call: Call) -> Response:
    p = call.input
    flt = p.get("filter")
    for i, expr in enumerate((flt or {}).get("eventMetadata") or [], 1):
        if expr["operator"] == "EQUALS_TO" and "stringValue" not in expr.get("right", {}).get("metadataValue", {}):
            raise Invalid(f"Value null at 'filter.eventMetadata.{i}.member.right' failed to satisfy constraint: "
                          "EQUALS_TO needs a right.metadataValue.stringValue")
    events, token = store.list_events(memory_id_of(p["memoryId"]), p["actorId"], p["sessionId"],
                                      include_payloads=p.get("includePayloads", True), flt=flt,
                                      max_results=p.get("maxResults", 20), token=p.get("nextToken"))
    return ok({"events": events, **({"nextToken": token} if token else {})})


def list_sessions(store: Store, call: Call) -> Response:
    p = call.input
    has_events = (p.get("filter") or {}).get("eventFilter") == "HAS_EVENTS"
    sessions, token = store.list_sessions(memory_id_of(p["memoryId"]), p["actorId"], p.get("maxResults", 20),
                                          p.get("nextToken"), has_events)
    return ok({"sessionSummaries": sessions, **({"nextToken": token} if token else {})})


def list_actors(store: Store, call: Call) -> Response:
    p = call.input
    actors, token = store.list_actors(memory_id_of(p["memoryId"]), p.get("maxResults", 20), p.get("nextToken"))
    return ok({"actorSummaries": actors, **({"nextToken": token} if token else {})})


# -- data plane: long-term records ----------------------------------------------------------------
def _namespaces(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(namespace, namespacePath): neither means every record of the memory; both is refused."""
    namespace, namespace_path = body.get("namespace"), body.get("namespacePath")
    if namespace is not None and namespace_path is not None:
        raise Invalid("Give namespace or namespacePath, not both")
    return namespace, namespace_path


#: The record metadataFilters operators the emulator evaluates (on string values); others are refused.
METADATA_OPERATORS = ("EQUALS_TO", "EXISTS", "NOT_EXISTS")


def _metadata_filters(filters: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    for i, expr in enumerate(filters or [], 1):
        if expr["operator"] not in METADATA_OPERATORS:
            raise Invalid(f"metadataFilters.{i}: operator {expr['operator']} is not emulated (only "
                          f"{', '.join(METADATA_OPERATORS)} on string values)")
        if expr["operator"] == "EQUALS_TO" and "stringValue" not in (expr.get("right") or {}).get(
                "metadataValue", {}):
            raise Invalid(f"metadataFilters.{i}: EQUALS_TO needs a right.metadataValue.stringValue")
    return filters or []


def retrieve_records(store: Store, call: Call) -> Response:
    p = call.input
    namespace, namespace_path = _namespaces(p)
    criteria = p["searchCriteria"]
    records = store.retrieve_records(memory_id_of(p["memoryId"]), criteria["searchQuery"], namespace,
                                     namespace_path, criteria.get("memoryStrategyId"),
                                     min(criteria.get("topK", 10), p.get("maxResults", 20)),
                                     _metadata_filters(criteria.get("metadataFilters")))
    return ok({"memoryRecordSummaries": records})


def list_records(store: Store, call: Call) -> Response:
    p = call.input
    namespace, namespace_path = _namespaces(p)
    records, token = store.list_records(memory_id_of(p["memoryId"]), namespace, namespace_path,
                                        p.get("memoryStrategyId"), p.get("maxResults", 20), p.get("nextToken"),
                                        _metadata_filters(p.get("metadataFilters")))
    return ok({"memoryRecordSummaries": records, **({"nextToken": token} if token else {})})


def get_record(store: Store, call: Call) -> Response:
    p = call.input
    return ok({"memoryRecord": store.get_record(memory_id_of(p["memoryId"]), p["memoryRecordId"])})


def delete_record(store: Store, call: Call) -> Response:
    p = call.input
    store.delete_record(memory_id_of(p["memoryId"]), p["memoryRecordId"])
    return ok({"memoryRecordId": p["memoryRecordId"]})


def batch_create_records(store: Store, call: Call) -> Response:
    return ok(store.batch_create_records(memory_id_of(call.input["memoryId"]), call.input["records"]), 201)


def batch_update_records(store: Store, call: Call) -> Response:
    return ok(store.batch_update_records(memory_id_of(call.input["memoryId"]), call.input["records"]))


def batch_delete_records(store: Store, call: Call) -> Response:
    return ok(store.batch_delete_records(memory_id_of(call.input["memoryId"]), call.input["records"]))


def list_extraction_jobs(store: Store, call: Call) -> Response:
    p = call.input
    jobs, token = store.list_extraction_jobs(memory_id_of(p["memoryId"]), p.get("filter") or {},
                                             p.get("maxResults", 20), p.get("nextToken"))
    return ok({"jobs": jobs, **({"nextToken": token} if token else {})})


def start_extraction_job(store: Store, call: Call) -> Response:
    p = call.input
    return ok({"jobId": store.start_extraction_job(memory_id_of(p["memoryId"]), p["extractionJob"]["jobId"])})


# -- AgentCore Runtime (see runtime_sessions.py) ---------------------------------------------------------
async def create_runtime(rt: RuntimeService, call: Call) -> Response:
    return ok(rt.create(call.input, call.region), status=202)


async def get_runtime(rt: RuntimeService, call: Call) -> Response:
    return ok(rt.get(call.input["agentRuntimeId"]))


async def list_runtimes(rt: RuntimeService, call: Call) -> Response:
    max_results = call.input.get("maxResults", 100)
    runtimes, following = rt.list(max_results, offset_token(call.input.get("nextToken")))
    return ok({"agentRuntimes": runtimes, **({"nextToken": encode_token(following)} if following else {})})


async def update_runtime(rt: RuntimeService, call: Call) -> Response:
    return ok(rt.update(call.input["agentRuntimeId"], call.input), status=202)


async def delete_runtime(rt: RuntimeService, call: Call) -> Response:
    return ok(await rt.delete(call.input["agentRuntimeId"]), status=202)


async def invoke_runtime(rt: RuntimeService, call: Call) -> Response:
    body = await read_body(call.request, MAX_PAYLOAD_BYTES, "Payload")
    return await rt.invoke(call.request, call.input["agentRuntimeArn"], body)


async def stop_runtime_session(rt: RuntimeService, call: Call) -> Response:
    return await rt.stop_session(call.input["agentRuntimeArn"], call.input["runtimeSessionId"])


# -- routing ----------------------------------------------------------------------------------------
CONTROL, DATA = "bedrock-agentcore-control", "bedrock-agentcore"


@dataclass(frozen=True)
class Operation:
    """One route: the operation of a service model that it serves, and its handler."""

    service: str
    name: str
    handler: Any  # Handler (Memory, runs in the event loop) or RuntimeHandler (async)
    runtime: bool = False

    @property
    def json_body(self) -> bool:
        """Does the operation read a JSON body? (Others ignore any body, except an invocation's raw payload.)"""
        return bool(shapes.members_of(self.service, self.name).body)


ROUTES: list[tuple[str, str, Operation]] = [
    # Memory, control plane (bedrock-agentcore-control)
    ("POST", "/memories/create", Operation(CONTROL, "CreateMemory", create_memory)),
    ("GET", "/memories/{memoryId}/details", Operation(CONTROL, "GetMemory", get_memory)),
    ("POST", "/memories/", Operation(CONTROL, "ListMemories", list_memories)),
    ("POST", "/memories", Operation(CONTROL, "ListMemories", list_memories)),
    ("DELETE", "/memories/{memoryId}/delete", Operation(CONTROL, "DeleteMemory", delete_memory)),
    ("PUT", "/memories/{memoryId}/update", Operation(CONTROL, "UpdateMemory", update_memory)),
    # Memory, data plane (bedrock-agentcore)
    ("POST", "/memories/{memoryId}/events", Operation(DATA, "CreateEvent", create_event)),
    ("GET", "/memories/{memoryId}/actor/{actorId}/sessions/{sessionId}/events/{eventId}",
     Operation(DATA, "GetEvent", get_event)),
    ("DELETE", "/memories/{memoryId}/actor/{actorId}/sessions/{sessionId}/events/{eventId}",
     Operation(DATA, "DeleteEvent", delete_event)),
    ("POST", "/memories/{memoryId}/actor/{actorId}/sessions/{sessionId}", Operation(DATA, "ListEvents", list_events)),
    ("POST", "/memories/{memoryId}/actor/{actorId}/sessions", Operation(DATA, "ListSessions", list_sessions)),
    ("POST", "/memories/{memoryId}/actors", Operation(DATA, "ListActors", list_actors)),
    ("POST", "/memories/{memoryId}/retrieve", Operation(DATA, "RetrieveMemoryRecords", retrieve_records)),
    ("POST", "/memories/{memoryId}/memoryRecords", Operation(DATA, "ListMemoryRecords", list_records)),
    ("GET", "/memories/{memoryId}/memoryRecord/{memoryRecordId}", Operation(DATA, "GetMemoryRecord", get_record)),
    ("DELETE", "/memories/{memoryId}/memoryRecords/{memoryRecordId}",
     Operation(DATA, "DeleteMemoryRecord", delete_record)),
    ("POST", "/memories/{memoryId}/memoryRecords/batchCreate",
     Operation(DATA, "BatchCreateMemoryRecords", batch_create_records)),
    ("POST", "/memories/{memoryId}/memoryRecords/batchUpdate",
     Operation(DATA, "BatchUpdateMemoryRecords", batch_update_records)),
    ("POST", "/memories/{memoryId}/memoryRecords/batchDelete",
     Operation(DATA, "BatchDeleteMemoryRecords", batch_delete_records)),
    ("POST", "/memories/{memoryId}/extractionJobs", Operation(DATA, "ListMemoryExtractionJobs", list_extraction_jobs)),
    ("POST", "/memories/{memoryId}/extractionJobs/start",
     Operation(DATA, "StartMemoryExtractionJob", start_extraction_job)),
    # Runtime, control plane
    ("PUT", "/runtimes/", Operation(CONTROL, "CreateAgentRuntime", create_runtime, True)),
    ("POST", "/runtimes/", Operation(CONTROL, "ListAgentRuntimes", list_runtimes, True)),
    ("GET", "/runtimes/{agentRuntimeId}/", Operation(CONTROL, "GetAgentRuntime", get_runtime, True)),
    ("PUT", "/runtimes/{agentRuntimeId}/", Operation(CONTROL, "UpdateAgentRuntime", update_runtime, True)),
    ("DELETE", "/runtimes/{agentRuntimeId}/", Operation(CONTROL, "DeleteAgentRuntime", delete_runtime, True)),
    # Runtime, data plane; MCP clients also GET and DELETE the runtime URL, as they would the server's /mcp
    ("POST", "/runtimes/{agentRuntimeArn}/invocations", Operation(DATA, "InvokeAgentRuntime", invoke_runtime, True)),
    ("GET", "/runtimes/{agentRuntimeArn}/invocations", Operation(DATA, "InvokeAgentRuntime", invoke_runtime, True)),
    ("DELETE", "/runtimes/{agentRuntimeArn}/invocations",
     Operation(DATA, "InvokeAgentRuntime", invoke_runtime, True)),
    ("POST", "/runtimes/{agentRuntimeArn}/stopruntimesession",
     Operation(DATA, "StopRuntimeSession", stop_runtime_session, True)),
]

_COMPILED = [(method, template.split("/"), operation) for method, template, operation in ROUTES]


def match(method: str, raw_path: str) -> tuple[Operation, dict[str, str]] | None | str:
    """(operation, path params), or None when no path matches, or "method" when only the method is wrong."""
    segments = raw_path.split("/")
    wrong_method = False
    for route_method, template, operation in _COMPILED:
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
                return operation, params
            wrong_method = True
    return "method" if wrong_method else None


def _region(request: Request) -> str:
    found = CREDENTIAL_REGION.search(request.headers.get("authorization", ""))
    return found.group(1) if found else "us-east-1"


#: AWS's answers to a signature that does not check out (errors of the signing layer, not of the service model).
UNRECOGNIZED_KEY = "The security token included in the request is invalid."
BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                 "Secret Access Key and signing method. Consult the service documentation for details.")


def authenticate(iam: Mapping[str, local_iam.Principal], request: Request, raw_path: str,
                 body: bytes) -> local_iam.Principal | Response:
    """The principal whose secret signed ``request``, or AWS's 403 answer when none did."""
    found = local_iam.parse_authorization(request.headers.get("authorization", ""))
    principal = iam.get(found["key"]) if found else None
    if principal is None:
        return error("UnrecognizedClientException", 403, UNRECOGNIZED_KEY)
    signed = local_iam.SignedRequest(request.method, request.headers.get("host", ""), raw_path,
                                     request.scope.get("query_string", b"").decode("latin-1"), request.headers, body)
    problem = local_iam.verify_signature(principal, signed)
    if problem is None:
        return principal
    return error("InvalidSignatureException", 403, problem if problem.startswith("Signature expired") else
                 BAD_SIGNATURE)


def authorize(principal: local_iam.Principal, operation: "Operation", call: Call) -> Response | None:
    """None when the principal's identity policies allow the call, else AWS's AccessDeniedException."""
    action, resource, keys = local_iam.authorization_request(operation.name, call.input, call.region)
    decision = local_iam.evaluate(principal.policies, action, resource,
                                  local_iam.request_context(principal, call.region, keys))
    if decision.allowed:
        return None
    return error("AccessDeniedException", 403, local_iam.access_denied_message(principal, action, resource, decision))


async def answer(store: Store, runtime: RuntimeService, request: Request,
                 iam: Mapping[str, local_iam.Principal] | None = None) -> Response:
    """One AWS API request: route, (with ``iam``: authenticate), read, validate, (authorize), handle; every
    failure an AWS error."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    raw_path = raw.decode("latin-1").split("?", 1)[0]
    found = match(request.method, raw_path)
    if found is None:
        return error("UnknownOperationException", 404, f"No operation at {request.method} {raw_path[:200]!r}")
    if found == "method":
        return error("UnknownOperationException", 405, f"Method {request.method} not allowed on {raw_path[:200]!r}")
    operation, params = found  # type: ignore[misc]
    try:
        principal = None
        if iam is not None and not BEARER.fullmatch(request.headers.get("authorization", "")):
            if operation.json_body or not operation.runtime:
                data = await read_body(request, MAX_JSON_BYTES)
            else:  # an invocation's raw payload: kept for the handler, which reads the body again
                data = await read_body(request, MAX_PAYLOAD_BYTES, "Payload")
                request._body = data  # Starlette's cache of the body: request.stream() yields it again
            signer = authenticate(iam, request, raw_path, data)
            if isinstance(signer, Response):
                return signer
            principal = signer
            body = parse_json(data) if operation.json_body else {}
        else:
            body = parse_json(await read_body(request, MAX_JSON_BYTES)) if operation.json_body else {}
        query = {key: values[-1] for key, values in
                 parse_qs(request.scope.get("query_string", b"").decode("latin-1")).items()}
        inputs = shapes.check_input(operation.service, operation.name, path=params, query=query,
                                    headers=request.headers, body=body)
        call = Call(request, inputs, _region(request))
        if principal is not None:
            denied = authorize(principal, operation, call)
            if denied is not None:
                return denied
        if operation.runtime:
            return await operation.handler(runtime, call)
        return operation.handler(store, call)
    except shapes.ShapeError as exc:
        return error("ValidationException", 400, str(exc), "FieldValidationFailed",
                     [{"name": name, "message": message} for name, message in exc.errors])
    except StoreError as exc:
        return error(exc.code, exc.status, exc.message, exc.reason)
    except Exception:  # noqa: BLE001 - answer as AWS would, keep the traceback in the log
        log.exception("internal error in %s %s", request.method, raw_path)
        internal = "InternalServerException" if operation.runtime else "ServiceException"
        return error(internal, 500, "Internal error in the local emulator (see its log)")


# -- who may call -------------------------------------------------------------------------------------
def allowed_hosts_from_environment() -> frozenset[str]:
    """The extra hosts named in ``LAB_EMULATOR_ALLOWED_HOSTS`` (lower case, without ports)."""
    names = os.environ.get(ALLOWED_HOSTS_VARIABLE, "")
    return frozenset(_host_name(name.strip()) for name in names.split(",") if name.strip())


def _host_name(host: str) -> str:
    """``127.0.0.1:8787`` -> ``127.0.0.1``, ``[::1]:8787`` -> ``::1``, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Front:
    """The outermost layer: who may call (Host, Origin, Authorization), a request id on every answer, and the
    AWS API itself; the emulator's own routes (``/health``, ``/local/...``) go on to Starlette's router."""

    def __init__(self, app: ASGIApp, *, aws: Callable[[Request], Awaitable[Response]],
                 allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.aws = aws
        self.hosts = LOOPBACK_HOSTS | allowed_hosts

    def _host_ok(self, name: str) -> bool:
        return "*" in self.hosts or name in self.hosts

    def refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if not host or not self._host_ok(_host_name(host)):
            return error("AccessDeniedException", 421,
                         f"Host {host[:100]!r} is not this emulator's: it answers loopback hosts only "
                         f"(a web page may not reach it by DNS rebinding); add names to {ALLOWED_HOSTS_VARIABLE}")
        origin = request.headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin) if origin != "null" else None
            if parts is None or parts.scheme not in ("http", "https") or not self._host_ok(
                    _host_name(parts.netloc)):
                return error("AccessDeniedException", 403,
                             f"Origin {origin[:100]!r} may not call the emulator: a web page from another site "
                             "has no business here")
        if request.url.path == LOCAL_PATHS[0] or request.url.path.startswith(LOCAL_PATHS[1]):
            return None
        authorization = request.headers.get("authorization", "")
        if SIGV4.fullmatch(authorization):
            return None
        if BEARER.fullmatch(authorization) and request.url.path.endswith("/invocations"):
            return None
        return error("AccessDeniedException", 403,
                     "Missing Authentication Token: AWS API calls must be signed (an 'Authorization: "
                     "AWS4-HMAC-SHA256 Credential=...' header, as boto3 sends; InvokeAgentRuntime also takes "
                     "'Bearer <token>')")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-amzn-requestid" for name, _ in headers):
                    headers.append((b"x-amzn-requestid", request_id))
                message = {**message, "headers": headers}
            await send(message)

        request = Request(scope, receive)
        refused = self.refusal(request)
        if refused is not None:
            await refused(scope, receive, send_with_id)
            return
        path = scope["path"]
        if path == LOCAL_PATHS[0] or path.startswith(LOCAL_PATHS[1]):
            await self.app(scope, receive, send_with_id)
            return
        response = await self.aws(request)
        await response(scope, receive, send_with_id)


def create_app(db_path: str | Path, endpoint: str = "http://127.0.0.1:8787",
               settings: config.Settings | None = None, allowed_hosts: frozenset[str] | None = None,
               iam: Mapping[str, local_iam.Principal] | None = None) -> Starlette:
    """The emulator as an ASGI app on the database at ``db_path`` (created when missing).

    ``endpoint`` is where the emulator itself answers: runtime session processes get it as their AgentCore
    endpoint (its host is allowed, so they can call back). ``settings`` (default: from the environment) gives
    the time scale of the runtimes that do not set their own ``LAB_TIME_SCALE`` (see
    :mod:`lab_helpers.emulator.runtime_sessions`). ``allowed_hosts`` (default: ``LAB_EMULATOR_ALLOWED_HOSTS``)
    are the host names it answers besides loopback ones. ``iam`` (principals by access key id, from
    :func:`lab_helpers.emulator.local_iam.load_principals`) turns local IAM on; None (default): off.
    """
    store = Store(db_path)
    runtime = RuntimeService(store, endpoint, settings)
    hosts = allowed_hosts_from_environment() if allowed_hosts is None else allowed_hosts
    hosts = hosts | {_host_name(urlsplit(endpoint).netloc)}

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "server": "agentcore-local", "db": str(db_path),
                             "time_scale": runtime.settings.time_scale, "iam": iam is not None})

    async def runtime_sessions(_: Request) -> JSONResponse:
        return JSONResponse(runtime.report())

    async def aws(request: Request) -> Response:
        return await answer(store, runtime, request, iam)

    async def local_error(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return error("UnknownOperationException", status, f"No such local route ({status})")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        runtime.start_monitor()
        try:
            yield
        finally:
            await runtime.shutdown()

    app = Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/local/runtime-sessions", runtime_sessions, methods=["GET"]),
    ], lifespan=lifespan, middleware=[Middleware(Front, aws=aws, allowed_hosts=frozenset(hosts))],
        exception_handlers={HTTPException: local_error})
    app.state.store = store
    app.state.runtime = runtime
    return app


__all__ = ["create_app", "match", "ROUTES", "Invalid", "NotFound", "MAX_JSON_BYTES", "MAX_JSON_DEPTH",
           "LOCAL_AUTHORIZATION"]
