"""Notebook 02's MCP server: fire and forget, behind task ids kept in memory.

``model_training`` answers at once with a task id and trains in the background
(the real NumPy workload, paced by ``LAB_TIME_SCALE``); the client comes back
with the id, from the same connection or a brand-new one:

* ``check_task_status(task_id)``: status, progress, timestamps, message;
* ``get_task_results(task_id)``: the computed scores and artifact path, or why not yet;
* ``list_tasks()`` and ``cancel_task(task_id)``.

The trainings run in a bounded pool of worker processes (``servers/patterns/worker_pool.py``), one per
CPU unless ``--workers N`` says otherwise, so the event loop that answers these calls never waits behind
the work; a task beyond the pool's size is ``queued`` until a worker is free.
Finished tasks are kept for ``LAB_TASK_RETENTION_SECONDS`` (scaled by the time scale),
then expire. All of it lives in this process's memory: restart the server and every
task id answers "unknown task". Run: ``python servers/async_tasks.py --port 8000 [--workers N]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lab_helpers import config
from lab_helpers.asgi import LabMCPServer, serve
from lab_helpers.training import DEFAULT_LEARNING_RATE, training_work, validate_request
from patterns.task_registry import TaskError, TaskManager
from patterns.tool_errors import tool_errors
from patterns.worker_pool import WorkerPool, split_workers_option


def build_server(settings: config.Settings, pool: WorkerPool) -> tuple[LabMCPServer, TaskManager]:
    """The server and its task registry (in this process's memory): at most ``pool.size`` trainings run at once."""
    tasks = TaskManager(retention_seconds=settings.scaled(settings.task_retention_seconds), max_running=pool.size)
    server = LabMCPServer(
        "async-tasks",
        settings,
        info=lambda: {"task_retention_seconds": tasks.retention_seconds, "tasks": len(tasks), **pool.describe()},
        instructions="Starts training runs in the background and answers questions about them by task id.",
    )

    @server.tool()
    async def model_training(
        model_name: str, epochs: int = 10, learning_rate: float = DEFAULT_LEARNING_RATE
    ) -> dict[str, Any]:
        """Start training a small classifier in the background and return its task id at once.

        Keep the task id: check_task_status, get_task_results and cancel_task need it.
        """
        with tool_errors(ValueError):
            validate_request(model_name, epochs, max_epochs=settings.max_epochs, learning_rate=learning_rate)
        work = training_work(settings, pool, model_name, epochs, learning_rate=learning_rate)
        task = tasks.submit(model_name, epochs, work)
        return {
            **task.to_dict(tasks.now()),
            "next": f"training runs in the background; call check_task_status with task_id {task.task_id!r}",
        }

    @server.tool()
    async def check_task_status(task_id: str) -> dict[str, Any]:
        """Status (queued, running, completed, failed, cancelled), progress, timestamps and message of a task."""
        with tool_errors(TaskError):
            return tasks.get(task_id).to_dict(tasks.now())

    @server.tool()
    async def get_task_results(task_id: str) -> dict[str, Any]:
        """The scores and artifact path of a completed task; an error naming the status otherwise."""
        with tool_errors(TaskError):
            return {"task_id": tasks.get(task_id).task_id, **tasks.results(task_id)}

    @server.tool()
    async def list_tasks() -> dict[str, Any]:
        """Every task this server still holds, newest first, with a count per status."""
        now = tasks.now()
        return {"tasks": [task.to_dict(now) for task in tasks.list()], "counts": tasks.counts()}

    @server.tool()
    async def cancel_task(task_id: str) -> dict[str, Any]:
        """Stop a queued or running task; it ends as cancelled."""
        with tool_errors(TaskError):
            return tasks.cancel(task_id).to_dict(tasks.now())

    return server, tasks


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until stopped; a graceful stop cancels the tasks and ends the worker processes."""
    workers, rest = split_workers_option(argv)
    pool = WorkerPool(workers)
    server, tasks = build_server(config.load(), pool)

    async def stop_gracefully() -> None:
        await tasks.shutdown()
        await pool.close()

    serve(server, rest, on_shutdown=stop_gracefully)


if __name__ == "__main__":
    main()
