"""Notebook 09's task worker: runs notebook 05's training tasks from the Redis queue, in a process of its own.

One MCP server process accepts the calls (``servers/native_tasks.py --no-worker``); the work is done by as many
of these worker processes as the load needs, on this machine or others, all on the same Redis. Each worker
builds the very same server (``native_tasks.build_server``: the same ``model_training`` tool, the same
``TasksExtension`` settings, the same lease) but serves no MCP: it only enters the server's lifespan, which
starts a Docket worker on the queue, as ``fastmcp tasks worker`` does. Docket hands each queued task to one
worker; a worker that dies stops renewing its lease on its runs, and after ``REDELIVERY_SECONDS`` (scaled)
another worker takes them over and runs them again from epoch 1.

Each run's "training ... started" and "finished" lines in this worker's log say which worker ran what. ``GET
/health`` (on ``--port``, for :class:`lab_helpers.processes.ServerProcess`) answers once the worker is on the
queue. A graceful stop (SIGTERM) ends its running tasks as the server's does: ``failed`` at their next epoch.
Run: ``python servers/task_worker.py --port 8101 --backend redis://127.0.0.1:6379/0 [--concurrency 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app, with_shutdown
from native_tasks import WORKER_CONCURRENCY, backend_kind, build_server

log = logging.getLogger("task_worker")


def build_worker(settings: config.Settings, backend_url: str, concurrency: int, stopping: asyncio.Event) -> Starlette:
    """A worker on ``backend_url``'s queue that runs up to ``concurrency`` trainings at once, and ``/health``."""
    mcp = build_server(settings, backend_url, stopping, worker_concurrency=concurrency)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # The server's lifespan starts its extensions: the tasks extension connects to Docket and runs a worker
        # until the lifespan ends. No MCP endpoint is served: clients talk to native_tasks.py.
        async with mcp._lifespan_manager():
            log.info("worker pid %d on %s: up to %d runs at once", os.getpid(), backend_url, concurrency)
            yield

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "role": "worker", "pid": os.getpid(), "concurrency": concurrency,
                             "backend": backend_kind(backend_url), "time_scale": settings.time_scale})

    return Starlette(routes=[Route("/health", health)], lifespan=lifespan)


def _worker_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` (a Redis URL: the queue the MCP server puts tasks on) and ``--concurrency``."""
    parser.add_argument("--backend", default=os.environ.get("LAB_TASKS_BACKEND", "").strip(),
                        help="the Redis the MCP server queues tasks on: redis://host:port/db "
                        "(default: LAB_TASKS_BACKEND)")
    parser.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY,
                        help=f"how many runs this worker takes at once (default {WORKER_CONCURRENCY})")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv, description=__doc__.splitlines()[0], default_port=8101, extra=_worker_options)
    if backend_kind(args.backend) != "redis":
        raise SystemExit(f"--backend must be redis://host:port/db (a worker shares the queue through Redis), "
                         f"got {args.backend!r}")
    if args.concurrency < 1:
        raise SystemExit(f"--concurrency must be 1 or more, got {args.concurrency}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("task_worker", "native_tasks"):  # its own line, and a line per run started and ended
        logging.getLogger(name).setLevel(logging.INFO)
    stopping = asyncio.Event()
    app = build_worker(config.load(), args.backend, args.concurrency, stopping)

    async def stop_runs() -> None:
        stopping.set()

    run_app(with_shutdown(app, stop_runs), args.host, args.port)


if __name__ == "__main__":
    main()
