"""Notebook 04's agent app: background work that keeps an AgentCore Runtime session alive.

AgentCore Runtime ends a session that has been idle too long (15 minutes by default) unless
``GET /ping`` answers ``HealthyBusy``; then it keeps the session, up to its maximum lifetime.
(As AWS users measured it, the Runtime reads that status only next to a ``time_of_last_update``;
``BedrockAgentCoreApp`` always sends one: see ``servers/handwritten_ping.py`` for what goes wrong by hand.)
So an agent that answers at once and trains in the background must tell ``/ping`` that it is
busy. ``BedrockAgentCoreApp`` offers three ways, and the payload of a training request chooses one:

* ``"decorator"``: an ``@app.async_task`` coroutine, started with ``asyncio.create_task``;
* ``"manual"``: ``app.add_async_task`` before a ``threading.Thread`` starts, ``app.complete_async_task`` when it ends;
* ``"custom_ping"``: a plain asyncio task, known only to this app's job registry, read by the ``@app.ping`` handler.

How the installed SDK (bedrock-agentcore 1.25, ``runtime/app.py``) combines them, verified in
``get_current_ping_status``: a forced status (debug actions) wins, then the custom ping handler,
then the automatic status (``HealthyBusy`` while ``add_async_task`` / ``@async_task`` tasks are
open). A custom handler that returns a status *replaces* the automatic one: answering ``Healthy``
would hide the other two ways' running work. The handler here therefore returns ``HealthyBusy``
for its own running jobs and ``None`` otherwise; ``None`` (or an exception, logged as a warning)
falls through to the automatic status. Further details that shape this app:

* ``@app.async_task`` registers its task when the coroutine first runs, not when it is created,
  so the entrypoint yields once before answering; otherwise the first ``/ping`` could say ``Healthy``.
* ``/ping`` is a sync route: the handler runs in Starlette's thread pool, next to the training
  threads, so the registry is guarded by a lock.
* ``time_of_last_update`` changes only when a ping (or the ``ping_status`` debug action) observes a
  new status: it is when the app noticed the change, not when a job ended (in whole seconds, ``int``).
* With ``debug=True`` a payload holding ``_agent_core_app_action`` is answered by the SDK, never
  reaching the entrypoint: ``ping_status``, ``job_status`` (only the ``@async_task``/``add_async_task``
  tasks, not this registry), ``force_busy``, ``force_healthy`` (both beat the custom handler),
  ``clear_forced_status``; another name is a 400. The SDK calls ``payload.get`` first, so a JSON
  body that is not an object gets a 500 ("'list' object has no attribute 'get'").

Payloads (``POST /invocations``), each answered at once: ``{"action": "train", "model_name",
"epochs", "tracking"?, "learning_rate"?}`` (tracking defaults to ``"decorator"``),
``{"action": "status"}``, ``{"action": "watch", "job_id"}`` (a ``text/event-stream`` of the job's epochs, then
its ending), ``{"action": "remember", "note"}``, ``{"action": "recall"}``. Jobs and
notes live in this process only: on AgentCore Runtime one session id is one microVM, so the same
session keeps them and a new session starts empty.
Run: ``python servers/runtime_agent.py --port 8080``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import AsyncIterator
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from bedrock_agentcore.runtime.models import PingStatus
from starlette.exceptions import HTTPException

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from lab_helpers.training import DEFAULT_LEARNING_RATE, EpochScores, train_with_settings, validate_request

TRACKING_WAYS = ("decorator", "manual", "custom_ping")
ACTIONS = ("train", "status", "watch", "remember", "recall")
#: How often a ``watch`` stream looks at its job, in seconds at time scale 1 (where one epoch lasts one second).
WATCH_SECONDS = 0.5
#: The final scores a finished job reports (its per-epoch history stays out of the status answer).
RESULT_FIELDS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "artifact_path", "seconds")

settings = config.load()
app = BedrockAgentCoreApp(debug=True)  # debug: the _agent_core_app_action payloads answer
app.logger.setLevel(logging.INFO)  # debug=True also logs every ping; one line per job start and end is enough

_lock = threading.Lock()  # guards jobs and notes: the ping thread pool and training threads read them too
_background: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks


@dataclass
class Job:
    """One training run and its fate, as the status action reports it."""

    job_id: str
    model_name: str
    epochs: int
    learning_rate: float
    tracking: str
    session_id: str | None
    status: str = "running"
    latest: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        epoch = self.latest["epoch"] if self.latest else 0
        return {**self.__dict__, "epoch": epoch, "progress": epoch / self.epochs}


jobs: dict[str, Job] = {}
notes: list[dict[str, Any]] = []


async def run_training(job: Job) -> None:
    """Train for ``job`` and record how it ended, whichever way tracks it: a job never stays "running"."""

    def on_epoch(scores: EpochScores) -> None:
        with _lock:
            job.latest = scores.to_dict()

    try:
        result = await train_with_settings(settings, job.model_name, job.epochs, learning_rate=job.learning_rate,
                                           on_epoch=on_epoch)
    except asyncio.CancelledError:
        end(job, "failed", error="cancelled before it ended")
        raise
    except Exception as error:  # noqa: BLE001 - a failed run is reported in the job, not lost in a log
        end(job, "failed", error=f"{type(error).__name__}: {error}")
    else:
        end(job, "completed", result={name: getattr(result, name) for name in RESULT_FIELDS})


def end(job: Job, status: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    """Record a job's ending under the lock, so /ping and the status action never see half of it."""
    with _lock:
        job.status, job.result, job.error, job.ended_at = status, result, error, time.time()
    app.logger.info("job %s (%s) %s%s", job.job_id, job.tracking, status, f": {error}" if error else "")


