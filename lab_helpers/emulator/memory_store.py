"""The emulator's durable store: one SQLite database in WAL mode, no HTTP here.

What is stored
--------------
* ``memories``: the control-plane resources (id ``<name>-<10 alphanumerics>`` as AWS generates them, ARN,
  strategies with generated strategy ids and namespace templates, status). A memory is ``CREATING`` when
  CreateMemory answers and becomes ``ACTIVE`` on the first GetMemory after that (so
  ``MemoryClient.create_memory_and_wait`` sees both states without any timer). DeleteMemory removes the memory,
  its events and its records at once.
* ``events``: short-term memory. Every event belongs to exactly one (memory, actor, session); every read query
  carries all three, so an event is never visible under another actor or session. Event ids look like AWS's
  (``<19-digit epoch ms>#<8 hex>``). Listing is newest first by ``eventTimestamp`` (ties: newest write first),
  paginated with an opaque keyset token, so pages never repeat or skip an event even while events are added.
  ``clientToken`` is unique per memory: a repeated token returns the event first stored under it.
* ``sessions``: one row per (memory, actor, session), written with the first event (ListSessions, ListActors).
* ``records`` + ``records_fts``: long-term memory records.

Long-term memory: strategies, asynchronous extraction, records
---------------------------------------------------------------
A memory's strategies (CreateMemory, and UpdateMemory's add/modify/delete) get AWS-style ids
(``<name>-<10 alphanumerics>``), a type (SEMANTIC, SUMMARIZATION, USER_PREFERENCE, CUSTOM, EPISODIC) and one
namespace template each, AWS's defaults when none is given; a template may use ``{actorId}``, ``{sessionId}``,
``{memoryStrategyId}`` and the memory's ``namespaceKeys`` (anything else is a ValidationException). A strategy
added by UpdateMemory is ``CREATING`` in the answer and the memory ``UPDATING``; the next GetMemory sees both
``ACTIVE`` (no timer, as with CreateMemory). A deleted strategy disappears at once; its records stay.

Extraction runs after the event is stored, as on AWS: CreateEvent (unless its ``extractionMode`` is ``SKIP``)
queues the event in ``extraction_queue`` (durable: a restarted emulator extracts what was queued), and a
background thread extracts it ``extraction_delay`` real seconds later (``--extraction-delay`` /
``LAB_EMULATOR_EXTRACTION_DELAY``, given in lesson seconds and scaled by the time scale), grouped per session,
once per strategy, into the strategy's namespace with the variables filled in. The emulator's command extracts 30
lesson seconds after the event by default (AWS reportedly within 20-40 s); with a delay of 0 (this class's default,
for tests that call it directly) extraction happens inside CreateEvent. What a strategy draws from messages is
:mod:`lab_helpers.emulator.extractors` (offline stand-ins, or ``LAB_MODEL`` with the lab's prompts; labelled so in
each record's ``metadata.extractor``); the extraction thread runs them without holding the store's lock.
A strategy whose extractor raises leaves a FAILED extraction job (ListMemoryExtractionJobs, whose model knows no
other job status); StartMemoryExtractionJob queues that job's messages again for its strategy.

Records can also be written directly: BatchCreate/BatchUpdate/BatchDeleteMemoryRecords answer per record
(``successfulRecords``/``failedRecords`` with an HTTP-style ``errorCode``), as AWS does. Left out: their
``clientToken`` idempotency and ``recordExpirySpecification`` (records never expire here), and a BatchCreate
record without ``memoryStrategyId`` (failed with 400: the emulator files every record under a strategy).
metadataFilters on retrieval and listing support EQUALS_TO, EXISTS and NOT_EXISTS on string values; the other
operators are refused with a ValidationException that says so.

Search is lexical, not semantic: RetrieveMemoryRecords runs an SQLite FTS5 ``MATCH`` over the record texts
of its namespace scope (any query word, porter stemming, the best 1,000 by BM25, then ranked by ``score``,
BM25 among equal scores). ``score`` is the share of the query's distinct words found in the record (a word
counts when it equals, or shares a prefix of at least 4 letters with, a record word), in (0, 1]: plain to
reason about, and comparable with the SDK's ``relevance_score`` threshold (default 0.2). A query
that shares no word with a record does not find it, even when a semantic search would.

Eventual consistency of filtered listings (an option, off by default)
---------------------------------------------------------------------
AgentCore users report that a ListEvents with a metadata filter (``filter.eventMetadata``) is eventually
consistent: an event acknowledged a moment ago may be missing from it, while the unfiltered ListEvents already
returns it (aws/bedrock-agentcore-sdk-python issue 564: the Strands session manager then restores no history).
``Store(path, filtered_listing_delay=s)`` (the emulator's ``--filtered-listing-delay SECONDS``, or
``LAB_EMULATOR_FILTER_DELAY``) reproduces it: an event stays invisible to metadata-filtered listings for ``s``
real seconds after it was stored (not scaled by ``LAB_TIME_SCALE``: it stands for the service's indexing lag).
Unfiltered and branch-only listings, GetEvent and ListSessions stay strongly consistent. The lag is held in
memory: a restarted emulator has indexed every event it finds in its database.

Durability
----------
``journal_mode=WAL`` with ``synchronous=NORMAL``: every write is its own short transaction, and the HTTP answer is
sent only after the commit returned, so an acknowledged write survives a crash of the emulator process (SIGKILL).
(A power loss may lose the last transactions; that is not what this emulator promises.)
"""

from __future__ import annotations

import base64
import collections
import json
import re
import secrets
import sqlite3
import string
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from lab_helpers.emulator import extractors
from lab_helpers.emulator.errors import Conflict, Invalid, NotFound, StoreError

ACCOUNT_ID = "123456789012"
_ALNUM = string.ascii_letters + string.digits

