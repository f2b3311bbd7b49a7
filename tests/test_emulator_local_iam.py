"""The emulator with local IAM on, through boto3: tenants kept apart by AgentCore Memory's own condition keys.

One emulator for the module, started as a notebook starts it (``use_agentcore`` with ``emulator_iam``), with a
principals file: the lesson's admin (the default dummy credentials, full Memory access), tenants A and B (tagged
``TenantID``, the corrected policy), the guide's ``bedrock:Retrieve`` policy alone and next to a broad grant, a
principal with an explicit Deny, and one with wildcard actions and resources. Every decision below is the
emulator's answer to a real signed request (:mod:`lab_helpers.emulator.local_iam`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import LOCAL_HTTP, LocalAgentCore, local_agentcore
from lab_helpers.emulator.local_iam import GUIDE_POLICY, MEMORY_FULL_ACCESS_POLICY, TENANT_POLICY

A_ACTOR, B_ACTOR = "tenant-a/alice", "tenant-b/bob"
A_NAMESPACE, B_NAMESPACE = "/tenants/tenant-a/alice/facts/", "/tenants/tenant-b/bob/facts/"


def principal(name: str, policies: list[dict[str, Any]], tenant: str | None = None) -> dict[str, Any]:
    return {"name": name, "accessKeyId": f"AKIA{name.upper().replace('-', '')}", "secretAccessKey": f"{name}-secret",
            "tags": {"TenantID": tenant} if tenant else {}, "policies": policies}


DENY_DELETES = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": "bedrock-agentcore:Delete*", "Resource": "*"}]}
LIST_LESSON_MEMORY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "bedrock-agentcore:List*",
     "Resource": "arn:aws:bedrock-agentcore:*:123456789012:memory/agentcore_longrun_lab-*"}]}

PRINCIPALS = [
    {"name": "lesson-admin", "accessKeyId": "local-emulator", "secretAccessKey": "local-emulator",
     "policies": [MEMORY_FULL_ACCESS_POLICY]},
    principal("tenant-a", [TENANT_POLICY], "tenant-a"),
    principal("tenant-b", [TENANT_POLICY], "tenant-b"),
    principal("guide-only", [GUIDE_POLICY], "tenant-b"),
    principal("guide-and-app-role", [GUIDE_POLICY, MEMORY_FULL_ACCESS_POLICY], "tenant-b"),
    principal("no-deletes", [MEMORY_FULL_ACCESS_POLICY, DENY_DELETES]),
    principal("lister", [LIST_LESSON_MEMORY]),
]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgentCore]:
    tmp = tmp_path_factory.mktemp("local-iam")
    principals = tmp / "principals.json"
    principals.write_text(json.dumps({"principals": PRINCIPALS}))
    with local_agentcore(tmp, emulator_iam=principals) as local:
        yield local


def client(local: LocalAgentCore, name: str, secret: str | None = None, service: str = "bedrock-agentcore") -> Any:
    entry = next(p for p in PRINCIPALS if p["name"] == name)
    return boto3.client(service, endpoint_url=f"http://{local.settings.host}:{local.settings.emulator_port}",
                        region_name=local.settings.region, aws_access_key_id=entry["accessKeyId"],
                        aws_secret_access_key=secret or entry["secretAccessKey"])


@pytest.fixture(scope="module")
def memory(emulator: LocalAgentCore) -> dict[str, Any]:
    """A memory whose semantic strategy files records under /tenants/{actorId}/facts/, one event and one record
    for each tenant (written by the admin)."""
    control = client(emulator, "lesson-admin", service="bedrock-agentcore-control")
    created = control.create_memory(name="tenants", eventExpiryDuration=7, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaces": ["/tenants/{actorId}/facts/"]}}])["memory"]
    admin = client(emulator, "lesson-admin")
    found: dict[str, Any] = {"id": created["id"], "strategy": created["strategies"][0]["strategyId"]}
    for actor, namespace in ((A_ACTOR, A_NAMESPACE), (B_ACTOR, B_NAMESPACE)):
        found[actor] = create_event(admin, created["id"], actor, f"{actor} likes the blue deploy window")
        batch = admin.batch_create_memory_records(memoryId=created["id"], records=[{
            "requestIdentifier": "r1", "namespaces": [namespace], "memoryStrategyId": found["strategy"],
            "content": {"text": f"{actor} deploys on Fridays"}, "timestamp": datetime.now(timezone.utc)}])
        assert not batch["failedRecords"], batch
        found[namespace] = batch["successfulRecords"][0]["memoryRecordId"]
    return found


def create_event(data: Any, memory_id: str, actor: str, text: str, session: str = "day-0") -> str:
    return data.create_event(memoryId=memory_id, actorId=actor, sessionId=session, eventTimestamp=time.time(),
                             payload=[{"conversational": {"role": "USER", "content": {"text": text}}}]
                             )["event"]["eventId"]


def refused(call: Any, code: str = "AccessDeniedException") -> str:
    """The message of the ClientError ``call()`` raises, checked to carry ``code`` and AWS's status 403."""
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, 403), error
    return str(error["Error"]["Message"])


