"""Long-term memory in the emulator: strategies' extraction, records, search; mixed into ``memory_store.Store``.

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

:class:`LongTermMemory` holds the operations; :class:`~lab_helpers.emulator.memory_store.Store` owns the SQLite
connection (``db``), its lock and the tables (one schema, one database file: an event and the extraction it
queues commit together).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from lab_helpers.emulator import extractors
from lab_helpers.emulator.errors import NotFound
from lab_helpers.emulator.page_tokens import encode_token, offset_token


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


class LongTermMemory:
    """The long-term half of :class:`~lab_helpers.emulator.memory_store.Store` (which sets the attributes below)."""

    db: Any
    lock: threading.RLock
    extractor: str
    model: extractors.ModelTarget | None
    extraction_delay: float
    _wake: threading.Event
    _closing: bool
    _worker: threading.Thread | None

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
        offset = offset_token(token)
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
        return page, (encode_token(offset + max_results) if more else None)

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
        offset = offset_token(token)
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
        return jobs, (encode_token(offset + max_results) if len(rows) > max_results else None)

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