STRATEGY_TYPES = {
    "semanticMemoryStrategy": "SEMANTIC",
    "summaryMemoryStrategy": "SUMMARIZATION",
    "userPreferenceMemoryStrategy": "USER_PREFERENCE",
    "customMemoryStrategy": "CUSTOM",
    "episodicMemoryStrategy": "EPISODIC",
}
DEFAULT_NAMESPACES = {
    "SEMANTIC": ["/strategies/{memoryStrategyId}/actors/{actorId}/"],
    "SUMMARIZATION": ["/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"],
    "USER_PREFERENCE": ["/strategies/{memoryStrategyId}/actors/{actorId}/"],
    "EPISODIC": ["/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"],
    "CUSTOM": ["custom/{actorId}/{sessionId}/"],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,            -- the Memory structure as returned (JSON), status kept in `status`
    status TEXT NOT NULL,
    client_token TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_ts REAL NOT NULL,
    payload TEXT NOT NULL,
    branch TEXT,                  -- Branch structure (JSON) or NULL for the main branch
    branch_name TEXT,
    metadata TEXT,                -- {key: stringValue} (JSON) or NULL
    client_token TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (memory_id, event_id);
CREATE INDEX IF NOT EXISTS events_by_session ON events (memory_id, actor_id, session_id, event_ts, seq);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_token ON events (memory_id, client_token) WHERE client_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    memory_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (memory_id, actor_id, session_id)
);
CREATE TABLE IF NOT EXISTS records (
    rid INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    memory_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    event_id TEXT
);
CREATE INDEX IF NOT EXISTS records_by_memory ON records (memory_id, namespace);
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(text, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS extraction_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    strategy_id TEXT,             -- NULL: every strategy of the memory (a retried job: its one strategy)
    variables TEXT,               -- the event's extractionConfig.namespaceVariables (JSON) or NULL
    due REAL NOT NULL             -- epoch seconds
);
CREATE TABLE IF NOT EXISTS extraction_jobs (
    job_id TEXT PRIMARY KEY,
    memory_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    messages TEXT NOT NULL,       -- [{eventId, messageIndex}] (JSON)
    variables TEXT,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
#: Columns added to ``records`` after its first version (a database from an older emulator gets them on open).
RECORD_COLUMNS = {"metadata": "TEXT", "ts": "REAL", "skey": "TEXT"}


@dataclass(frozen=True)
class Plan:
    """One extraction of a session's new events: what it read, and each strategy with its filled-in namespace."""

    memory_id: str
    actor_id: str
    session_id: str
    variables: dict[str, str]
    new: list[tuple[str, int, extractors.Message]]  # (eventId, messageIndex, message)
    session: list[tuple[str, int, extractors.Message]]
    targets: list[tuple[dict[str, Any], str]]  # (strategy, namespace)


def random_suffix(n: int = 10) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except Exception as exc:  # noqa: BLE001 - any garbage token is the caller's mistake
        raise Invalid("nextToken is not a token this service issued", "CannotParse") from exc


#: The largest offset a forged page token may name (SQLite's integers are 64-bit; no list here is that long).
MAX_OFFSET = 2**31


def _offset_token(token: str | None) -> int:
    if token is None:
        return 0
    value = _decode_token(token)
    if type(value) is not int or not 0 <= value <= MAX_OFFSET:  # not a bool, a list, a float or a huge number
        raise Invalid("nextToken is not a token this service issued", "CannotParse")
    return value


def _position_token(token: str) -> tuple[float, int]:
    """The (eventTimestamp, seq) a ListEvents page token stands for; anything else a forged token."""
    value = _decode_token(token)
    if (isinstance(value, list) and len(value) == 2 and type(value[0]) in (int, float)
            and 0 <= value[0] < 253402300800 and type(value[1]) is int and 0 <= value[1] < 2**63):
        return float(value[0]), value[1]
    raise Invalid("nextToken is not a token this service issued", "CannotParse")


def record_text(text: str) -> str:
    """The text a record keeps of a conversational message (Strands messages: their text parts)."""
    if text[:1] == "{":
        try:
            doc = json.loads(text)
            content = doc.get("message", doc).get("content")
            parts = [c["text"] for c in content if isinstance(c, dict) and isinstance(c.get("text"), str)]
            if parts:
                return "\n".join(parts)
        except (ValueError, AttributeError, TypeError):
            pass
    return text


def _fts_query(query: str) -> str | None:
    words = re.findall(r"\w+", query.lower())
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', "") + '"' for w in dict.fromkeys(words))


def _words(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\w+", text.lower())))


def _coverage(query_words: list[str], text: str) -> float:
    words = set(_words(text))

    def found(q: str) -> bool:
        if q in words:
            return True
        stem = q[: max(4, len(q) - 3)]
        return len(stem) >= 4 and any(w.startswith(stem) for w in words)

    return round(sum(1 for q in query_words if found(q)) / len(query_words), 4) if query_words else 0.0


def _ns_sql(namespace: str | None, namespace_path: str | None) -> tuple[str, list[Any]]:
    """The SQL condition of :func:`_ns_matches` on ``r.namespace`` (so that a search's LIMIT counts only the
    records in scope)."""
    if namespace is not None:
        return "rtrim(r.namespace, '/') = ?", [namespace.rstrip("/")]
    if namespace_path is not None and namespace_path.rstrip("/"):
        path = namespace_path.rstrip("/")
        return ("(rtrim(r.namespace, '/') = ? OR substr(r.namespace, 1, ?) = ?)",
                [path, len(path) + 1, path + "/"])
    return "1", []


def _ns_matches(record_ns: str, namespace: str | None, namespace_path: str | None) -> bool:
    if namespace is not None:
        return record_ns.rstrip("/") == namespace.rstrip("/")
    if namespace_path is not None:
        path = namespace_path.rstrip("/")
        return path == "" or record_ns.rstrip("/") == path or record_ns.startswith(path + "/")
    return True


class Store:
    """All reads and writes of the emulator; one connection, used under one lock."""

    def __init__(self, path: str | Path, *, filtered_listing_delay: float = 0.0, extraction_delay: float = 0.0,
                 extractor: str = "rules", model: extractors.ModelTarget | None = None) -> None:
        self.path = Path(path)
        #: Real seconds between an event and its extraction into records (module docstring); 0: inside CreateEvent.
        self.extraction_delay = extraction_delay
        #: Which offline extractor writes the records (:data:`lab_helpers.emulator.extractors.EXTRACTORS`).
        self.extractor = extractor
        #: The model the ``model`` extractor asks (``LAB_MODEL``); None for the offline extractors.
        self.model = model
        #: Seconds a new event stays out of metadata-filtered listings (module docstring); 0: at once.
        self.filtered_listing_delay = filtered_listing_delay
        self._unindexed: collections.deque[tuple[float, int]] = collections.deque()  # (stored at, seq), oldest first
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        present = {row[1] for row in self.db.execute("PRAGMA table_info(records)")}
        for column, kind in RECORD_COLUMNS.items():
            if column not in present:
                self.db.execute(f"ALTER TABLE records ADD COLUMN {column} {kind}")
        self.lock = threading.RLock()
        self._memory_cache: dict[str, dict[str, Any]] = {}
        self._wake = threading.Event()
        self._closing = False
        self._worker: threading.Thread | None = None

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
        with self.lock:
            self.db.close()

    # -- asynchronous extraction ----------------------------------------------------------------
    def resume_extractions(self) -> None:
        """Extract what was queued before a restart (call once the extractor and delay are set)."""
        with self.lock:
            queued = self.db.execute("SELECT 1 FROM extraction_queue LIMIT 1").fetchone()
        if queued:
            self._start_worker()

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._extract_forever, name="memory-extraction", daemon=True)
            self._worker.start()

    def _extract_forever(self) -> None:
        """The extraction thread: run what is due, then sleep until the next item is due or one is queued."""
        while not self._closing:
            try:
                wait = self.run_due_extractions()
            except sqlite3.ProgrammingError:  # the database was closed under us: the store is closing
                return
            self._wake.wait(wait)
            self._wake.clear()

    def run_due_extractions(self) -> float | None:
        """Extract every queued event that is due, a session at a time; seconds until the next one (None: none).
        The extractors run without the lock (a model may take seconds); only this thread takes from the queue."""
        with self.lock:
            rows = self.db.execute(
                "SELECT id, memory_id, actor_id, session_id, event_id, strategy_id, variables FROM extraction_queue"
                " WHERE due <= ? ORDER BY id", (time.time(),)).fetchall()
            groups: dict[tuple[str, str, str, str | None, str | None], list[tuple[int, str]]] = {}
            for row_id, memory_id, actor_id, session_id, event_id, strategy_id, variables in rows:
                key = (memory_id, actor_id, session_id, strategy_id, variables)
                groups.setdefault(key, []).append((row_id, event_id))
            plans = []
            for (memory_id, actor_id, session_id, strategy_id, variables), items in groups.items():
                memory = self._memory_or_none(memory_id)
                plan = None if memory is None else self._plan(memory, actor_id, session_id, [e for _, e in items],
                                                              strategy_id, json.loads(variables) if variables else {})
                plans.append((plan, [i for i, _ in items]))
        for plan, row_ids in plans:
            results = self._draw(plan) if plan is not None else []
            with self.lock:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    if plan is not None:
                        self._apply(plan, results)
                    self.db.executemany("DELETE FROM extraction_queue WHERE id = ?", [(i,) for i in row_ids])
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
        with self.lock:
            following = self.db.execute("SELECT MIN(due) FROM extraction_queue").fetchone()[0]
        return None if following is None else max(0.0, following - time.time())

    def create_memory(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["name"]
        token = params.get("clientToken")
        with self.lock:
            if token:
                row = self.db.execute(
                    "SELECT doc, status, name FROM memories WHERE client_token = ?", (token,)
                ).fetchone()
                if row:
                    if row[2] != name:
                        raise Conflict(
                            f"clientToken {token!r} was already used to create a different memory ({row[2]})"
                        )
                    return {**json.loads(row[0]), "status": row[1]}
            if self.db.execute("SELECT 1 FROM memories WHERE name = ?", (name,)).fetchone():
                raise Invalid(f"Memory with name {name} already exists", "ResourceConflict")
            now = time.time()
            memory_id = f"{name}-{random_suffix()}"
            doc: dict[str, Any] = {
                "arn": f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}:memory/{memory_id}",
                "id": memory_id,
                "name": name,
                "eventExpiryDuration": params["eventExpiryDuration"],
                "createdAt": now,
                "updatedAt": now,
                "strategies": [],
            }
            for key in ("description", "encryptionKeyArn", "memoryExecutionRoleArn", "indexedKeys",
                        "namespaceKeys", "streamDeliveryResources"):
                if params.get(key) is not None:
                    doc[key] = params[key]
            self._add_strategies(doc, params.get("memoryStrategies") or [], now, "ACTIVE")
            self.db.execute(
                "INSERT INTO memories (id, name, doc, status, client_token, created_at) VALUES (?,?,?,?,?,?)",
                (memory_id, name, json.dumps(doc), "CREATING", token, now),
            )
            return {**doc, "status": "CREATING"}

    @staticmethod
    def _strategy(item: dict[str, Any], now: float, status: str) -> dict[str, Any]:
        (key, conf), = item.items()
        kind = STRATEGY_TYPES[key]
        templates = conf.get("namespaceTemplates") or conf.get("namespaces") or DEFAULT_NAMESPACES[kind]
        strategy = {
            "strategyId": f"{conf['name']}-{random_suffix()}",
            "name": conf["name"],
            "type": kind,
            "namespaces": list(templates),
            "namespaceTemplates": list(templates),
            "status": status,
            "createdAt": now,
            "updatedAt": now,
        }
        if conf.get("description"):
            strategy["description"] = conf["description"]
        return strategy

    @staticmethod
    def _check_templates(doc: dict[str, Any], templates: list[str]) -> None:
        """Only the variables AWS fills in (and the memory's own namespaceKeys) may appear in a template."""
        allowed = {"actorId", "sessionId", "memoryStrategyId"} | {k["key"] for k in doc.get("namespaceKeys") or []}
        for template in templates:
            unknown = set(re.findall(r"\{(\w*)\}", template)) - allowed
            if unknown:
                raise Invalid(f"Namespace template {template!r} uses {', '.join(sorted(unknown))}: a template may "
                              f"use {', '.join(sorted(allowed))}")

    def _add_strategies(self, doc: dict[str, Any], items: list[dict[str, Any]], now: float, status: str) -> None:
        names = {s["name"] for s in doc["strategies"]}
        for item in items:
            if len(item) != 1:
                raise Invalid("A memory strategy must set exactly one strategy type")
            strategy = self._strategy(item, now, status)
            if strategy["name"] in names:
                raise Invalid(f"Memory already has a strategy named {strategy['name']}", "ResourceConflict")
            self._check_templates(doc, strategy["namespaceTemplates"])
            names.add(strategy["name"])
            doc["strategies"].append(strategy)

    def update_memory(self, memory_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateMemory: description, expiry, role, and strategies added, modified or deleted (all or nothing)."""
        with self.lock:
            row = self.db.execute("SELECT doc, status FROM memories WHERE id = ?", (memory_id,)).fetchone()
            if row is None:
                raise NotFound(f"Memory {memory_id} not found")
            doc, status = json.loads(row[0]), row[1]
            now = time.time()
            changes = params.get("memoryStrategies") or {}
            by_id = {s["strategyId"]: s for s in doc["strategies"]}
            for item in changes.get("deleteMemoryStrategies") or []:
                if item["memoryStrategyId"] not in by_id:
                    raise Invalid(f"Memory {memory_id} has no strategy {item['memoryStrategyId']}")
                by_id.pop(item["memoryStrategyId"])
            for item in changes.get("modifyMemoryStrategies") or []:
                strategy = by_id.get(item["memoryStrategyId"])
                if strategy is None:
                    raise Invalid(f"Memory {memory_id} has no strategy {item['memoryStrategyId']}")
                templates = item.get("namespaceTemplates") or item.get("namespaces")
                if templates:
                    self._check_templates(doc, templates)
                    strategy["namespaces"] = strategy["namespaceTemplates"] = list(templates)
                if item.get("description"):
                    strategy["description"] = item["description"]
                strategy["updatedAt"] = now
            doc["strategies"] = list(by_id.values())
            self._add_strategies(doc, changes.get("addMemoryStrategies") or [], now, "CREATING")
            for key in ("description", "eventExpiryDuration", "memoryExecutionRoleArn"):
                if params.get(key) is not None:
                    doc[key] = params[key]
            if changes:
                status = "UPDATING"  # the next GetMemory sees it ACTIVE again
            doc["updatedAt"] = now
            self.db.execute("UPDATE memories SET doc = ?, status = ? WHERE id = ?",
                            (json.dumps(doc), status, memory_id))
            self._memory_cache[memory_id] = doc
            return {**doc, "status": status}

    def get_memory(self, memory_id: str) -> dict[str, Any]:
        with self.lock:
            row = self.db.execute("SELECT doc, status FROM memories WHERE id = ?", (memory_id,)).fetchone()
            if row is None:
                raise NotFound(f"Memory {memory_id} not found")
            doc, status = json.loads(row[0]), row[1]
            if status in ("CREATING", "UPDATING"):  # the next look sees it, and its new strategies, ACTIVE
                settled = json.loads(row[0])
                for strategy in settled["strategies"]:
                    strategy["status"] = "ACTIVE"
                self.db.execute("UPDATE memories SET status = 'ACTIVE', doc = ? WHERE id = ?",
                                (json.dumps(settled), memory_id))
                self._memory_cache[memory_id] = settled
            return {**doc, "status": status}

    def list_memories(self, max_results: int, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        offset = _offset_token(token)
        with self.lock:
            rows = self.db.execute(
                "SELECT doc, status FROM memories ORDER BY created_at, id LIMIT ? OFFSET ?",
                (max_results + 1, offset),
            ).fetchall()
        summaries = []
        for doc_text, status in rows[:max_results]:
            doc = json.loads(doc_text)
            summaries.append({"arn": doc["arn"], "id": doc["id"], "status": status,
                              "createdAt": doc["createdAt"], "updatedAt": doc["updatedAt"]})
        return summaries, (_encode_token(offset + max_results) if len(rows) > max_results else None)

    def delete_memory(self, memory_id: str) -> None:
        with self.lock:
            if not self.db.execute("SELECT 1 FROM memories WHERE id = ?", (memory_id,)).fetchone():
                raise NotFound(f"Memory {memory_id} not found")
            self._memory_cache.pop(memory_id, None)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(
                    "DELETE FROM records_fts WHERE rowid IN (SELECT rid FROM records WHERE memory_id = ?)",
                    (memory_id,),
                )
                for table in ("records", "events", "sessions", "extraction_queue", "extraction_jobs"):
                    self.db.execute(f"DELETE FROM {table} WHERE memory_id = ?", (memory_id,))
                self.db.execute("DELETE FROM memories WHERE id = ?", (memory_id,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _memory_or_none(self, memory_id: str) -> dict[str, Any] | None:
        try:
            return self._memory(memory_id)
        except NotFound:
            return None

    def _memory(self, memory_id: str) -> dict[str, Any]:
        """The memory's document (cached: one process owns the database), or NotFound."""
        doc = self._memory_cache.get(memory_id)
        if doc is None:
            row = self.db.execute("SELECT doc FROM memories WHERE id = ?", (memory_id,)).fetchone()
            if row is None:
                raise NotFound(f"Memory {memory_id} not found")
            doc = self._memory_cache[memory_id] = json.loads(row[0])
        return doc

    # -- events -------------------------------------------------------------------------------
    def create_event(self, memory_id: str, p: dict[str, Any]) -> dict[str, Any]:
        actor_id, session_id = p["actorId"], p["sessionId"]
        token = p.get("clientToken")
        branch = p.get("branch")
        metadata = {k: v.get("stringValue", "") for k, v in (p.get("metadata") or {}).items()}
        ts = float(p["eventTimestamp"])
        ts = int(round(ts * 1000)) / 1000.0  # the service stores milliseconds
        with self.lock:
            memory = self._memory(memory_id)
            if token is not None:
                row = self._select_events("memory_id = ? AND client_token = ?", (memory_id, token))
                if row:
                    event = row[0]
                    if event["actorId"] != actor_id or event["sessionId"] != session_id:
                        raise Invalid(
                            "clientToken was already used for an event of another actor or session",
                            "IdempotentParameterMismatchException",
                        )
                    return event
            event_id = f"{int(ts * 1000):019d}#{secrets.token_hex(4)}"
            self.db.execute("BEGIN IMMEDIATE")
            try:
                inserted = self.db.execute(
                    "INSERT INTO events (memory_id, actor_id, session_id, event_id, event_ts, payload, branch,"
                    " branch_name, metadata, client_token) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (memory_id, actor_id, session_id, event_id, ts, json.dumps(p["payload"]),
                     json.dumps(branch) if branch else None, branch["name"] if branch else None,
                     json.dumps(metadata) if metadata else None, token),
                )
                self.db.execute(
                    "INSERT OR IGNORE INTO sessions (memory_id, actor_id, session_id, created_at) VALUES (?,?,?,?)",
                    (memory_id, actor_id, session_id, ts),
                )
                extract = bool(memory.get("strategies")) and p.get("extractionMode") != "SKIP"
                variables = dict((p.get("extractionConfig") or {}).get("namespaceVariables") or {})
                if extract and self.extraction_delay <= 0:
                    self._extract(memory, actor_id, session_id, [event_id], None, variables)
                elif extract:
                    self.db.execute(
                        "INSERT INTO extraction_queue (memory_id, actor_id, session_id, event_id, variables, due)"
                        " VALUES (?,?,?,?,?,?)", (memory_id, actor_id, session_id, event_id,
                                                  json.dumps(variables) if variables else None,
                                                  time.time() + self.extraction_delay))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            if extract and self.extraction_delay > 0:
                self._start_worker()
                self._wake.set()
            if self.filtered_listing_delay > 0:
                self._unindexed.append((time.monotonic(), inserted.lastrowid))
                self._first_unindexed()  # forget what is indexed by now
        event: dict[str, Any] = {"memoryId": memory_id, "actorId": actor_id, "sessionId": session_id,
                                 "eventId": event_id, "eventTimestamp": ts, "payload": p["payload"]}
        if branch:
            event["branch"] = branch
        if metadata:
            event["metadata"] = {k: {"stringValue": v} for k, v in metadata.items()}
        return event

    def _messages(self, memory_id: str, actor_id: str, session_id: str, event_ids: list[str] | None
                  ) -> list[tuple[str, int, extractors.Message]]:
        """(eventId, messageIndex, message) of the session's conversational items, oldest first (only
        ``event_ids``' when given)."""
        where, args = "memory_id = ? AND actor_id = ? AND session_id = ?", [memory_id, actor_id, session_id]
        if event_ids is not None:  # only these (by the unique (memory_id, event_id) index): no session scan
            where += f" AND event_id IN ({', '.join('?' * len(event_ids))})"
            args += event_ids
        rows = self.db.execute(f"SELECT event_id, payload FROM events WHERE {where} ORDER BY event_ts, seq",
                               args).fetchall()
        out = []
        for event_id, payload in rows:
            for index, item in enumerate(json.loads(payload)):
                if "conversational" in item:
                    conv = item["conversational"]
                    out.append((event_id, index, extractors.Message(conv.get("role", "OTHER"),
                                                                    record_text(conv["content"]["text"]))))
        return out

    def _plan(self, memory: dict[str, Any], actor_id: str, session_id: str, event_ids: list[str],
              strategy_id: str | None, variables: dict[str, str]) -> Plan | None:
        """What one extraction reads (under the lock): the new messages, the session's, each strategy's namespace."""
        new = self._messages(memory["id"], actor_id, session_id, event_ids)
        if not new:
            return None
        session = new if self.extractor == "verbatim" else self._messages(memory["id"], actor_id, session_id, None)
        targets = []
        for strategy in memory["strategies"]:
            if strategy_id is not None and strategy["strategyId"] != strategy_id:
                continue
            values = {**variables, "actorId": actor_id, "sessionId": session_id,
                      "memoryStrategyId": strategy["strategyId"]}
            targets.append((strategy, re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))),
                                             strategy["namespaceTemplates"][0])))
        return Plan(memory["id"], actor_id, session_id, variables, new, session, targets)

    def _draw(self, plan: Plan) -> list[list[extractors.Extracted] | Exception]:
        """Each strategy's records, or the error its extractor raised (no lock held: a model may take seconds)."""
        results: list[list[extractors.Extracted] | Exception] = []
        for strategy, _ in plan.targets:
            try:
                results.append(extractors.extract(self.extractor, strategy["type"], [m for _, _, m in plan.new],
                                                  [m for _, _, m in plan.session], self.model))
            except Exception as exc:  # noqa: BLE001 - a failed extraction is a job to retry, as on AWS
                results.append(exc)
        return results

    def _apply(self, plan: Plan, results: list[list[extractors.Extracted] | Exception]) -> None:
        """Write what was drawn, inside a transaction: records, or a FAILED job for a strategy that failed."""
        if self._memory_or_none(plan.memory_id) is None:
            return  # deleted meanwhile
        now = time.time()
        label = {"extractor": {"stringValue": extractors.LABELS[self.extractor]}}
        for (strategy, namespace), found in zip(plan.targets, results):
            if isinstance(found, Exception):
                self.db.execute(
                    "INSERT INTO extraction_jobs (job_id, memory_id, actor_id, session_id, strategy_id, messages,"
                    " variables, reason, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (f"job-{uuid.uuid4()}", plan.memory_id, plan.actor_id, plan.session_id, strategy["strategyId"],
                     json.dumps([{"eventId": e, "messageIndex": i} for e, i, _ in plan.new]),
                     json.dumps(plan.variables) if plan.variables else None,
                     f"{type(found).__name__}: {found}"[:500], now))
                continue
            for item in found:
                self._write_record(plan.memory_id, strategy["strategyId"], namespace, item, label, now)

    def _extract(self, memory: dict[str, Any], actor_id: str, session_id: str, event_ids: list[str],
                 strategy_id: str | None, variables: dict[str, str]) -> None:
        """Extract at once (CreateEvent with no delay), inside the caller's transaction."""
        plan = self._plan(memory, actor_id, session_id, event_ids, strategy_id, variables)
        if plan is not None:
            self._apply(plan, self._draw(plan))

    def _write_record(self, memory_id: str, strategy_id: str, namespace: str, item: extractors.Extracted,
                      metadata: dict[str, Any], now: float) -> None:
        """One extracted record: a consolidated one (a key) replaces its predecessor; a repeated text is kept once
        (AWS consolidates its records too)."""
        if item.key is not None:
            old = self.db.execute("SELECT rid FROM records WHERE memory_id = ? AND strategy_id = ? AND namespace = ?"
                                  " AND skey = ?", (memory_id, strategy_id, namespace, item.key)).fetchone()
            if old:
                self.db.execute("UPDATE records SET text = ?, ts = ? WHERE rid = ?", (item.text, now, old[0]))
                self.db.execute("UPDATE records_fts SET text = ? WHERE rowid = ?", (item.text, old[0]))
                return
        elif self.extractor != "verbatim" and self.db.execute(
                "SELECT 1 FROM records WHERE memory_id = ? AND strategy_id = ? AND namespace = ? AND text = ?",
                (memory_id, strategy_id, namespace, item.text)).fetchone():
            return
        self._insert_record(memory_id, strategy_id, namespace, item.text, now, metadata, item.key)

    def _insert_record(self, memory_id: str, strategy_id: str, namespace: str, text: str, ts: float,
                       metadata: dict[str, Any] | None, key: str | None = None) -> str:
        record_id = f"mem-{uuid.uuid4()}"
        cur = self.db.execute(
            "INSERT INTO records (record_id, memory_id, strategy_id, namespace, text, created_at, metadata, ts, skey)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (record_id, memory_id, strategy_id, namespace, text, time.time(),
             json.dumps(metadata) if metadata else None, ts, key))
        self.db.execute("INSERT INTO records_fts (rowid, text) VALUES (?, ?)", (cur.lastrowid, text))
        return record_id

    _EVENT_COLUMNS = "memory_id, actor_id, session_id, event_id, event_ts, payload, branch, metadata, seq"

    def _select_events(self, where: str, args: Iterable[Any], tail: str = "",
                       payloads: bool = True) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT {self._EVENT_COLUMNS} FROM events WHERE {where} {tail}", tuple(args))
        events = []
        for memory_id, actor_id, session_id, event_id, ts, payload, branch, metadata, seq in rows:
            event: dict[str, Any] = {"memoryId": memory_id, "actorId": actor_id, "sessionId": session_id,
                                     "eventId": event_id, "eventTimestamp": ts,
                                     "payload": json.loads(payload) if payloads else [], "_seq": seq}
            if branch:
                event["branch"] = json.loads(branch)
            if metadata:
                event["metadata"] = {k: {"stringValue": v} for k, v in json.loads(metadata).items()}
            events.append(event)
        return events

    @staticmethod
    def _public(event: dict[str, Any]) -> dict[str, Any]:
        event.pop("_seq", None)
        return event

    def get_event(self, memory_id: str, actor_id: str, session_id: str, event_id: str) -> dict[str, Any]:
        with self.lock:
            self._memory(memory_id)
            rows = self._select_events(
                "memory_id = ? AND event_id = ? AND actor_id = ? AND session_id = ?",
                (memory_id, event_id, actor_id, session_id),
            )
        if not rows:
            raise NotFound(f"Event {event_id} not found in session {session_id} of actor {actor_id}")
        return self._public(rows[0])

    def delete_event(self, memory_id: str, actor_id: str, session_id: str, event_id: str) -> None:
        with self.lock:
            self._memory(memory_id)
            cur = self.db.execute(
                "DELETE FROM events WHERE memory_id = ? AND event_id = ? AND actor_id = ? AND session_id = ?",
                (memory_id, event_id, actor_id, session_id),
            )
        if cur.rowcount == 0:
            raise NotFound(f"Event {event_id} not found in session {session_id} of actor {actor_id}")

    def _first_unindexed(self) -> int | None:
        """The ``seq`` from which events are still missing from filtered listings, or None (all indexed).

        Events are stored under the lock in ``seq`` order, so those stored less than ``filtered_listing_delay``
        seconds ago are exactly those from one ``seq`` on.
        """
        indexed_before = time.monotonic() - self.filtered_listing_delay
        while self._unindexed and self._unindexed[0][0] <= indexed_before:
            self._unindexed.popleft()
        return self._unindexed[0][1] if self._unindexed else None

    def list_events(self, memory_id: str, actor_id: str, session_id: str, *, include_payloads: bool,
                    flt: dict[str, Any] | None, max_results: int, token: str | None
                    ) -> tuple[list[dict[str, Any]], str | None]:
        where = ["memory_id = ?", "actor_id = ?", "session_id = ?"]
        args: list[Any] = [memory_id, actor_id, session_id]
        flt = flt or {}
        with self.lock:
            self._memory(memory_id)
            branch = flt.get("branch")
            if branch:
                cond, cond_args = "branch_name = ?", [branch["name"]]
                if branch.get("includeParentBranches"):
                    root = self.db.execute(
                        "SELECT e.event_ts, e.seq FROM events b JOIN events e ON e.memory_id = b.memory_id"
                        " AND e.event_id = json_extract(b.branch, '$.rootEventId')"
                        " WHERE b.memory_id = ? AND b.actor_id = ? AND b.session_id = ? AND b.branch_name = ?"
                        " AND b.branch IS NOT NULL LIMIT 1",
                        (memory_id, actor_id, session_id, branch["name"]),
                    ).fetchone()
                    if root:
                        cond = ("(branch_name = ? OR (branch_name IS NULL AND (event_ts < ? OR"
                                " (event_ts = ? AND seq <= ?))))")
                        cond_args += [root[0], root[0], root[1]]
                where.append(cond)
                args += cond_args
            for expr in flt.get("eventMetadata") or []:
                key = expr["left"]["metadataKey"]
                path = '$."' + key.replace('"', "") + '"'
                op = expr["operator"]
                if op == "EQUALS_TO":
                    where.append("json_extract(metadata, ?) = ?")
                    args += [path, expr["right"]["metadataValue"]["stringValue"]]
                elif op == "EXISTS":
                    where.append("json_type(metadata, ?) IS NOT NULL")
                    args.append(path)
                else:  # NOT_EXISTS
                    where.append("(metadata IS NULL OR json_type(metadata, ?) IS NULL)")
                    args.append(path)
            unindexed = self._first_unindexed() if flt.get("eventMetadata") else None
            if unindexed is not None:  # eventually consistent: the newest events are not in the filtered index yet
                where.append("seq < ?")
                args.append(unindexed)
            if token is not None:
                position = _position_token(token)
                where.append("(event_ts < ? OR (event_ts = ? AND seq < ?))")
                args += [position[0], position[0], position[1]]
            args.append(max_results + 1)
            events = self._select_events(" AND ".join(where), args, "ORDER BY event_ts DESC, seq DESC LIMIT ?",
                                         payloads=include_payloads)
        next_token = None
        if len(events) > max_results:
            events = events[:max_results]
            next_token = _encode_token([events[-1]["eventTimestamp"], events[-1]["_seq"]])
        for event in events:
            self._public(event)
            if not include_payloads:
                del event["payload"]
        return events, next_token

    def list_sessions(self, memory_id: str, actor_id: str, max_results: int, token: str | None,
                      has_events: bool) -> tuple[list[dict[str, Any]], str | None]:
        offset = _offset_token(token)
        extra = (" AND EXISTS (SELECT 1 FROM events e WHERE e.memory_id = s.memory_id AND e.actor_id = s.actor_id"
                 " AND e.session_id = s.session_id)") if has_events else ""
        with self.lock:
            self._memory(memory_id)
            rows = self.db.execute(
                f"SELECT session_id, created_at FROM sessions s WHERE memory_id = ? AND actor_id = ?{extra}"
                " ORDER BY created_at DESC, session_id LIMIT ? OFFSET ?",
                (memory_id, actor_id, max_results + 1, offset),
            ).fetchall()
        summaries = [{"sessionId": s, "actorId": actor_id, "createdAt": c} for s, c in rows[:max_results]]
        return summaries, (_encode_token(offset + max_results) if len(rows) > max_results else None)

    def list_actors(self, memory_id: str, max_results: int, token: str | None
                    ) -> tuple[list[dict[str, Any]], str | None]:
        offset = _offset_token(token)
        with self.lock:
            self._memory(memory_id)
            rows = self.db.execute(
                "SELECT DISTINCT actor_id FROM sessions WHERE memory_id = ? ORDER BY actor_id LIMIT ? OFFSET ?",
                (memory_id, max_results + 1, offset),
            ).fetchall()
        summaries = [{"actorId": a} for (a,) in rows[:max_results]]
        return summaries, (_encode_token(offset + max_results) if len(rows) > max_results else None)

    # -- long-term records --------------------------------------------------------------------
    _RECORD_COLUMNS = "r.record_id, r.strategy_id, r.namespace, r.text, r.created_at, r.ts, r.metadata"

    @staticmethod
    def _record(row: tuple[Any, ...], score: float | None = None) -> dict[str, Any]:
        record_id, strategy_id, namespace, text, created_at, ts, metadata = row[:7]
        summary: dict[str, Any] = {"memoryRecordId": record_id, "content": {"text": text},
                                   "memoryStrategyId": strategy_id, "namespaces": [namespace],
                                   "createdAt": created_at}
        if ts is not None:
            summary["timestamp"] = ts
        if metadata:
            summary["metadata"] = json.loads(metadata)
        if score is not None:
            summary["score"] = score
        return summary

    @staticmethod
    def _metadata_matches(metadata: str | None, filters: list[dict[str, Any]]) -> bool:
        values = json.loads(metadata) if metadata else {}
        for expr in filters:
            value = values.get(expr["left"].get("metadataKey", ""))
            op = expr["operator"]
            if op == "EXISTS" and value is None or op == "NOT_EXISTS" and value is not None:
                return False
            if op == "EQUALS_TO" and (value or {}).get("stringValue") != \
                    (expr.get("right") or {}).get("metadataValue", {}).get("stringValue"):
                return False
        return True

    def retrieve_records(self, memory_id: str, query: str, namespace: str | None, namespace_path: str | None,
                         strategy_id: str | None, top_k: int,
                         filters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        fts = _fts_query(query)
        scope, scope_args = _ns_sql(namespace, namespace_path)
        with self.lock:
            self._memory(memory_id)
            if fts is None:
                return []
            rows = self.db.execute(
                f"SELECT {self._RECORD_COLUMNS}, bm25(records_fts) AS rank"
                " FROM records_fts JOIN records r ON r.rid = records_fts.rowid"
                f" WHERE records_fts MATCH ? AND r.memory_id = ? AND (? IS NULL OR r.strategy_id = ?) AND {scope}"
                " ORDER BY rank LIMIT 1000",
                (fts, memory_id, strategy_id, strategy_id, *scope_args),
            ).fetchall()
        query_words = _words(query)
        out = []
        for row in rows:
            if self._metadata_matches(row[6], filters or []):
                out.append(self._record(row, score=_coverage(query_words, row[3])))
        out.sort(key=lambda r: -r["score"])  # stable: BM25 order among equal scores
        return out[:top_k]

    def list_records(self, memory_id: str, namespace: str | None, namespace_path: str | None,
                     strategy_id: str | None, max_results: int, token: str | None,
                     filters: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], str | None]:
        offset = _offset_token(token)
        with self.lock:
            self._memory(memory_id)
            rows = self.db.execute(
                f"SELECT {self._RECORD_COLUMNS} FROM records r WHERE memory_id = ?"
                " AND (? IS NULL OR strategy_id = ?) ORDER BY created_at DESC, rid DESC",
                (memory_id, strategy_id, strategy_id),
            ).fetchall()
        matching = [r for r in rows if _ns_matches(r[2], namespace, namespace_path)
                    and self._metadata_matches(r[6], filters or [])]
        page = [self._record(r) for r in matching[offset:offset + max_results]]
        more = len(matching) > offset + max_results
        return page, (_encode_token(offset + max_results) if more else None)

    def get_record(self, memory_id: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            self._memory(memory_id)
            row = self.db.execute(
                f"SELECT {self._RECORD_COLUMNS} FROM records r WHERE memory_id = ? AND record_id = ?",
                (memory_id, record_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"Memory record {record_id} not found")
        return self._record(row)

    def delete_record(self, memory_id: str, record_id: str) -> None:
        with self.lock:
            self._memory(memory_id)
            row = self.db.execute(
                "SELECT rid FROM records WHERE memory_id = ? AND record_id = ?", (memory_id, record_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"Memory record {record_id} not found")
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM records_fts WHERE rowid = ?", (row[0],))
            self.db.execute("DELETE FROM records WHERE rid = ?", (row[0],))
            self.db.execute("COMMIT")

    # -- batch record operations (each record succeeds or fails on its own, as AWS answers) ---------------------
    @staticmethod
    def _failed(record_id: str | None, message: str, code: int, request: str | None = None) -> dict[str, Any]:
        out = {"memoryRecordId": record_id or f"mem-{uuid.uuid4()}", "status": "FAILED", "errorCode": code,
               "errorMessage": message}
        return {**out, "requestIdentifier": request} if request else out

    def _batch(self, memory_id: str, records: list[dict[str, Any]],
               one: Any) -> dict[str, list[dict[str, Any]]]:
        done: dict[str, list[dict[str, Any]]] = {"successfulRecords": [], "failedRecords": []}
        with self.lock:
            memory = self._memory(memory_id)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for record in records:
                    result = one(memory, record)
                    done["failedRecords" if result["status"] == "FAILED" else "successfulRecords"].append(result)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return done

    def batch_create_records(self, memory_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()

        def create(memory: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
            request = record["requestIdentifier"]
            if request in seen:
                return self._failed(None, f"requestIdentifier {request} appears twice in the batch", 400, request)
            seen.add(request)
            strategy = record.get("memoryStrategyId")
            if strategy not in {s["strategyId"] for s in memory["strategies"]}:
                return self._failed(None, f"memoryStrategyId {strategy} is not a strategy of memory {memory_id}"
                                    " (the emulator files every record under one of the memory's strategies)",
                                    400, request)
            if not record["namespaces"] or "text" not in record["content"]:
                return self._failed(None, "A record needs one namespace and a content.text", 400, request)
            record_id = self._insert_record(memory_id, strategy, record["namespaces"][0], record["content"]["text"],
                                            float(record["timestamp"]), record.get("metadata"))
            return {"memoryRecordId": record_id, "status": "SUCCEEDED", "requestIdentifier": request}
        return self._batch(memory_id, records, create)

    def batch_update_records(self, memory_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        def update(memory: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
            record_id = record["memoryRecordId"]
            row = self.db.execute("SELECT rid FROM records WHERE memory_id = ? AND record_id = ?",
                                  (memory_id, record_id)).fetchone()
            if row is None:
                return self._failed(record_id, f"Memory record {record_id} not found", 404)
            strategy = record.get("memoryStrategyId")
            if strategy is not None and strategy not in {s["strategyId"] for s in memory["strategies"]}:
                return self._failed(record_id, f"memoryStrategyId {strategy} is not a strategy of memory "
                                    f"{memory_id}", 400)
            sets: dict[str, Any] = {"ts": float(record["timestamp"])}
            if "text" in (record.get("content") or {}):
                sets["text"] = record["content"]["text"]
                self.db.execute("UPDATE records_fts SET text = ? WHERE rowid = ?", (sets["text"], row[0]))
            if record.get("namespaces"):
                sets["namespace"] = record["namespaces"][0]
            if strategy is not None:
                sets["strategy_id"] = strategy
            if record.get("metadata") is not None:
                sets["metadata"] = json.dumps(record["metadata"])
            self.db.execute(f"UPDATE records SET {', '.join(f'{k} = ?' for k in sets)} WHERE rid = ?",
                            (*sets.values(), row[0]))
            return {"memoryRecordId": record_id, "status": "SUCCEEDED"}
        return self._batch(memory_id, records, update)

    def batch_delete_records(self, memory_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        def delete(memory: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
            record_id = record["memoryRecordId"]
            row = self.db.execute("SELECT rid, namespace FROM records WHERE memory_id = ? AND record_id = ?",
                                  (memory_id, record_id)).fetchone()
            if row is None or (record.get("namespace") is not None
                               and row[1].rstrip("/") != record["namespace"].rstrip("/")):
                return self._failed(record_id, f"Memory record {record_id} not found", 404)
            self.db.execute("DELETE FROM records_fts WHERE rowid = ?", (row[0],))
            self.db.execute("DELETE FROM records WHERE rid = ?", (row[0],))
            return {"memoryRecordId": record_id, "status": "SUCCEEDED"}
        return self._batch(memory_id, records, delete)

    # -- extraction jobs (AWS lists the failed ones, which StartMemoryExtractionJob runs again) -------------------
    def list_extraction_jobs(self, memory_id: str, flt: dict[str, Any], max_results: int, token: str | None
                             ) -> tuple[list[dict[str, Any]], str | None]:
        offset = _offset_token(token)
        with self.lock:
            self._memory(memory_id)
            rows = self.db.execute(
                "SELECT job_id, actor_id, session_id, strategy_id, messages, reason FROM extraction_jobs"
                " WHERE memory_id = ? AND (? IS NULL OR strategy_id = ?) AND (? IS NULL OR session_id = ?)"
                " AND (? IS NULL OR actor_id = ?) ORDER BY created_at, job_id LIMIT ? OFFSET ?",
                (memory_id, *[flt.get(k) for k in ("strategyId", "strategyId", "sessionId", "sessionId",
                                                   "actorId", "actorId")], max_results + 1, offset),
            ).fetchall()
        jobs = [{"jobID": job_id, "messages": {"messagesList": json.loads(messages)}, "status": "FAILED",
                 "failureReason": reason, "strategyId": strategy_id, "sessionId": session_id, "actorId": actor_id}
                for job_id, actor_id, session_id, strategy_id, messages, reason in rows[:max_results]]
        return jobs, (_encode_token(offset + max_results) if len(rows) > max_results else None)

    def start_extraction_job(self, memory_id: str, job_id: str) -> str:
        """Queue a failed job's events again, for its strategy only; the job leaves the list."""
        with self.lock:
            self._memory(memory_id)
            row = self.db.execute(
                "SELECT actor_id, session_id, strategy_id, messages, variables FROM extraction_jobs"
                " WHERE memory_id = ? AND job_id = ?", (memory_id, job_id)).fetchone()
            if row is None:
                raise NotFound(f"Extraction job {job_id} not found in memory {memory_id}")
            actor_id, session_id, strategy_id, messages, variables = row
            event_ids = list(dict.fromkeys(m["eventId"] for m in json.loads(messages)))
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM extraction_jobs WHERE job_id = ?", (job_id,))
            self.db.executemany(
                "INSERT INTO extraction_queue (memory_id, actor_id, session_id, event_id, strategy_id, variables, due)"
                " VALUES (?,?,?,?,?,?,?)", [(memory_id, actor_id, session_id, e, strategy_id, variables,
                                             time.time() + self.extraction_delay) for e in event_ids])
            self.db.execute("COMMIT")
        self._start_worker()
        self._wake.set()
        return job_id
