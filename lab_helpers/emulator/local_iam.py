"""Optional local IAM for the emulator: who signed a request (SigV4, checked), and may they make this call?

Off by default: the lessons before notebook 06 sign with dummy credentials, and the emulator only checks that a
request is signed at all. Turned on with a principals file (``--iam FILE``, ``LAB_EMULATOR_IAM``), every AWS API
request must be signed by one of the file's access keys with its secret, and each call is evaluated against the
identity policies of that principal, as IAM evaluates identity-based policies in one account.

**What AWS defines, and where it says so.** The Service Authorization Reference for Amazon Bedrock AgentCore
(service prefix ``bedrock-agentcore``:
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrockagentcore.html) maps each API
operation to the IAM action of the same name with that prefix, for the data plane and the control plane alike:
``bedrock-agentcore:CreateEvent``, ``:GetEvent``, ``:ListEvents``, ``:DeleteEvent``, ``:ListSessions``,
``:ListActors``, ``:RetrieveMemoryRecords``, ``:ListMemoryRecords``, ``:GetMemoryRecord``, ``:DeleteMemoryRecord``,
``:BatchCreateMemoryRecords``, ``:BatchUpdateMemoryRecords``, ``:BatchDeleteMemoryRecords``,
``:StartMemoryExtractionJob``, ``:ListMemoryExtractionJobs``, ``:CreateMemory``, ``:GetMemory``, ``:UpdateMemory``,
``:DeleteMemory``, ``:ListMemories``, ``:CreateAgentRuntime``, ..., ``:InvokeAgentRuntime``,
``:StopRuntimeSession``. Each data-plane API reference page says the same ("To use this operation, you must have
the bedrock-agentcore:ListMemoryRecords permission":
https://docs.aws.amazon.com/bedrock-agentcore/latest/APIReference/API_ListMemoryRecords.html). The resource of a
Memory operation is the memory, ``arn:aws:bedrock-agentcore:REGION:ACCOUNT:memory/MEMORY_ID``; of a runtime
operation, ``...:runtime/RUNTIME_ID``; CreateMemory, ListMemories, CreateAgentRuntime and ListAgentRuntimes name
no resource (``*``).

Memory's own condition keys (the same reference; "restrict access by action, by Memory resource, and by the
request's actor, session, and namespace scopes ... with Memory's condition keys":
https://docs.aws.amazon.com/bedrock-agentcore/latest/devguide/memory-gateway-fgac.html) carry values of the
request, so a key exists only where the operation takes that member:

=====================================  ==========================================================================
``bedrock-agentcore:actorId``          CreateEvent, GetEvent, DeleteEvent, ListEvents, ListSessions (``actorId``)
``bedrock-agentcore:sessionId``        CreateEvent (when given), GetEvent, DeleteEvent, ListEvents (``sessionId``)
``bedrock-agentcore:namespace``        RetrieveMemoryRecords, ListMemoryRecords (``namespace``)
``bedrock-agentcore:namespacePath``    RetrieveMemoryRecords, ListMemoryRecords (``namespacePath``; shown in AWS's
                                       devguide examples, not yet in the reference's key table)
``bedrock-agentcore:strategyId``       RetrieveMemoryRecords, ListMemoryRecords (``memoryStrategyId``)
=====================================  ==========================================================================

GetMemoryRecord, DeleteMemoryRecord, ListActors and the Batch* record operations carry none of them, so a policy
can scope them to a memory but not to a tenant: a statement conditioned on ``actorId`` never allows them (AWS
users measured exactly that: an ``actorId`` condition denies BatchCreateMemoryRecords and RetrieveMemoryRecords
even for the matching actor, because those requests have no actor). A tenant's policy therefore grants only the
scoped operations, and the records of a tenant are reached through namespaces.

The guide this workbench follows wrote its tenant policy with ``bedrock:Retrieve``: an action of Amazon Bedrock
(Knowledge Bases), not of AgentCore. No AgentCore Memory operation asks for it, so such a statement allows nothing
here and restricts nothing either: alone, every Memory call is denied (default deny); next to a broad
``bedrock-agentcore:*`` grant, tenant B reads tenant A's memory. ``tests/test_emulator_local_iam.py`` shows both.

**The evaluator** is this module's own, small on purpose. moto (pinned for tests only) has one, but it checks
``StringEquals`` only, skips the other operators (a condition it does not know counts as met, which would grant),
expands no policy variables and reads unescaped patterns as regular expressions; no policy library is in
requirements.txt. The subset, checked when the file is read (anything else is refused, never ignored):

* ``Effect`` Allow/Deny; ``Action``/``NotAction`` (case-insensitive, ``*`` and ``?`` wildcards);
  ``Resource``/``NotResource`` (case-sensitive, wildcards); explicit Deny wins, then any Allow, else denied;
* ``Condition`` operators ``StringEquals``, ``StringNotEquals``, ``StringEqualsIgnoreCase``,
  ``StringNotEqualsIgnoreCase``, ``StringLike``, ``StringNotLike``, each also ``...IfExists``, and ``Null``;
  several keys or operators must all hold, several values of one key any one; a key missing from the request
  fails a positive operator and satisfies a negated one (IAM's rule);
* policy variables in resources and condition values: ``${aws:PrincipalTag/KEY}``, ``${aws:username}``,
  ``${aws:userid}``, ``${aws:PrincipalArn}``, ``${aws:PrincipalAccount}``, ``${aws:RequestedRegion}``, any Memory
  key above, and ``${*}``, ``${?}``, ``${$}``; an element whose variable has no value does not match;
* global keys: those variables, plus ``aws:SecureTransport`` (``false``: plain HTTP on loopback).

Left out: resource-based policies, permission boundaries, SCPs, sessions and ``sts``, multivalued keys
(``ForAnyValue``/``ForAllValues``), numeric, date, IP, ARN and Bool operators; an InvokeAgentRuntime with an OAuth
``Bearer`` token is not a SigV4 call and is not evaluated here (AWS checks it with the runtime's authorizer; the
emulator takes any token). The signature check is
:func:`verify_signature` (botocore's own signer recomputes it).
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

#: The emulator's account (the same as in its memory and runtime ARNs).
ACCOUNT_ID = "123456789012"
#: The environment variable that names a principals file (see :func:`load_principals`).
IAM_VARIABLE = "LAB_EMULATOR_IAM"
#: How far a request's X-Amz-Date may be from the emulator's clock, as AWS allows (5 minutes).
MAX_CLOCK_SKEW_SECONDS = 300

AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
                           r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*"
                           r"Signature=(?P<signature>[0-9a-f]{64})")

STRING_OPERATORS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
                    "StringLike", "StringNotLike"}
OPERATORS = STRING_OPERATORS | {name + "IfExists" for name in STRING_OPERATORS} | {"Null"}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class PolicyError(ValueError):
    """A principals file or policy the local IAM cannot use (outside the documented subset, or malformed)."""


@dataclass(frozen=True)
class Principal:
    """A local IAM user: its access key and secret, tags (``aws:PrincipalTag/...``) and identity policies."""

    name: str
    access_key_id: str
    secret_access_key: str
    tags: Mapping[str, str] = field(default_factory=dict)
    policies: tuple[dict[str, Any], ...] = ()

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:user/{self.name}"


# -- the principals file ------------------------------------------------------------------------------------
def load_principals(path: str | Path) -> dict[str, Principal]:
    """The principals of a JSON file, by access key id; :class:`PolicyError` says what is wrong with it.

    Format: ``{"principals": [{"name": "tenant-a", "accessKeyId": "AKIA...", "secretAccessKey": "...",
    "tags": {"TenantID": "tenant-a"}, "policies": [{"Version": "2012-10-17", "Statement": [...]}]}]}``.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"cannot read the principals file {path}: {exc}") from None
    return parse_principals(doc)


