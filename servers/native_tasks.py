"""Notebook 05's MCP server: the training run as a protocol-native MCP task.

Notebook 02 built tasks by hand (a ``model_training`` tool that returns an id, and
tools to ask about it). The MCP 2026-07-28 revision makes that part of the
protocol, as the extension ``io.modelcontextprotocol/tasks`` (SEP-2663): the
client asks for a task on ``tools/call`` itself, gets a task id back at once and
polls ``tasks/get`` (status, status message, and finally the result inlined),
``tasks/cancel`` stops it. fastmcp's ``TasksExtension`` implements the server
half on a Docket queue, so here the tool body is only the training.

Where tasks live is the ``--backend``: ``memory://`` (this process only: a
restart forgets every task) or ``redis://host:port/db``, where a finished task's
status and result outlive the process, and a run the process was killed in the
middle of is started again from epoch 1 by the restarted server (Docket redelivers
it once its worker's lease has lapsed, ``REDELIVERY_SECONDS``). A graceful stop
(SIGTERM) ends running tasks instead: ``failed`` at their next epoch, saying why. Run:
``python servers/native_tasks.py --port 8000 --backend redis://127.0.0.1:6379/0``.

To scale out (notebook 09), ``--no-worker`` makes this process only accept calls and answer about tasks, and
worker processes on the same Redis run them: ``python servers/task_worker.py --backend redis://...``, as many
as the load needs. Notebook 08 also adds two tools: ``interactive_training``, a task that pauses at a plateau to
ask the user (``input_required``, ``servers/patterns/task_input.py``), and ``watch_task``, a task's status pushed
instead of polled (``servers/patterns/task_watch.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.utilities.tasks import TaskConfig
from fastmcp_tasks import TasksExtension
from fastmcp_tasks.context import get_task_context
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from lab_helpers import config
from lab_helpers.asgi import add_standard_routes, parse_args, run_app, with_shutdown
from lab_helpers.training import (DEFAULT_LEARNING_RATE, EpochScores, TrainingError, train_with_settings,
                                  validate_request)
from patterns.task_input import AskingTasksExtension, add_interactive_training_tool
from patterns.task_watch import add_watch_tool
from patterns.tool_errors import tool_errors

#: ``model_training``'s default number of epochs (also where the request is checked before a task exists).
DEFAULT_EPOCHS = 10
#: How often clients should poll ``tasks/get``, in seconds at time scale 1 (scaled by the time scale).
POLL_SECONDS = 0.5
#: ...but never faster than this (real seconds): a poll is a whole HTTP round trip.
MIN_POLL_SECONDS = 0.05
#: How long a running task's lease lasts unrenewed before a worker takes it over and runs it again (lesson
#: seconds, scaled; at least REDELIVERY_FLOOR real s). A live worker renews it 4 times per period, so only a
#: dead one loses it. Docket's default, 5 minutes, would leave a crashed run "working" that long.
REDELIVERY_SECONDS = 10.0
REDELIVERY_FLOOR = 1.0
#: How many trainings the Docket worker runs at once (fastmcp-tasks' default, made explicit): more tasks wait
#: queued, and the protocol reports queued and running tasks alike as "working" (a queued one has no status
#: message yet). bench/task_load.py shows the difference from notebook 02's server, which runs every task at once.
WORKER_CONCURRENCY = 10

log = logging.getLogger("native_tasks")


def backend_kind(url: str) -> str:
    """``"redis"`` or ``"memory"``: what a notebook prints to say whether tasks survive a restart."""
    return "redis" if url.startswith(("redis://", "rediss://")) else "memory"


class ServerStopping(Exception):
    """The server is shutting down: raised in a run at its next epoch, so the shutdown need not wait for it."""


def run_failed(message: str) -> Exception:
    """The error that ends a run that cannot go on, so that its task ends ``failed``.

    fastmcp_tasks reports a task whose tool raised a *tool* error as ``completed``
    with an error result, and only a protocol error (``MCPError``) as ``failed``.
    A diverged or interrupted run is a failed task, so inside a task this is an
    ``MCPError`` (its message becomes the task's error and status message); a
    plain (non-task) call keeps the usual tool error.
    """
    if get_task_context() is not None:
        return MCPError(code=INTERNAL_ERROR, message=message)
    return ToolError(message)


class RejectBadTrainingRequests(Middleware):
    """Check ``model_training``'s arguments before a task exists.

    The tasks extension turns the call into a task *after* the middleware chain
    and *before* the tool body runs, so a check in the body would only fail a task
    the client already holds an id for. Here a bad request is an ordinary tool
    error with :func:`validate_request`'s message, and no task is created.
    """

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.message.name in ("model_training", "interactive_training"):
            arguments = context.message.arguments or {}
            with tool_errors(ValueError, error=ToolError):
                validate_request(arguments.get("model_name"), arguments.get("epochs", DEFAULT_EPOCHS),
                                 max_epochs=self.settings.max_epochs,
                                 learning_rate=arguments.get("learning_rate", DEFAULT_LEARNING_RATE))
        return await call_next(context)


def build_server(settings: config.Settings, backend_url: str, stopping: asyncio.Event, *,
                 worker_concurrency: int = WORKER_CONCURRENCY) -> FastMCP:
    """The MCP server, its training runs tasks on ``backend_url``'s Docket queue; ``stopping`` ends them early.

    ``worker_concurrency`` is how many runs this process takes from the queue at once; 0 (``--no-worker``) takes
    none: separate worker processes (servers/task_worker.py) run them, this process only accepts calls.
    """
    mcp = FastMCP(
        "native-tasks",
        instructions="Trains small classifiers as MCP tasks (io.modelcontextprotocol/tasks): poll tasks/get by id.",
        middleware=[RejectBadTrainingRequests(settings)],
        strict_input_validation=True,  # JSON true or "10" is no integer (pydantic's lax default takes them as 1, 10)
    )
    mcp.add_extension(tasks_extension(settings, backend_url, worker_concurrency))
    add_standard_routes(mcp, settings, info=lambda: {"backend": backend_kind(backend_url), "backend_url": backend_url})
    add_training_tool(mcp, settings, stopping)
    add_interactive_training_tool(mcp, settings, stopping, poll_interval(settings))  # notebook 08
    add_watch_tool(mcp)  # notebook 08: status pushed instead of polled
    return mcp


def tasks_extension(settings: config.Settings, backend_url: str,
                    concurrency: int = WORKER_CONCURRENCY) -> TasksExtension:
    """The server half of ``io.modelcontextprotocol/tasks``: tasks/get, tasks/cancel, and a worker running the tools.

    ``backend_url`` says where Docket keeps the tasks (``memory://`` or ``redis://...``). The redelivery timeout
    is how long a crashed worker's run stays "working" before another worker starts it again (see the module
    docstring); the concurrency is how many runs this process's worker takes at once (0: none, its worker only
    schedules: fastmcp-tasks has no switch to start no worker at all).
    """
    redelivery = max(REDELIVERY_FLOOR, settings.scaled(REDELIVERY_SECONDS))
    return AskingTasksExtension(url=backend_url, redelivery_timeout=timedelta(seconds=redelivery),
                          concurrency=concurrency)


def poll_interval(settings: config.Settings) -> timedelta:
    """How often clients should poll ``tasks/get`` (``pollIntervalMs``): half an epoch, at least MIN_POLL_SECONDS."""
    return timedelta(seconds=max(MIN_POLL_SECONDS, settings.scaled(POLL_SECONDS)))


def add_training_tool(mcp: FastMCP, settings: config.Settings, stopping: asyncio.Event) -> None:
    """Declare ``model_training`` on ``mcp``, task-capable: a client may ask for it to run as a task."""

    @mcp.tool(task=TaskConfig(mode="optional", poll_interval=poll_interval(settings)))
    async def model_training(
        ctx: Context, model_name: str, epochs: int = DEFAULT_EPOCHS, learning_rate: float = DEFAULT_LEARNING_RATE
    ) -> dict[str, Any]:
        """Train a small classifier and return its final scores and artifact path.

        Call it as a task to get a task id at once: tasks/get then reports the run's
        latest epoch as statusMessage, e.g. "epoch 9/100: train acc 0.934 loss 0.174 |
        val acc 0.925 loss 0.204" (none before the first epoch, nor once the task has
        ended), and inlines the result once it is completed. A client that does not
        use tasks gets the same lines as progress notifications.
        """
        last_epoch = 0

        async def on_epoch(scores: EpochScores) -> None:
            nonlocal last_epoch
            last_epoch = scores.epoch
            if stopping.is_set():
                raise ServerStopping(f"training {model_name!r} stopped at epoch {scores.epoch}/{epochs}: "
                                     "the server shut down; start it again")
            await ctx.report_progress(scores.epoch, scores.epochs, scores.summary())

        log.info("training %s started: %d epochs, learning rate %g", model_name, epochs, learning_rate)
        try:
            result = await train_with_settings(settings, model_name, epochs, learning_rate=learning_rate,
                                               on_epoch=on_epoch)
        except (TrainingError, ServerStopping) as error:
            log.info("training %s failed: %s", model_name, error)
            raise run_failed(str(error)) from error
        except asyncio.CancelledError:
            # tasks/cancel lands in the epoch's awaited pause: the run ends there and saves no artifact.
            log.info("training %s cancelled after epoch %d/%d", model_name, last_epoch, epochs)
            raise
        log.info("training %s finished: %s", model_name, result.artifact_path)
        return {key: value for key, value in result.to_dict().items() if key != "history"}


def _backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend``, this server's one option beyond the ``--host``/``--port`` every server takes."""
    backend = os.environ.get("LAB_TASKS_BACKEND", "").strip() or "memory://"
    parser.add_argument("--backend", default=backend, help="where tasks live: memory:// or redis://host:port/db "
                        f"(default: LAB_TASKS_BACKEND, else memory://; now {backend})")
    parser.add_argument("--no-worker", action="store_true", help="accept calls but run no task in this process: "
                        "worker processes on the same Redis run them (servers/task_worker.py)")


