"""Notebook 04's hand-written agent: ``/ping`` written without an SDK, in the three ways agents in the wild write it.

AgentCore Runtime polls every session's ``GET /ping``. AWS's guide shows the answer ``{"status": "HealthyBusy"}``
for a session with background work and calls the ``time_of_last_update`` field (seconds since the epoch)
optional. Teams running long work on the Runtime measured that its idle reaper reads that field: without it the
status is ignored and the session is ended at the idle timeout after its last invocation, work or no work; a
time stamped afresh on every ping makes the session look busy for ever, so it lives until ``maxLifetime``. The
local emulator models that (its sources: :mod:`lab_helpers.emulator.runtime_sessions`). ``PING_STYLE`` (an
environment variable, or ``--ping-style``) picks this agent's ``/ping`` handler:

* ``"status_only"``: the status alone, as in AWS's guide (issue 471 of aws/bedrock-agentcore-sdk-python,
  fastagent-sh/fastagent pull request 314): its background work is lost at the idle timeout;
* ``"stamped_every_ping"``: the current time in every answer (pull request 48 of
  aws-samples/sample-host-openclaw-on-amazon-bedrock-agentcore): never idle, it holds its microVM until
  ``maxLifetime``;
* ``"stamped_at_change"`` (the default): the time the status last changed, as ``BedrockAgentCoreApp`` reports it.

Payloads (``POST /invocations``), each answered at once: ``{"action": "train", "model_name", "epochs"}`` (training in
the background), ``{"action": "stuck"}`` (background work that never ends, as a call waiting on a connection that
died would), ``{"action": "status"}`` (this process's jobs and pid). The jobs live in this process only.
Run: ``python servers/handwritten_ping.py --port 8080 [--ping-style status_only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from lab_helpers.training import EpochScores, train_with_settings, validate_request

settings = config.load()
jobs: dict[str, dict[str, Any]] = {}  # job id -> {"job_id", "kind", "status", "epoch", "epochs", "val_accuracy"}
_background: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks


def busy() -> bool:
    """Whether background work runs: what every handler below reports as ``HealthyBusy``."""
    return any(job["status"] == "running" for job in jobs.values())


def ping_status_only() -> dict[str, Any]:
    """The status alone, as AWS's guide shows it. Measured: the Runtime does not read it without a time."""
    return {"status": "HealthyBusy" if busy() else "Healthy"}


def ping_stamped_every_ping() -> dict[str, Any]:
    """The current time in every answer: to the Runtime the status has just changed, every time it asks."""
    return {"status": "HealthyBusy" if busy() else "Healthy", "time_of_last_update": int(time.time())}


last_change = {"status": "Healthy", "at": int(time.time())}  # the status and when a ping first saw it


def ping_stamped_at_change() -> dict[str, Any]:
    """The time the status last changed (as BedrockAgentCoreApp does): busy while working, idle after the work."""
    status = "HealthyBusy" if busy() else "Healthy"
    if status != last_change["status"]:
        last_change.update(status=status, at=int(time.time()))
    return {"status": status, "time_of_last_update": last_change["at"]}


PING_STYLES: dict[str, Callable[[], dict[str, Any]]] = {
    "status_only": ping_status_only, "stamped_every_ping": ping_stamped_every_ping,
    "stamped_at_change": ping_stamped_at_change,
}


async def train(job: dict[str, Any], model_name: str) -> None:
    """Real training in the background; the job records each epoch and how it ended."""
    def on_epoch(scores: EpochScores) -> None:
        job["epoch"] = scores.epoch

    try:
        result = await train_with_settings(settings, model_name, job["epochs"], on_epoch=on_epoch)
    except Exception as error:  # noqa: BLE001 - a failed run is reported in the job, not lost in a log
        job.update(status="failed", error=f"{type(error).__name__}: {error}")
    else:
        job.update(status="completed", val_accuracy=result.val_accuracy)


async def wait_forever(job: dict[str, Any]) -> None:
    """Work that never ends: it waits for an answer that never comes (the job stays "running")."""
    await asyncio.Event().wait()


def start(kind: str, work: Callable[[dict[str, Any]], Any], epochs: int = 0) -> dict[str, Any]:
    job = {"job_id": f"job-{uuid.uuid4().hex[:8]}", "kind": kind, "status": "running", "epoch": 0, "epochs": epochs}
    jobs[job["job_id"]] = job
    task = asyncio.get_running_loop().create_task(work(job))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return {**job, "pid": os.getpid()}


async def invocations(request: Request) -> JSONResponse:
    """Dispatch on the payload's ``action``; every answer comes at once, the work goes on in the background."""
    try:
        payload = await request.json()
    except ValueError:
        return JSONResponse({"error": "the payload must be JSON"}, status_code=400)
    action = payload.get("action") if isinstance(payload, dict) else None
    if action == "train":
        model_name, epochs = payload.get("model_name"), payload.get("epochs")
        try:
            validate_request(model_name, epochs, max_epochs=settings.max_epochs)
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(start("train", lambda job: train(job, model_name), int(epochs)))
    if action == "stuck":
        return JSONResponse(start("stuck", wait_forever))
    if action == "status":
        return JSONResponse({"jobs": list(jobs.values()), "busy": busy(), "pid": os.getpid()})
    return JSONResponse({"error": f"unknown action {action!r}: send train, stuck or status"}, status_code=400)


def build_app(ping_style: str) -> Starlette:
    """The agent: ``POST /invocations`` and ``GET /ping`` (answered by the handler ``ping_style`` names)."""
    if ping_style not in PING_STYLES:
        raise ValueError(f"PING_STYLE must be one of {', '.join(PING_STYLES)}, got {ping_style!r}")
    handler = PING_STYLES[ping_style]

    async def ping(_: Request) -> JSONResponse:
        return JSONResponse(handler())

    return Starlette(routes=[Route("/invocations", invocations, methods=["POST"]),
                             Route("/ping", ping, methods=["GET"])])


if __name__ == "__main__":
    style = os.environ.get("PING_STYLE", "stamped_at_change")

    def ping_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--ping-style", choices=list(PING_STYLES), default=style,
                            help=f"the /ping handler (default: PING_STYLE, now {style})")

    args = parse_args(description="Notebook 04's hand-written agent: /ping written by hand", default_port=8080,
                      extra=ping_option)
    run_app(build_app(args.ping_style), args.host, args.port)