def parse_principals(doc: Any) -> dict[str, Principal]:
    """The principals of a parsed principals document (see :func:`load_principals`), checked."""
    if not isinstance(doc, dict) or not isinstance(doc.get("principals"), list) or not doc["principals"]:
        raise PolicyError('a principals file is {"principals": [...]} with at least one principal')
    principals: dict[str, Principal] = {}
    for i, entry in enumerate(doc["principals"]):
        where = f"principals[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} must be an object")
        for member in ("name", "accessKeyId", "secretAccessKey"):
            if not isinstance(entry.get(member), str) or not entry[member]:
                raise PolicyError(f"{where}.{member} must be a non-empty string")
        tags = entry.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise PolicyError(f"{where}.tags must map strings to strings")
        policies = entry.get("policies", [])
        if not isinstance(policies, list):
            raise PolicyError(f"{where}.policies must be a list of policy documents")
        for j, policy in enumerate(policies):
            check_policy(policy, f"{where}.policies[{j}]")
        if entry["accessKeyId"] in principals:
            raise PolicyError(f"{where}.accessKeyId {entry['accessKeyId']!r} is used twice")
        principals[entry["accessKeyId"]] = Principal(entry["name"], entry["accessKeyId"], entry["secretAccessKey"],
                                                     dict(tags), tuple(policies))
    return principals