def texts(found: dict[str, Any]) -> list[str]:
    return [r["content"]["text"] for r in found["memoryRecordSummaries"]]


def tenants_of(found: dict[str, Any]) -> set[str]:
    """The tenants whose namespaces the records found are in (extraction files each event's records there too)."""
    return {namespace.split("/")[2] for r in found["memoryRecordSummaries"] for namespace in r["namespaces"]}


def test_health_says_local_iam_is_on(emulator):
    assert LOCAL_HTTP.get(f"http://{emulator.settings.host}:{emulator.settings.emulator_port}/health").json()["iam"] is True


def test_a_tenant_reaches_its_own_events_and_records(emulator, memory):
    a = client(emulator, "tenant-a")
    event_id = create_event(a, memory["id"], A_ACTOR, "the incident started at 09:12", session="day-3")
    events = a.list_events(memoryId=memory["id"], actorId=A_ACTOR, sessionId="day-3")["events"]
    assert [e["eventId"] for e in events] == [event_id]
    assert a.get_event(memoryId=memory["id"], actorId=A_ACTOR, sessionId="day-0",
                       eventId=memory[A_ACTOR])["event"]["actorId"] == A_ACTOR
    assert {s["sessionId"] for s in a.list_sessions(memoryId=memory["id"], actorId=A_ACTOR)["sessionSummaries"]} == {
        "day-0", "day-3"}
    found = a.retrieve_memory_records(memoryId=memory["id"], namespacePath="/tenants/tenant-a/",
                                      searchCriteria={"searchQuery": "when does alice deploy"})
    assert f"{A_ACTOR} deploys on Fridays" in texts(found) and tenants_of(found) == {"tenant-a"}
    listed = a.list_memory_records(memoryId=memory["id"], namespace=A_NAMESPACE)
    assert f"{A_ACTOR} deploys on Fridays" in texts(listed) and tenants_of(listed) == {"tenant-a"}


def test_tenant_b_is_denied_tenant_as_events_and_records(emulator, memory):
    b = client(emulator, "tenant-b")
    mid = memory["id"]
    message = refused(lambda: b.list_events(memoryId=mid, actorId=A_ACTOR, sessionId="day-0"))
    assert message == ("User: arn:aws:iam::123456789012:user/tenant-b is not authorized to perform: "
                       f"bedrock-agentcore:ListEvents on resource: arn:aws:bedrock-agentcore:us-east-1:123456789012:"
                       f"memory/{mid} because no identity-based policy allows the bedrock-agentcore:ListEvents action")
    refused(lambda: b.get_event(memoryId=mid, actorId=A_ACTOR, sessionId="day-0", eventId=memory[A_ACTOR]))
    refused(lambda: b.list_sessions(memoryId=mid, actorId=A_ACTOR))
    refused(lambda: create_event(b, mid, A_ACTOR, "written into tenant A's memory"))
    refused(lambda: b.delete_event(memoryId=mid, actorId=A_ACTOR, sessionId="day-0", eventId=memory[A_ACTOR]))
    refused(lambda: b.retrieve_memory_records(memoryId=mid, namespacePath="/tenants/tenant-a/",
                                              searchCriteria={"searchQuery": "deploys"}))
    refused(lambda: b.retrieve_memory_records(memoryId=mid, namespace=A_NAMESPACE,
                                              searchCriteria={"searchQuery": "deploys"}))
    refused(lambda: b.list_memory_records(memoryId=mid, namespace=A_NAMESPACE))
    # Prefixes that would cover tenant A's namespace too, and no namespace at all (the whole memory):
    refused(lambda: b.list_memory_records(memoryId=mid, namespacePath="/tenants/"))
    refused(lambda: b.retrieve_memory_records(memoryId=mid, searchCriteria={"searchQuery": "deploys"}))
    # Operations AWS gives no tenant key: a tenant policy cannot scope them, so it does not grant them.
    refused(lambda: b.get_memory_record(memoryId=mid, memoryRecordId=memory[A_NAMESPACE]))
    refused(lambda: b.list_actors(memoryId=mid))
    # ... while tenant B's own memory answers, and tenant A's events are still there, untouched.
    own = b.list_memory_records(memoryId=mid, namespacePath="/tenants/tenant-b/")
    assert f"{B_ACTOR} deploys on Fridays" in texts(own) and tenants_of(own) == {"tenant-b"}
    admin = client(emulator, "lesson-admin")
    assert admin.get_event(memoryId=mid, actorId=A_ACTOR, sessionId="day-0", eventId=memory[A_ACTOR])["event"]


