"""How every server here is run: its command line, and uvicorn set up the workbench's way.

Plumbing shared by the MCP servers (:mod:`lab_helpers.asgi`), the agent apps and the AgentCore emulator. It
imports neither mcp nor NumPy, so a process that only needs to serve HTTP (the emulator, a Runtime session's
agent) starts without paying for them. Two things here fix uvicorn behaviour that would otherwise bite attendees:

* :func:`run_app` keeps idle connections 75 s. uvicorn's 5 s default races the client's own ~5 s
  idle-connection drop: a client polling every ~5 s then sees ``ReadError`` now and then (the 5-second
  keep-alive race, measured in this repository's early benchmarks).
* :class:`_HttpProtocol` is uvicorn's httptools protocol (a third faster per call than its h11 one, which kept
  the Memory emulator under its benchmark target) and also cancels the keep-alive timer of a connection that was
  reset. uvicorn 0.54 cancels it only on a clean close, and the mcp client resets its connection after every
  streamed answer, so each call's connection objects (about 8 KB) stayed alive for the whole 75 s keep-alive: a
  polling client grew the server's memory with every call (seen in ``bench/task_load.py``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
# uvicorn exports no protocol class: subclassing its httptools one is the only way to fix its keep-alive timer.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: How long idle HTTP connections stay open: well above any client's poll interval.
KEEP_ALIVE_SECONDS = 75


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, also releasing the keep-alive timer when a connection is reset."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._unset_keepalive_if_required()


def parse_args(
    argv: Sequence[str] | None = None,
    description: str | None = None,
    default_port: int = 8000,
    *,
    resumable: bool = False,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The command line every server script accepts (AgentCore Runtime's ports: 8000 for MCP, 8080 for agents).

    ``resumable`` adds ``--resumable`` (mcp servers served by :func:`serve`); ``extra`` adds a server's own options.
    """
    parser = argparse.ArgumentParser(description=description)
    # LAB_HOST=0.0.0.0 is how a deployment to AWS AgentCore Runtime makes a server reachable inside its microVM.
    host = os.environ.get("LAB_HOST", "").strip() or "127.0.0.1"
    parser.add_argument("--host", default=host, help=f"address to bind (default: LAB_HOST, else 127.0.0.1; now {host})")
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"port to listen on (default: {default_port}, as on AgentCore Runtime)")
    if resumable:
        parser.add_argument(
            "--resumable",
            action="store_true",
            help="keep sent events in an event store so a dropped stream can be resumed with Last-Event-ID",
        )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    return args


def with_shutdown(app: Any, on_shutdown: Callable[[], Awaitable[None]]) -> Any:
    """``app`` (a Starlette app) with ``on_shutdown`` awaited first when it stops, before its own lifespan ends.

    That is while the event loop and the app's background work still run: the place to end running work
    cleanly (code after ``uvicorn.run`` never runs on SIGTERM, which uvicorn re-raises once it has stopped).
    """
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def wrapped(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            try:
                yield state
            finally:
                await on_shutdown()

    app.router.lifespan_context = wrapped
    return app


def run_app(app: Any, host: str, port: int) -> None:
    """Serve an ASGI app the workbench's way (the MCP servers and the AgentCore emulator alike).

    httptools with the keep-alive timer fix, a 75 s keep-alive, a 3 s graceful
    shutdown so ``ServerProcess.stop()`` never hangs, and no per-request log lines.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_HttpProtocol,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=3,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run()