def _strings(value: Any, where: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{where} must be a string or a non-empty list of strings")
    return values


def check_policy(policy: Any, where: str = "policy") -> None:
    """Raise :class:`PolicyError` unless ``policy`` is an identity policy within the evaluated subset."""
    if not isinstance(policy, dict) or "Statement" not in policy:
        raise PolicyError(f"{where} must be a policy document with a Statement")
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for k, statement in enumerate(statements):
        at = f"{where}.Statement[{k}]"
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"{at} needs an Effect of Allow or Deny")
        if ("Action" in statement) == ("NotAction" in statement):
            raise PolicyError(f"{at} needs exactly one of Action and NotAction")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise PolicyError(f"{at} needs exactly one of Resource and NotResource")
        unknown = set(statement) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
        if unknown:
            raise PolicyError(f"{at} has elements the local IAM does not evaluate: {', '.join(sorted(unknown))}")
        for element in ("Action", "NotAction", "Resource", "NotResource"):
            if element in statement:
                _strings(statement[element], f"{at}.{element}")
        condition = statement.get("Condition", {})
        if not isinstance(condition, dict):
            raise PolicyError(f"{at}.Condition must be an object")
        for operator, keys in condition.items():
            if operator not in OPERATORS:
                raise PolicyError(f"{at}.Condition: operator {operator} is not evaluated by the local IAM "
                                  f"(only {', '.join(sorted(OPERATORS))})")
            if not isinstance(keys, dict) or not keys:
                raise PolicyError(f"{at}.Condition.{operator} must map condition keys to values")
            for key, values in keys.items():
                if key.lower().startswith(("foranyvalue:", "forallvalues:")):
                    raise PolicyError(f"{at}: set operators (ForAnyValue/ForAllValues) are not evaluated")
                for value in _strings(values, f"{at}.Condition.{operator}.{key}"):
                    if operator == "Null" and value not in ("true", "false"):
                        raise PolicyError(f"{at}.Condition.Null.{key} must be 'true' or 'false'")


# -- evaluation ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization: ``allowed``, and why not (``explicit`` deny or no Allow)."""

    allowed: bool
    explicit_deny: bool = False


