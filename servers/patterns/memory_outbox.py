"""Task records that reach AgentCore Memory, or wait on local disk until they can.

Notebook 03's promise is "a result is never dropped". Memory can be unreachable
(the emulator or the network is down, credentials expired), and the server can be
killed at any moment, so every record takes this path:

1. **outbox**: at the transition itself, the record is written atomically to
   ``<state_dir>/outbox/<task_id>-<status>.json`` (with the caller's identity);
2. **Memory**: a writer thread sends it with ``CreateEvent``, retrying with
   exponential backoff; once Memory has it, the outbox file is deleted. If every
   attempt fails the file stays, says why, and is sent again later (the writer
   retries the outbox every few seconds, and a restarted server sends it first
   thing). Each record has a fixed client token, so sending it twice is harmless.

Beside the outbox, ``<state_dir>/open/<task_id>.json`` marks a task that started
and has no ending yet. A server that finds such marks on start knows those tasks
died with the previous process and records them as ``interrupted``: the user
hears about the crash instead of silence.

Lookups read Memory first and the outbox too, so a result that has not reached
Memory yet is still found (and reported as kept on local disk).

Finding a task by id uses a ListEvents metadata filter, and in AWS that filtered
listing is eventually consistent (aws/bedrock-agentcore-sdk-python issue 564): a
record written a moment ago, by this process or by the one that crashed before it,
may be missing from it while the unfiltered listing already has it. So an answer
the filter cannot settle (no record, or only ``started``) is confirmed with the
unfiltered, strongly consistent read (``records_in_memory(..., consistent=True)``),
and listing every task uses that read: nothing written is ever reported unknown.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from patterns.caller_identity import Identity
from patterns.task_records import KIND_FILTER, STATUSES, TaskRecord, event_request, record_from_event, task_filter

log = logging.getLogger(__name__)

#: Server-side errors worth another attempt; anything else 4xx will not get better by retrying.
RETRYABLE_CODES = {"ThrottlingException", "ServiceQuotaExceededException", "InternalServerException",
                   "ServiceException", "ThrottledException"}


class MemoryUnavailable(RuntimeError):
    """Memory could not be read; the message says why (the outbox is still consulted)."""


def memory_client(region: str) -> Any:
    """A boto3 ``bedrock-agentcore`` client that fails fast: retries are :class:`TaskMemory`'s job."""
    import boto3
    from botocore.config import Config

    return boto3.client("bedrock-agentcore", region_name=region, config=Config(
        retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10))


def _why(error: Exception) -> str:
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials were found (configure them, or run in local mode)"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', error)}"
    return f"{type(error).__name__}: {error}"


def _retryable(error: Exception) -> bool:
    if isinstance(error, NoCredentialsError):
        return False
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error.response.get("Error", {}).get("Code") in RETRYABLE_CODES
    return isinstance(error, (BotoCoreError, OSError))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Pending:
    """A record in the outbox: not in Memory yet."""

    path: Path
    identity: Identity
    record: TaskRecord
    last_error: str | None


