"""TaskMemory's promise without a server: retries with backoff, the outbox, recovery, and the record format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from patterns.caller_identity import Identity
from patterns.memory_outbox import TaskMemory
from patterns.task_records import (
    NOTICE_MARKER, TaskRecord, event_request, notice_text, parse_notice, record_from_event,
)

WHO = Identity("agentcore_longrun_lab-abcdefghij", "user-1", "session-1")


def record(status: str = "started", **changes: Any) -> TaskRecord:
    return TaskRecord("3f1c2a9e-7b4d-4c1e-9a57-0d2f6e8b1c44", status, "spiral", 12, 0.3, **changes)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "CreateEvent")


class FlakyClient:
    """Fails with the given errors, in order, then accepts every event (once per client token, as AWS does)."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sent: list[dict[str, Any]] = []

    def create_event(self, **request: Any) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        if request["clientToken"] not in {sent["clientToken"] for sent in self.sent}:
            self.sent.append(request)
        return {"event": {"eventId": str(len(self.sent))}}


def memory(tmp_path: Path, client: Any, sleeps: list[float]) -> TaskMemory:
    return TaskMemory(tmp_path, client, attempts=4, first_delay=0.2, sleep=sleeps.append)


def outbox_file(tmp_path: Path, rec: TaskRecord) -> Path:
    path = tmp_path / "outbox" / f"{rec.task_id}-{rec.status}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"identity": {"memory_id": WHO.memory_id, "actor_id": WHO.actor_id,
                                             "session_id": WHO.session_id, "source": WHO.source},
                                "record": rec.to_dict(), "last_error": None}))
    return path


def test_a_write_that_fails_is_retried_with_exponential_backoff(tmp_path: Path) -> None:
    sleeps: list[float] = []
    client = FlakyClient(EndpointConnectionError(endpoint_url="http://x"), client_error("ThrottlingException", 429))
    store = memory(tmp_path, client, sleeps)
    path = outbox_file(tmp_path, record("completed"))
    assert store.send(path) is True
    assert sleeps == [0.2, 0.4] and len(client.sent) == 1 and not path.exists()


def test_a_write_that_keeps_failing_stays_on_disk_with_the_reason_and_is_sent_later(tmp_path: Path) -> None:
    sleeps: list[float] = []
    down = [client_error("InternalServerException", 500)] * 4
    client = FlakyClient(*down)
    store = memory(tmp_path, client, sleeps)
    path = outbox_file(tmp_path, record("completed"))
    assert store.send(path) is False
    assert sleeps == [0.2, 0.4, 0.8] and path.exists()
    (waiting,) = store.outbox(WHO)
    assert waiting.last_error == "InternalServerException: InternalServerException happened"
    assert store.flush() == 0 and not path.exists() and len(client.sent) == 1


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (client_error("ValidationException", 400), "ValidationException"),
        (NoCredentialsError(), "no AWS credentials were found"),
    ],
)
def test_errors_that_retrying_cannot_fix_are_not_retried_but_still_kept(
    tmp_path: Path, failure: Exception, reason: str
) -> None:
    sleeps: list[float] = []
    store = memory(tmp_path, FlakyClient(failure), sleeps)
    path = outbox_file(tmp_path, record("failed", error="boom"))
    assert store.send(path) is False and sleeps == [] and path.exists()
    assert reason in store.outbox()[0].last_error


def test_recover_turns_tasks_left_open_by_a_dead_process_into_interrupted_records(tmp_path: Path) -> None:
    client = FlakyClient()
    first = TaskMemory(tmp_path, client)
    first.record(record("started", progress=3), WHO)  # the process dies here, its task still running
    assert list((tmp_path / "open").glob("*.json"))

    second = TaskMemory(tmp_path, client)
    (interrupted,) = second.recover()
    assert interrupted.status == "interrupted" and interrupted.progress == 3
    assert not list((tmp_path / "open").glob("*.json"))
    assert second.flush() == 0
    assert [r.status for r in map(record_from_event, client.sent)] == ["started", "interrupted"]
    assert second.recover() == []  # once only


def test_recover_removes_files_a_crash_left_half_written(tmp_path: Path) -> None:
    store = TaskMemory(tmp_path, FlakyClient())
    store.record(record("started"), WHO)
    (tmp_path / "outbox" / "3f1c2a9e-completed.tmp").write_text('{"identity": {"memo')
    (tmp_path / "open" / "3f1c2a9e.tmp").write_text("")
    assert [r.status for r in TaskMemory(tmp_path, FlakyClient()).recover()] == ["interrupted"]
    assert list(tmp_path.glob("*/*.tmp")) == []


