"""Notebook 06's agent: memory that lasts for days, in AgentCore Memory's two tiers.

* **Short-term memory** holds a session's raw events: the Strands ``AgentCoreMemorySessionManager`` writes every
  message of a conversation as an event of one actor and session, and restores that session when it is asked for
  again (notebook 03).
* **Long-term memory** holds what the service *extracts* from those events, asynchronously, into namespaces: the
  memory's strategies (:data:`STRATEGIES`) say what to extract (facts, a summary per session, the user's
  preferences) and where to put it (``namespaceTemplates`` with ``{actorId}`` and ``{sessionId}``).

Days later, a new session of the same user starts empty: no event of the old session is loaded. The session
manager's ``retrieval_config`` (:func:`retrieval_config`) searches the actor's long-term namespaces with each user
message and puts what it finds in front of the model, in a ``<user_context>`` block: that is how the agent
remembers. :func:`search` is the same search, called directly.

``POST /invocations`` with ``{"prompt", "actor_id", "memory_id"}`` and the session in the
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` header (or ``"session_id"``). Each invocation builds the agent
afresh, so nothing stays in this process between turns. Run: ``python servers/memory_for_days.py --port 8080``.
"""

from __future__ import annotations

import re
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig, RetrievalConfig
from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager
from starlette.exceptions import HTTPException
from strands import Agent
from strands.types.content import Messages

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from lab_helpers.models import OFFLINE_LABEL, OfflineModel, Turn, describe_model, load_model

#: The memory's strategies: what long-term memory extracts from the events, and into which namespace. Actor ids
#: are ``<tenant>/<user>``, so every namespace of a tenant starts with ``/tenants/<tenant>/``: what an IAM
#: condition on ``bedrock-agentcore:namespace`` can hold a tenant to (notebook 06, step 4).
STRATEGIES: list[dict[str, Any]] = [
    {"semanticMemoryStrategy": {"name": "facts", "description": "facts about the user and the investigation",
                                "namespaceTemplates": ["/tenants/{actorId}/facts/"]}},
    {"summaryMemoryStrategy": {"name": "summaries", "description": "one summary per session",
                               "namespaceTemplates": ["/tenants/{actorId}/summaries/{sessionId}/"]}},
    {"userPreferenceMemoryStrategy": {"name": "preferences", "description": "what the user likes and wants",
                                      "namespaceTemplates": ["/tenants/{actorId}/preferences/"]}},
]

#: Where the session manager puts what it retrieved, in the user's message (the SDK's default tag).
CONTEXT_TAG = "user_context"

SYSTEM_PROMPT = (
    "You help the user with an investigation that lasts days. What long-term memory holds about the user and the "
    f"investigation comes before their message, in <{CONTEXT_TAG}>; use it, and say so, when it answers the "
    "question. When the user tells you something, acknowledge it in one short sentence."
)

settings = config.load()
app = BedrockAgentCoreApp()


def namespaces(memory: dict[str, Any], actor_id: str, session_id: str) -> dict[str, str]:
    """Each strategy's namespace for one actor and session (its template filled in), by strategy name."""
    return {strategy["name"]: strategy["namespaces"][0].format(
        actorId=actor_id, sessionId=session_id, memoryStrategyId=strategy["strategyId"])
        for strategy in memory["strategies"]}


def retrieval_config(memory: dict[str, Any], top_k: int = 3) -> dict[str, RetrievalConfig]:
    """What a new session searches: every strategy's namespace for the actor, across all of its sessions.

    A template is cut before ``{sessionId}``: the SDK searches a namespace *path* (a prefix), so
    ``/tenants/{actorId}/summaries/`` finds the summaries of every earlier session. ``relevance_score=0`` keeps the
    ``top_k`` best of each namespace whatever their score.
    """
    return {strategy["namespaces"][0].split("{sessionId}")[0]: RetrievalConfig(top_k=top_k, relevance_score=0.0)
            for strategy in memory["strategies"]}


