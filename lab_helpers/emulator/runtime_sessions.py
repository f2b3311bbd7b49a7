"""AgentCore Runtime in the emulator: agent runtimes as resources, and one process per runtime session.

AWS runs each runtime session in its own microVM; here each session is its own process (the stand-in), started
by the first ``InvokeAgentRuntime`` that names a new ``runtimeSessionId`` and reached again by every later call
with the same id. What is emulated, over the same wire protocol as AWS (botocore's ``bedrock-agentcore-control``
and ``bedrock-agentcore`` models):

* control plane: Create/Get/List/Update/DeleteAgentRuntime; status CREATING (or UPDATING) on the first look,
  READY after it, as AWS reports it while it provisions; runtimes are kept in the emulator's SQLite database;
* data plane: InvokeAgentRuntime forwards the payload to the session process's ``POST /invocations`` (protocol
  HTTP) or any MCP request to its ``/mcp`` (protocol MCP, with ``Mcp-Session-Id`` and ``Mcp-Protocol-Version``),
  streaming the answer back (JSON or ``text/event-stream``); StopRuntimeSession ends a session;
* lifecycle: every session's ``GET /ping`` is polled. A session idle for ``idleRuntimeSessionTimeout`` is
  ended (what counts as activity: the ping rule below); every session is ended at ``maxLifetime``; a session
  whose process died is recorded as crashed and the next invocation starts a fresh one. Every transition is
  recorded, and every live session's state (``GET /local/runtime-sessions``).

The ping rule, as AWS users measured it. AWS's guide shows ``/ping`` answering ``{"status": "HealthyBusy"}``
and calls its ``time_of_last_update`` field (seconds since the epoch) optional: "If you omit the field, the
platform tracks status changes on its own". Teams running long work on the Runtime measured otherwise:

* without the field the status is not read: the idle time counts from the latest invocation, and a session
  answering ``HealthyBusy`` is ended at the idle timeout mid-work (aws/bedrock-agentcore-sdk-python issue 471;
  fastagent-sh/fastagent pull request 314: ended at the last invocation + 180.0 s and + 61 s with idle timeouts
  of 180 and 60 s, after 55 ``HealthyBusy`` answers in a row; kept alive once the field was added). A field
  that is not a number (an ISO date) is as good as none (aws/bedrock-agentcore-sdk-typescript pull request 129);
* with the field, ``HealthyBusy`` keeps the session, and otherwise the session is idle since its latest
  invocation or the time in the field, whichever is later. A handler that stamps the current time on every ping
  is never idle: its sessions live until ``maxLifetime`` (aws-samples/sample-host-openclaw-on-amazon-bedrock-
  agentcore pull request 48: ``Healthy`` sessions alive for 4 hours with a 30-minute idle timeout;
  aws/bedrock-agentcore-sdk-python pull request 542: the SDK's A2A and AG-UI handlers did this, and their
  sessions lived until ``maxLifetime``);
* ``BedrockAgentCoreApp`` (bedrock-agentcore 1.25, ``runtime/app.py``: ``_handle_ping``,
  ``get_current_ping_status``) always sends the field: the time at which a ping first saw the current status,
  in whole seconds. So it is kept while it works and idle from the end of its work.

The emulator applies that rule (``measured``, the default): activity is an invocation (its start and its end),
a ``HealthyBusy`` ping carrying a numeric ``time_of_last_update``, and the time that field names (a time in the
future counts as now); the idle time counts from the latest activity. Where the sources disagree, the guide's
reading is an option: ``documented`` also counts a ``HealthyBusy`` ping without the field as activity (pull
request 542 relies on the guide when it drops the field). Choose it with ``LAB_EMULATOR_PING_RULE=documented``
or ``--ping-rule documented`` (:mod:`lab_helpers.emulator.__main__`); ``GET /local/runtime-sessions`` says which
rule is in force. An MCP server's session has no ``/ping`` here: its requests alone keep it, under both rules.

The artifact, locally, is a code directory on this machine, named where AWS names an S3 location::

    {"codeConfiguration": {"code": {"s3": {"bucket": "agentcore-local", "prefix": "/abs/path/to/servers"}},
                           "runtime": "PYTHON_3_11", "entryPoint": ["agent_app.py"]}}

and the session process is ``python <prefix>/<entryPoint[0]> --host 127.0.0.1 --port <free port>``, with the
runtime's ``environmentVariables`` and the emulator itself as its AgentCore endpoint. In AWS the same field
names an S3 zip (see :mod:`lab_helpers.deploy`).

Time: AWS accepts lifecycle settings of 60 s and more, and botocore enforces that. The emulator runs them on a
scaled clock, so that a lesson does not wait minutes for a rule to fire. Each runtime has its own scale: the
``LAB_TIME_SCALE`` in its ``environmentVariables`` when it has one (:func:`lab_helpers.deploy.deploy` puts the
deploying notebook's ``time_scale`` there), else the emulator's own ``LAB_TIME_SCALE``, read when it starts
(``GET /health`` says which). The same variable paces the session's code (the agent's training epochs), so the
code and the rules that judge it always run at one pace, whatever scale the emulator was started with (``make
lab`` starts it at 1.0; a notebook at 0.1 still gets a 6 s idle timeout). At 0.02 the 60-second minimum lasts
1.2 s and the default 15-minute idle timeout 18 s. A session keeps the scale and the lifecycle settings it
started with; an update of the runtime applies to the sessions started after it. A ``time_of_last_update`` in
whole seconds (as the SDKs send it) is read as the end of its second, never later than now: on AWS, with
timeouts of a minute or more, the rounding does not matter, but at 0.02 a second is 50 s of the runtime's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lab_helpers import config
from lab_helpers.emulator.errors import Conflict, Invalid, NotFound, StoreError
from lab_helpers.emulator.memory_store import ACCOUNT_ID, Store, random_suffix
from lab_helpers.processes import ServerProcess, ServerStartError

log = logging.getLogger(__name__)

LOCAL_BUCKET = "agentcore-local"
RUNTIME_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")
SESSION_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]*")
#: The protocols the emulator serves (AGUI agents answer /invocations and /ping, as HTTP ones); A2A is not emulated.
PROTOCOLS = {"HTTP", "MCP", "AGUI"}
DEFAULT_IDLE_SECONDS = 900  # AWS's defaults: 15 minutes idle, 8 hours in all
DEFAULT_MAX_LIFETIME_SECONDS = 28800
#: AWS's limit on an invocation payload (botocore's model: 100,000,000 bytes).
MAX_PAYLOAD_BYTES = 100_000_000
#: How often each session's /ping is polled, in seconds of its runtime's clock, and never more often than
#: MIN_PING_SECONDS real seconds (at CI's time scale, 25 pings a second per session would only load the machine).
#: Below a time scale of 0.01 AWS's shortest idle timeout (60 s) lasts less than three such polls: a busy session
#: could be ended between two of them, so lessons keep their scale at MIN_TIME_SCALE or above.
PING_SECONDS = 2.0
MIN_PING_SECONDS = 0.2
MIN_TIME_SCALE = 0.01
#: How long a session's process may take to answer (real seconds): an agent importing Strands on a loaded machine
#: can take tens of seconds; a process that exits sooner fails at once, with its log.
START_SECONDS = 120.0
#: The runtime environment variable that sets a runtime's clock (and its code's pace).
TIME_SCALE_VARIABLE = "LAB_TIME_SCALE"
#: What counts as activity in a /ping answer (see the module's docstring): the rule AWS users measured, the
#: default, or the one AWS's guide describes. The emulator's command reads its choice from this variable.
PING_RULES = ("measured", "documented")
PING_RULE_VARIABLE = "LAB_EMULATOR_PING_RULE"
#: Headers passed to the session process; Custom-* ones only when the runtime allow-lists them, as AWS does.
FORWARDED_HEADERS = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id")
CUSTOM_PREFIX = "x-amzn-bedrock-agentcore-runtime-custom-"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runtimes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,            -- the GetAgentRuntime answer (JSON), status kept in `status`
    status TEXT NOT NULL,
    client_token TEXT,
    created_at REAL NOT NULL
);
"""


