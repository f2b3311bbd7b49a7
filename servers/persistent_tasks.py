"""Notebook 03's MCP server: background tasks whose fate is written to AgentCore Memory.

The tools are notebook 02's (``model_training`` answers at once with a task id and
trains in the background), with one difference that changes everything: every
transition of a task is recorded in AgentCore Memory for the caller's actor and
session (see ``servers/patterns/task_records.py`` for the event format):

* ``started`` when the training begins;
* ``completed`` with the computed scores, ``failed`` with the error, ``cancelled``,
  or ``interrupted`` for a task that was running when an earlier server process
  died (found on start-up, see ``servers/patterns/memory_outbox.py``).

The endings are also written as conversation messages the Strands
``AgentCoreMemorySessionManager`` restores, so the user's agent learns the outcome
at its next invocation, even if this server is gone by then. Status and results
stay queryable by task id after a restart: they are read back from Memory (found with
a metadata filter, confirmed with an unfiltered read while that eventually consistent
filter may not show the latest record yet: ``servers/patterns/memory_outbox.py``).

Every tool needs the caller's identity (``servers/patterns/caller_identity.py``): the headers
``X-Amzn-Bedrock-AgentCore-Runtime-Custom-Memory-Id``, ``-Actor-Id`` and
``-Session-Id``, or ``Mcp-Session-Id: session@@@memory@@@actor`` as in the AWS blog post
"Build long-running MCP servers on Amazon Bedrock AgentCore with Strands Agents integration"
(https://aws.amazon.com/blogs/machine-learning/build-long-running-mcp-servers-on-amazon-bedrock-agentcore-with-strands-agents-integration/). The server runs stateless (as AgentCore Runtime hosts MCP servers), so that
``Mcp-Session-Id`` is the client's to set. A caller only ever sees its own tasks.

The trainings run in notebook 02's bounded pool of worker processes (``servers/patterns/worker_pool.py``);
a task waiting for a free worker is ``queued`` live, and recorded as ``started`` with that message, so a
crash while it waits still leaves it ``interrupted`` in Memory.

Run: ``python servers/persistent_tasks.py --port 8000 [--workers N]`` (with the Memory endpoint and
credentials in the environment: ``lab_helpers.agentcore.use_agentcore()`` sets them).
Nothing happens at import: ``build_server`` makes the server, ``main`` connects to Memory and serves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from lab_helpers import config
from lab_helpers.asgi import LabMCPServer, serve
from lab_helpers.training import DEFAULT_LEARNING_RATE, training_work, validate_request
from patterns.caller_identity import Identity, IdentityError, identity_from_headers
from patterns.memory_outbox import MemoryUnavailable, TaskMemory, memory_client
from patterns.task_records import TaskRecord, now_iso, training_summary
from patterns.task_registry import SHUTDOWN_MESSAGE, Task, TaskLookupError, TaskManager, TaskStatus, parse_task_id
from patterns.tool_errors import tool_errors
from patterns.worker_pool import WorkerPool, split_workers_option


@dataclass(frozen=True)
class TaskRequest:
    """What the registry keeps about who asked for a task, and how."""

    identity: Identity
    learning_rate: float


def record_of(task: Task) -> TaskRecord:
    """The record of a live task's current state (work cut short by a server shutdown is ``interrupted``)."""
    request: TaskRequest = task.owner
    # Memory knows a task from its start: a queued one is recorded as started (its message says queued).
    status = "started" if task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING) else task.status.value
    if task.status is TaskStatus.CANCELLED and task.message == SHUTDOWN_MESSAGE:
        status = "interrupted"
    result = training_summary(task.result) if task.result else None
    return TaskRecord(task.task_id, status, task.model_name, task.epochs, request.learning_rate, at=now_iso(),
                      progress=task.progress, message=task.message, error=task.error, result=result)


def recording_registry(settings: config.Settings, memory: TaskMemory, pool: WorkerPool) -> TaskManager:
    """Notebook 02's task registry, with every transition of every task recorded in Memory for its caller."""
    queued: set[str] = set()  # recorded as started when queued: not recorded twice when they start

    def on_change(task: Task) -> None:
        if task.status is TaskStatus.QUEUED:
            queued.add(task.task_id)
        elif task.status is TaskStatus.RUNNING and task.task_id in queued:
            return
        else:
            queued.discard(task.task_id)
        memory.record(record_of(task), task.owner.identity)

    return TaskManager(retention_seconds=settings.scaled(settings.task_retention_seconds), on_change=on_change,
                       max_running=pool.size)


