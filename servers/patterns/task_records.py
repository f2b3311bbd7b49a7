"""How a training task's fate is written into AgentCore Memory, and read back.

Notebook 03's server records every transition of a task (``started``, then one of
``completed``, ``failed``, ``cancelled`` or ``interrupted``) as one Memory event in
the caller's actor and session. One event carries two things:

* a ``blob`` with the :class:`TaskRecord` as JSON, and event metadata
  (``kind``, ``taskId``, ``taskStatus``), so the server can find a task by id
  with a ListEvents metadata filter, also after a restart;
* for an ending, two ``conversational`` messages in the exact format the Strands
  ``AgentCoreMemorySessionManager`` restores (a JSON-serialised Strands
  ``SessionMessage``): a user-role notice saying what happened, with the scores,
  and a short assistant-role acknowledgement. The pair keeps the conversation
  alternating user/assistant, which the Bedrock Converse API requires, and the
  agent sees the outcome at its next invocation without calling any tool.

The ``started`` event has no conversational part: it may be written while the
agent is between a tool call and its result, where a message would break the
conversation's order. The session manager skips blobs that are not messages.

:func:`parse_notice` reads a notice back from conversation text, which is how the
offline model (``lab_helpers.models``) answers "what happened while I was away".
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any, TypeVar

from patterns.caller_identity import Identity

T = TypeVar("T")

#: The ``kind`` metadata value (and blob field) that marks this workbench's task records.
RECORD_KIND = "lab-training-task"

STARTED = "started"
ENDINGS = ("completed", "failed", "cancelled", "interrupted")
STATUSES = (STARTED, *ENDINGS)

#: Marks the machine-readable line of a notice; everything before it is for people (and LLMs).
NOTICE_MARKER = "task-record: "
_NOTICE_LINE = re.compile(r"^task-record: (\{.*\})\s*$", re.MULTILINE)

#: Final scores copied from the training result into the record (the per-epoch history stays out of Memory).
SCORE_FIELDS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")


def now_iso(timestamp: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if timestamp is None else timestamp, timezone.utc).isoformat(
        timespec="milliseconds"
    )


@dataclass(frozen=True)
class TaskRecord:
    """One transition of one training task, as written to Memory (and to the local spool)."""

    task_id: str
    status: str
    model_name: str
    epochs: int
    learning_rate: float
    at: str = field(default_factory=now_iso)  # when this transition happened (ISO 8601, UTC)
    progress: int = 0  # epochs done when it happened
    message: str = ""
    error: str | None = None
    #: The training result without its per-epoch history (scores, artifact path, seconds, seed).
    result: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def finished(self) -> bool:
        return self.status in ENDINGS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def ended(self, status: str, **changes: Any) -> TaskRecord:
        """The record of this task's ending (``interrupted`` for a task found started after a crash)."""
        return replace(self, status=status, at=now_iso(), **changes)

    def summary(self) -> str:
        """One sentence for people: what happened to the task, with its scores."""
        head = f"Training task {self.task_id} (model '{self.model_name}', {self.epochs} epochs)"
        if self.status == "completed" and self.result:
            scores = ", ".join(f"{name.replace('_', ' ')} {self.result[name]:.3f}"
                               for name in SCORE_FIELDS if name in self.result)
            return f"{head} completed: {scores}. The model is saved at {self.result.get('artifact_path')}."
        if self.status == "failed":
            return f"{head} failed after {self.progress} epochs: {self.error}."
        if self.status == "cancelled":
            return f"{head} was cancelled after {self.progress} of {self.epochs} epochs."
        if self.status == "interrupted":
            return (f"{head} was interrupted: {self.message or 'the server running it stopped'}. "
                    "It produced no result; it can be started again.")
        return f"{head} started at {self.at}."


def training_summary(result: dict[str, Any]) -> dict[str, Any]:
    """A training result as kept in Memory: everything but the per-epoch history."""
    return {key: value for key, value in result.items() if key != "history"}


# -- Memory events ---------------------------------------------------------------------------------
def _session_message(text: str, role: str, created_at: str) -> str:
    """A Strands ``SessionMessage`` as JSON: the text of a conversational event the session manager restores."""
    return json.dumps({
        "message": {"role": role, "content": [{"text": text}]},
        "message_id": 0,
        "redact_message": None,
        "created_at": created_at,
        "updated_at": created_at,
    })


def notice_text(record: TaskRecord) -> str:
    """The user-role notice of an ending: a sentence for the model, then the record as one JSON line."""
    return (
        f"[Notice from the persistent-tasks server, not typed by the user] {record.summary()}\n"
        f"{NOTICE_MARKER}{json.dumps(record.to_dict(), sort_keys=True)}"
    )


#: How the assistant-role acknowledgement of a notice begins.
ACKNOWLEDGEMENT_PREFIX = "(Recorded automatically)"


def acknowledgement_text(record: TaskRecord) -> str:
    return f"{ACKNOWLEDGEMENT_PREFIX} Noted: training task {record.task_id} {record.status}."


