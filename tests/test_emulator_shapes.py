"""The emulator's wire format, checked against botocore's own service models, operation by operation.

boto3 parses what it is told and silently drops what its model does not know, so a response can be wrong in ways a
client never notices, until it meets AWS. Here every raw response of every operation the emulator implements is
held against the operation's output shape (required members, types, enum values, lengths, patterns, timestamps,
no unknown members), and every error against the exception the model defines (its HTTP status, the
``x-amzn-ErrorType`` header, its members). Two differences from the model are expected, and named where they are
allowed: both are AWS's own (or forced by the model), not the emulator's.

Also here: what floci-io/floci pull request 3556 measured against AWS for Memory events (newest first, event ids,
``maxResults`` bounds, malformed against unknown memory ids, a generated session id, an empty payload), and
ListAgentRuntimes paging from the query string, as boto3 sends it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError

from emulator_kit import ROLE, SIGNED, artifact, clients, start_emulator, write_agent
from lab_helpers import deploy
from lab_helpers.emulator import shapes
from lab_helpers.emulator.api import ROUTES
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually

#: Every operation the emulator serves, from its own routing table.
IMPLEMENTED = {(operation.service, operation.name) for _, _, operation in ROUTES}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_emulator(tmp_path_factory.mktemp("emulator"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_agent(tmp_path_factory.mktemp("code"))


class Recorder:
    """Every raw HTTP answer boto3 gets, with the operation it was for (botocore's ``after-call`` event)."""

    def __init__(self, *boto_clients: Any) -> None:
        self.calls: list[tuple[Any, int, dict[str, str], bytes | None]] = []
        for client in boto_clients:
            client.meta.events.register("after-call", self._record)

    def _record(self, http_response: Any, model: Any, **_: Any) -> None:
        streamed = model.has_streaming_output and http_response.status_code < 300  # read by the caller, not here
        self.calls.append((model, http_response.status_code, dict(http_response.headers),
                           None if streamed else http_response.content))


def _allowed(model: Any, problem: str) -> bool:
    """The two places where the emulator answers what the model does not allow, on purpose."""
    # ListEvents with includePayloads=False: no `payload`, although the model marks it required. AWS's own
    # deviation from its model, measured against AWS in floci-io/floci pull request 3556.
    if model.name == "ListEvents" and re.fullmatch(r"events\[\d+\]: required member 'payload' missing", problem):
        return True
    # A runtime created without a description has none; the summary's model requires one of at least 1 character.
    return model.name == "ListAgentRuntimes" and bool(
        re.fullmatch(r"agentRuntimes\[\d+\]: required member 'description' missing", problem))


def _check_answer(model: Any, status: int, headers: dict[str, str], body: bytes | None) -> list[str]:
    """What is wrong with one raw answer, success or error."""
    lowered = {name.lower(): value for name, value in headers.items()}
    problems = [] if lowered.get("x-amzn-requestid") else ["no x-amzn-RequestId header"]
    if status >= 300:
        code = lowered.get("x-amzn-errortype", "")
        service = shapes.service(model.service_model.service_name)
        if code not in service.shape_names or not service.shape_for(code).metadata.get("exception"):
            return problems + [f"error type {code!r} is not an exception of the model"]
        error = service.shape_for(code)
        if error.metadata["error"]["httpStatusCode"] != status:
            problems.append(f"{code} answered with {status}, the model says {error.metadata['error']['httpStatusCode']}")
        return problems + shapes.output_problems(error, json.loads(body or b"{}"))
    if model.http.get("responseCode", 200) != status:
        problems.append(f"status {status}, the model says {model.http.get('responseCode', 200)}")
    output = model.output_shape
    for name, member in (output.members.items() if output is not None else ()):
        wire = member.serialization.get("name", name).lower()
        if member.serialization.get("location") == "header" and wire in lowered:
            problems += [f"header {p}" for p in shapes.output_problems(member, lowered[wire])]
        elif member.serialization.get("location") == "header" and name in output.required_members:
            problems.append(f"required header {wire} missing")
    if body is None or (output is not None and output.serialization.get("payload")):
        return problems  # a streamed payload (InvokeAgentRuntime): its content is the agent's
    return problems + [p for p in shapes.output_problems(output, json.loads(body or b"{}")) if not _allowed(model, p)]


def test_every_operation_answers_as_its_output_shape_says(emulator: ServerProcess, code_dir: Path) -> None:
    control, data = clients(emulator.base_url)
    recorder = Recorder(control, data)
    now = time.time()

    memory = control.create_memory(name="shapes", eventExpiryDuration=7, description="shape test",
                                   memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
    memory_id = memory["id"]
    control.get_memory(memoryId=memory_id)
    control.list_memories(maxResults=1)
    note = "The training loss fell below 0.1 after three epochs."  # a statement: the semantic strategy's fact
    text = data.create_event(memoryId=memory_id, actorId="ada", sessionId="s-1", eventTimestamp=now,
                             payload=[{"conversational": {"role": "USER", "content": {"text": note}}}],
                             metadata={"kind": {"stringValue": "note"}})["event"]
    data.create_event(memoryId=memory_id, actorId="ada", sessionId="s-1", eventTimestamp=now + 1,
                      payload=[{"blob": {"any": ["json", 1]}}, {"json": {"content": {"epochs": 3}}}],
                      branch={"name": "retry", "rootEventId": text["eventId"]})
    data.get_event(memoryId=memory_id, actorId="ada", sessionId="s-1", eventId=text["eventId"])
    for include in (True, False):
        data.list_events(memoryId=memory_id, actorId="ada", sessionId="s-1", includePayloads=include, maxResults=1)
    data.list_events(memoryId=memory_id, actorId="ada", sessionId="s-1", filter={
        "eventMetadata": [{"left": {"metadataKey": "kind"}, "operator": "EQUALS_TO",
                           "right": {"metadataValue": {"stringValue": "note"}}}]})
    data.list_sessions(memoryId=memory_id, actorId="ada", filter={"eventFilter": "HAS_EVENTS"})
    data.list_actors(memoryId=memory_id)
    namespace = (memory["strategies"][0]["namespaces"][0]
                 .replace("{memoryStrategyId}", memory["strategies"][0]["strategyId"]).replace("{actorId}", "ada"))
    eventually(lambda: data.retrieve_memory_records(memoryId=memory_id, namespace=namespace, searchCriteria={
        "searchQuery": "training"})["memoryRecordSummaries"], 30, 0.05,
        what="the semantic strategy's record of the conversational event (extracted asynchronously)")
    listed = data.list_memory_records(memoryId=memory_id, maxResults=1)["memoryRecordSummaries"]  # no namespace
    data.get_memory_record(memoryId=memory_id, memoryRecordId=listed[0]["memoryRecordId"])
    data.delete_memory_record(memoryId=memory_id, memoryRecordId=listed[0]["memoryRecordId"])
    strategy_id = memory["strategies"][0]["strategyId"]
    control.update_memory(memoryId=memory_id, description="updated", memoryStrategies={
        "addMemoryStrategies": [{"summaryMemoryStrategy": {"name": "summaries"}}]})
    made = data.batch_create_memory_records(memoryId=memory_id, records=[
        {"requestIdentifier": "ok", "namespaces": ["/manual/"], "content": {"text": "a note"}, "timestamp": now,
         "memoryStrategyId": strategy_id, "metadata": {"source": {"stringValue": "test"}}},
        {"requestIdentifier": "no-strategy", "namespaces": ["/manual/"], "content": {"text": "x"}, "timestamp": now}])
    record_id = made["successfulRecords"][0]["memoryRecordId"]
    data.batch_update_memory_records(memoryId=memory_id, records=[
        {"memoryRecordId": record_id, "timestamp": now, "content": {"text": "a new note"}}])
    data.batch_delete_memory_records(memoryId=memory_id, records=[{"memoryRecordId": record_id}])
    data.list_memory_extraction_jobs(memoryId=memory_id, maxResults=5)
    with pytest.raises(ClientError):  # no failed job to start again: a modelled ResourceNotFoundException
        data.start_memory_extraction_job(memoryId=memory_id, extractionJob={"jobId": "job-none"})
    data.delete_event(memoryId=memory_id, actorId="ada", sessionId="s-1", eventId=text["eventId"])

    runtime = control.create_agent_runtime(agentRuntimeName="shapes_http", agentRuntimeArtifact=artifact(code_dir),
                                           roleArn=ROLE)
    bare = control.create_agent_runtime(agentRuntimeName="shapes_agui", agentRuntimeArtifact=artifact(code_dir),
                                        roleArn=ROLE, protocolConfiguration={"serverProtocol": "AGUI"},
                                        description="an AG-UI agent")
    for runtime_id in (runtime["agentRuntimeId"], bare["agentRuntimeId"]):
        control.get_agent_runtime(agentRuntimeId=runtime_id)
    assert "description" not in control.get_agent_runtime(agentRuntimeId=runtime["agentRuntimeId"])
    control.list_agent_runtimes(maxResults=5)
    control.update_agent_runtime(agentRuntimeId=runtime["agentRuntimeId"], agentRuntimeArtifact=artifact(code_dir),
                                 roleArn=ROLE, description="updated")
    session = f"shapes-session-{uuid.uuid4().hex}"
    for arn in (runtime["agentRuntimeArn"], bare["agentRuntimeArn"]):
        answer = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=b'{"hi": 1}')
        assert json.loads(answer["response"].read())["bytes"] == 9
        assert answer["ResponseMetadata"]["RequestId"]
        data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
    for runtime_id in (runtime["agentRuntimeId"], bare["agentRuntimeId"]):
        control.delete_agent_runtime(agentRuntimeId=runtime_id)
    control.delete_memory(memoryId=memory_id)

    seen = {(model.service_model.service_name, model.name) for model, *_ in recorder.calls}
    assert seen == IMPLEMENTED, f"not exercised: {IMPLEMENTED - seen}"
    problems = {f"{model.name}: {problem}" for model, status, headers, body in recorder.calls
                for problem in _check_answer(model, status, headers, body)}
    assert not problems, "\n".join(sorted(problems))


def test_every_error_is_the_exception_the_model_defines(emulator: ServerProcess, code_dir: Path) -> None:
    control, data = clients(emulator.base_url)
    recorder = Recorder(control, data)
    memory_id = control.create_memory(name="errors", eventExpiryDuration=7, clientToken="token-a" * 5)["memory"]["id"]
    runtime = control.create_agent_runtime(agentRuntimeName="errors_rt", agentRuntimeArtifact=artifact(code_dir),
                                           roleArn=ROLE)
    unknown_memory = "nothere-0123456789"
    session = f"errors-session-{uuid.uuid4().hex}"
    cases = [
        (lambda: control.create_memory(name="errors", eventExpiryDuration=7), "ValidationException"),
        (lambda: control.create_memory(name="other", eventExpiryDuration=7, clientToken="token-a" * 5),
         "ConflictException"),
        (lambda: control.get_memory(memoryId=unknown_memory), "ResourceNotFoundException"),
        (lambda: data.list_events(memoryId=unknown_memory, actorId="a", sessionId="s"), "ResourceNotFoundException"),
        (lambda: data.list_events(memoryId=memory_id, actorId="a", sessionId="s", nextToken="forged"),
         "ValidationException"),
        (lambda: data.get_event(memoryId=memory_id, actorId="a", sessionId="s", eventId="1#ab"),
         "ResourceNotFoundException"),
        (lambda: data.retrieve_memory_records(memoryId=memory_id, namespace="a", namespacePath="b",
                                              searchCriteria={"searchQuery": "x"}), "ValidationException"),
        (lambda: control.create_agent_runtime(agentRuntimeName="errors_rt", agentRuntimeArtifact=artifact(code_dir),
                                              roleArn=ROLE), "ConflictException"),
        (lambda: control.create_agent_runtime(agentRuntimeName="a2a", agentRuntimeArtifact=artifact(code_dir),
                                              roleArn=ROLE, protocolConfiguration={"serverProtocol": "A2A"}),
         "ValidationException"),
        (lambda: control.get_agent_runtime(agentRuntimeId="nothere-0123456789"), "ResourceNotFoundException"),
        (lambda: data.invoke_agent_runtime(agentRuntimeArn=runtime["agentRuntimeArn"], runtimeSessionId=session,
                                           payload=b'"fail"'), "RuntimeClientError"),
        (lambda: data.stop_runtime_session(agentRuntimeArn=runtime["agentRuntimeArn"],
                                           runtimeSessionId=f"never-started-{uuid.uuid4().hex}"),
         "ResourceNotFoundException"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == code, raised.value
        assert raised.value.response["ResponseMetadata"]["RequestId"]
    data.stop_runtime_session(agentRuntimeArn=runtime["agentRuntimeArn"], runtimeSessionId=session)
    errors = [call for call in recorder.calls if call[1] >= 300]
    assert len(errors) == len(cases)
    problems = {f"{model.name}: {problem}" for model, status, headers, body in errors
                for problem in _check_answer(model, status, headers, body)}
    assert not problems, "\n".join(sorted(problems))


def _raw(emulator: ServerProcess, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, emulator.base_url + path, json=body, headers=SIGNED, timeout=10)


def test_memory_events_behave_as_measured_against_aws(emulator: ServerProcess) -> None:
    """floci-io/floci pull request 3556, captured against AgentCore in us-west-2."""
    control, data = clients(emulator.base_url)
    memory_id = control.create_memory(name="measured", eventExpiryDuration=7)["memory"]["id"]
    start = time.time()
    made = [data.create_event(memoryId=memory_id, actorId="ada", sessionId="s", eventTimestamp=start + i,
                              payload=[{"conversational": {"role": "USER", "content": {"text": f"m{i}"}}}])["event"]
            for i in range(3)]
    listed = data.list_events(memoryId=memory_id, actorId="ada", sessionId="s")["events"]
    assert [e["eventId"] for e in listed] == [e["eventId"] for e in reversed(made)]  # newest first
    for event in made:  # zero-padded epoch milliseconds, '#', a random suffix: ids sort as time does
        millis, _, suffix = event["eventId"].partition("#")
        assert len(millis) == 19 and int(millis) == round(event["eventTimestamp"].timestamp() * 1000) and suffix
    assert sorted(e["eventId"] for e in made) == [e["eventId"] for e in made]
    assert all("payload" not in e for e in data.list_events(memoryId=memory_id, actorId="ada", sessionId="s",
                                                              includePayloads=False)["events"])
    assert data.list_events(memoryId=memory_id, actorId="nobody", sessionId="nothing")["events"] == []

    too_many = _raw(emulator, "POST", f"/memories/{memory_id}/actor/ada/sessions/s", {"maxResults": 101})
    assert too_many.status_code == 400 and too_many.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "Member must have value less than or equal to 100" in too_many.json()["message"]
    for size in (1, 100):
        assert _raw(emulator, "POST", f"/memories/{memory_id}/actor/ada/sessions/s", {"maxResults": size}).is_success
    malformed = _raw(emulator, "POST", "/memories/nope-1234/actor/a/sessions/s", {})
    assert (malformed.status_code, malformed.headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    unknown = _raw(emulator, "POST", "/memories/absent-AAAAAAAAAA/actor/a/sessions/s", {})
    assert (unknown.status_code, unknown.headers["x-amzn-ErrorType"]) == (404, "ResourceNotFoundException")

    generated = data.create_event(memoryId=memory_id, actorId="ada", eventTimestamp=start, payload=[])["event"]
    uuid.UUID(generated["sessionId"])  # no sessionId: AWS makes one up; an empty payload is accepted
    assert data.get_event(memoryId=memory_id, actorId="ada", sessionId=generated["sessionId"],
                          eventId=generated["eventId"])["event"]["payload"] == []


def test_list_agent_runtimes_pages_from_the_query_string(emulator: ServerProcess, code_dir: Path) -> None:
    control, _ = clients(emulator.base_url)
    names = {f"paged_{i}" for i in range(3)}
    for name in names:
        control.create_agent_runtime(agentRuntimeName=name, agentRuntimeArtifact=artifact(code_dir), roleArn=ROLE)
    first = control.list_agent_runtimes(maxResults=1)
    assert len(first["agentRuntimes"]) == 1 and first["nextToken"]
    pages = list(control.get_paginator("list_agent_runtimes").paginate(PaginationConfig={"PageSize": 1}))
    listed = [summary["agentRuntimeName"] for page in pages for summary in page["agentRuntimes"]]
    assert names <= set(listed) and len(listed) == len(set(listed)) and "nextToken" not in pages[-1]
    assert names <= {summary["agentRuntimeName"] for summary in deploy._summaries(control)}
    forged = _raw(emulator, "POST", f"/runtimes/?nextToken={quote('WzEsMl0=')}")  # base64 of [1,2]
    assert (forged.status_code, forged.headers["x-amzn-ErrorType"]) == (400, "ValidationException")


def test_deploy_stops_when_a_service_repeats_its_page_token() -> None:
    class NotPaging:
        """A ListAgentRuntimes that ignores nextToken: the same page and token forever (the emulator once did)."""

        def list_agent_runtimes(self, **_: Any) -> dict[str, Any]:
            return {"agentRuntimes": [{"agentRuntimeName": "same"}], "nextToken": "again"}

    with pytest.raises(deploy.DeploymentError, match="does not page"):
        list(deploy._summaries(NotPaging()))