class RuntimeClientError(StoreError):
    code = "RuntimeClientError"
    status = 424


@dataclass
class Session:
    """One runtime session: its process (the microVM stand-in) and what the lifecycle rules look at."""

    runtime_id: str
    session_id: str
    process: ServerProcess
    started_at: float
    last_activity: float  # monotonic: the latest activity the ping rule counts; the idle time counts from it
    last_invocation: float  # monotonic: the latest start or end of an invocation
    time_scale: float  # the runtime's clock when the session started
    idle_timeout: float  # real seconds, from the runtime's lifecycle configuration at that clock
    max_lifetime: float
    ping_status: str = "starting"
    time_of_last_update: float | None = None  # the field of the latest /ping answer, when it was a number
    next_check: float = 0.0  # when the lifecycle monitor looks at this session next (monotonic)
    in_flight: int = 0
    invocations: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)


class RuntimeService:
    """Agent runtimes (persisted) and their live sessions (processes), with the lifecycle monitor."""

    def __init__(self, store: Store, endpoint: str, settings: config.Settings | None = None) -> None:
        self.store = store
        self.endpoint = endpoint
        self.settings = settings or config.load()
        with store.lock:
            store.db.executescript(SCHEMA)
        self.sessions: dict[tuple[str, str], Session] = {}
        self.transitions: list[dict[str, Any]] = []
        self._starting = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        self._monitor: asyncio.Task[None] | None = None
        self.ping_rule = PING_RULES[0]  # "measured"; the emulator's command sets its --ping-rule here

    # -- time ------------------------------------------------------------------------------------
    def time_scale_of(self, doc: dict[str, Any]) -> float:
        """The runtime's clock: its own ``LAB_TIME_SCALE`` variable when it has one (checked on create), else ours."""
        value = doc.get("environmentVariables", {}).get(TIME_SCALE_VARIABLE)
        return self.settings.time_scale if value is None else float(value)

    # -- control plane ---------------------------------------------------------------------------
    def create(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        name = _check_name(body.get("agentRuntimeName"))
        conf = _check_configuration(body)
        token = body.get("clientToken")
        with self.store.lock:
            if token:
                row = self.store.db.execute("SELECT doc, status FROM runtimes WHERE client_token = ?",
                                            (token,)).fetchone()
                if row:
                    return _create_answer({**json.loads(row[0]), "status": row[1]})
            if self.store.db.execute("SELECT 1 FROM runtimes WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"An agent runtime named {name} already exists")
            now = time.time()
            runtime_id = f"{name}-{random_suffix()}"
            doc = {
                "agentRuntimeArn": f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}:runtime/{runtime_id}",
                "agentRuntimeName": name,
                "agentRuntimeId": runtime_id,
                "agentRuntimeVersion": "1",
                "createdAt": now,
                "lastUpdatedAt": now,
                "workloadIdentityDetails": {"workloadIdentityArn": f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}"
                                            f":workload-identity-directory/default/workload-identity/{name}"},
                **conf,
            }
            self.store.db.execute(
                "INSERT INTO runtimes (id, name, doc, status, client_token, created_at) VALUES (?,?,?,?,?,?)",
                (runtime_id, name, json.dumps(doc), "CREATING", token, now))
        return _create_answer({**doc, "status": "CREATING"})

    def get(self, runtime_id: str) -> dict[str, Any]:
        """The runtime; CREATING/UPDATING is seen once, then READY (provisioning is instant here)."""
        with self.store.lock:
            row = self.store.db.execute("SELECT doc, status FROM runtimes WHERE id = ?", (runtime_id,)).fetchone()
            if row is None:
                raise NotFound(f"Agent runtime {runtime_id} not found")
            doc, status = json.loads(row[0]), row[1]
            if status in ("CREATING", "UPDATING"):
                self.store.db.execute("UPDATE runtimes SET status = 'READY' WHERE id = ?", (runtime_id,))
        return {**doc, "status": status}

    def list(self, max_results: int, offset: int) -> tuple[list[dict[str, Any]], int | None]:
        with self.store.lock:
            rows = self.store.db.execute("SELECT doc, status FROM runtimes ORDER BY created_at, id LIMIT ? OFFSET ?",
                                         (max_results + 1, offset)).fetchall()
        keys = ("agentRuntimeArn", "agentRuntimeId", "agentRuntimeVersion", "agentRuntimeName", "description",
                "lastUpdatedAt")  # a runtime created without a description has none (the model allows no "")
        summaries = [{key: doc[key] for key in keys if key in doc} | {"status": status}
                     for doc, status in ((json.loads(r[0]), r[1]) for r in rows[:max_results])]
        return summaries, (offset + max_results if len(rows) > max_results else None)

    def update(self, runtime_id: str, body: dict[str, Any]) -> dict[str, Any]:
        conf = _check_configuration(body)
        with self.store.lock:
            current = self.get(runtime_id)
            doc = {key: value for key, value in current.items() if key != "status"}
            for key in ("description", "environmentVariables", "requestHeaderConfiguration"):
                doc.pop(key, None)  # an update replaces the configuration as a whole, as in AWS
            doc.update(conf, agentRuntimeVersion=str(int(doc["agentRuntimeVersion"]) + 1), lastUpdatedAt=time.time())
            self.store.db.execute("UPDATE runtimes SET doc = ?, status = 'UPDATING' WHERE id = ?",
                                  (json.dumps(doc), runtime_id))
        return {key: doc[key] for key in ("agentRuntimeArn", "agentRuntimeId", "agentRuntimeVersion", "createdAt",
                                          "lastUpdatedAt", "workloadIdentityDetails")} | {"status": "UPDATING"}

    async def delete(self, runtime_id: str) -> dict[str, Any]:
        doc = self.get(runtime_id)
        with self.store.lock:
            self.store.db.execute("DELETE FROM runtimes WHERE id = ?", (runtime_id,))
        for key in [key for key in self.sessions if key[0] == runtime_id]:
            await self._end(self.sessions[key], "runtime deleted")
        return {"status": "DELETING", "agentRuntimeId": runtime_id, "agentRuntimeVersion": doc["agentRuntimeVersion"]}

    # -- data plane ------------------------------------------------------------------------------
    def runtime_of_arn(self, arn: str) -> dict[str, Any]:
        runtime_id = arn.rsplit("/", 1)[-1] if arn.startswith("arn:") else arn
        try:
            doc = self.get(runtime_id)
        except NotFound:
            raise NotFound(f"No agent runtime {arn}: it was never created here, or it was deleted") from None
        if arn.startswith("arn:") and doc["agentRuntimeArn"] != arn:
            raise NotFound(f"No agent runtime {arn}")
        return doc

    async def invoke(self, request: Request, arn: str, body: bytes) -> Response:
        """Forward one request to the session's process, starting the process on the session's first call.

        The request was checked against InvokeAgentRuntime's input shape and its payload (``body``) read within
        AWS's limit (:mod:`lab_helpers.emulator.api`); what the session needs is worked out before any process
        starts, so a request refused here starts nothing.
        """
        doc = self.runtime_of_arn(arn)
        session_id = request.headers.get(SESSION_HEADER, "")
        if len(session_id) < 33 or len(session_id) > 256 or not SESSION_ID.fullmatch(session_id):
            raise Invalid(f"Value at 'runtimeSessionId' failed to satisfy constraint: Member must have length "
                          f"between 33 and 256 and match [a-zA-Z0-9][a-zA-Z0-9-_]*, got {len(session_id)} characters")
        protocol = doc["protocolConfiguration"]["serverProtocol"]
        allowed = {h.lower() for h in doc.get("requestHeaderConfiguration", {}).get("requestHeaderAllowlist", [])}
        headers = {name: value for name, value in request.headers.items()
                   if name in FORWARDED_HEADERS or (name.startswith(CUSTOM_PREFIX) and name in allowed)}
        headers[SESSION_HEADER] = session_id
        headers["X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"] = str(uuid.uuid4())
        path = "/mcp" if protocol == "MCP" else "/invocations"  # HTTP and AGUI agents: /invocations
        method = request.method if protocol == "MCP" else "POST"
        session = await self._session(doc, session_id)
        session.in_flight += 1
        session.invocations += 1
        session.last_activity = session.last_invocation = time.monotonic()
        try:
            upstream = await self._http.send(
                self._http.build_request(method, session.process.base_url + path, content=body, headers=headers),
                stream=True)
        except httpx.TransportError as error:
            self._done(session)
            await self._end(session, f"crashed ({type(error).__name__} talking to the session process)")
            raise RuntimeClientError(f"The runtime session's process did not answer: {error}") from error
        if protocol != "MCP" and upstream.status_code >= 400:
            text = (await upstream.aread()).decode(errors="replace")[:2000]
            await upstream.aclose()
            self._done(session)
            raise RuntimeClientError(f"Received error ({upstream.status_code}) from runtime: {text}")
        passed = {name: value for name, value in upstream.headers.items()
                  if name in ("content-type", "mcp-session-id", "mcp-protocol-version", "cache-control")}
        passed[SESSION_HEADER] = session_id

        async def finish() -> None:
            await upstream.aclose()
            self._done(session)

        return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code, headers=passed,
                                 background=BackgroundTask(finish))

    def _done(self, session: Session) -> None:
        session.in_flight -= 1
        session.last_activity = session.last_invocation = time.monotonic()

    async def stop_session(self, arn: str, session_id: str) -> Response:
        doc = self.runtime_of_arn(arn)
        session = self.sessions.get((doc["agentRuntimeId"], session_id))
        if session is None:
            raise NotFound(f"No runtime session {session_id} is running for {doc['agentRuntimeArn']}")
        await self._end(session, "stopped by StopRuntimeSession")
        return Response(json.dumps({}), media_type="application/json", headers={SESSION_HEADER: session_id})

    async def _session(self, doc: dict[str, Any], session_id: str) -> Session:
        """The live session for this id, or a new one (its process started and answering)."""
        key = (doc["agentRuntimeId"], session_id)
        async with self._starting:
            session = self.sessions.get(key)
            if session is not None and not session.process.is_running:
                await self._end(session, f"crashed (exit code {session.process.returncode})")
                session = None
            if session is None:
                session = await self._start(doc, session_id)
                self.sessions[key] = session
        return session

    async def _start(self, doc: dict[str, Any], session_id: str) -> Session:
        code = doc["agentRuntimeArtifact"]["codeConfiguration"]
        protocol = doc["protocolConfiguration"]["serverProtocol"]
        env = {
            TIME_SCALE_VARIABLE: repr(self.time_scale_of(doc)),  # the code runs on the runtime's clock
            **doc.get("environmentVariables", {}),
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": self.endpoint,
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL": self.endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local-emulator"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local-emulator"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        process = ServerProcess(_entry_script(code), settings=self.settings, env=env,
                                ready_path=None if protocol == "MCP" else "/ping", ready_timeout=START_SECONDS,
                                name=f"runtime-{doc['agentRuntimeName']}-{session_id[:12]}")
        self._record(doc["agentRuntimeId"], session_id, "starting", f"process for {process.script.name}")
        try:
            await asyncio.to_thread(process.start)
        except (ServerStartError, OSError) as error:
            self._record(doc["agentRuntimeId"], session_id, "ended", "failed to start")
            raise RuntimeClientError(f"The runtime session could not start: {error}") from error
        now = time.monotonic()
        scale, lifecycle = self.time_scale_of(doc), doc["lifecycleConfiguration"]
        session = Session(doc["agentRuntimeId"], session_id, process, started_at=now, last_activity=now,
                          last_invocation=now, time_scale=scale,
                          idle_timeout=lifecycle["idleRuntimeSessionTimeout"] * scale,
                          max_lifetime=lifecycle["maxLifetime"] * scale)
        await self._ping(session)
        return session

    async def _end(self, session: Session, reason: str) -> None:
        self.sessions.pop((session.runtime_id, session.session_id), None)
        await asyncio.to_thread(session.process.stop, 2.0)
        self._record(session.runtime_id, session.session_id, "ended", reason)

    def _record(self, runtime_id: str, session_id: str, state: str, detail: str = "") -> None:
        self.transitions.append({"at": time.time(), "runtimeId": runtime_id, "sessionId": session_id,
                                 "state": state, "detail": detail})

    # -- lifecycle -------------------------------------------------------------------------------
    def start_monitor(self) -> None:
        self._monitor = asyncio.get_running_loop().create_task(self._watch(), name="runtime-lifecycle")

    async def shutdown(self) -> None:
        if self._monitor:
            self._monitor.cancel()
        for session in list(self.sessions.values()):
            await self._end(session, "emulator stopped")
        await self._http.aclose()

    async def _watch(self) -> None:
        """Apply the lifecycle rules to every session, forever: each one once per ping interval of its clock."""
        while True:
            await asyncio.sleep(MIN_PING_SECONDS)
            for session in list(self.sessions.values()):
                now = time.monotonic()
                if now < session.next_check:
                    continue
                session.next_check = now + max(MIN_PING_SECONDS, PING_SECONDS * session.time_scale)
                try:
                    await self._check(session)
                except Exception:  # noqa: BLE001 - one bad session must not stop the monitor
                    log.exception("lifecycle check of session %s failed", session.session_id)

    async def _check(self, session: Session) -> None:
        if (session.runtime_id, session.session_id) not in self.sessions:
            return
        if not session.process.is_running:
            await self._end(session, f"crashed (exit code {session.process.returncode})")
            return
        await self._ping(session)
        now = time.monotonic()
        if now - session.started_at >= session.max_lifetime:
            await self._end(session, "max lifetime reached")
        elif session.in_flight == 0 and now - session.last_activity >= session.idle_timeout:
            await self._end(session, "idle timeout")

    async def _ping(self, session: Session) -> None:
        """Ask the session how it is, and count what the ping rule calls activity (the module's docstring)."""
        stamp = None
        if session.process.ready_path is None:  # an MCP server: alive is all we can know
            status = "Healthy"
        else:
            try:
                answer = (await self._http.get(session.process.base_url + "/ping", timeout=2.0)).json()
                status = str(answer.get("status", "Unknown"))
                stamp = _time_of_last_update(answer)
            except (httpx.HTTPError, ValueError, AttributeError):  # AttributeError: JSON that is not an object
                status = "Unresponsive"
        now = time.monotonic()
        session.time_of_last_update = stamp
        if status == "HealthyBusy" and (stamp is not None or self.ping_rule == "documented"):
            session.last_activity = now  # busy, and said so in a way the rule reads
        elif stamp is not None:  # idle since the time the field names, if that is later than what came before
            named = min(time.time(), stamp + 1.0 if stamp.is_integer() else stamp)  # whole seconds: see "Time"
            session.last_activity = max(session.last_activity, now - (time.time() - named))
        if status != session.ping_status:
            session.ping_status = status
            self._record(session.runtime_id, session.session_id, status)

    def report(self) -> dict[str, Any]:
        """Live sessions and every transition so far (``GET /local/runtime-sessions``).

        ``time_scale`` is the emulator's own (runtimes without a ``LAB_TIME_SCALE`` use it), ``pingRule`` the rule
        in force; each session says its own scale, and its age, idle time and limits in real seconds: idle counts
        from its latest activity under that rule (``sinceInvocationSeconds`` from its latest invocation alone,
        ``timeOfLastUpdate`` is the field of its latest ``/ping`` answer or None), and reaching
        ``idleTimeoutSeconds`` (with no invocation in flight) or ``maxLifetimeSeconds`` ends it.
        """
        now = time.monotonic()
        return {
            "time_scale": self.settings.time_scale,
            "pingRule": self.ping_rule,
            "sessions": [{"runtimeId": s.runtime_id, "sessionId": s.session_id, "pid": s.process.pid,
                          "ping": s.ping_status, "timeOfLastUpdate": s.time_of_last_update,
                          "invocations": s.invocations, "inFlight": s.in_flight,
                          "timeScale": s.time_scale, "ageSeconds": round(now - s.started_at, 3),
                          "idleSeconds": round(now - s.last_activity, 3),
                          "sinceInvocationSeconds": round(now - s.last_invocation, 3),
                          "idleTimeoutSeconds": round(s.idle_timeout, 3),
                          "maxLifetimeSeconds": round(s.max_lifetime, 3)} for s in self.sessions.values()],
            "transitions": self.transitions,
        }


