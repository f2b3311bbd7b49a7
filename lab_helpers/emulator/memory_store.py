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

Long-term memory (strategies, asynchronous extraction, records, search) is
:mod:`lab_helpers.emulator.memory_records`, mixed into :class:`Store`.

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

import collections
import json
import re
import secrets
import sqlite3
import string
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from lab_helpers.emulator import extractors
from lab_helpers.emulator.memory_records import LongTermMemory
from lab_helpers.emulator.page_tokens import encode_token, offset_token, position_token
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


def random_suffix(n: int = 10) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


class Store(LongTermMemory):
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
        offset = offset_token(token)
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
        return summaries, (encode_token(offset + max_results) if len(rows) > max_results else None)

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
                position = position_token(token)
                where.append("(event_ts < ? OR (event_ts = ? AND seq < ?))")
                args += [position[0], position[0], position[1]]
            args.append(max_results + 1)
            events = self._select_events(" AND ".join(where), args, "ORDER BY event_ts DESC, seq DESC LIMIT ?",
                                         payloads=include_payloads)
        next_token = None
        if len(events) > max_results:
            events = events[:max_results]
            next_token = encode_token([events[-1]["eventTimestamp"], events[-1]["_seq"]])
        for event in events:
            self._public(event)
            if not include_payloads:
                del event["payload"]
        return events, next_token

    def list_sessions(self, memory_id: str, actor_id: str, max_results: int, token: str | None,
                      has_events: bool) -> tuple[list[dict[str, Any]], str | None]:
        offset = offset_token(token)
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
        return summaries, (encode_token(offset + max_results) if len(rows) > max_results else None)

    def list_actors(self, memory_id: str, max_results: int, token: str | None
                    ) -> tuple[list[dict[str, Any]], str | None]:
        offset = offset_token(token)
        with self.lock:
            self._memory(memory_id)
            rows = self.db.execute(
                "SELECT DISTINCT actor_id FROM sessions WHERE memory_id = ? ORDER BY actor_id LIMIT ? OFFSET ?",
                (memory_id, max_results + 1, offset),
            ).fetchall()
        summaries = [{"actorId": a} for (a,) in rows[:max_results]]
        return summaries, (encode_token(offset + max_results) if len(rows) > max_results else None)