class TaskMemory:
    """Records task transitions in AgentCore Memory through a local outbox, and reads them back."""

    def __init__(
        self,
        state_dir: Path,
        client: Any,
        *,
        attempts: int = 4,
        first_delay: float = 0.2,
        outbox_retry_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.client = client
        self.outbox_dir = Path(state_dir) / "outbox"
        self.open_dir = Path(state_dir) / "open"
        self.attempts, self.first_delay, self.outbox_retry_seconds = attempts, first_delay, outbox_retry_seconds
        self._sleep = sleep
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- writing ---------------------------------------------------------------------------------
    def record(self, record: TaskRecord, identity: Identity) -> Path:
        """Put ``record`` in the outbox now (durable on return) and queue it for Memory.

        Called at the transition itself, so a crash a moment later loses nothing: the
        outbox file, or the open-task mark, tells the next process what happened.
        """
        path = self.outbox_dir / f"{record.task_id}-{record.status}.json"
        _write_json(path, {"identity": _identity_dict(identity), "record": record.to_dict(), "last_error": None})
        mark = self.open_dir / f"{record.task_id}.json"
        if record.finished:
            mark.unlink(missing_ok=True)
        else:
            _write_json(mark, {"identity": _identity_dict(identity), "record": record.to_dict()})
        self._start_writer()
        self._queue.put(path)
        return path

    def send(self, path: Path) -> bool:
        """Send one outbox file to Memory, with retries and backoff; True once Memory has it.

        On failure the file stays in the outbox with the reason in ``last_error``.
        """
        with self._send_lock:  # the writer and a lesson's explicit flush never send the same file at once
            pending = self._load(path)
            if pending is None:  # sent meanwhile
                return True
            delay, error = self.first_delay, None
            for attempt in range(self.attempts):
                try:
                    self.client.create_event(**event_request(pending.record, pending.identity))
                except Exception as caught:  # noqa: BLE001 - every failure keeps the record on disk
                    error = caught
                    if not _retryable(caught) or attempt == self.attempts - 1:
                        break
                    self._sleep(delay)
                    delay *= 2
                else:
                    path.unlink(missing_ok=True)
                    return True
            assert error is not None
            log.warning("task %s %s not written to Memory: %s; kept in %s",
                        pending.record.task_id, pending.record.status, _why(error), path)
            _write_json(path, {"identity": _identity_dict(pending.identity), "record": pending.record.to_dict(),
                               "last_error": _why(error)})
            return False

    def flush(self) -> int:
        """Send every outbox file, oldest transition first; returns how many are still waiting."""
        for pending in self.outbox():
            self.send(pending.path)
        return len(list(self.outbox()))

    def recover(self, message: str = "the server process running it stopped before the task ended") -> list[TaskRecord]:
        """Record every task marked open by an earlier process as ``interrupted``; returns those records.

        Call once when a server starts, before it takes calls: the open marks are
        exactly the tasks that were running when the previous process died.
        Half-written files that process left (``*.tmp``: a crash during ``_write_json``) are removed.
        """
        for half_written in [*self.outbox_dir.glob("*.tmp"), *self.open_dir.glob("*.tmp")]:
            half_written.unlink(missing_ok=True)
        interrupted = []
        for mark in sorted(self.open_dir.glob("*.json")):
            data = _read_json(mark)
            if data is None:
                mark.unlink(missing_ok=True)
                continue
            record = TaskRecord.from_dict(data["record"]).ended("interrupted", message=message)
            self.record(record, Identity(**data["identity"]))
            interrupted.append(record)
        return interrupted

    def _start_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._write_forever, name="task-memory-writer", daemon=True)
            self._thread.start()

    def _write_forever(self) -> None:
        """The writer thread: send queued records in order; when idle, retry what waits in the outbox."""
        while True:
            try:
                path = self._queue.get(timeout=self.outbox_retry_seconds)
            except queue.Empty:
                if any(True for _ in self.outbox_dir.glob("*.json")):
                    self.flush()
                continue
            if path is not None:
                self.send(path)

    # -- reading ---------------------------------------------------------------------------------
    def outbox(self, identity: Identity | None = None, task_id: str | None = None) -> list[Pending]:
        """Records waiting on local disk (for one caller and task, if given), oldest transition first."""
        pattern = f"{task_id}-*.json" if task_id else "*.json"
        found = [p for p in (self._load(path) for path in self.outbox_dir.glob(pattern)) if p is not None]
        if identity is not None:
            found = [p for p in found if p.identity == identity]
        return sorted(found, key=lambda p: (p.record.at, STATUSES.index(p.record.status)))

    def lookup(self, identity: Identity, task_id: str) -> tuple[TaskRecord | None, str]:
        """The latest record of ``task_id`` for this caller, and where it was found.

        Where: ``"memory"``, or ``"local disk"`` for a record still in the outbox. An ending found with the
        metadata filter is final; anything less is confirmed with the strongly consistent unfiltered read.
        Raises :class:`MemoryUnavailable` only when Memory fails and the outbox has nothing either.
        """
        local = self.outbox(identity, task_id)
        try:
            remote = records_in_memory(self.client, identity, task_id, limit=10)
            if not remote or not remote[0].finished:  # the filter may lag behind the latest write: confirm
                remote = records_in_memory(self.client, identity, task_id, limit=10, consistent=True)
        except MemoryUnavailable:
            if local:
                return local[-1].record, "local disk"
            raise
        if local and (not remote or _later(local[-1].record, remote[0])):
            return local[-1].record, "local disk"
        return (remote[0], "memory") if remote else (None, "memory")

    def latest_per_task(self, identity: Identity) -> tuple[dict[str, tuple[TaskRecord, str]], str | None]:
        """Every task this caller has records of: task id -> (latest record, where), and Memory's error if any.

        Read unfiltered (strongly consistent): the metadata filter could still miss a task recorded a moment ago.
        """
        latest: dict[str, tuple[TaskRecord, str]] = {}
        problem = None
        try:
            for record in reversed(records_in_memory(self.client, identity, consistent=True)):  # oldest first
                latest[record.task_id] = (record, "memory")
        except MemoryUnavailable as error:
            problem = str(error)
        for pending in self.outbox(identity):
            known = latest.get(pending.record.task_id)
            if known is None or _later(pending.record, known[0]):
                latest[pending.record.task_id] = (pending.record, "local disk")
        return latest, problem

    def _load(self, path: Path) -> Pending | None:
        data = _read_json(path)
        if data is None:
            return None
        return Pending(path, Identity(**data["identity"]), TaskRecord.from_dict(data["record"]), data.get("last_error"))