def _caller(ctx: Context) -> Identity:
    """Who is calling, from the request's headers; a tool error saying what to send when they do not say."""
    with tool_errors(IdentityError):
        return identity_from_headers(ctx.headers)


def _task_id(task_id: object) -> str:
    with tool_errors(TaskLookupError):
        return parse_task_id(task_id)


def _live(tasks: TaskManager, identity: Identity, task_id: str) -> Task | None:
    """The task if this process runs (or recently ran) it for this caller; other callers' tasks stay invisible."""
    try:
        task = tasks.get(task_id)
    except TaskLookupError:
        return None
    return task if task.owner.identity == identity else None


def _recorded(memory: TaskMemory, task_id: str, status: str) -> str:
    """Where the latest transition of a task is recorded: Memory, or (for now) the local outbox and why."""
    waiting = [p for p in memory.outbox(task_id=task_id) if p.record.status == status]
    if not waiting:
        return "memory"
    why = f"; Memory said: {waiting[0].last_error}" if waiting[0].last_error else ""
    return f"local disk, waiting for Memory ({waiting[0].path}){why}"


def _live_answer(tasks: TaskManager, memory: TaskMemory, task: Task) -> dict[str, Any]:
    status = record_of(task).status
    return {**task.to_dict(tasks.now()), "source": "live", "recorded": _recorded(memory, task.task_id, status)}


def _record_answer(record: TaskRecord, where: str) -> dict[str, Any]:
    return {
        "task_id": record.task_id, "model_name": record.model_name, "epochs": record.epochs,
        "learning_rate": record.learning_rate, "status": record.status, "progress": record.progress,
        "total": record.epochs, "message": record.message, "error": record.error, "at": record.at,
        "source": where, "recorded": where,
    }


def _stored(memory: TaskMemory, identity: Identity, task_id: str) -> tuple[TaskRecord, str]:
    """The task's latest record from Memory (or the outbox), or a tool error saying why there is none."""
    try:
        record, where = memory.lookup(identity, task_id)
    except MemoryUnavailable as error:
        raise ToolError(f"task {task_id} is not running here and {error}") from error
    if record is None:
        raise ToolError(
            f"unknown task {task_id}: nothing is recorded for it for actor {identity.actor_id!r} in session "
            f"{identity.session_id!r} of memory {identity.memory_id!r}"
        )
    return record, where


