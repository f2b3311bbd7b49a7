"""Notebook 03's agent: a Strands agent on the AgentCore Runtime contract, its conversation kept in Memory.

``POST /invocations`` with ``{"prompt": "...", "actor_id": "user-1"}`` (plus
``"memory_id"`` unless ``LAB_MEMORY_ID`` is set, and the session in the header
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` as AgentCore Runtime sends it, or
``"session_id"`` in the payload). Each invocation builds the agent afresh, as a new
microVM would:

* the model from ``LAB_MODEL`` (``lab_helpers.models``: offline by default locally);
* ``AgentCoreMemorySessionManager`` for that memory, actor and session (:func:`session_manager_for`), which
  restores the conversation from Memory, including the task outcomes the
  persistent-tasks server wrote there while the agent was not running (a notice
  written in the middle of a turn is put after it, and a session whose markers the
  eventually consistent filtered ListEvents does not show yet is still restored,
  see :class:`LessonSessionManager`);
* the persistent-tasks MCP server at ``LAB_TASKS_MCP_URL`` through Strands'
  ``MCPClient`` (:func:`connect_tasks_server`), with the caller's identity in the
  ``X-Amzn-Bedrock-AgentCore-Runtime-Custom-*`` headers so the server records
  results for the right actor and session. A server that does not answer is
  reported in the reply, and the agent still answers from Memory.

Nothing is kept in this process between invocations: stop it, start another,
and the same session continues. Run: ``python servers/agent_app.py --port 8080``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from typing import Any
from urllib.parse import urlsplit

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig
from bedrock_agentcore.memory.integrations.strands.session_manager import (
    AGENT_ID_KEY, MAX_FETCH_ALL_RESULTS, STATE_TYPE_KEY, AgentCoreMemorySessionManager, StateType,
)
from starlette.exceptions import HTTPException
from strands import Agent
from strands.tools.mcp import MCPClient
from strands.types.session import Session, SessionAgent, SessionMessage

from lab_helpers import config
from patterns.caller_identity import ACTOR_HEADER, MEMORY_HEADER, SESSION_HEADER, Identity, IdentityError
from patterns.caller_identity import identity_from_headers
from lab_helpers.models import describe_model, load_model
from lab_helpers.http_serving import parse_args, run_app
from patterns.task_records import settle_notices

#: How long to wait for the task server before answering without it.
TASKS_SERVER_TIMEOUT_SECONDS = 10

SYSTEM_PROMPT = (
    "You help the user run long training jobs through the persistent-tasks tools. Starting a training run "
    "returns a task id at once; the outcome arrives later as a notice in this conversation, written there by the "
    "server through AgentCore Memory. Answer from those notices when the user asks what happened; use the tools "
    "to start, check, list or cancel runs. Report scores exactly as given."
)

settings = config.load()
app = BedrockAgentCoreApp()
log = logging.getLogger("agent_app")


class LessonSessionManager(AgentCoreMemorySessionManager):
    """The Strands session manager for AgentCore Memory, restoring a session whole and in a valid order.

    * A notice the server wrote while a turn was in progress is moved out of that turn's
      tool round (``patterns.task_records.settle_notices``).
    * The stock manager finds the session's and the agent's marker events with a metadata-filtered
      ListEvents, which is eventually consistent in AWS (aws/bedrock-agentcore-sdk-python issue 564): just
      after a turn it may find nothing, and the stock manager then starts a new agent with no history,
      silently. When the filtered read finds no marker, this one looks in the unfiltered (strongly
      consistent) listing before concluding there is none, and notes it in ``filtered_misses``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.filtered_misses: list[str] = []  # set first: the parent's __init__ already reads the session
        super().__init__(*args, **kwargs)

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        session = super().read_session(session_id, **kwargs)
        if session is None and session_id == self.config.session_id:
            marker = self._marker_unfiltered({STATE_TYPE_KEY: StateType.SESSION.value})
            session = Session.from_dict(json.loads(marker["payload"][0]["blob"])) if marker else None
        return session

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        agent = super().read_agent(session_id, agent_id, **kwargs)
        if agent is None and session_id == self.config.session_id:
            marker = self._marker_unfiltered({STATE_TYPE_KEY: StateType.AGENT.value, AGENT_ID_KEY: agent_id})
            agent = SessionAgent.from_dict(json.loads(marker["payload"][-1]["blob"])) if marker else None
            if agent is not None and agent.created_at:
                self._agent_created_at_cache[agent_id] = agent.created_at
        return agent

    def _marker_unfiltered(self, wanted: dict[str, str]) -> dict[str, Any] | None:
        """The newest event whose metadata has ``wanted``, found in the unfiltered (strongly consistent) ListEvents."""
        events = self.memory_client.list_events(self.config.memory_id, self.config.actor_id, self.config.session_id,
                                                max_results=MAX_FETCH_ALL_RESULTS)
        found = [event for event in events
                 if all((event.get("metadata") or {}).get(key, {}).get("stringValue") == value
                        for key, value in wanted.items())]
        if not found:
            return None  # really a new session (or agent)
        self.filtered_misses.append(wanted[STATE_TYPE_KEY])
        log.warning("the filtered ListEvents missed the %s marker of session %s; restored from the unfiltered one",
                    wanted[STATE_TYPE_KEY], self.config.session_id)
        return max(found, key=lambda event: event["eventTimestamp"])

    def list_messages(self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0,
                      **kwargs: Any) -> list[SessionMessage]:
        restored = super().list_messages(session_id, agent_id, limit=limit, offset=offset, **kwargs)
        return settle_notices(restored, lambda item: item.message)