def test_an_ended_task_is_not_recovered_as_interrupted(tmp_path: Path) -> None:
    store = TaskMemory(tmp_path, FlakyClient())
    store.record(record("started"), WHO)
    store.record(record("completed", result={"val_accuracy": 0.9}), WHO)
    assert store.recover() == []


def test_an_ending_event_carries_the_record_and_a_restorable_conversation_turn() -> None:
    ended = record("completed", progress=12, result={"val_accuracy": 0.93125, "train_accuracy": 0.95,
                                                    "val_loss": 0.2, "train_loss": 0.1, "artifact_path": "a.npz"})
    request = event_request(ended, WHO)
    assert (request["memoryId"], request["actorId"], request["sessionId"]) == (
        WHO.memory_id, WHO.actor_id, WHO.session_id)
    assert request["metadata"]["taskId"] == {"stringValue": ended.task_id}
    assert request["clientToken"] == f"{ended.task_id}-completed"
    blob, user, assistant = request["payload"]
    assert record_from_event({"payload": [blob]}) == ended
    assert (user["conversational"]["role"], assistant["conversational"]["role"]) == ("USER", "ASSISTANT")
    message = json.loads(user["conversational"]["content"]["text"])
    assert message["message"]["role"] == "user"
    text = message["message"]["content"][0]["text"]
    assert "val accuracy 0.931" in text and parse_notice(text) == ended


def test_a_started_event_has_no_conversation_turn() -> None:
    assert [list(item) for item in event_request(record("started"), WHO)["payload"]] == [["blob"]]


def test_parse_notice_ignores_ordinary_and_damaged_text() -> None:
    assert parse_notice("hello") is None
    assert parse_notice(f"{NOTICE_MARKER}{{not json}}") is None
    assert parse_notice(notice_text(record("interrupted"))).status == "interrupted"


def test_a_record_with_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status must be one of started, completed"):
        record("exploded")


class LaggingMemory:
    """Memory whose metadata-filtered ListEvents shows only ``indexed`` of its events, as AWS may for a while."""

    def __init__(self, *records: TaskRecord, indexed: int = 0) -> None:
        self.events = [{"payload": event_request(r, WHO)["payload"], "metadata": event_request(r, WHO)["metadata"]}
                       for r in reversed(records)]  # newest first
        self.indexed = indexed
        self.reads: list[str] = []

    def list_events(self, **request: Any) -> dict[str, Any]:
        if "filter" not in request:
            self.reads.append("unfiltered")
            return {"events": self.events}
        self.reads.append("filtered")
        (expression,) = request["filter"]["eventMetadata"]
        key, value = expression["left"]["metadataKey"], expression["right"]["metadataValue"]["stringValue"]
        indexed = self.events[len(self.events) - self.indexed:]
        return {"events": [e for e in indexed if e["metadata"][key]["stringValue"] == value]}


def test_a_lookup_the_lagging_filter_cannot_settle_is_confirmed_by_the_unfiltered_read(tmp_path: Path) -> None:
    started, interrupted = record("started"), record("interrupted")
    other = TaskRecord("9e0c2a9e-7b4d-4c1e-9a57-0d2f6e8b1c44", "completed", "other", 3, 0.3)
    for indexed in (0, 1):  # nothing indexed yet (unknown task), or only the start (a stale 'started')
        client = LaggingMemory(started, other, interrupted, indexed=indexed)
        found, where = TaskMemory(tmp_path, client).lookup(WHO, started.task_id)
        assert (found.status, where, client.reads) == ("interrupted", "memory", ["filtered", "unfiltered"])
    client = LaggingMemory(started, interrupted, indexed=2)
    assert TaskMemory(tmp_path, client).lookup(WHO, started.task_id)[0].status == "interrupted"
    assert client.reads == ["filtered"], "an ending the filter shows is final: no second read"
    client = LaggingMemory(started, other, interrupted, indexed=0)
    latest, problem = TaskMemory(tmp_path, client).latest_per_task(WHO)
    assert problem is None and {task: r.status for task, (r, _) in latest.items()} == {
        started.task_id: "interrupted", other.task_id: "completed"}
