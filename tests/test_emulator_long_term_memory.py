"""Long-term memory in the emulator, through boto3 and the SDK: strategies and their namespaces, asynchronous
extraction by the offline ``rules`` extractor, retrieval, batch record operations, extraction jobs, bad input.

One emulator for the module, extraction delayed by EXTRACTION_DELAY lesson seconds (a fraction of a second at the
tests' time scale): records are absent right after CreateEvent and waited for with ``eventually``, never a sleep.
A second, short-lived emulator runs the ``model`` extractor against a fake OpenAI-compatible server. Of the
operations tested here moto 5.2.5 implements only UpdateMemory (none of Retrieve/Batch*MemoryRecords or the
extraction jobs): one differential test compares it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from bedrock_agentcore.memory import MemoryClient
from bedrock_agentcore.memory.session import MemorySessionManager
from botocore.exceptions import ClientError

from conftest import LocalAgentCore, local_agentcore
from lab_helpers.emulator import extractors, shapes
from lab_helpers.emulator.memory_store import Store
from lab_helpers.processes import free_port
from lab_helpers.waiting import eventually

#: Lesson seconds between an event and its records (times the tests' time scale: well under a second).
EXTRACTION_DELAY = 20.0
LABEL = extractors.LABELS["rules"]
DAY_0 = [("USER", "Hi! I am investigating a memory leak in the billing service. I prefer short answers with code."),
         ("ASSISTANT", "The leak comes from the connection pool that never closes idle sockets."),
         ("USER", "I work on the payments team. I really like dark mode dashboards.")]


@pytest.fixture(scope="module")
def lt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgentCore]:
    with local_agentcore(tmp_path_factory.mktemp("long-term"), emulator_extraction_delay=EXTRACTION_DELAY,
                         emulator_extractor="rules") as local:
        yield local


@pytest.fixture(scope="module")
def control(lt: LocalAgentCore) -> Any:
    return boto3.client("bedrock-agentcore-control", region_name=lt.settings.region)


@pytest.fixture(scope="module")
def data(lt: LocalAgentCore) -> Any:
    return boto3.client("bedrock-agentcore", region_name=lt.settings.region)


@pytest.fixture(scope="module")
def memory(control: Any) -> dict[str, Any]:
    """A memory with the three built-in strategies (AWS's default namespaces) and one with its own template."""
    created = control.create_memory(name="days", eventExpiryDuration=30, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts"}},
        {"summaryMemoryStrategy": {"name": "summaries"}},
        {"userPreferenceMemoryStrategy": {"name": "preferences",
                                          "namespaceTemplates": ["/users/{actorId}/preferences/"]}}])["memory"]
    assert control.get_memory(memoryId=created["id"])["memory"]["status"] == "CREATING"  # then ACTIVE, as on AWS
    return control.get_memory(memoryId=created["id"])["memory"]