def search(data: Any, memory_id: str, namespace_path: str, query: str, top_k: int = 5) -> list[dict[str, Any]]:
    """RetrieveMemoryRecords: the ``top_k`` records under ``namespace_path`` that best match ``query``, best first."""
    found = data.retrieve_memory_records(memoryId=memory_id, namespacePath=namespace_path,
                                         searchCriteria={"searchQuery": query, "topK": top_k})
    return found["memoryRecordSummaries"]


def recalled(messages: Messages) -> list[str]:
    """The long-term records the session manager put in front of the last user message (one per line)."""
    texts = [block["text"] for block in (messages[-1]["content"] if messages else []) if "text" in block]
    found = [re.fullmatch(rf"<{CONTEXT_TAG}>(.*)</{CONTEXT_TAG}>", text, re.DOTALL) for text in texts]
    return [line for match in found if match for line in match.group(1).splitlines() if line.strip()]


class RecallingOfflineModel(OfflineModel):
    """The offline stand-in (no AI), taught this lesson's one skill: answer a question from recalled memory.

    A question is answered by quoting the records the session manager retrieved (an LLM would word them);
    anything else the user says is acknowledged.
    """

    def respond(self, messages: Messages, tool_names: list[str], background_selectable: Any = ()) -> Turn:
        if not messages or messages[-1].get("role") != "user":
            return super().respond(messages, tool_names, background_selectable)
        said = [block["text"] for block in messages[-1]["content"] if "text" in block][-1]
        if not said.rstrip().endswith("?"):
            return Turn(OFFLINE_LABEL + "Noted.")
        memories = recalled(messages)
        if not memories:
            return Turn(OFFLINE_LABEL + "Long-term memory holds nothing about that.")
        return Turn(OFFLINE_LABEL + "From long-term memory:\n" + "\n".join(f"- {m}" for m in memories))


def build_agent(memory: dict[str, Any], actor_id: str, session_id: str) -> Agent:
    """A Strands agent whose session is kept in short-term memory and who recalls long-term memory."""
    manager = AgentCoreMemorySessionManager(
        AgentCoreMemoryConfig(memory_id=memory["id"], actor_id=actor_id, session_id=session_id,
                              retrieval_config=retrieval_config(memory), context_tag=CONTEXT_TAG),
        region_name=settings.region)
    model = RecallingOfflineModel() if settings.model == "offline" else load_model(settings)
    return Agent(model=model, system_prompt=SYSTEM_PROMPT, session_manager=manager, callback_handler=None)


def answer(prompt: str, memory_id: str, actor_id: str, session_id: str) -> dict[str, Any]:
    """One user turn with an agent built afresh: what it restored, what it recalled, what it answered."""
    import boto3

    control = boto3.client("bedrock-agentcore-control", region_name=settings.region)
    memory = control.get_memory(memoryId=memory_id)["memory"]
    agent = build_agent(memory, actor_id, session_id)
    restored = len(agent.messages)  # the session's earlier messages, brought back from short-term memory
    result = agent(prompt)
    asked = next(m for m in reversed(agent.messages) if m["role"] == "user")
    return {"answer": str(result).strip(), "restored_messages": restored, "recalled": recalled([asked]),
            "model": describe_model(agent.model), "actor_id": actor_id, "session_id": session_id}


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """One user turn: ``{"prompt", "actor_id", "memory_id"[, "session_id"]}`` -> the answer and what was recalled."""
    ids = {"prompt": payload.get("prompt"), "memory_id": payload.get("memory_id"),
           "actor_id": payload.get("actor_id"), "session_id": context.session_id or payload.get("session_id")}
    missing = [name for name, value in ids.items() if not isinstance(value, str) or not value.strip()]
    if missing:
        raise HTTPException(400, f"the invocation needs {', '.join(missing)}: 'prompt', 'memory_id' and 'actor_id' "
                                 "in the payload, the session in X-Amzn-Bedrock-AgentCore-Runtime-Session-Id")
    return answer(ids["prompt"], ids["memory_id"], ids["actor_id"], ids["session_id"])


if __name__ == "__main__":
    args = parse_args(description="Notebook 06's Strands agent: short-term and long-term memory", default_port=8080)
    run_app(app, args.host, args.port)