def test_the_guides_bedrock_retrieve_policy_alone_allows_no_memory_call(emulator, memory):
    guide = client(emulator, "guide-only")
    mid = memory["id"]
    message = refused(lambda: guide.retrieve_memory_records(memoryId=mid, namespacePath="/tenants/tenant-b/",
                                                            searchCriteria={"searchQuery": "deploys"}))
    assert "no identity-based policy allows the bedrock-agentcore:RetrieveMemoryRecords action" in message
    refused(lambda: guide.list_events(memoryId=mid, actorId=B_ACTOR, sessionId="day-0"))  # even its own tenant's
    refused(lambda: create_event(guide, mid, B_ACTOR, "hello"))


def test_next_to_an_app_roles_grant_the_guides_policy_restricts_nothing(emulator, memory):
    b = client(emulator, "guide-and-app-role")  # tagged tenant-b
    mid = memory["id"]
    assert b.list_events(memoryId=mid, actorId=A_ACTOR, sessionId="day-0")["events"], "reads tenant A's events"
    found = b.retrieve_memory_records(memoryId=mid, namespacePath="/tenants/tenant-a/",
                                      searchCriteria={"searchQuery": "deploys"})
    assert f"{A_ACTOR} deploys on Fridays" in texts(found), "and tenant A's records"


def test_a_wrong_secret_or_a_changed_request_is_an_invalid_signature(emulator, memory):
    wrong = client(emulator, "tenant-a", secret="not-the-secret")
    message = refused(lambda: wrong.list_events(memoryId=memory["id"], actorId=A_ACTOR, sessionId="day-0"),
                      "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match")
    tampered = client(emulator, "tenant-a")

    def change_body(request: Any, **_: Any) -> None:  # after signing: what a man in the middle would do
        request.body = json.dumps({**json.loads(request.body), "maxResults": 6}).encode()

    tampered.meta.events.register("before-send.bedrock-agentcore.ListEvents", change_body)
    refused(lambda: tampered.list_events(memoryId=memory["id"], actorId=A_ACTOR, sessionId="day-0", maxResults=5),
            "InvalidSignatureException")


def test_an_unknown_access_key_is_unrecognized(emulator, memory):
    stranger = boto3.client("bedrock-agentcore", endpoint_url=client(emulator, "tenant-a").meta.endpoint_url,
                            region_name="us-east-1", aws_access_key_id="AKIASTRANGER", aws_secret_access_key="x")
    message = refused(lambda: stranger.list_actors(memoryId=memory["id"]), "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


def test_an_explicit_deny_wins_over_an_allow(emulator, memory):
    no_deletes = client(emulator, "no-deletes")
    mid = memory["id"]
    event_id = create_event(no_deletes, mid, "ops/carol", "a note to keep")
    message = refused(lambda: no_deletes.delete_event(memoryId=mid, actorId="ops/carol", sessionId="day-0",
                                                      eventId=event_id))
    assert message.endswith("with an explicit deny in an identity-based policy")
    assert no_deletes.list_events(memoryId=mid, actorId="ops/carol", sessionId="day-0")["events"]


def test_wildcard_actions_and_resources(emulator, memory):
    lister = client(emulator, "lister")  # bedrock-agentcore:List* on memories named agentcore_longrun_lab-*
    assert lister.list_actors(memoryId=emulator.memory_id)["actorSummaries"] == []
    assert lister.list_memory_records(memoryId=emulator.memory_id, namespace="/")["memoryRecordSummaries"] == []
    refused(lambda: create_event(lister, emulator.memory_id, "ops/dan", "not a List action"))
    refused(lambda: lister.list_actors(memoryId=memory["id"]))  # another memory: the resource does not match
    control = client(emulator, "lister", service="bedrock-agentcore-control")
    refused(lambda: control.list_memories())  # ListMemories' resource is "*", not a memory ARN