def records_in_memory(
    client: Any, identity: Identity, task_id: str | None = None, *, limit: int | None = None,
    consistent: bool = False,
) -> list[TaskRecord]:
    """The task records in Memory for this caller (one task's, if ``task_id``), newest first.

    ``client`` is a boto3 ``bedrock-agentcore`` client (:func:`memory_client`). Follows
    ``nextToken``; a session that does not exist yet has no records. Raises
    :class:`MemoryUnavailable`, with the reason, when Memory cannot be read.
    Selected with a ListEvents metadata filter, which is eventually consistent in AWS; ``consistent=True``
    reads the session's events unfiltered (strongly consistent, but every event) and selects them here.
    """
    flt = task_filter(task_id) if task_id else KIND_FILTER
    records: list[TaskRecord] = []
    for event in memory_events(client, identity, None if consistent else flt):
        record = record_from_event(event)
        if record is not None and task_id in (None, record.task_id):
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return records


def memory_events(client: Any, identity: Identity, flt: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every event of this caller's actor and session (matching ``flt``), newest first, with payloads."""
    token = None
    while True:
        request: dict[str, Any] = {"memoryId": identity.memory_id, "actorId": identity.actor_id,
                                   "sessionId": identity.session_id, "includePayloads": True, "maxResults": 100}
        if flt:
            request["filter"] = flt
        if token:
            request["nextToken"] = token
        try:
            page = client.list_events(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return  # no such session yet: no events
            raise MemoryUnavailable(f"AgentCore Memory could not be read: {_why(error)}") from error
        except Exception as error:  # noqa: BLE001 - reported to the caller with the reason
            raise MemoryUnavailable(f"AgentCore Memory could not be read: {_why(error)}") from error
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token:
            return


def _identity_dict(identity: Identity) -> dict[str, str]:
    return {"memory_id": identity.memory_id, "actor_id": identity.actor_id,
            "session_id": identity.session_id, "source": identity.source}


def _later(a: TaskRecord, b: TaskRecord) -> bool:
    """Is ``a`` a later transition of the task than ``b``? (an ending beats ``started``; then time)."""
    return (a.finished, a.at) > (b.finished, b.at)