def _time_of_last_update(answer: dict[str, Any]) -> float | None:
    """A /ping answer's ``time_of_last_update`` (seconds since the epoch), or None when it has no numeric one."""
    value = answer.get("time_of_last_update")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # absent, or an ISO date or other text, which AWS ignores too (see the module's docstring)
    try:
        stamp = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return stamp if math.isfinite(stamp) else None


def _create_answer(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: doc[key] for key in ("agentRuntimeArn", "agentRuntimeId", "agentRuntimeVersion", "createdAt",
                                      "workloadIdentityDetails", "status")}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not RUNTIME_NAME.fullmatch(name):
        raise Invalid(f"Value {name!r} at 'agentRuntimeName' failed to satisfy constraint: Member must satisfy "
                      f"regular expression pattern: {RUNTIME_NAME.pattern}")
    return name


def _entry_script(code: dict[str, Any]) -> Path:
    """The script a session runs: the last entry of ``entryPoint`` (AWS's two-entry form puts a launcher such as
    ``opentelemetry-instrument`` first) in the code directory ``code.s3.prefix``."""
    return Path(code["code"]["s3"]["prefix"]) / code["entryPoint"][-1]


def _check_configuration(body: dict[str, Any]) -> dict[str, Any]:
    """The runtime's configuration from a Create/Update body; what Get returns of it.

    The body already fits the operation's input shape (types, enums, ranges: :mod:`lab_helpers.emulator.shapes`);
    this adds what the model cannot say: the code is a directory on this machine, the entry point a script inside
    it, the protocol and runtime ones the emulator runs. Anything else is a ValidationException that says why.
    """
    artifact = body["agentRuntimeArtifact"]
    if "codeConfiguration" not in artifact:
        raise Invalid("The local emulator runs code directories only: use codeConfiguration with code.s3.bucket "
                      f"'{LOCAL_BUCKET}' and code.s3.prefix the directory (containerConfiguration needs AWS)")
    code = artifact["codeConfiguration"]
    if not code["runtime"].startswith("PYTHON_"):
        raise Invalid(f"runtime {code['runtime']!r} is not emulated: the local emulator runs Python entry points")
    s3 = code["code"].get("s3")
    if s3 is None or s3["bucket"] != LOCAL_BUCKET:
        raise Invalid(f"The local emulator reads code from a directory: set code.s3.bucket to '{LOCAL_BUCKET}' and "
                      f"code.s3.prefix to the directory's absolute path (got bucket {(s3 or {}).get('bucket')!r})")
    directory = Path(s3["prefix"])
    if not directory.is_absolute() or not directory.is_dir():
        raise Invalid(f"code.s3.prefix must be an existing directory's absolute path, got {str(directory)!r}")
    script = _entry_script(code)
    inside = script.resolve().is_relative_to(directory.resolve())
    if not inside or not script.is_file():
        where = "a script inside" if not inside else "a script in"
        raise Invalid(f"entryPoint must name {where} {directory}, got {code['entryPoint']!r}")
    protocol = body.get("protocolConfiguration", {"serverProtocol": "HTTP"})["serverProtocol"]
    if protocol not in PROTOCOLS:
        raise Invalid(f"serverProtocol {protocol!r} is not emulated: use HTTP, MCP or AGUI")
    lifecycle = body.get("lifecycleConfiguration", {})
    idle = lifecycle.get("idleRuntimeSessionTimeout", DEFAULT_IDLE_SECONDS)
    longest = lifecycle.get("maxLifetime", DEFAULT_MAX_LIFETIME_SECONDS)
    if idle > longest:
        raise Invalid(f"idleRuntimeSessionTimeout ({idle}) must not exceed maxLifetime ({longest})")
    conf: dict[str, Any] = {
        "agentRuntimeArtifact": artifact,
        "roleArn": body["roleArn"],
        "networkConfiguration": body.get("networkConfiguration") or {"networkMode": "PUBLIC"},
        "protocolConfiguration": {"serverProtocol": protocol},
        "lifecycleConfiguration": {"idleRuntimeSessionTimeout": idle, "maxLifetime": longest},
    }
    for key in ("description", "environmentVariables", "requestHeaderConfiguration"):
        if body.get(key):  # none given, none kept: the model allows no empty description
            conf[key] = body[key]
    _check_time_scale(conf.get("environmentVariables", {}).get(TIME_SCALE_VARIABLE))
    return conf


def _check_time_scale(value: Any) -> None:
    """A runtime's own clock (its ``LAB_TIME_SCALE`` variable), if it has one, must be a scale the workbench accepts."""
    if value is None:
        return
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = math.nan
    if not 0.0 <= scale <= config.MAX_TIME_SCALE:  # also rejects nan
        raise Invalid(f"environmentVariables.{TIME_SCALE_VARIABLE} sets the runtime's clock in the local emulator: "
                      f"it must be a number between 0 and {config.MAX_TIME_SCALE:g}, got {value!r}")
