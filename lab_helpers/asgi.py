"""How the MCP servers in ``servers/`` are built and served as ASGI apps.

ASGI is Python's interface between an async web application and the server that runs it (uvicorn here).
Plumbing: the lessons' patterns are in ``servers/patterns/``. Two things here fix behaviour of the stock
mcp 2.x server that would otherwise bite attendees:

* :class:`LabMCPServer` rejects tool arguments the tool does not declare. The
  stock server silently ignores them, so a typo such as ``epoch=5`` would quietly
  run with the default instead of failing with a message. It also holds every
  argument to the JSON type the tool's input schema declares: the stock server
  validates with pydantic in lax mode, which takes JSON ``true`` as ``epochs=1`` and
  ``"10"`` as 10 (an integer argument takes a whole number, a number argument also
  takes an integer such as 1: ``learning_rate=1`` is fine).
* :func:`serve` runs the app with :func:`lab_helpers.http_serving.run_app` (a 75 s keep-alive and
  uvicorn's httptools protocol with its keep-alive timer fixed: why, there).

A server script ends with ``serve(build_server(...))``; :mod:`lab_helpers.processes` starts it
with ``--host`` and ``--port`` and waits for ``GET /health`` to answer.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import CallToolResult
from starlette.requests import Request
from starlette.responses import JSONResponse

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app, with_shutdown
from patterns.event_store import InMemoryEventStore
from lab_helpers.training import EPOCH_SECONDS

#: How long a client waits before reconnecting to a dropped, resumable stream.
RETRY_INTERVAL_MS = 200

# Log notifications are deprecated in MCP protocol version 2026-07-28 but are still how a
# heartbeat reaches clients that speak version 2025-11-25 (Strands' MCPClient does); the
# heartbeat lesson uses them on purpose, so the warning would only be noise.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)


def add_standard_routes(server: Any, settings: config.Settings, info: Callable[[], dict[str, Any]] | None = None) -> None:
    """``GET /health`` and the ``server_info`` tool, the same on every MCP server here (mcp's and fastmcp's alike).

    ``/health`` is what :class:`lab_helpers.processes.ServerProcess` waits for before it hands a server to a
    notebook; ``server_info`` says who answers (the process id shows a restart) and with which settings, and is
    the cheapest tool, the latency floor in the benchmarks. ``info`` adds a server's own fields to both.
    """

    def describe() -> dict[str, Any]:
        return {"server": server.name, "pid": os.getpid(), "time_scale": settings.time_scale,
                "epoch_seconds": settings.scaled(EPOCH_SECONDS), "max_epochs": settings.max_epochs,
                **(info() if info else {})}

    @server.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **describe()})

    @server.tool()
    async def server_info() -> dict[str, Any]:
        """Who is answering: process id, time scale and limits (also the cheapest call, a latency floor)."""
        return describe()


#: How an error message names what a JSON Schema type accepts.
JSON_TYPES = {"integer": "a whole number (a JSON integer such as 10)", "number": "a number (such as 0.3 or 1)",
              "string": "a string", "boolean": "true or false", "object": "a JSON object", "array": "a JSON array",
              "null": "null"}


def _as_json(value: Any, limit: int = 80) -> str:
    """``value`` as the caller wrote it in JSON, cut short so a huge argument cannot flood an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def argument_problems(tool: str, validator: Draft202012Validator, arguments: dict[str, Any]) -> str | None:
    """What is wrong with ``arguments`` by the tool's input schema, in words a caller can act on; None if nothing.

    JSON types are taken as JSON has them: ``true`` is not an integer and ``"10"`` is not a number.
    """
    problems = []
    for error in validator.iter_errors(arguments):
        name = ".".join(map(str, error.path))
        if error.validator == "type" and name:
            expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            problems.append(f"{name} must be {' or '.join(JSON_TYPES.get(t, t) for t in expected)}, "
                            f"got {_as_json(error.instance)}")
        else:
            problems.append(f"{name}: {error.message}" if name else error.message)
    return f"{tool}: {'; '.join(problems)}" if problems else None


class LabMCPServer(MCPServer):
    """An MCPServer with the workbench's conventions.

    Unknown tool arguments, and arguments of another JSON type than the tool's input schema declares (JSON ``true``
    or ``"10"`` for an integer), get a clear tool error; every server has ``GET /health`` and the ``server_info``
    tool (:func:`add_standard_routes`).
    """

    def __init__(
        self,
        name: str,
        settings: config.Settings,
        info: Callable[[], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("log_level", "WARNING")
        super().__init__(name, **kwargs)
        self.lab_settings = settings
        self._validators: dict[str, Draft202012Validator] | None = None  # of each tool's input schema
        add_standard_routes(self, settings, info)

    def add_tool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().add_tool(fn, *args, **kwargs)
        self._validators = None

    def remove_tool(self, name: str) -> None:
        super().remove_tool(name)
        self._validators = None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult:
        if self._validators is None:
            self._validators = {tool.name: Draft202012Validator(tool.input_schema) for tool in await self.list_tools()}
        validator = self._validators.get(name)
        if validator is None:  # an unknown tool: the stock server says so
            return await super().call_tool(name, arguments, context)
        declared = set(validator.schema.get("properties", {}))
        unknown = sorted(set(arguments) - declared)
        if unknown:
            raise ToolError(
                f"{name} got unknown argument(s) {', '.join(unknown)}; "
                f"it accepts: {', '.join(sorted(declared)) or 'no arguments'}"
            )
        problems = argument_problems(name, validator, arguments)
        if problems:
            raise ToolError(problems)
        return await super().call_tool(name, arguments, context)


def serve(
    server: MCPServer,
    argv: Sequence[str] | None = None,
    *,
    stateless: bool = False,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``server`` over streamable HTTP at ``/mcp`` until SIGTERM or Ctrl-C.

    ``stateless=True`` serves every request on its own, with no MCP session of the
    server's making, as AgentCore Runtime hosts MCP servers; the client may then put
    its own value in ``Mcp-Session-Id`` (the AWS blog's way of passing the caller's identity, notebook 03).
    ``on_shutdown`` is awaited when a graceful stop begins, while the event loop and the
    server's background tasks still run (code after ``serve()`` never runs: uvicorn
    re-raises the SIGTERM it caught once it has stopped).
    """
    args = parse_args(argv, description=server.instructions, resumable=True)
    if stateless and args.resumable:
        raise SystemExit("--resumable needs a stateful server: a stateless one keeps no event store")
    event_store = InMemoryEventStore() if args.resumable else None
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        event_store=event_store,
        retry_interval=RETRY_INTERVAL_MS if event_store else None,
        stateless_http=stateless,
        host=args.host,
    )
    if on_shutdown is not None:
        with_shutdown(app, on_shutdown)
    logging.getLogger(__name__).warning(
        "%s serving on http://%s:%d/mcp%s", server.name, args.host, args.port, " (resumable)" if event_store else ""
    )
    run_app(app, args.host, args.port)