def caller(payload: dict[str, Any], context: RequestContext | None) -> Identity:
    """Memory, actor and session for this invocation; HTTP 400 with the reason when one is missing or bad."""
    session_id = (context.session_id if context else None) or payload.get("session_id")
    memory_id = payload.get("memory_id") or os.environ.get("LAB_MEMORY_ID")
    ids = {"memory_id": memory_id, "actor_id": payload.get("actor_id"), "session_id": session_id}
    missing = [name for name, value in ids.items() if not isinstance(value, str) or not value.strip()]
    if missing:
        raise HTTPException(400, f"the invocation needs {', '.join(missing)}: send 'actor_id' (and 'memory_id' unless "
                                 "LAB_MEMORY_ID is set) in the payload, and the session in the "
                                 "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id header or as 'session_id'")
    try:
        return identity_from_headers({MEMORY_HEADER: memory_id, ACTOR_HEADER: ids["actor_id"],
                                      SESSION_HEADER: session_id})  # type: ignore[dict-item]
    except IdentityError as error:
        raise HTTPException(400, str(error)) from error


def unreachable(url: str) -> str | None:
    """Why nothing listens at ``url`` (a dead server), or None when something does.

    Checked first because a failed MCP client start-up only says "unhandled errors in a TaskGroup".
    """
    address = urlsplit(url)
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname or "127.0.0.1", port), timeout=2.0).close()
    except OSError as error:
        return f"nothing listens on port {port}: {error.strerror or error}"
    return None


def tasks_server_headers(url: str, identity: Identity) -> dict[str, str]:
    """The caller's identity headers, plus a runtime session id when the task server is hosted on AgentCore Runtime.

    Behind a runtime URL (``.../runtimes/<arn>/invocations``) every request needs a runtime session id of 33
    characters or more; this agent session's calls then always reach the same MCP server session.
    """
    headers = identity.headers()
    if "/runtimes/" in url:
        session = identity.session_id
        if len(session) < 33:
            session = f"{session}-{hashlib.sha256(session.encode()).hexdigest()}"[:64]
        headers["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] = session
        # A runtime URL wants the caller's credentials: an OAuth token from the runtime's inbound authorizer on AWS
        headers["Authorization"] = f"Bearer {os.environ.get('LAB_TASKS_MCP_TOKEN', 'local-emulator')}"
    return headers


def tool_calls(messages: list[dict[str, Any]], since: int) -> list[dict[str, Any]]:
    """The tool calls the agent made in this invocation (messages from index ``since`` on)."""
    return [block["toolUse"] for message in messages[since:] for block in message.get("content", [])
            if "toolUse" in block]


def session_manager_for(identity: Identity) -> LessonSessionManager:
    """This caller's conversation: restored from AgentCore Memory when the agent is built, saved back turn by turn."""
    return LessonSessionManager(
        AgentCoreMemoryConfig(memory_id=identity.memory_id, session_id=identity.session_id,
                              actor_id=identity.actor_id),
        region_name=settings.region,
    )


def connect_tasks_server(identity: Identity) -> tuple[MCPClient | None, str]:
    """A started MCP client of the task server that names the caller in every request's headers, and a status line.

    The client is None (the status says why) when ``LAB_TASKS_MCP_URL`` is unset or nothing answers there:
    the agent then answers from Memory alone.
    """
    url = os.environ.get("LAB_TASKS_MCP_URL")
    if not url:
        return None, "not configured (set LAB_TASKS_MCP_URL)"
    problem = unreachable(url)
    if problem:
        return None, f"unreachable: {url} ({problem}); answering from Memory only"
    client = MCPClient(url=url, headers=tasks_server_headers(url, identity),
                       startup_timeout=TASKS_SERVER_TIMEOUT_SECONDS)
    try:
        client.start()
    except Exception as error:  # noqa: BLE001 - the agent still answers from Memory; the reply says why
        return None, f"unreachable: {url} ({type(error).__name__}: {error}); answering from Memory only"
    return client, f"connected: {url}"


def answer(prompt: str, identity: Identity) -> dict[str, Any]:
    """Build the agent for this caller (conversation from Memory, tools from the task server), run one turn."""
    client, tasks_server = connect_tasks_server(identity)
    try:
        model, session_manager = load_model(settings), session_manager_for(identity)
        agent = Agent(model=model, tools=client.list_tools_sync() if client else [], system_prompt=SYSTEM_PROMPT,
                      session_manager=session_manager, callback_handler=None)
        restored = len(agent.messages)  # what the session manager brought back from Memory
        result = agent(prompt)
        return {
            "answer": str(result).strip(),
            "model": describe_model(model),
            "tasks_server": tasks_server,
            "tool_calls": [{"name": call["name"], "input": call["input"]}
                           for call in tool_calls(agent.messages, restored)],
            "restored_messages": restored,
            "filtered_reads_missed": session_manager.filtered_misses,  # markers found only by the unfiltered read
            "actor_id": identity.actor_id,
            "session_id": identity.session_id,
            "memory_id": identity.memory_id,
        }
    finally:
        if client:
            client.stop(None, None, None)


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """One user turn: ``{"prompt", "actor_id"[, "memory_id", "session_id"]}`` -> the answer and what was done."""
    if not isinstance(payload, dict):
        raise HTTPException(400, f"the payload must be a JSON object with 'prompt', got {type(payload).__name__}")
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise HTTPException(400, "the payload needs a non-empty 'prompt' string")
    return answer(prompt, caller(payload, context))


if __name__ == "__main__":
    args = parse_args(description="Notebook 03's Strands agent on the AgentCore Runtime contract", default_port=8080)
    run_app(app, args.host, args.port)