def event_request(record: TaskRecord, identity: Identity, *, timestamp: float | None = None) -> dict[str, Any]:
    """The boto3 ``create_event`` arguments that write ``record`` for ``identity``.

    The client token makes a retried write idempotent: one event per task and status.
    """
    stamp = time.time() if timestamp is None else timestamp
    payload: list[dict[str, Any]] = [{"blob": json.dumps({"kind": RECORD_KIND, **record.to_dict()})}]
    if record.finished:
        created = now_iso(stamp)
        payload += [
            {"conversational": {"role": "USER",
                                "content": {"text": _session_message(notice_text(record), "user", created)}}},
            {"conversational": {"role": "ASSISTANT",
                                "content": {"text": _session_message(acknowledgement_text(record), "assistant",
                                                                     created)}}},
        ]
    return {
        "memoryId": identity.memory_id,
        "actorId": identity.actor_id,
        "sessionId": identity.session_id,
        "eventTimestamp": datetime.fromtimestamp(stamp, timezone.utc),
        "payload": payload,
        "metadata": {
            "kind": {"stringValue": RECORD_KIND},
            "taskId": {"stringValue": record.task_id},
            "taskStatus": {"stringValue": record.status},
        },
        "clientToken": f"{record.task_id}-{record.status}",
    }


def record_from_event(event: dict[str, Any]) -> TaskRecord | None:
    """The task record an event carries, or None for any other event (a conversation turn, agent state)."""
    for item in event.get("payload") or []:
        blob = item.get("blob")
        if blob is None:
            continue
        try:
            data = json.loads(blob) if isinstance(blob, str) else blob
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("kind") == RECORD_KIND:
            try:
                return TaskRecord.from_dict(data)
            except (TypeError, ValueError):
                return None
    return None


def task_filter(task_id: str) -> dict[str, Any]:
    """The ListEvents ``filter`` that selects one task's records."""
    return {"eventMetadata": [{
        "left": {"metadataKey": "taskId"},
        "operator": "EQUALS_TO",
        "right": {"metadataValue": {"stringValue": task_id}},
    }]}


KIND_FILTER: dict[str, Any] = {"eventMetadata": [{
    "left": {"metadataKey": "kind"},
    "operator": "EQUALS_TO",
    "right": {"metadataValue": {"stringValue": RECORD_KIND}},
}]}


# -- reading notices back from a conversation --------------------------------------------------------
def parse_notice(text: str) -> TaskRecord | None:
    """The record inside a notice's text, or None when the text is not a notice (or is damaged)."""
    match = _NOTICE_LINE.search(text or "")
    if not match:
        return None
    try:
        return TaskRecord.from_dict(json.loads(match.group(1)))
    except (TypeError, ValueError):
        return None


def _has_tool_use(message: dict[str, Any]) -> bool:
    return any("toolUse" in block for block in message.get("content", []))


def _first_text(message: dict[str, Any]) -> str:
    return next((block["text"] for block in message.get("content", []) if "text" in block), "")


def settle_notices(messages: list[T], message_of: Callable[[T], dict[str, Any]] | None = None) -> list[T]:
    """The restored conversation with every notice pair moved out of the tool round it landed in.

    The server writes an ending when it happens. If that is while the agent is in
    the middle of a turn (the user's own ``cancel_task`` call, or a task that ends
    during a status check), the notice and its acknowledgement sit between the
    agent's ``toolUse`` and its ``toolResult``, an order the Bedrock Converse API
    rejects. Moving each such pair to just after the turn's final answer keeps
    every message and restores a valid order. ``message_of`` gets the Strands
    message dict of an item (for ``SessionMessage`` objects: ``lambda m: m.message``).
    """
    message_of = message_of or (lambda item: item)  # type: ignore[assignment,return-value]
    settled: list[T] = []
    held: list[T] = []
    in_tool_round = False
    index = 0
    while index < len(messages):
        message = message_of(messages[index])
        following = message_of(messages[index + 1]) if index + 1 < len(messages) else None
        if (in_tool_round and message.get("role") == "user" and parse_notice(_first_text(message))
                and following is not None and _first_text(following).startswith(ACKNOWLEDGEMENT_PREFIX)):
            held += messages[index:index + 2]
            index += 2
            continue
        settled.append(messages[index])
        if message.get("role") == "assistant":
            in_tool_round = _has_tool_use(message)
            if not in_tool_round:
                settled += held
                held = []
        index += 1
    return settled + held


def conversation_problems(messages: list[dict[str, Any]]) -> list[str]:
    """What makes a conversation unacceptable to the Bedrock Converse API (empty list: nothing).

    Checks the two rules that records written by another process can break: roles
    alternate user/assistant, starting with the user, and every ``toolUse`` is answered by a
    ``toolResult`` in the very next message.
    """
    problems = []
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            problems.append(f"message {index} is {message.get('role')}, expected {expected}")
        asked = {block["toolUse"]["toolUseId"] for block in message.get("content", []) if "toolUse" in block}
        if asked:
            following = messages[index + 1] if index + 1 < len(messages) else {}
            answered = {block["toolResult"]["toolUseId"] for block in following.get("content", [])
                        if "toolResult" in block}
            if index + 1 < len(messages) and asked - answered:
                problems.append(f"message {index} calls tools {sorted(asked - answered)} that the next message "
                                "does not answer")
    return problems