def keep(task: asyncio.Task[None]) -> None:
    """Hold a reference to a background task until it ends: asyncio alone keeps only a weak one."""
    _background.add(task)
    task.add_done_callback(_background.discard)


# Way 1: the SDK's decorator counts the coroutine as a task from its first step to its end.
@app.async_task
async def train_tracked_by_decorator(job: Job) -> None:
    await run_training(job)


async def start_with_decorator(job: Job) -> None:
    keep(asyncio.create_task(train_tracked_by_decorator(job)))
    await asyncio.sleep(0)  # the wrapper registers the task when it first runs: let it, before /ping is asked


# Way 2: the SDK's manual calls, here around a thread with its own event loop (work that must not share the loop).
def train_tracked_manually(job: Job, task_id: int) -> None:
    try:
        asyncio.run(run_training(job))
    finally:
        app.complete_async_task(task_id)  # in `finally`: a failed run must not leave /ping busy for ever


def start_with_manual_calls(job: Job) -> None:
    task_id = app.add_async_task("train_tracked_manually", {"job_id": job.job_id})  # /ping: HealthyBusy from now
    threading.Thread(target=train_tracked_manually, args=(job, task_id), name=job.job_id, daemon=True).start()


# Way 3: the app's own registry decides.
@app.ping
def ping_status() -> PingStatus | None:
    """``HealthyBusy`` while a custom_ping job runs; otherwise ``None``, so the SDK's automatic status applies."""
    with _lock:
        busy = any(job.status == "running" and job.tracking == "custom_ping" for job in jobs.values())
    return PingStatus.HEALTHY_BUSY if busy else None


def start_with_custom_ping(job: Job) -> None:
    keep(asyncio.create_task(run_training(job)))  # a plain task: only `jobs`, read by ping_status, knows it runs


def new_job(payload: dict[str, Any], session_id: str | None) -> Job:
    """The job a train request asks for, or a 400 that says what is wrong with the request."""
    model_name, epochs = payload.get("model_name"), payload.get("epochs")
    learning_rate = payload.get("learning_rate", DEFAULT_LEARNING_RATE)
    tracking = payload.get("tracking", "decorator")
    if tracking not in TRACKING_WAYS:
        raise HTTPException(400, f"tracking must be one of {', '.join(TRACKING_WAYS)}, got {tracking!r}")
    try:
        validate_request(model_name, epochs, max_epochs=settings.max_epochs, learning_rate=learning_rate)
    except ValueError as error:
        raise HTTPException(400, str(error)) from error
    return Job(f"job-{uuid.uuid4().hex[:8]}", model_name, int(epochs), float(learning_rate), tracking, session_id)


