"""Who is calling: the memory, actor and session a tool result must be written for.

A server that writes results into AgentCore Memory has to know, for every call,
which memory, actor (user) and session the result belongs to. Two ways carry it:

* explicit headers, the ``X-Amzn-Bedrock-AgentCore-Runtime-Custom-*`` family that
  AgentCore Runtime forwards to the hosted server when they are allow-listed in the
  runtime's request header configuration: ``...-Custom-Memory-Id``, ``...-Custom-Actor-Id``
  and ``...-Custom-Session-Id``;
* ``session_id@@@memory_id@@@actor_id`` packed into the ``Mcp-Session-Id`` header, the form
  the AWS blog post "Build long-running MCP servers on Amazon Bedrock AgentCore with Strands
  Agents integration" uses (https://aws.amazon.com/blogs/machine-learning/build-long-running-mcp-servers-on-amazon-bedrock-agentcore-with-strands-agents-integration/),
  kept so that code written after that post works here too.

Explicit headers win when present. Anything missing or malformed is a
:class:`IdentityError` that names what is missing and how to send it, never an
IndexError from splitting a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CUSTOM_PREFIX = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-"
MEMORY_HEADER = CUSTOM_PREFIX + "Memory-Id"
ACTOR_HEADER = CUSTOM_PREFIX + "Actor-Id"
SESSION_HEADER = CUSTOM_PREFIX + "Session-Id"
MCP_SESSION_HEADER = "Mcp-Session-Id"
SEPARATOR = "@@@"

#: botocore refuses shorter memory ids before sending anything; say so here, where the cause is visible.
MIN_MEMORY_ID_LENGTH = 12
MAX_ID_LENGTH = 256

HOW_TO_SEND = (
    f"send the headers {MEMORY_HEADER}, {ACTOR_HEADER} and {SESSION_HEADER}, "
    f"or {MCP_SESSION_HEADER}: 'session_id{SEPARATOR}memory_id{SEPARATOR}actor_id'"
)


class IdentityError(ValueError):
    """The call does not say, or says wrongly, whose result it is."""


@dataclass(frozen=True)
class Identity:
    """The memory, actor and session one call acts for, and which headers said so."""

    memory_id: str
    actor_id: str
    session_id: str
    #: "custom headers" or "Mcp-Session-Id": how the ids arrived, not part of who the caller is.
    source: str = field(default="custom headers", compare=False)

    def headers(self) -> dict[str, str]:
        """The explicit headers that carry this identity (for a client, e.g. Strands' MCPClient)."""
        return {MEMORY_HEADER: self.memory_id, ACTOR_HEADER: self.actor_id, SESSION_HEADER: self.session_id}


def _check(name: str, value: str, source: str) -> str:
    value = value.strip()
    if not value:
        raise IdentityError(f"{name} is empty in {source}; {HOW_TO_SEND}")
    if len(value) > MAX_ID_LENGTH or any(ch.isspace() or not ch.isprintable() for ch in value):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise IdentityError(
            f"{name} {shown!r} from {source} is malformed: at most {MAX_ID_LENGTH} printable characters, no spaces"
        )
    if name == "memory_id" and len(value) < MIN_MEMORY_ID_LENGTH:
        raise IdentityError(
            f"memory_id {value!r} from {source} is too short: AgentCore memory ids have at least "
            f"{MIN_MEMORY_ID_LENGTH} characters (like 'agentcore_longrun_lab-a1B2c3D4e5')"
        )
    return value


def identity_from_headers(headers: Mapping[str, str] | None) -> Identity:
    """The caller's identity from HTTP request headers (any letter case); :class:`IdentityError` if absent or bad."""
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    explicit = {name: lowered.get(header.lower()) for name, header in
                (("memory_id", MEMORY_HEADER), ("actor_id", ACTOR_HEADER), ("session_id", SESSION_HEADER))}
    if any(value is not None for value in explicit.values()):
        missing = [name for name, value in explicit.items() if value is None]
        if missing:
            raise IdentityError(f"custom identity headers are incomplete: missing {', '.join(missing)}; {HOW_TO_SEND}")
        source = "custom headers"
        return Identity(**{name: _check(name, value or "", source) for name, value in explicit.items()}, source=source)

    packed = lowered.get(MCP_SESSION_HEADER.lower())
    if packed is None:
        raise IdentityError(f"the call carries no caller identity; {HOW_TO_SEND}")
    parts = packed.split(SEPARATOR)
    if len(parts) != 3:
        shown = packed if len(packed) <= 60 else packed[:57] + "..."
        raise IdentityError(
            f"{MCP_SESSION_HEADER} {shown!r} is not 'session_id{SEPARATOR}memory_id{SEPARATOR}actor_id' "
            f"(3 parts expected, found {len(parts)}); {HOW_TO_SEND}"
        )
    source = MCP_SESSION_HEADER
    session_id, memory_id, actor_id = (
        _check(name, part, source) for name, part in zip(("session_id", "memory_id", "actor_id"), parts)
    )
    return Identity(memory_id=memory_id, actor_id=actor_id, session_id=session_id, source=source)