def build_server(settings: config.Settings, memory: TaskMemory, tasks: TaskManager, pool: WorkerPool) -> LabMCPServer:
    """The server and its tools: ``tasks`` runs the trainings in ``pool``, ``memory`` records and recalls their fate."""
    server = LabMCPServer(
        "persistent-tasks",
        settings,
        info=lambda: {"tasks": len(tasks), "waiting_on_disk": len(memory.outbox()),
                      "state_dir": str(memory.outbox_dir.parent), **pool.describe()},
        instructions="Starts training runs in the background; their outcome is recorded in AgentCore Memory.",
    )

    @server.tool()
    async def model_training(
        ctx: Context, model_name: str, epochs: int = 10, learning_rate: float = DEFAULT_LEARNING_RATE
    ) -> dict[str, Any]:
        """Start training a small classifier in the background and return its task id at once.

        The outcome (scores, or why it failed) is recorded in AgentCore Memory for your session,
        so you will see it at your next turn even if this server restarts meanwhile.
        """
        identity = _caller(ctx)
        with tool_errors(ValueError):
            validate_request(model_name, epochs, max_epochs=settings.max_epochs, learning_rate=learning_rate)
        work = training_work(settings, pool, model_name, epochs, learning_rate=learning_rate)
        task = tasks.submit(model_name, epochs, work, owner=TaskRequest(identity, learning_rate))
        return {
            **task.to_dict(tasks.now()),
            "next": (f"training runs in the background; its outcome will be recorded in AgentCore Memory for "
                     f"session {identity.session_id!r}; check_task_status with task_id {task.task_id!r} tells "
                     "how it goes"),
        }

    @server.tool()
    async def check_task_status(ctx: Context, task_id: str) -> dict[str, Any]:
        """Status, progress and message of one of your tasks: live from this server, else from AgentCore Memory."""
        identity, task_id = _caller(ctx), _task_id(task_id)
        task = _live(tasks, identity, task_id)
        if task is not None:
            return _live_answer(tasks, memory, task)
        return _record_answer(*_stored(memory, identity, task_id))

    @server.tool()
    async def get_task_results(ctx: Context, task_id: str) -> dict[str, Any]:
        """The scores and artifact path of a completed task (also after a server restart: read from Memory)."""
        identity, task_id = _caller(ctx), _task_id(task_id)
        task = _live(tasks, identity, task_id)
        if task is not None and task.status is not TaskStatus.COMPLETED:
            raise ToolError(f"task {task_id} has no results: status is {task.status.value}"
                            + (f" ({task.error})" if task.error else f" ({task.progress}/{task.epochs} epochs)"))
        record, where = (record_of(task), "live") if task is not None else _stored(memory, identity, task_id)
        if record.status != "completed" or not record.result:
            detail = record.error or record.message
            raise ToolError(f"task {task_id} has no results: status is {record.status}"
                            + (f" ({detail})" if detail else ""))
        return {"task_id": task_id, **record.result, "source": where}

    @server.tool()
    async def list_tasks(ctx: Context) -> dict[str, Any]:
        """Every task recorded for your actor and session, newest first, with a count per status."""
        identity = _caller(ctx)
        stored, problem = memory.latest_per_task(identity)
        answers = {task_id: _record_answer(record, where) for task_id, (record, where) in stored.items()}
        for task in tasks.list():
            if task.owner.identity == identity:
                answers[task.task_id] = _live_answer(tasks, memory, task)
        listed = sorted(answers.values(), key=lambda a: a.get("submitted_at") or a.get("at") or "", reverse=True)
        counts: dict[str, int] = {}
        for answer in listed:
            counts[answer["status"]] = counts.get(answer["status"], 0) + 1
        return {"tasks": listed, "counts": counts, **({"memory_error": problem} if problem else {})}

    @server.tool()
    async def cancel_task(ctx: Context, task_id: str) -> dict[str, Any]:
        """Stop one of your queued or running tasks; it ends as cancelled, and that is recorded in Memory."""
        identity, task_id = _caller(ctx), _task_id(task_id)
        task = _live(tasks, identity, task_id)
        if task is None:
            record, _ = _stored(memory, identity, task_id)
            raise ToolError(f"task {task_id} is not running on this server: its recorded status is {record.status}")
        if task.finished:
            raise ToolError(f"task {task_id} is already {task.status.value}; there is nothing to cancel")
        tasks.cancel(task_id)
        return _live_answer(tasks, memory, task)

    return server


def main(argv: Sequence[str] | None = None) -> None:
    """Record what an earlier process left open as interrupted, send what waits on disk, then serve."""
    workers, argv = split_workers_option(argv)
    settings = config.load()
    memory = TaskMemory(settings.state_dir / "persistent_tasks", memory_client(settings.region))
    pool = WorkerPool(workers)
    tasks = recording_registry(settings, memory, pool)
    recovered = memory.recover()
    waiting = memory.flush()
    print(f"persistent-tasks: {len(recovered)} interrupted task(s) recorded, {waiting} record(s) still waiting "
          "for Memory", flush=True)

    async def stop_gracefully() -> None:
        """A graceful stop (SIGTERM: a redeploy, a Runtime session ending): no task is left without an ending.

        The running trainings are cut short and recorded as interrupted, and the records are
        sent before the process exits (whatever Memory refuses stays in the outbox for the next start).
        """
        await tasks.shutdown()
        await pool.close()
        left = await asyncio.to_thread(memory.flush)
        print(f"persistent-tasks: stopping; {left} record(s) left waiting for Memory", flush=True)

    serve(build_server(settings, memory, tasks, pool), argv, stateless=True, on_shutdown=stop_gracefully)


if __name__ == "__main__":
    main()
