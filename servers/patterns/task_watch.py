"""Notebook 08: a task's status pushed to the client as it changes, with polling as the fallback.

The MCP tasks extension (SEP-2663) is polled: its earlier draft (SEP-1686) pushed ``notifications/tasks/status``,
and SEP-2663 removed it ("in-task input and status are polled, not pushed", fastmcp-tasks' ``creation.py``).
At protocol version 2026-07-28 a server pushes only on the response stream of a request the client keeps open:
``subscriptions/listen`` (whose events are list changes and resource updates only, and which fastmcp 4.1 does not
serve), or any call that carries a progress token. So the push here is a plain tool, ``watch_task``: one call
whose response stream carries each status change of a task as a progress notification, the moment Docket
publishes it (Docket's own state and progress channels, Redis pub/sub with a Redis backend, so it works whichever
process runs the task), and which returns the task's ``tasks/get`` answer once it needs input or has ended.

On the client, :func:`follow_task` watches, and when the connection drops falls back to polling ``tasks/get`` at
the server's ``pollIntervalMs`` until a watch can be opened again. Nothing that matters is missed: status is a
level, not a log, so every (re)watch starts with the current status, an open question stays in ``tasks/get``
until answered, and the result is read once, at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from docket.execution import Execution, ExecutionState
from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp_tasks.context import get_task_scope
from fastmcp_tasks.input_store import load_current_leg
from mcp.shared.exceptions import MCPError

from patterns.task_input import read_task

#: Docket states that end a run of the tool body (a leg): the task is then input_required or has ended.
LEG_ENDED = frozenset({ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED})
#: A status as the watch pushes it: the tasks/get status word, then ": " and the status message, if any.
OnStatus = Callable[[str, str | None], Awaitable[None] | None]


def status_line(status: str, message: str | None) -> str:
    """How a status travels as a progress notification's message, e.g. ``working: epoch 3/30: train acc ...``."""
    return f"{status}: {message}" if message else status


def parse_status_line(line: str) -> tuple[str, str | None]:
    status, _, message = line.partition(": ")
    return status, message or None


def add_watch_tool(mcp: FastMCP) -> None:
    """Declare ``watch_task``: status changes of a task pushed as progress notifications on one open call."""

    @mcp.tool
    async def watch_task(ctx: Context, task_id: str) -> dict[str, Any]:
        """Report every status change of task `task_id` as a progress notification (message "status: status
        message") until it is input_required, completed, failed or cancelled; return its tasks/get answer then."""
        server, docket = ctx.fastmcp, ctx.fastmcp._docket  # the Docket queue the tasks extension runs
        leg_key, _ = await load_current_leg(docket, get_task_scope(), task_id)
        execution = await docket.get_execution(leg_key) if leg_key else None
        async with leg_events(execution) as events:  # subscribed before the first read: no change slips between
            try:
                current = await read_task(server, task_id)
            except MCPError as error:
                raise ToolError(error.error.message) from None  # "Task ... not found"
            pushed = [status_line(current.status, current.status_message)]
            await ctx.report_progress(1, None, pushed[-1])
            since = await progress_updated_at(execution)  # older progress events in the queue are no news
            while current.status == "working" and events is not None:
                event = await events.get()
                if event["type"] == "progress" and event.get("message") and (event["updated_at"] or "") >= since:
                    line = status_line("working", event["message"])  # each epoch's line, as it was set
                elif event["type"] == "state" and event["state"] in LEG_ENDED:
                    current = await read_task(server, task_id)  # what the end means: input_required, completed...
                    line = status_line(current.status, current.status_message)
                else:
                    continue  # queued, running, or a progress count without news: the epoch lines say more
                if line != pushed[-1]:
                    pushed.append(line)
                    await ctx.report_progress(len(pushed), None, line)
        return current.model_dump(by_alias=True, mode="json", exclude_none=True)


async def progress_updated_at(execution: Execution | None) -> str:
    """When the run's progress was last written (ISO 8601, as Docket's progress events carry it), "" if never."""
    if execution is None:
        return ""
    await execution.sync()
    return execution.progress.updated_at.isoformat() if execution.progress.updated_at else ""


@asynccontextmanager
async def leg_events(execution: Execution | None) -> AsyncIterator[asyncio.Queue[dict[str, Any]] | None]:
    """A queue of Docket's progress and state events for one run (leg) of a task, subscribed before it is yielded.

    Docket publishes them on Redis pub/sub (an in-process stand-in on ``memory://``), so whichever process runs
    the task, every change after the subscription arrives here in order.
    """
    if execution is None:
        yield None
        return
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def pump(events: AsyncIterator[dict[str, Any]]) -> None:
        async for event in events:
            await queue.put(event)

    async def states() -> AsyncIterator[dict[str, Any]]:
        async for event in execution.subscribe():  # the current state first, then each change
            if event["type"] == "state":
                yield event

    pumps = [asyncio.create_task(pump(execution.progress.subscribe(ready=subscribed))), asyncio.create_task(pump(states()))]
    try:
        await subscribed.wait()
        yield queue
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def watch(client: Client, task_id: str, on_status: OnStatus) -> dict[str, Any]:
    """One ``watch_task`` call: each pushed status goes to ``on_status``; returns the ``tasks/get`` answer it ended on."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await _tell(on_status, *parse_status_line(message or ""))

    result = await client.call_tool("watch_task", {"task_id": task_id}, progress_handler=on_progress)
    return result.structured_content or {}


async def _tell(on_status: OnStatus, status: str, message: str | None) -> None:
    reply = on_status(status, message)
    if asyncio.iscoroutine(reply):
        await reply


async def follow_task(client: Client, task_id: str, on_status: OnStatus, *, poll_seconds: float,
                      dropped: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Follow a task until it needs input or ends: pushed while the connection holds, polled while it does not.

    Returns the ``tasks/get`` answer (a dict with ``status``, and ``result``, ``error`` or ``inputRequests``).
    ``dropped`` is told each time a watch is lost, so a lesson can count the fallbacks.
    """
    from lab_helpers.mcp_client import task_by_id  # tasks/get by id (fastmcp's handle polls the same way)

    while True:
        try:
            return await watch(client, task_id, on_status)
        except ToolError:
            raise  # the server answered: an unknown task id, say
        except Exception:  # the connection dropped mid-watch (httpx error, closed stream): poll instead
            dropped()
        while True:  # polling fallback: tasks/get at the server's cadence until the server answers again
            await asyncio.sleep(poll_seconds)
            try:
                answer = (await task_by_id(client, task_id)).model_dump(by_alias=True, mode="json", exclude_none=True)
            except Exception:
                continue  # still down
            await _tell(on_status, answer["status"], answer.get("statusMessage"))
            break
        if answer["status"] != "working":
            return answer  # ended (or asks) while the watch was down: the answer has it all
        # back: watch again; the new watch starts with the current status, so nothing that matters is missed
