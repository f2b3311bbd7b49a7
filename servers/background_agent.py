"""Notebook 09's agent: a Strands agent that runs its training tool in its own background.

strands-agents 1.62 can run a tool call in the background while the agent goes on
(``Agent(background_tasks=BackgroundTasksConfig(...))``): the model's tool call returns a
"Background task dispatched" acknowledgement with a task id at once, the agent answers, and
the tool keeps running on a loop inside this process. The agent gets a tool of its own,
``strands_manage_background_task`` (``list``, ``get``, ``cancel``), and when a task ends Strands
delivers its result into the conversation before the next model call (or, with
``wait_for_completion``, before the invocation returns). A task goes ``queued`` (beyond
``max_concurrency``) -> ``working`` -> ``completed`` / ``failed`` / ``cancelled``.

Here the agent, not a server, holds the work: nothing outside this process knows about it.
When the process ends, the work ends with it. A session manager that saves the agent's state
(here Strands' ``FileSessionManager``) keeps the record that a task existed, and Strands
marks such a task ``failed`` when the agent is restored: it cannot resume the work.
Compare notebook 03 (the task server keeps working and writes the outcome to AgentCore
Memory) and notebook 05 (the task lives in the server's Docket queue, in Redis).

In a notebook: :func:`build_agent`. As a process, on the AgentCore Runtime contract:
``python servers/background_agent.py --port 8080`` and ``POST /invocations`` with
``{"prompt": "...", "session_id": "..."}`` (or the session in the
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` header); one agent per session lives in the
process between invocations, its state saved under ``LAB_STATE_DIR/background-agent``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any, Literal

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from bedrock_agentcore.runtime.models import PingStatus
from starlette.exceptions import HTTPException
from strands import Agent, BackgroundTasksConfig, tool
from strands.models import Model
from strands.session import FileSessionManager, SessionManager
from strands.types.tools import AgentTool, ToolContext

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from lab_helpers.models import load_model
from lab_helpers.training import DEFAULT_LEARNING_RATE, EpochScores, train_with_settings

#: Where Strands keeps an agent's background-task snapshots in ``agent.state`` (what a session manager saves).
TASKS_STATE_KEY = "strands.background_tasks"
#: The statuses after which a background task does nothing more.
FINISHED = ("completed", "failed", "cancelled")

SYSTEM_PROMPT = (
    "You help the user train small models. model_training can run in your background: start it, answer the user "
    "at once with the task id, report its status from strands_manage_background_task when asked, and report the "
    "scores exactly as given when its result is delivered."
)


def training_tool(settings: config.Settings) -> AgentTool:
    """The agent's ``model_training`` tool: a real training run, paced by ``settings.time_scale``.

    Cancelling a background task only sets its ``tool_context.cancel_signal``: a tool that ignores it runs
    to completion (Strands' words). This one looks after every epoch and stops there, saving nothing.
    """

    @tool(context=True)
    async def model_training(tool_context: ToolContext, model_name: str, epochs: int = 10,
                             learning_rate: float = DEFAULT_LEARNING_RATE) -> dict[str, Any]:
        """Train a small classifier for `epochs` epochs; returns its final scores and the saved model's path."""

        def stop_if_cancelled(scores: EpochScores) -> None:
            if tool_context.cancel_signal.is_set():
                raise asyncio.CancelledError(f"cancelled after epoch {scores.epoch} of {scores.epochs}")

        result = await train_with_settings(settings, model_name, epochs, learning_rate=learning_rate,
                                           on_epoch=stop_if_cancelled)
        return {key: value for key, value in result.to_dict().items() if key != "history"}

    return model_training


def build_agent(
    settings: config.Settings,
    *,
    mode: Literal["always", "agentic"] = "always",
    max_concurrency: int = 2,
    wait_for_completion: bool = False,
    model: Model | None = None,
    session_manager: SessionManager | None = None,
) -> Agent:
    """A Strands agent whose ``model_training`` runs in the background.

    ``mode="always"``: every training call runs in the background; ``"agentic"``: the model chooses per
    call (Strands adds a ``_background_execution`` flag to the tool's input). At most ``max_concurrency``
    trainings run at once, the rest wait ``queued``. ``wait_for_completion=False`` lets an invocation
    return while its tasks run; results are delivered at the next turn.
    """
    training = training_tool(settings)
    background: BackgroundTasksConfig = {mode: [training], "max_concurrency": max_concurrency,
                                         "wait_for_completion": wait_for_completion}
    return Agent(model=model or load_model(settings), tools=[training], system_prompt=SYSTEM_PROMPT,
                 background_tasks=background, session_manager=session_manager, callback_handler=None)


def background_tasks(agent: Agent) -> list[dict[str, Any]]:
    """The agent's background tasks as Strands records them: task id, tool, status, times, error (no results)."""
    return [{key: value for key, value in task.items() if key != "result"}
            for task in agent.state.get(TASKS_STATE_KEY) or []]


# -- the agent as a process ------------------------------------------------------------------------------
settings = config.load()
app = BedrockAgentCoreApp()
_agents: dict[str, Agent] = {}
_locks: dict[str, threading.Lock] = {}
_agents_lock = threading.Lock()


def state_dir() -> Path:
    """Where each session's conversation and agent state are saved (Strands' ``FileSessionManager``)."""
    return settings.state_dir / "background-agent"


def agent_for(session_id: str) -> tuple[Agent, threading.Lock]:
    """This session's agent, built (and restored from its saved state) on its first invocation in this process."""
    with _agents_lock:
        if session_id not in _agents:
            saved = FileSessionManager(session_id=session_id, storage_dir=str(state_dir()))
            _agents[session_id] = build_agent(settings, session_manager=saved)
            _locks[session_id] = threading.Lock()
        return _agents[session_id], _locks[session_id]


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """One turn: ``{"prompt", "session_id"}`` -> the answer, this session's background tasks and this process's id."""
    payload = payload if isinstance(payload, dict) else {}
    prompt, session_id = payload.get("prompt"), (context.session_id if context else None) or payload.get("session_id")
    if not isinstance(prompt, str) or not prompt.strip():
        raise HTTPException(400, "the payload needs a non-empty 'prompt' string")
    if not isinstance(session_id, str) or not session_id.strip():
        raise HTTPException(400, "the invocation needs a session: 'session_id' or the runtime session header")
    agent, lock = agent_for(session_id)
    with lock:  # one turn at a time per agent; its background tasks go on between turns
        answer = str(agent(prompt)).strip()
        return {"answer": answer, "background_tasks": background_tasks(agent), "pid": os.getpid()}


@app.ping
def ping() -> PingStatus:
    """``HealthyBusy`` while any agent here has unfinished background work, so AgentCore Runtime keeps the session."""
    with _agents_lock:
        agents = list(_agents.values())
    busy = any(task["status"] not in FINISHED for agent in agents for task in background_tasks(agent))
    return PingStatus.HEALTHY_BUSY if busy else PingStatus.HEALTHY


if __name__ == "__main__":
    args = parse_args(description="Notebook 09's Strands agent with background tools", default_port=8080)
    run_app(app, args.host, args.port)
