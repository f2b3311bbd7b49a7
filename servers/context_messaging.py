"""Notebook 01's MCP server: keep a long tool call alive by talking while it works.

Two ways to talk during a long call, one tool each:

* ``train_model`` sends a progress notification after every epoch (real scores in
  the message). Only clients that pass a progress callback receive them.
* ``train_model_with_heartbeat`` reports no progress at all, as for work whose
  progress cannot be measured; instead it sends a log notification every few
  seconds while the work runs, which keeps idle timeouts from firing. It reaches
  every client that speaks MCP protocol version 2025-11-25 (the version client and
  server agree on when a session opens; Strands' MCPClient uses it), where a server
  may send log messages unasked; version 2026-07-28 clients must opt in per request.

Both really train a small NumPy model (``lab_helpers.training``), paced by
``LAB_TIME_SCALE``. Run it with ``python servers/context_messaging.py --port 8000``;
add ``--resumable`` to keep sent events in an event store (notebook 01, step 5).
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from lab_helpers import config
from lab_helpers.asgi import LabMCPServer, serve
from lab_helpers.training import DEFAULT_LEARNING_RATE, EpochScores, TrainingError, train_with_settings
from patterns.heartbeat import heartbeat
from patterns.tool_errors import tool_errors


def build_server(settings: config.Settings) -> LabMCPServer:
    """The server and its two tools; ``settings`` pace the training (``LAB_TIME_SCALE``) and bound its size."""
    server = LabMCPServer(
        "context-messaging",
        settings,
        instructions="Trains a small model while keeping the call alive with progress notifications or heartbeats.",
    )

    @server.tool()
    async def train_model(
        ctx: Context, model_name: str, epochs: int = 10, learning_rate: float = DEFAULT_LEARNING_RATE
    ) -> dict[str, Any]:
        """Train a small classifier for `epochs` epochs, reporting progress after every epoch.

        Returns the final training and validation scores, the per-epoch history and
        the path of the saved model artifact.
        """

        async def report(scores: EpochScores) -> None:
            await ctx.report_progress(scores.epoch, scores.epochs, scores.summary())

        with tool_errors(ValueError, TrainingError):
            result = await train_with_settings(settings, model_name, epochs, learning_rate=learning_rate,
                                               on_epoch=report)
        return result.to_dict()

    @server.tool()
    async def train_model_with_heartbeat(
        ctx: Context,
        model_name: str,
        epochs: int = 10,
        heartbeat_seconds: float = 2.0,
        learning_rate: float = DEFAULT_LEARNING_RATE,
    ) -> dict[str, Any]:
        """Train like `train_model` but report no progress: send a heartbeat log message every `heartbeat_seconds`.

        For work whose progress cannot be measured. `heartbeat_seconds` is paced like the
        epochs (scaled by the server's time scale), between 0.1 and 300.
        """
        if not 0.1 <= heartbeat_seconds <= 300:
            raise ToolError(f"heartbeat_seconds must be between 0.1 and 300, got {heartbeat_seconds!r}")
        interval = max(settings.scaled(heartbeat_seconds), 0.01)

        async def beat(count: int, elapsed: float) -> None:
            await ctx.info(f"heartbeat {count}: still training {model_name!r} ({elapsed:.1f} s elapsed)")

        async with heartbeat(beat, interval) as beats:
            with tool_errors(ValueError, TrainingError):
                result = await train_with_settings(settings, model_name, epochs, learning_rate=learning_rate)
        return {**result.to_dict(), "heartbeats_sent": beats.beats}

    return server


if __name__ == "__main__":
    serve(build_server(config.load()))
