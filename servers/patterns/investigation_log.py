"""Notebook 07: an investigation's state lives in AgentCore Memory, and any agent rebuilds it from there alone.

An investigation lasts days; every session of every agent working on it lasts minutes. So no process holds the
investigation: each step is written to Memory as it happens, and an agent started with nothing in it (a new
microVM, a new session) calls :func:`reconstruct` to learn where things stand. This module is the one place that
knows the layout:

* **one investigation = one Memory session.** The actor is the team that investigates (``LAB_INVESTIGATION_ACTOR``,
  e.g. ``acme-bank/fraud-desk``; a tenant, then a team, as notebook 06's namespaces expect), the session id is the
  investigation id (``inv-techcorp-3f9a...``, :func:`new_investigation_id`). Every agent writes its steps as events
  of that actor and session; ListSessions of the actor lists the investigations (:func:`investigation_ids`).
* **one step = one event** (CreateEvent): a ``blob`` with ``{"kind", "by", "data"}`` (:data:`KINDS`: ``opened``,
  ``delegated``, ``finding``, ``retrieval_done``, ``bank_requested``, ``bank_delivered``, ``review_step``,
  ``report_filed``, ``outcome_told``), the kind again as event metadata (for people browsing the events), and for
  what should be remembered for long (findings, the report) a ``conversational`` text, which the memory's
  strategies (notebook 06's ``STRATEGIES``) extract into long-term records: facts under
  ``/tenants/<actor>/facts/``, a summary per investigation under ``/tenants/<actor>/summaries/<investigation>/``.
* **steps that must happen once carry a client token** (:func:`client_token`, derived from the investigation id
  and the step): a repeated CreateEvent with the same token returns the first event instead of writing a second
  (the emulator does; AWS documents the same idempotency). Writers also look in Memory before doing the work, since
  an idempotency token is not promised to be remembered for days: the token closes the race between two
  deliveries at once, the look in Memory covers the days.
* **reading is unfiltered and sorted here**: ListEvents answers newest first, 100 at most per page, and on AWS a
  ListEvents with a metadata filter is eventually consistent (an event just written may be missing from it); so
  :func:`entries` reads every page without a filter and sorts oldest first.

AWS counterpart: exactly this, on AgentCore Memory in your region (the runtimes' role needs CreateEvent, ListEvents,
ListSessions and RetrieveMemoryRecords on the memory, which ``lab_helpers.deploy.role_policy`` grants). A workflow
engine (Step Functions, Temporal) would keep such state for you; notebook 07 explains when to reach for one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

#: Where an agent finds the memory and the investigating team when a payload does not say (set at deploy time).
MEMORY_VARIABLE = "LAB_MEMORY_ID"
ACTOR_VARIABLE = "LAB_INVESTIGATION_ACTOR"
DEFAULT_ACTOR = "acme-bank/fraud-desk"

#: The steps of an investigation, in the order they usually happen.
KINDS = ("opened", "delegated", "finding", "retrieval_done", "bank_requested", "bank_delivered", "review_step",
         "report_filed", "outcome_told")
#: The metadata key that carries an event's kind (and marks the event as an investigation step).
KIND_KEY = "investigationStep"
#: Where the memory's semantic strategy (notebook 06's ``STRATEGIES``) puts facts, and its summaries.
FACTS_NAMESPACE = "/tenants/{actorId}/facts/"
SUMMARY_NAMESPACE = "/tenants/{actorId}/summaries/{sessionId}/"

_INVESTIGATION_ID = re.compile(r"inv-[a-z0-9-]{1,40}-[0-9a-f]{12}")


@dataclass(frozen=True)
class InvestigationRef:
    """Where one investigation lives: the memory, the team (actor) and the investigation id (the session)."""

    memory_id: str
    actor_id: str
    investigation_id: str

    @classmethod
    def from_environment(cls, investigation_id: str, memory_id: str | None = None) -> InvestigationRef:
        """The investigation in the memory and team the environment names (``LAB_MEMORY_ID``,
        ``LAB_INVESTIGATION_ACTOR``)."""
        memory = memory_id or os.environ.get(MEMORY_VARIABLE, "").strip()
        if not memory:
            raise ValueError(f"no memory id: send 'memory_id' or deploy with {MEMORY_VARIABLE} in the environment")
        return cls(memory, os.environ.get(ACTOR_VARIABLE, "").strip() or DEFAULT_ACTOR,
                   check_investigation_id(investigation_id))


@dataclass(frozen=True)
class Entry:
    """One step as read back from Memory."""

    event_id: str
    at: float  # the event's timestamp, seconds since the epoch
    kind: str
    by: str  # which agent wrote it
    data: dict[str, Any]
    text: str | None = None


@dataclass
class Investigation:
    """Where an investigation stands, as :func:`reconstruct` rebuilt it from Memory alone."""

    investigation_id: str
    company: str
    opened_at: float
    plan: list[str] = field(default_factory=list)
    delegations: dict[str, dict[str, Any]] = field(default_factory=dict)  # worker -> what the delegation said
    findings: list[dict[str, Any]] = field(default_factory=list)
    retrieval_done: dict[str, Any] | None = None
    bank_request: dict[str, Any] | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    review_steps: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)  # one, when everything went right
    told: list[dict[str, Any]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    @property
    def report(self) -> dict[str, Any] | None:
        return self.reports[0] if self.reports else None

    @property
    def stage(self) -> str:
        """One phrase: the furthest step reached."""
        if self.report is not None:
            return "report filed, outcome told" if self.told else "report filed"
        if self.deliveries:
            return "bank records delivered, under review"
        if self.bank_request is not None:
            return "waiting for the bank"
        if self.retrieval_done is not None or self.findings:
            return "internal records checked" if self.retrieval_done else "checking internal records"
        return "delegated" if self.delegations else "opened"

    def summary(self) -> dict[str, Any]:
        """The facts a person (or a table) wants, as plain values."""
        return {"investigation": self.investigation_id, "company": self.company, "stage": self.stage,
                "delegated to": ", ".join(sorted(self.delegations)) or "-", "findings": len(self.findings),
                "bank request": (self.bank_request or {}).get("request_id", "-"), "deliveries": len(self.deliveries),
                "reports": len(self.reports), "events": len(self.entries)}


def new_investigation_id(company: str) -> str:
    """A fresh investigation id that says whom it is about: ``inv-techcorp-<12 hex>`` (a valid Memory session id)."""
    slug = re.sub(r"[^a-z0-9]+", "-", company.lower()).strip("-")[:40] or "company"
    return f"inv-{slug}-{uuid.uuid4().hex[:12]}"


def check_investigation_id(value: Any) -> str:
    """``value`` if it is an investigation id, else a ValueError that shows one."""
    if not isinstance(value, str) or not _INVESTIGATION_ID.fullmatch(value):
        raise ValueError(f"investigation_id must look like 'inv-techcorp-0123456789ab', got {value!r}")
    return value


def find_investigation_id(text: str) -> str | None:
    """The first investigation id in a text, if any (what a user pastes into a question)."""
    match = _INVESTIGATION_ID.search(text)
    return match.group(0) if match else None


def memory_client(region: str | None = None) -> Any:
    """A ``bedrock-agentcore`` data-plane client (retried calls are safe: the steps that matter carry tokens)."""
    import boto3
    from botocore.config import Config

    return boto3.client("bedrock-agentcore", region_name=region or os.environ.get("AWS_REGION") or "us-east-1",
                        config=Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=3,
                                      read_timeout=20))


def new_runtime_session_id() -> str:
    """A fresh runtime session id (AWS wants 33 characters or more): a new session, a new microVM."""
    return f"inv-session-{uuid.uuid4().hex}"


def invoke_agent(arn: str, payload: dict[str, Any], session_id: str, region: str | None = None) -> Any:
    """InvokeAgentRuntime: ``payload`` to the runtime ``arn`` in session ``session_id``; its JSON answer.

    How one agent (or the bank's callback) calls another. The same call as ``lab_helpers.deploy.invoke``, which
    notebooks use; deployed code makes it with boto3 itself and leaves the deployment machinery out of its
    microVM. One attempt, no retry: a retried invocation would run the work twice, so the caller decides (the
    bank retries in a new session; the workers look in Memory first). A failed invocation raises botocore's
    ``ClientError`` (``RuntimeClientError`` when the agent answered 4xx/5xx or died mid-request).
    """
    import boto3
    from botocore.config import Config

    client = boto3.client("bedrock-agentcore", region_name=region or os.environ.get("AWS_REGION") or "us-east-1",
                          config=Config(read_timeout=900, retries={"total_max_attempts": 1}))
    reply = client.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session_id, qualifier="DEFAULT",
                                        payload=json.dumps(payload).encode(), contentType="application/json",
                                        accept="application/json")
    body = reply["response"].read()
    return json.loads(body) if body.strip() else {}


def client_token(ref: InvestigationRef, step: str) -> str:
    """The CreateEvent client token of a step that must happen once: the same investigation and step, the same token."""
    digest = hashlib.sha256(f"{ref.memory_id}|{ref.actor_id}|{ref.investigation_id}|{step}".encode()).hexdigest()
    return f"{re.sub(r'[^a-zA-Z0-9-]', '-', step)[:24]}-{digest[:40]}"


def record(client: Any, ref: InvestigationRef, kind: str, data: dict[str, Any], *, by: str,
           text: str | None = None, once_as: str | None = None) -> dict[str, Any]:
    """Write one step (CreateEvent) and return the event.

    ``text`` is for long-term memory: it becomes a conversational message the strategies extract from.
    ``once_as`` names a step that must happen once (``"report"``): its client token makes a repeat return the
    first event instead of a second one.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    payload: list[dict[str, Any]] = [{"blob": json.dumps({"kind": kind, "by": by, "data": data})}]
    if text:
        payload.append({"conversational": {"role": "ASSISTANT", "content": {"text": text}}})
    request: dict[str, Any] = {"memoryId": ref.memory_id, "actorId": ref.actor_id, "sessionId": ref.investigation_id,
                               "eventTimestamp": time.time(), "payload": payload,
                               "metadata": {KIND_KEY: {"stringValue": kind}}}
    if once_as is not None:
        request["clientToken"] = client_token(ref, once_as)
    return client.create_event(**request)["event"]


def _entry(event: dict[str, Any]) -> Entry | None:
    """The step an event records, or None for an event that is not a step (another writer's)."""
    blob, text = None, None
    for item in event.get("payload", []):
        if "blob" in item:
            try:
                blob = json.loads(item["blob"]) if isinstance(item["blob"], str) else item["blob"]
            except ValueError:
                return None
        elif "conversational" in item:
            text = item["conversational"].get("content", {}).get("text")
    if not isinstance(blob, dict) or blob.get("kind") not in KINDS:
        return None
    stamp = event["eventTimestamp"]
    at = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
    return Entry(event["eventId"], at, blob["kind"], str(blob.get("by", "?")), dict(blob.get("data") or {}), text)


def entries(client: Any, ref: InvestigationRef) -> list[Entry]:
    """Every step of the investigation, oldest first: all ListEvents pages, unfiltered, sorted here."""
    found: list[Entry] = []
    token = None
    while True:
        request = {"memoryId": ref.memory_id, "actorId": ref.actor_id, "sessionId": ref.investigation_id,
                   "includePayloads": True, "maxResults": 100, **({"nextToken": token} if token else {})}
        try:
            page = client.list_events(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []  # no event yet: no such investigation
            raise
        found.extend(entry for entry in map(_entry, page.get("events", [])) if entry is not None)
        token = page.get("nextToken")
        if not token:
            return sorted(found, key=lambda entry: (entry.at, entry.event_id))


def reconstruct(client: Any, ref: InvestigationRef) -> Investigation | None:
    """Where the investigation stands, from Memory alone; None when Memory holds no step of it (unknown id)."""
    steps = entries(client, ref)
    opened = next((entry for entry in steps if entry.kind == "opened"), None)
    if opened is None:
        return None
    state = Investigation(ref.investigation_id, str(opened.data.get("company", "?")), opened.at,
                          list(opened.data.get("plan", [])), entries=steps)
    seen_reports: set[str] = set()
    for entry in steps:
        data = {**entry.data, "at": entry.at, "event_id": entry.event_id}
        if entry.kind == "delegated":
            state.delegations[str(entry.data.get("worker"))] = data  # the latest word on each worker
        elif entry.kind == "finding":
            if all(f.get("check") != entry.data.get("check") for f in state.findings):
                state.findings.append(data)
        elif entry.kind == "retrieval_done":
            state.retrieval_done = state.retrieval_done or data
        elif entry.kind == "bank_requested":
            state.bank_request = state.bank_request or data
        elif entry.kind == "bank_delivered":
            state.deliveries.append(data)
        elif entry.kind == "review_step":
            state.review_steps.append(data)
        elif entry.kind == "report_filed" and entry.event_id not in seen_reports:
            seen_reports.add(entry.event_id)
            state.reports.append(data)
        elif entry.kind == "outcome_told":
            state.told.append(data)
    return state


def investigation_ids(client: Any, memory_id: str, actor_id: str) -> list[str]:
    """The team's investigations (its Memory sessions), newest first."""
    sessions: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.list_sessions(memoryId=memory_id, actorId=actor_id, maxResults=100,
                                    **({"nextToken": token} if token else {}))
        sessions.extend(page.get("sessionSummaries", []))
        token = page.get("nextToken")
        if not token:
            break
    ordered = sorted(sessions, key=lambda s: s["createdAt"].timestamp() if hasattr(s["createdAt"], "timestamp")
                     else float(s["createdAt"]), reverse=True)
    return [s["sessionId"] for s in ordered if _INVESTIGATION_ID.fullmatch(s["sessionId"])]


def recall(client: Any, ref: InvestigationRef, query: str, top_k: int = 5) -> list[str]:
    """What long-term memory holds that matches ``query``: the team's facts, and this investigation's summary.

    RetrieveMemoryRecords over the namespaces the strategies fill (:data:`FACTS_NAMESPACE`,
    :data:`SUMMARY_NAMESPACE`), best first. Records arrive some time after their events (extraction is
    asynchronous): a session started right after a finding may not find it here yet, while :func:`reconstruct`
    already does.
    """
    texts: list[str] = []
    for template in (FACTS_NAMESPACE, SUMMARY_NAMESPACE):
        namespace = template.format(actorId=ref.actor_id, sessionId=ref.investigation_id)
        found = client.retrieve_memory_records(memoryId=ref.memory_id, namespace=namespace,
                                               searchCriteria={"searchQuery": query, "topK": top_k})
        texts.extend(r["content"]["text"] for r in found.get("memoryRecordSummaries", []))
    return list(dict.fromkeys(texts))