def strategy(memory: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(s for s in memory["strategies"] if s["type"] == kind)


def converse(data: Any, memory_id: str, actor: str, session: str, turns: list[tuple[str, str]]) -> None:
    for i, (role, text) in enumerate(turns):
        data.create_event(memoryId=memory_id, actorId=actor, sessionId=session, eventTimestamp=time.time() + i / 1000,
                          payload=[{"conversational": {"role": role, "content": {"text": text}}}])


def records(data: Any, memory_id: str, namespace: str) -> list[dict[str, Any]]:
    return data.list_memory_records(memoryId=memory_id, namespace=namespace, maxResults=100)["memoryRecordSummaries"]


def test_strategies_get_ids_types_status_and_namespace_templates(memory):
    assert memory["status"] == "ACTIVE"
    kinds = {s["name"]: s for s in memory["strategies"]}
    assert {s["type"] for s in kinds.values()} == {"SEMANTIC", "SUMMARIZATION", "USER_PREFERENCE"}
    assert all(s["strategyId"].startswith(s["name"] + "-") and s["status"] == "ACTIVE" for s in kinds.values())
    assert kinds["facts"]["namespaceTemplates"] == ["/strategies/{memoryStrategyId}/actors/{actorId}/"]
    assert kinds["summaries"]["namespaceTemplates"] == [
        "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"]
    assert kinds["preferences"]["namespaces"] == ["/users/{actorId}/preferences/"]


def test_records_are_extracted_asynchronously_per_strategy_into_their_namespaces(data, memory):
    memory_id, session = memory["id"], f"day0-{uuid.uuid4().hex[:6]}"
    facts_ns = f"/strategies/{strategy(memory, 'SEMANTIC')['strategyId']}/actors/ana/"
    summary_ns = f"/strategies/{strategy(memory, 'SUMMARIZATION')['strategyId']}/actors/ana/sessions/{session}/"
    preferences_ns = "/users/ana/preferences/"
    converse(data, memory_id, "ana", session, DAY_0)
    assert records(data, memory_id, facts_ns) == [], "extraction is asynchronous: nothing yet"
    # each event is extracted on its own schedule: wait for the last one's fact
    eventually(lambda: any(r["content"]["text"] == "The user works on the payments team."
                           for r in records(data, memory_id, facts_ns)), timeout=30, what="semantic records")
    facts = records(data, memory_id, facts_ns)
    texts = {r["content"]["text"] for r in facts}
    assert "The user is investigating a memory leak in the billing service." in texts
    assert "The leak comes from the connection pool that never closes idle sockets." in texts
    assert "The user works on the payments team." in texts
    assert not any("prefer" in t or t.startswith("Hi") for t in texts), texts
    prefs = records(data, memory_id, preferences_ns)  # the same events, extracted in the same pass
    assert {r["content"]["text"] for r in prefs} == {"The user prefers short answers with code.",
                                                      "The user really likes dark mode dashboards."}
    summary = records(data, memory_id, summary_ns)
    assert len(summary) == 1, "one consolidated summary per session"
    text = summary[0]["content"]["text"]
    assert "(3 messages)" in text and "leak" in text and "connection pool" in text
    assert all(r["metadata"]["extractor"]["stringValue"] == LABEL for r in facts + prefs + summary)
    # the session grows: its summary is replaced, not duplicated; a repeated fact is kept once
    converse(data, memory_id, "ana", session, [("USER", "I work on the payments team.")])
    eventually(lambda: "(4 messages)" in records(data, memory_id, summary_ns)[0]["content"]["text"], timeout=30,
               what="the summary consolidated")
    assert len(records(data, memory_id, summary_ns)) == 1
    assert len(records(data, memory_id, facts_ns)) == len(facts)


def test_retrieval_is_ranked_limited_by_top_k_and_scoped_by_namespace(data, memory):
    memory_id = memory["id"]
    facts_id = strategy(memory, "SEMANTIC")["strategyId"]
    session = f"rank-{uuid.uuid4().hex[:6]}"
    converse(data, memory_id, "bo", session, [
        ("USER", "I am tuning the billing database indexes."),
        ("USER", "I am reviewing the billing service memory leak report today."),
        ("USER", "I am writing the quarterly roadmap for the search team.")])
    converse(data, memory_id, "cy", session, [("USER", "I am fixing a memory leak in the image resizer.")])
    bo_ns = f"/strategies/{facts_id}/actors/bo/"
    eventually(lambda: len(records(data, memory_id, bo_ns)) == 3, timeout=30, what="bo's facts")
    found = data.retrieve_memory_records(memoryId=memory_id, namespace=bo_ns, searchCriteria={
        "searchQuery": "billing memory leak", "topK": 2})["memoryRecordSummaries"]
    assert [r["content"]["text"] for r in found] == [
        "The user is reviewing the billing service memory leak report today.",
        "The user is tuning the billing database indexes."]
    assert found[0]["score"] > found[1]["score"] > 0
    eventually(lambda: records(data, memory_id, f"/strategies/{facts_id}/actors/cy/"), timeout=30, what="cy's")
    everyone = data.retrieve_memory_records(memoryId=memory_id, namespacePath=f"/strategies/{facts_id}/actors",
                                            searchCriteria={"searchQuery": "image resizer leak", "topK": 10,
                                                            "memoryStrategyId": facts_id})
    assert everyone["memoryRecordSummaries"][0]["namespaces"] == [f"/strategies/{facts_id}/actors/cy/"]
    client = MemoryClient(region_name="us-east-1")
    assert [r["content"]["text"] for r in client.retrieve_memories(memory_id=memory_id, namespace=bo_ns,
                                                                   query="roadmap", top_k=1)] == [
        "The user is writing the quarterly roadmap for the search team."]
    other = data.retrieve_memory_records(memoryId=memory_id, namespace=f"/strategies/{facts_id}/actors/cy/",
                                         searchCriteria={"searchQuery": "roadmap"})["memoryRecordSummaries"]
    assert other == [], "another actor's namespace does not see bo's record"


def test_session_manager_searches_long_term_memory(data, memory):
    """The SDK's MemorySessionManager finds an extracted preference (an actor of its own: no other test's records)."""
    converse(data, memory["id"], "dee", f"sm-{uuid.uuid4().hex[:6]}",
             [("USER", "I really like dark mode dashboards."), ("USER", "I am on the payments team.")])
    manager = MemorySessionManager(memory_id=memory["id"], region_name="us-east-1")
    found = eventually(lambda: manager.search_long_term_memories(
        query="dark mode", namespace="/users/dee/preferences/", top_k=3), timeout=30, what="dee's preference")
    assert [r["content"]["text"] for r in found] == ["The user really likes dark mode dashboards."]


def test_batch_create_update_delete_answer_per_record(data, memory):
    memory_id, facts_id = memory["id"], strategy(memory, "SEMANTIC")["strategyId"]
    ns = "/manual/notes/"
    created = data.batch_create_memory_records(memoryId=memory_id, records=[
        {"requestIdentifier": "one", "namespaces": [ns], "content": {"text": "The deploy window is Friday noon."},
         "timestamp": time.time(), "memoryStrategyId": facts_id, "metadata": {"source": {"stringValue": "ops"}}},
        {"requestIdentifier": "two", "namespaces": [ns], "content": {"text": "nowhere"}, "timestamp": time.time(),
         "memoryStrategyId": "nosuch-0123456789"}])
    assert [r["requestIdentifier"] for r in created["successfulRecords"]] == ["one"]
    assert [(r["requestIdentifier"], r["errorCode"]) for r in created["failedRecords"]] == [("two", 400)]
    record_id = created["successfulRecords"][0]["memoryRecordId"]
    got = data.get_memory_record(memoryId=memory_id, memoryRecordId=record_id)["memoryRecord"]
    assert got["content"]["text"] == "The deploy window is Friday noon." and got["metadata"]["source"] == {
        "stringValue": "ops"}
    missing = f"mem-{uuid.uuid4()}"
    updated = data.batch_update_memory_records(memoryId=memory_id, records=[
        {"memoryRecordId": record_id, "timestamp": time.time(), "content": {"text": "The deploy window is Monday."}},
        {"memoryRecordId": missing, "timestamp": time.time()}])
    assert [r["memoryRecordId"] for r in updated["successfulRecords"]] == [record_id]
    assert [(r["memoryRecordId"], r["errorCode"]) for r in updated["failedRecords"]] == [(missing, 404)]
    found = data.retrieve_memory_records(memoryId=memory_id, namespace=ns, searchCriteria={
        "searchQuery": "deploy Monday", "metadataFilters": [
            {"left": {"metadataKey": "source"}, "operator": "EQUALS_TO",
             "right": {"metadataValue": {"stringValue": "ops"}}}]})["memoryRecordSummaries"]
    assert [r["content"]["text"] for r in found] == ["The deploy window is Monday."]
    deleted = data.batch_delete_memory_records(memoryId=memory_id, records=[{"memoryRecordId": record_id},
                                                                             {"memoryRecordId": missing}])
    assert len(deleted["successfulRecords"]) == 1 and deleted["failedRecords"][0]["errorCode"] == 404
    assert records(data, memory_id, ns) == []


def test_update_memory_adds_modifies_and_deletes_strategies(control, data):
    memory = control.create_memory(name=f"upd_{uuid.uuid4().hex[:6]}", eventExpiryDuration=7,
                                   memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
    facts_id = memory["strategies"][0]["strategyId"]
    client = MemoryClient(region_name="us-east-1")
    answer = control.update_memory(memoryId=memory["id"], memoryStrategies={
        "addMemoryStrategies": [{"summaryMemoryStrategy": {"name": "summaries"}}],
        "modifyMemoryStrategies": [{"memoryStrategyId": facts_id, "namespaceTemplates": ["/facts/{actorId}/"]}]})
    assert answer["memory"]["status"] == "UPDATING"
    assert {s["name"]: s["status"] for s in answer["memory"]["strategies"]} == {"facts": "ACTIVE",
                                                                               "summaries": "CREATING"}
    settled = client.update_memory_strategies_and_wait(memory["id"], delete_strategy_ids=[facts_id], poll_interval=0)
    assert [s["name"] for s in settled["strategies"]] == ["summaries"]
    assert settled["strategies"][0]["status"] == "ACTIVE"
    with pytest.raises(ClientError) as bad:
        control.update_memory(memoryId=memory["id"], memoryStrategies={
            "deleteMemoryStrategies": [{"memoryStrategyId": facts_id}]})
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    control.delete_memory(memoryId=memory["id"])


def test_no_failed_jobs_offline_and_unknown_job_is_not_found(data, memory):
    assert data.list_memory_extraction_jobs(memoryId=memory["id"])["jobs"] == []
    with pytest.raises(ClientError) as missing:
        data.start_memory_extraction_job(memoryId=memory["id"], extractionJob={"jobId": "job-nope"})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_summary_does_not_count_the_offline_models_label_among_its_topics():
    from lab_helpers.models import OFFLINE_LABEL

    assert extractors.OFFLINE_LABEL == OFFLINE_LABEL.strip()
    session = [extractors.Message("USER", "The ledger migration stalled on the ledger locks."),
               *[extractors.Message("ASSISTANT", OFFLINE_LABEL + f"Noted, ledger step {n}.") for n in range(3)]]
    text = extractors.summary(session)
    assert text.startswith("Session about ledger, ") and "offline" not in text and "model" not in text


def test_a_failed_extraction_leaves_a_job_that_start_runs_again(tmp_path, monkeypatch):
    """The offline extractors do not fail, so a failing one is put in their place for one extraction."""
    store = Store(tmp_path / "jobs.db", extractor="rules")
    memory = store.create_memory({"name": "jobs", "eventExpiryDuration": 7,
                                  "memoryStrategies": [{"semanticMemoryStrategy": {"name": "facts"}}]}, "us-east-1")
    real = extractors.extract

    def broken(*args: Any) -> Any:
        raise RuntimeError("model throttled")
    monkeypatch.setattr(extractors, "extract", broken)
    event = store.create_event(memory["id"], {"actorId": "a", "sessionId": "s", "eventTimestamp": time.time(),
                                              "payload": [{"conversational": {"role": "USER", "content": {
                                                  "text": "I am migrating the ledger to Postgres."}}}]})
    jobs, _ = store.list_extraction_jobs(memory["id"], {"actorId": "a"}, 10, None)
    assert [(j["status"], j["failureReason"]) for j in jobs] == [("FAILED", "RuntimeError: model throttled")]
    assert jobs[0]["messages"]["messagesList"] == [{"eventId": event["eventId"], "messageIndex": 0}]
    monkeypatch.setattr(extractors, "extract", real)
    store.start_extraction_job(memory["id"], jobs[0]["jobID"])
    eventually(lambda: store.list_records(memory["id"], None, None, None, 10, None)[0], timeout=30,
               what="the retried job's records")
    assert store.list_extraction_jobs(memory["id"], {}, 10, None)[0] == []
    assert store.list_records(memory["id"], None, None, None, 10, None)[0][0]["content"]["text"] == \
        "The user is migrating the ledger to Postgres."
    store.close()


def test_new_operations_answer_as_their_output_shapes_say(control, data, memory):
    """UpdateMemory, the batch record operations and the extraction jobs, against botocore's output shapes."""
    answers: list[tuple[Any, int, bytes]] = []

    def record(http_response: Any, model: Any, **_: Any) -> None:
        answers.append((model, http_response.status_code, http_response.content))
    for client in (control, data):
        client.meta.events.register("after-call", record)
    try:
        facts_id = strategy(memory, "SEMANTIC")["strategyId"]
        control.update_memory(memoryId=memory["id"], description="long-term memory for days")
        made = data.batch_create_memory_records(memoryId=memory["id"], records=[
            {"requestIdentifier": "r1", "namespaces": ["/shape/"], "content": {"text": "A shape check."},
             "timestamp": time.time(), "memoryStrategyId": facts_id},
            {"requestIdentifier": "r2", "namespaces": ["/shape/"], "content": {"text": "x"}, "timestamp": 0}])
        record_id = made["successfulRecords"][0]["memoryRecordId"]
        data.batch_update_memory_records(memoryId=memory["id"], records=[
            {"memoryRecordId": record_id, "timestamp": time.time(), "content": {"text": "A shape check, updated."}}])
        data.retrieve_memory_records(memoryId=memory["id"], namespace="/shape/",
                                     searchCriteria={"searchQuery": "shape"})
        data.batch_delete_memory_records(memoryId=memory["id"], records=[{"memoryRecordId": record_id}])
        data.list_memory_extraction_jobs(memoryId=memory["id"], filter={"status": "FAILED"})
    finally:
        for client in (control, data):
            client.meta.events.unregister("after-call", record)
    assert {model.name for model, _, _ in answers} == {
        "UpdateMemory", "BatchCreateMemoryRecords", "BatchUpdateMemoryRecords", "RetrieveMemoryRecords",
        "BatchDeleteMemoryRecords", "ListMemoryExtractionJobs"}
    for model, status, body in answers:
        assert status == model.http.get("responseCode", 200), model.name
        assert shapes.output_problems(model.output_shape, json.loads(body)) == [], model.name
    metadata_value = shapes.service("bedrock-agentcore").shape_for("MemoryRecordMetadataValue")
    for label in extractors.LABELS.values():  # what every extracted record carries
        assert shapes.output_problems(metadata_value, {"stringValue": label}) == [], label


def test_update_memory_agrees_with_moto_on_the_strategies_it_leaves(control):
    """Add one strategy, rename nothing, delete another: both servers end with the same names and types. They
    differ where moto simplifies: it is ACTIVE at once (the emulator, like AWS per the SDK, passes through an
    update state first) and lists no ``namespaceTemplates``."""
    from moto import server as moto_server

    port = free_port()
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        other = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                              region_name="us-east-1").client("bedrock-agentcore-control",
                                                              endpoint_url=f"http://127.0.0.1:{port}")
        final = {}
        for name, client in (("emulator", control), ("moto", other)):
            memory = client.create_memory(name=f"diff_{name}", eventExpiryDuration=7, memoryStrategies=[
                {"semanticMemoryStrategy": {"name": "facts"}},
                {"summaryMemoryStrategy": {"name": "summaries"}}])["memory"]
            doomed = next(s["strategyId"] for s in memory["strategies"] if s["name"] == "summaries")
            answer = client.update_memory(memoryId=memory["id"], memoryStrategies={
                "addMemoryStrategies": [{"userPreferenceMemoryStrategy": {"name": "preferences"}}],
                "deleteMemoryStrategies": [{"memoryStrategyId": doomed}]})["memory"]
            assert {"arn", "id", "name", "status", "strategies"} <= set(answer)
            client.get_memory(memoryId=memory["id"])
            final[name] = client.get_memory(memoryId=memory["id"])["memory"]
        assert {name: sorted((s["name"], s["type"]) for s in m["strategies"]) for name, m in final.items()} == {
            name: [("facts", "SEMANTIC"), ("preferences", "USER_PREFERENCE")] for name in final}
        assert {m["status"] for m in final.values()} == {"ACTIVE"}
    finally:
        moto.stop()


class FakeModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that answers one fact, or 503 while ``failing``."""

    failing = True
    prompts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        FakeModel.prompts.append(body["messages"][0]["content"])
        reply = json.dumps({"choices": [{"message": {"role": "assistant",
                                                     "content": "- The user runs the ledger on Postgres.\n"}}]})
        self.send_response(503 if FakeModel.failing else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_model_extractor_asks_lab_model_and_a_failed_job_can_be_started_again(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with local_agentcore(tmp_path, emulator_extraction_delay=5, emulator_extractor="model",
                             model=f"http://127.0.0.1:{server.server_port}") as local:
            data = boto3.client("bedrock-agentcore", region_name=local.settings.region)
            control = boto3.client("bedrock-agentcore-control", region_name=local.settings.region)
            memory = control.create_memory(name="modelled", eventExpiryDuration=7, memoryStrategies=[
                {"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
            converse(data, memory["id"], "eve", "s1", [("USER", "We moved the ledger to Postgres last week.")])
            jobs = eventually(lambda: data.list_memory_extraction_jobs(memoryId=memory["id"])["jobs"], timeout=30,
                              what="the failed extraction job")
            assert jobs[0]["status"] == "FAILED" and "503" in jobs[0]["failureReason"]
            assert jobs[0]["actorId"] == "eve" and jobs[0]["strategyId"] == memory["strategies"][0]["strategyId"]
            FakeModel.failing = False
            assert data.start_memory_extraction_job(memoryId=memory["id"], extractionJob={
                "jobId": jobs[0]["jobID"]})["jobId"] == jobs[0]["jobID"]
            found = eventually(lambda: data.list_memory_records(memoryId=memory["id"])["memoryRecordSummaries"],
                               timeout=30, what="the model's records")
            assert [r["content"]["text"] for r in found] == ["The user runs the ledger on Postgres."]
            assert found[0]["metadata"]["extractor"]["stringValue"] == extractors.LABELS["model"]
            assert "USER: We moved the ledger to Postgres last week." in FakeModel.prompts[-1]
            assert data.list_memory_extraction_jobs(memoryId=memory["id"])["jobs"] == []
    finally:
        server.shutdown()
        server.server_close()


def test_queued_extractions_survive_a_restart(tmp_path):
    """An event acknowledged but not yet extracted is extracted by the next emulator on the same database."""
    store = Store(tmp_path / "queue.db", extraction_delay=3600, extractor="rules")
    memory = store.create_memory({"name": "restart", "eventExpiryDuration": 7,
                                  "memoryStrategies": [{"semanticMemoryStrategy": {"name": "facts"}}]}, "us-east-1")
    store.create_event(memory["id"], {"actorId": "a", "sessionId": "s", "eventTimestamp": time.time(), "payload": [
        {"conversational": {"role": "USER", "content": {"text": "I am on call for the ledger this week."}}}]})
    store.close()  # an hour early
    again = Store(tmp_path / "queue.db", extractor="rules")
    again.db.execute("UPDATE extraction_queue SET due = 0")  # the hour has passed
    again.resume_extractions()
    found = eventually(lambda: again.list_records(memory["id"], None, None, None, 10, None)[0], timeout=30,
                       what="the record extracted after the restart")
    assert [r["content"]["text"] for r in found] == ["The user is on call for the ledger this week."]
    again.close()


@pytest.mark.parametrize("call, code", [
    (lambda c, d, m: c.create_memory(name="dup_names", eventExpiryDuration=7, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "x"}}, {"summaryMemoryStrategy": {"name": "x"}}]), "ValidationException"),
    (lambda c, d, m: c.create_memory(name="bad_template", eventExpiryDuration=7, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "x", "namespaceTemplates": ["/x/{tenant}/"]}}]), "ValidationException"),
    (lambda c, d, m: c.update_memory(memoryId="nosuch-0123456789", description="d"), "ResourceNotFoundException"),
    (lambda c, d, m: d.retrieve_memory_records(memoryId=m["id"], namespace="/x", searchCriteria={
        "searchQuery": "x", "topK": 101}), "ValidationException"),
    (lambda c, d, m: d.retrieve_memory_records(memoryId=m["id"], namespace="/x", searchCriteria={
        "searchQuery": "x", "metadataFilters": [{"left": {"metadataKey": "k"}, "operator": "BEFORE",
                                                  "right": {"metadataValue": {"dateTimeValue": 0}}}]}),
     "ValidationException"),
    (lambda c, d, m: d.batch_create_memory_records(memoryId=m["id"], records=[
        {"requestIdentifier": "bad id!", "namespaces": ["/x"], "content": {"text": "t"}, "timestamp": 0}]),
     "ValidationException"),
    (lambda c, d, m: d.batch_delete_memory_records(memoryId="nosuch-0123456789", records=[]),
     "ResourceNotFoundException"),
    (lambda c, d, m: d.list_memory_extraction_jobs(memoryId=m["id"], maxResults=51), "ValidationException"),
], ids=["duplicate-strategy-names", "unknown-template-variable", "update-missing-memory", "topK-too-large",
        "unemulated-operator", "bad-request-identifier", "batch-missing-memory", "jobs-max-results"])
def test_bad_input_gets_a_modelled_4xx(control, data, memory, call, code):
    with pytest.raises(ClientError) as bad:
        call(control, data, memory)
    assert bad.value.response["Error"]["Code"] == code
    assert 400 <= bad.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