@lru_cache(maxsize=1024)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` one character, the rest literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _lookup(context: Mapping[str, str], key: str) -> str | None:
    """A context key's value; IAM compares key names without regard to case."""
    return context.get(key.lower())


def _substitute(text: str, context: Mapping[str, str]) -> str | None:
    """``text`` with its policy variables replaced, or None when one of them has no value in the request."""
    if "${" not in text:
        return text
    missing = False

    def value(found: re.Match[str]) -> str:
        nonlocal missing
        name = found.group(1).strip()
        if name in ("*", "?", "$"):
            return name
        got = _lookup(context, name)
        if got is None:
            missing = True
            return ""
        return got

    result = _VARIABLE.sub(value, text)
    return None if missing else result


def _like(pattern: str, value: str, context: Mapping[str, str], ignore_case: bool = False) -> bool:
    """Does ``value`` match the wildcard ``pattern`` once its variables are replaced? (Literal ``${*}``: a star.)"""
    if "${" not in pattern:
        return _wildcard(pattern, ignore_case).fullmatch(value) is not None
    parts: list[str] = []
    for piece in re.split(r"(\$\{[^}]*\})", pattern):
        if piece.startswith("${"):
            name = piece[2:-1].strip()
            if name in ("*", "?", "$"):
                parts.append(re.escape(name))
                continue
            got = _lookup(context, name)
            if got is None:
                return False
            parts.append(re.escape(got))
        else:
            parts.append("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in piece))
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.fullmatch("".join(parts), value, flags) is not None


def _condition_holds(operator: str, key: str, expected: list[str], context: Mapping[str, str]) -> bool:
    actual = _lookup(context, key)
    if operator == "Null":  # "true": the key must be absent; "false": present
        return any((value == "true") == (actual is None) for value in expected)
    if_exists = operator.endswith("IfExists")
    base = operator[:-len("IfExists")] if if_exists else operator
    negated = "Not" in base
    if actual is None:
        return if_exists or negated
    if base in ("StringLike", "StringNotLike"):
        matched = any(_like(pattern, actual, context) for pattern in expected)
    else:
        ignore_case = base.endswith("IgnoreCase")
        wanted = [_substitute(value, context) for value in expected]
        if ignore_case:
            matched = any(w is not None and w.lower() == actual.lower() for w in wanted)
        else:
            matched = any(w is not None and w == actual for w in wanted)
    return not matched if negated else matched


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str,
                       context: Mapping[str, str]) -> bool:
    if "Action" in statement:
        if not any(_wildcard(a, True).fullmatch(action) for a in _strings(statement["Action"], "Action")):
            return False
    elif any(_wildcard(a, True).fullmatch(action) for a in _strings(statement["NotAction"], "NotAction")):
        return False
    if "Resource" in statement:
        if not any(_like(r, resource, context) for r in _strings(statement["Resource"], "Resource")):
            return False
    elif any(_like(r, resource, context) for r in _strings(statement["NotResource"], "NotResource")):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, values in keys.items():
            if not _condition_holds(operator, key, _strings(values, key), context):
                return False
    return True


def evaluate(policies: Iterable[Mapping[str, Any]], action: str, resource: str,
             context: Mapping[str, str]) -> Decision:
    """IAM's decision for one identity: an explicit Deny wins, else any Allow allows, else denied.

    ``context`` maps condition keys, in lower case, to the request's values (see :func:`request_context`).
    """
    allowed = False
    for policy in policies:
        statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        for statement in statements:
            if _statement_applies(statement, action, resource, context):
                if statement["Effect"] == "Deny":
                    return Decision(False, explicit_deny=True)
                allowed = True
    return Decision(allowed)


def request_context(principal: Principal, region: str, keys: Mapping[str, str]) -> dict[str, str]:
    """The condition keys of one request (lower case): the principal's, the region, and the operation's ``keys``."""
    context = {"aws:username": principal.name, "aws:userid": principal.access_key_id,
               "aws:principalarn": principal.arn, "aws:principalaccount": ACCOUNT_ID,
               "aws:principaltype": "User", "aws:requestedregion": region, "aws:securetransport": "false"}
    for tag, value in principal.tags.items():
        context[f"aws:principaltag/{tag.lower()}"] = value
    for key, value in keys.items():
        context[key.lower()] = value
    return context


# -- the operations: action, resource and condition keys -------------------------------------------------------
#: Request members that become Memory's condition keys (module docstring).
CONDITION_MEMBERS = {"actorId": "bedrock-agentcore:actorId", "sessionId": "bedrock-agentcore:sessionId",
                     "namespace": "bedrock-agentcore:namespace",
                     "namespacePath": "bedrock-agentcore:namespacePath",
                     "memoryStrategyId": "bedrock-agentcore:strategyId"}
#: The operations whose request members give those keys; any other operation has none.
SCOPED_OPERATIONS = {"CreateEvent", "GetEvent", "DeleteEvent", "ListEvents", "ListSessions",
                     "RetrieveMemoryRecords", "ListMemoryRecords"}
#: Operations on no particular resource (Resource ``*`` in the reference).
UNSCOPED_RESOURCE = {"CreateMemory", "ListMemories", "CreateAgentRuntime", "ListAgentRuntimes"}


def authorization_request(operation: str, inputs: Mapping[str, Any], region: str) -> tuple[str, str, dict[str, str]]:
    """(action, resource ARN, Memory condition keys) of one validated call, as AWS's reference defines them."""
    action = f"bedrock-agentcore:{operation}"
    resource = "*"
    if operation not in UNSCOPED_RESOURCE:
        if "memoryId" in inputs:
            memory_id = str(inputs["memoryId"]).rsplit("/", 1)[-1]
            resource = f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}:memory/{memory_id}"
        elif "agentRuntimeArn" in inputs:
            arn = str(inputs["agentRuntimeArn"])
            resource = arn if arn.startswith("arn:") else \
                f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}:runtime/{arn}"
        elif "agentRuntimeId" in inputs:
            resource = f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}:runtime/{inputs['agentRuntimeId']}"
    keys: dict[str, str] = {}
    if operation in SCOPED_OPERATIONS:
        search = inputs.get("searchCriteria") or {}
        for member, key in CONDITION_MEMBERS.items():
            value = inputs.get(member, search.get(member) if member == "memoryStrategyId" else None)
            if isinstance(value, str):
                keys[key] = value
    return action, resource, keys


# -- the signature ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedRequest:
    """What a SigV4 check needs of a received request: method, raw path and query, headers, body."""

    method: str
    host: str
    raw_path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def parse_authorization(header: str) -> re.Match[str] | None:
    return AUTHORIZATION.fullmatch(header.strip())


def verify_signature(principal: Principal, request: SignedRequest, now: datetime | None = None) -> str | None:
    """None when ``request`` carries the signature botocore computes with the principal's secret, else why not.

    The canonical request is rebuilt from what was received: the raw (still percent-encoded) path, which botocore
    encodes once more as it did when signing; the raw query string; exactly the headers listed in
    ``SignedHeaders``, with the values received; the SHA-256 of the body (botocore signs the payload over plain
    HTTP); the ``X-Amz-Date`` timestamp; and the region and service of the credential scope.
    """
    found = parse_authorization(request.headers.get("authorization", ""))
    if found is None:
        return "the Authorization header is not a SigV4 one"
    stamp = request.headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "the request has no valid X-Amz-Date header"
    if stamp[:8] != found["date"]:
        return "the credential scope's date is not the date of X-Amz-Date"
    now = now or datetime.now(timezone.utc)
    if abs((now - signed_at).total_seconds()) > MAX_CLOCK_SKEW_SECONDS:
        return f"Signature expired: {stamp} is more than 5 minutes away from the emulator's time"
    names = found["headers"].split(";")
    if "host" not in names:
        return "the signature does not cover the Host header"
    headers = {}
    for name in names:
        value = request.headers.get(name)
        if value is None:
            return f"the signed header {name} is missing"
        headers[name] = value
    url = f"http://{request.host}{request.raw_path}" + (f"?{request.query}" if request.query else "")
    rebuilt = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
    rebuilt.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(principal.access_key_id, principal.secret_access_key),
                       found["service"], found["region"])
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    if not hmac.compare_digest(expected, found["signature"]):
        return "signature mismatch"
    return None


def access_denied_message(principal: Principal, action: str, resource: str, decision: Decision) -> str:
    """AWS's wording of an AccessDeniedException for an identity-based decision."""
    why = ("with an explicit deny in an identity-based policy" if decision.explicit_deny
           else f"because no identity-based policy allows the {action} action")
    return f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} {why}"


# -- the lesson's policies (notebook 06, tests/test_emulator_local_iam.py) -------------------------------------
#: Memory operations a tenant's own scope can be expressed for (they carry actorId, sessionId or namespace).
TENANT_EVENT_ACTIONS = ["bedrock-agentcore:CreateEvent", "bedrock-agentcore:GetEvent", "bedrock-agentcore:ListEvents",
                        "bedrock-agentcore:DeleteEvent", "bedrock-agentcore:ListSessions"]
TENANT_RECORD_ACTIONS = ["bedrock-agentcore:RetrieveMemoryRecords", "bedrock-agentcore:ListMemoryRecords"]

#: Tenants kept apart by IAM, on the keys AgentCore Memory defines: a principal tagged ``TenantID=t`` may reach
#: the events of actors ``t/...`` and the long-term records under namespaces ``/tenants/t/...`` (a strategy's
#: namespace template ``/tenants/{actorId}/...`` puts actor ``t/alice``'s records there), in any memory, by a
#: ``namespace`` or a ``namespacePath`` (one statement each: a request carries one of the two keys).
TENANT_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "OwnTenantsEvents", "Effect": "Allow", "Action": TENANT_EVENT_ACTIONS,
         "Resource": "arn:aws:bedrock-agentcore:*:*:memory/*",
         "Condition": {"StringLike": {"bedrock-agentcore:actorId": "${aws:PrincipalTag/TenantID}/*"}}},
        {"Sid": "OwnTenantsRecords", "Effect": "Allow", "Action": TENANT_RECORD_ACTIONS,
         "Resource": "arn:aws:bedrock-agentcore:*:*:memory/*",
         "Condition": {"StringLike": {"bedrock-agentcore:namespace": "/tenants/${aws:PrincipalTag/TenantID}/*"}}},
        {"Sid": "OwnTenantsRecordPaths", "Effect": "Allow", "Action": TENANT_RECORD_ACTIONS,
         "Resource": "arn:aws:bedrock-agentcore:*:*:memory/*",
         "Condition": {"StringLike": {
             "bedrock-agentcore:namespacePath": "/tenants/${aws:PrincipalTag/TenantID}/*"}}},
    ],
}

#: The guide's policy: its action ``bedrock:Retrieve`` (Amazon Bedrock Knowledge Bases), here with the tenant
#: condition it meant. No AgentCore Memory operation asks for that action: alone it allows nothing, and next to
#: any grant of ``bedrock-agentcore`` actions it restricts nothing.
GUIDE_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["bedrock:Retrieve"], "Resource": "*",
         "Condition": {"StringLike": {"bedrock-agentcore:namespace": "/tenants/${aws:PrincipalTag/TenantID}/*"}}},
    ],
}

#: What an application role commonly holds besides (and what makes the guide's statement restrict nothing).
MEMORY_FULL_ACCESS_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock-agentcore:*", "Resource": "*"}],
}


__all__ = ["Principal", "PolicyError", "Decision", "load_principals", "parse_principals", "check_policy",
           "evaluate", "request_context", "authorization_request", "verify_signature", "SignedRequest",
           "access_denied_message", "IAM_VARIABLE", "ACCOUNT_ID", "TENANT_POLICY", "GUIDE_POLICY",
           "MEMORY_FULL_ACCESS_POLICY"]
