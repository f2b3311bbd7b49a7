"""patterns.caller_identity: both header styles, explicit first, and a clear error for anything else."""

from __future__ import annotations

import pytest

from patterns.caller_identity import (
    ACTOR_HEADER, MCP_SESSION_HEADER, MEMORY_HEADER, SESSION_HEADER, Identity, IdentityError, identity_from_headers,
)

MEMORY = "agentcore_longrun_lab-a1B2c3D4e5"


def test_explicit_headers_in_any_letter_case() -> None:
    identity = identity_from_headers({MEMORY_HEADER.lower(): MEMORY, ACTOR_HEADER.upper(): "user-1",
                                      SESSION_HEADER: "session-1"})
    assert identity == Identity(MEMORY, "user-1", "session-1", "custom headers")


def test_the_seed_form_in_mcp_session_id() -> None:
    identity = identity_from_headers({"mcp-session-id": f"session-1@@@{MEMORY}@@@user-1"})
    assert (identity.session_id, identity.memory_id, identity.actor_id) == ("session-1", MEMORY, "user-1")
    assert identity.source == "Mcp-Session-Id"


def test_explicit_headers_win_over_the_seed_form() -> None:
    headers = {MCP_SESSION_HEADER: f"old@@@{MEMORY}@@@old-user", MEMORY_HEADER: MEMORY, ACTOR_HEADER: "new-user",
               SESSION_HEADER: "new"}
    assert identity_from_headers(headers).actor_id == "new-user"


def test_headers_round_trip() -> None:
    identity = Identity(MEMORY, "user-1", "session-1", "custom headers")
    assert identity_from_headers(identity.headers()) == identity


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (None, "the call carries no caller identity; send the headers X-Amzn-Bedrock-AgentCore-Runtime-Custom-Memory-Id"),
        ({}, "the call carries no caller identity"),
        ({MEMORY_HEADER: MEMORY}, "custom identity headers are incomplete: missing actor_id, session_id"),
        ({MCP_SESSION_HEADER: "just-a-session"}, "(3 parts expected, found 1)"),
        ({MCP_SESSION_HEADER: f"a@@@{MEMORY}"}, "(3 parts expected, found 2)"),
        ({MCP_SESSION_HEADER: f"a@@@{MEMORY}@@@b@@@c"}, "(3 parts expected, found 4)"),
        ({MCP_SESSION_HEADER: f"@@@{MEMORY}@@@user"}, "session_id is empty in Mcp-Session-Id"),
        ({MCP_SESSION_HEADER: "s@@@short@@@user"}, "memory_id 'short' from Mcp-Session-Id is too short"),
        ({MEMORY_HEADER: MEMORY, ACTOR_HEADER: "two words", SESSION_HEADER: "s"}, "actor_id 'two words' from custom headers is malformed"),
        ({MEMORY_HEADER: MEMORY, ACTOR_HEADER: "u", SESSION_HEADER: "x" * 300}, "is malformed: at most 256"),
    ],
)
def test_missing_or_malformed_identity_is_named(headers: dict[str, str] | None, message: str) -> None:
    with pytest.raises(IdentityError) as raised:
        identity_from_headers(headers)
    assert message in str(raised.value)