async def start_training(payload: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    """Start the job in the background, tracked the way the request asks, and answer without waiting for it."""
    job = new_job(payload, session_id)
    with _lock:
        jobs[job.job_id] = job
    if job.tracking == "decorator":
        await start_with_decorator(job)
    elif job.tracking == "manual":
        start_with_manual_calls(job)
    else:
        start_with_custom_ping(job)
    with _lock:  # "running", unless the run already failed in its first epoch (a diverging learning rate)
        current = job.status
    return {"job_id": job.job_id, "tracking": job.tracking, "status": current, "session_id": session_id,
            "pid": os.getpid()}


def status(session_id: str | None) -> dict[str, Any]:
    """Every job of this process, what /ping says now, and the time scale its epochs are paced at."""
    with _lock:
        listed = [job.to_dict() for job in jobs.values()]
    return {"jobs": listed, "ping_status": app.get_current_ping_status().value,
            "async_tasks": app.get_async_task_info()["active_count"], "session_id": session_id, "pid": os.getpid(),
            "time_scale": settings.time_scale}


def remember(payload: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    note = payload.get("note")
    if not isinstance(note, str) or not note.strip():
        raise HTTPException(400, "remember needs a non-empty 'note' string")
    with _lock:
        notes.append({"note": note, "session_id": session_id, "at": time.time()})
        count = len(notes)
    return {"remembered": note, "notes": count, "session_id": session_id, "pid": os.getpid()}


def recall(session_id: str | None) -> dict[str, Any]:
    with _lock:
        kept = list(notes)
    return {"notes": kept, "session_id": session_id, "pid": os.getpid()}


async def watch(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Stream a job's progress as server-sent events: one event per new epoch, then its ending.

    An entrypoint that returns an async generator is answered as ``text/event-stream`` by the SDK, which is
    how an agent streams through AgentCore Runtime (InvokeAgentRuntime passes the stream on as it comes).
    """
    with _lock:
        job = jobs.get(str(payload.get("job_id")))
    if job is None:
        raise HTTPException(400, f"unknown job_id {payload.get('job_id')!r}: start one with the train action")

    async def events() -> AsyncIterator[dict[str, Any]]:
        seen = -1
        while True:
            with _lock:
                current = job.to_dict()
            if current["epoch"] != seen:
                seen = current["epoch"]
                yield {"job_id": job.job_id, "epoch": seen, "epochs": job.epochs, "scores": current["latest"]}
            if current["status"] != "running":
                yield {"job_id": job.job_id, "status": current["status"], "result": current["result"],
                       "error": current["error"]}
                return
            await asyncio.sleep(max(0.01, settings.scaled(WATCH_SECONDS)))

    return events()


@app.entrypoint
async def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
    """Dispatch on ``payload["action"]``; the session id comes from the Runtime's session header."""
    if not isinstance(payload, dict):
        raise HTTPException(400, f"the payload must be a JSON object with 'action', got {type(payload).__name__}")
    session_id = context.session_id
    action = payload.get("action")
    if action == "train":
        return await start_training(payload, session_id)
    if action == "status":
        return status(session_id)
    if action == "watch":
        return await watch(payload)
    if action == "remember":
        return remember(payload, session_id)
    if action == "recall":
        return recall(session_id)
    raise HTTPException(400, f"unknown action {action!r}; send 'action' as one of: {', '.join(ACTIONS)}")


if __name__ == "__main__":
    args = parse_args(description="Notebook 04's agent: background training that keeps a Runtime session busy",
                      default_port=8080)
    run_app(app, args.host, args.port)