def parse_command_line(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of every server here (:func:`lab_helpers.asgi.parse_args`), plus ``--backend``."""
    args = parse_args(argv, description=__doc__.splitlines()[0], extra=_backend_option)
    if not args.backend.startswith(("memory://", "redis://", "rediss://")):
        raise SystemExit(f"--backend must be memory:// or redis://host:port/db, got {args.backend!r}")
    if args.no_worker and backend_kind(args.backend) != "redis":
        raise SystemExit("--no-worker needs a redis:// backend: a worker in another process cannot see memory://")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_command_line(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)  # a line per run started and ended: the log shows a redelivered run starting again
    stopping = asyncio.Event()
    concurrency = 0 if args.no_worker else WORKER_CONCURRENCY
    mcp = build_server(config.load(), args.backend, stopping, worker_concurrency=concurrency)
    log.info("%s serving on http://%s:%d/mcp, tasks in %s", mcp.name, args.host, args.port, args.backend)
    # On shutdown Docket's worker waits for every running task to finish: a long training would hold the
    # process past ServerProcess.stop's grace period. Setting `stopping` first ends each run at its next epoch.

    async def stop_runs() -> None:
        stopping.set()

    run_app(with_shutdown(mcp.http_app(path="/mcp"), stop_runs), args.host, args.port)


if __name__ == "__main__":
    main()
