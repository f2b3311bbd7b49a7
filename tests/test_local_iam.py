"""The local IAM's evaluator, principals file and SigV4 check, without a server (lab_helpers/emulator/local_iam.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lab_helpers import config
from lab_helpers.emulator import local_iam
from lab_helpers.emulator.local_iam import (GUIDE_POLICY, TENANT_POLICY, PolicyError, Principal, SignedRequest,
                                            authorization_request, evaluate, parse_principals, request_context,
                                            verify_signature)

MEMORY = "arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/lab-0123456789"
TENANT_A = Principal("tenant-a", "AKIAA", "secret-a", {"TenantID": "tenant-a"}, (TENANT_POLICY,))


def decide(policies: list[dict[str, Any]], action: str, keys: dict[str, str] | None = None,
           resource: str = MEMORY, principal: Principal = TENANT_A) -> str:
    decision = evaluate(policies, action, resource, request_context(principal, "us-east-1", keys or {}))
    return "allow" if decision.allowed else "explicit deny" if decision.explicit_deny else "deny"


def statement(**parts: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", **parts}]}


def test_the_tenant_policy_scopes_events_by_actor_and_records_by_namespace():
    actor = "bedrock-agentcore:actorId"
    assert decide([TENANT_POLICY], "bedrock-agentcore:ListEvents", {actor: "tenant-a/alice"}) == "allow"
    assert decide([TENANT_POLICY], "bedrock-agentcore:ListEvents", {actor: "tenant-b/bob"}) == "deny"
    assert decide([TENANT_POLICY], "bedrock-agentcore:ListEvents", {actor: "tenant-ab/eve"}) == "deny"
    assert decide([TENANT_POLICY], "bedrock-agentcore:ListEvents") == "deny", "no actorId in the request"
    ns = "bedrock-agentcore:namespace"
    assert decide([TENANT_POLICY], "bedrock-agentcore:RetrieveMemoryRecords", {ns: "/tenants/tenant-a/x/"}) == "allow"
    assert decide([TENANT_POLICY], "bedrock-agentcore:RetrieveMemoryRecords", {ns: "/tenants/"}) == "deny"
    assert decide([TENANT_POLICY], "bedrock-agentcore:GetMemoryRecord") == "deny"
    untagged = Principal("untagged", "AKIAU", "s", {}, (TENANT_POLICY,))
    assert decide([TENANT_POLICY], "bedrock-agentcore:ListEvents", {actor: "/x"}, principal=untagged) == "deny", \
        "a policy variable without a value matches nothing"


def test_the_guides_action_is_not_an_agentcore_action():
    keys = {"bedrock-agentcore:namespace": "/tenants/tenant-a/"}
    assert decide([GUIDE_POLICY], "bedrock-agentcore:RetrieveMemoryRecords", keys) == "deny"
    assert decide([GUIDE_POLICY], "bedrock:Retrieve", keys) == "allow"


def test_actions_ignore_case_and_take_wildcards_resources_do_not_ignore_case():
    policy = statement(Action="bedrock-agentcore:list*", Resource="arn:aws:bedrock-agentcore:*:*:memory/lab-?1*")
    assert decide([policy], "bedrock-agentcore:ListEvents") == "allow"  # lab-0123456789: ? is 0, then 1
    assert decide([policy], "bedrock-agentcore:ListEvents", resource=MEMORY.replace("lab-01", "lab-09")) == "deny"
    assert decide([policy], "bedrock-agentcore:CreateEvent") == "deny"
    assert decide([policy], "bedrock-agentcore:ListEvents", resource=MEMORY.replace("lab-", "LAB-")) == "deny"
    dots = statement(Action="*", Resource="arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/lab.0123456789")
    assert decide([dots], "x:y") == "deny", "a dot is a dot, not any character"


def test_an_explicit_deny_wins_and_not_action_not_resource_invert():
    allow_all = statement(Action="*")
    deny = {"Statement": {"Effect": "Deny", "NotAction": "bedrock-agentcore:Get*", "NotResource": "*:runtime/*"}}
    assert decide([allow_all, deny], "bedrock-agentcore:DeleteEvent") == "explicit deny"
    assert decide([allow_all, deny], "bedrock-agentcore:GetEvent") == "allow"
    assert decide([allow_all, deny], "bedrock-agentcore:DeleteEvent", resource="arn:x:runtime/r") == "allow"
    assert decide([], "bedrock-agentcore:GetEvent") == "deny"


@pytest.mark.parametrize("operator, value, present, missing", [
    ("StringEquals", "tenant-a/alice", True, False),
    ("StringEquals", "TENANT-A/ALICE", False, False),
    ("StringEqualsIgnoreCase", "TENANT-A/ALICE", True, False),
    ("StringNotEquals", "tenant-a/alice", False, True),
    ("StringNotLike", "tenant-b/*", True, True),
    ("StringLike", "tenant-?/a*", True, False),
    ("StringLike", "${aws:PrincipalTag/TenantID}/*", True, False),
    ("StringEquals", "${aws:username}/alice", True, False),
    ("StringLikeIfExists", "tenant-b/*", False, True),
    ("Null", "true", False, True),
    ("Null", "false", True, False),
])
def test_condition_operators_with_the_key_present_and_missing(operator, value, present, missing):
    policy = statement(Action="*", Condition={operator: {"bedrock-agentcore:ActorId": value}})
    assert (decide([policy], "a:b", {"bedrock-agentcore:actorId": "tenant-a/alice"}) == "allow") is present
    assert (decide([policy], "a:b") == "allow") is missing


def test_escaped_variables_and_several_values_keys_and_operators():
    star = statement(Action="*", Condition={"StringLike": {"k:v": "a${*}b"}})
    assert decide([star], "a:b", {"k:v": "a*b"}) == "allow"
    assert decide([star], "a:b", {"k:v": "axxb"}) == "deny"
    either = statement(Action="*", Condition={"StringEquals": {"k:v": ["x", "y"], "k:w": "z"},
                                               "StringLike": {"k:u": "*"}})
    assert decide([either], "a:b", {"k:v": "y", "k:w": "z", "k:u": "1"}) == "allow"
    assert decide([either], "a:b", {"k:v": "y", "k:w": "z"}) == "deny"
    assert decide([either], "a:b", {"k:v": "q", "k:w": "z", "k:u": "1"}) == "deny"


def test_memory_operations_map_to_actions_resources_and_keys():
    assert authorization_request("ListEvents", {"memoryId": "lab-0123456789", "actorId": "t/a", "sessionId": "s"},
                                 "us-east-1") == ("bedrock-agentcore:ListEvents", MEMORY, {
        "bedrock-agentcore:actorId": "t/a", "bedrock-agentcore:sessionId": "s"})
    assert authorization_request("RetrieveMemoryRecords", {"memoryId": MEMORY, "namespacePath": "/t/",
                                                           "searchCriteria": {"memoryStrategyId": "facts-1"}},
                                 "us-east-1")[1:] == (MEMORY, {"bedrock-agentcore:namespacePath": "/t/",
                                                               "bedrock-agentcore:strategyId": "facts-1"})
    assert authorization_request("BatchCreateMemoryRecords", {"memoryId": MEMORY, "records": []}, "us-east-1")[2] == {}
    assert authorization_request("ListMemories", {}, "us-east-1")[:2] == ("bedrock-agentcore:ListMemories", "*")


@pytest.mark.parametrize("doc, complaint", [
    ({}, "at least one principal"),
    ({"principals": [{"name": "a", "accessKeyId": "K", "secretAccessKey": ""}]}, "secretAccessKey"),
    ({"principals": [{"name": "a", "accessKeyId": "K", "secretAccessKey": "s", "policies": [
        statement(Action="*", Condition={"NumericLessThan": {"k:v": "1"}})]}]}, "NumericLessThan"),
    ({"principals": [{"name": "a", "accessKeyId": "K", "secretAccessKey": "s", "policies": [
        statement(Action="*", Condition={"StringLike": {"ForAnyValue:k:v": "1"}})]}]}, "ForAnyValue"),
    ({"principals": [{"name": "a", "accessKeyId": "K", "secretAccessKey": "s", "policies": [
        {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}]}]}]}, "Principal"),
])
def test_a_principals_file_outside_the_subset_is_refused_not_ignored(doc, complaint):
    with pytest.raises(PolicyError, match=complaint):
        parse_principals(doc)


def test_local_iam_is_off_by_default_and_set_by_its_variable(tmp_path):
    assert config.load(env={}).emulator_iam is None
    assert config.load(env={local_iam.IAM_VARIABLE: str(tmp_path / "p.json")}).emulator_iam == tmp_path / "p.json"


def signed(secret: str = "secret-a", when: datetime | None = None) -> SignedRequest:
    """A ListEvents request as botocore signs it: an actor with '/' (sent as %2F), a query string, a JSON body."""
    raw_path = "/memories/lab-0123456789/actor/tenant-a%2Falice/sessions/s1"
    request = AWSRequest("POST", f"http://127.0.0.1:8787{raw_path}?next=a%20b", data=b'{"maxResults": 5}',
                         headers={"Content-Type": "application/json", "User-Agent": "test"})
    signer = SigV4Auth(Credentials("AKIAA", secret), "bedrock-agentcore", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        signer._inject_signature_to_request(request, signer.signature(signer.string_to_sign(request, canonical),
                                                                      request))
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:8787"
    return SignedRequest("POST", "127.0.0.1:8787", raw_path, "next=a%20b", headers, request.body)


def test_a_botocore_signature_checks_out_and_any_change_breaks_it():
    request = signed()
    assert verify_signature(TENANT_A, request) is None
    assert verify_signature(TENANT_A, signed("other-secret")) == "signature mismatch"
    for change in ({"body": b'{"maxResults": 6}'}, {"query": "next=a%20c"}, {"method": "PUT"},
                   {"raw_path": request.raw_path.replace("alice", "alicf")},
                   {"headers": {**request.headers, "content-type": "text/plain"}}):
        assert verify_signature(TENANT_A, SignedRequest(**{**request.__dict__, **change})) == "signature mismatch"


def test_an_old_signature_has_expired():
    old = datetime.now(timezone.utc) - timedelta(minutes=6)
    assert verify_signature(TENANT_A, signed(when=old)).startswith("Signature expired")
    assert verify_signature(TENANT_A, signed(when=old + timedelta(minutes=2))) is None


def test_the_emulator_refuses_to_start_on_a_bad_principals_file(tmp_path, capsys, monkeypatch):
    from lab_helpers.emulator.__main__ import parse_args

    monkeypatch.delenv(local_iam.IAM_VARIABLE, raising=False)
    assert parse_args([]).principals is None, "off by default"

    bad = tmp_path / "principals.json"
    bad.write_text('{"principals": [{"name": "a", "accessKeyId": "K", "secretAccessKey": "s", "policies": '
                   '[{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", '
                   '"Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}}}]}]}')
    with pytest.raises(SystemExit):
        parse_args(["--iam", str(bad)])
    assert "DateLessThan is not evaluated by the local IAM" in capsys.readouterr().err
    good = tmp_path / "good.json"
    good.write_text('{"principals": [{"name": "a", "accessKeyId": "K", "secretAccessKey": "s"}]}')
    assert list(parse_args(["--iam", str(good)]).principals) == ["K"]
