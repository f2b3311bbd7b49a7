"""Notebook 08: a task that stops mid-run to ask the user a question (``input_required``), and answers on time.

The MCP tasks extension (SEP-2663) lets a task ask for input: ``tasks/get`` reports ``input_required`` with the
questions (``inputRequests``, elicitation forms), the client answers with ``tasks/update``, and the task goes on.
fastmcp-tasks implements it as *end and re-enter*: the tool returns an ``InputRequiredResult`` (the questions plus
an opaque ``request_state`` string), which ends the run and frees the worker; the answer enqueues a new run of the
same tool body, which reads ``ctx.input_responses`` and ``ctx.request_state`` and carries on. Nothing waits in
memory meanwhile: with Redis the question, the state and the arguments are all in Redis, so a paused task survives
a server restart. Four things are left to the server, and this module adds them:

* **the state a run needs to go on**, carried in ``request_state`` (:class:`RunState`). A re-entered run starts
  the tool body from the top, possibly in another process, so "continue from where it was" means restoring that
  state. The training is deterministic (seeded by the model name), so the weights are rebuilt by re-running the
  epochs already done, unpaced (well under a millisecond each); a big model would save a checkpoint file instead
  and carry its path.
* **a deadline**: fastmcp-tasks keeps an unanswered question for an hour (``INPUT_TTL_SECONDS``), after which the
  task reads as ``completed`` with an empty result. Here a Docket job scheduled at the deadline answers for the
  user with the default (stop early, keep the best model), and the result says so (:func:`answer_when_due`).
* **clear errors for bad answers**: fastmcp-tasks acknowledges any ``tasks/update`` silently, even for a task that
  is not waiting or a malformed answer. :class:`AskingTasksExtension` checks each answer first (:func:`check_answer`).
* **a consistent ``tasks/get``**: fastmcp-tasks reads which run is current, then whether that run still asks; an
  answer landing between the two reads made a poll report ``completed`` with an empty result (:func:`read_task`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import jsonschema
import mcp_types
from docket import Docket
from fastmcp import Context, FastMCP
from fastmcp.server.extensions import MethodBinding
from fastmcp.utilities.tasks import TaskConfig
from fastmcp_tasks import TasksExtension
from fastmcp_tasks.context import get_task_context, get_task_leg_number, get_task_scope
from fastmcp_tasks.dependencies import CurrentDocket
from fastmcp_tasks.handlers import tasks_get, tasks_update
from fastmcp_tasks.input_store import load_current_leg
from fastmcp_tasks.models import GetTaskResult
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import Field, ValidationError

from lab_helpers import config
from lab_helpers.training import (DEFAULT_LEARNING_RATE, EPOCH_SECONDS, EpochScores, TrainingError, TrainingResult,
                                  train_model)

#: The key the run's question has in its ``InputRequiredResult`` (the client sees a key minted from it).
QUESTION = "plateau"
#: Epochs without a better validation accuracy after which the run asks (the tool's default ``patience``).
DEFAULT_PATIENCE = 3
MAX_PATIENCE = 50
#: How long the user has to answer, in seconds at time scale 1 (scaled), but never less than ANSWER_FLOOR real s.
DEFAULT_ANSWER_SECONDS = 60.0
ANSWER_FLOOR = 1.0
#: ...and at most this: fastmcp-tasks forgets an unanswered question after INPUT_TTL_SECONDS (an hour, real time).
MAX_ANSWER_SECONDS = 1800.0
#: Most extra epochs one answer may ask for.
MAX_EXTRA_EPOCHS = 100
#: The ``_meta`` mark of an answer the deadline gave on the user's behalf.
ANSWERED_BY = "lab/answered_by"
#: The Docket job that answers an overdue question (registered by AskingTasksExtension on every start).
DEADLINE_JOB = "lab_answer_deadline"


class Plateaued(Exception):
    """Raised from the epoch callback to end the run at a plateau, so the tool can ask what to do."""


@dataclass
class RunState:
    """Where a paused run stands: all a re-entered run needs, carried in ``request_state`` as JSON."""

    target: int  # the epochs the run means to reach (grows by each "continue N")
    done: int = 0  # epochs trained before the last pause
    questions: int = 0  # questions asked so far
    decisions: list[str] = field(default_factory=list)  # what each answer decided, in order

    @classmethod
    def load(cls, request_state: str | None, epochs: int) -> RunState:
        """The state a previous run carried forward, or a fresh one for the first run."""
        return cls(**json.loads(request_state)) if request_state else cls(target=epochs)

    def dump(self) -> str:
        return json.dumps(asdict(self))


def question_schema(max_extra: int) -> dict[str, Any]:
    """The form the user fills in: stop, or continue for ``extra_epochs`` more."""
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["stop", "continue"],
                         "description": "stop: keep the best model so far; continue: train extra_epochs more"},
            "extra_epochs": {"type": "integer", "minimum": 1, "maximum": max_extra, "default": 10},
        },
        "required": ["decision"],
        "additionalProperties": False,
    }


def plateau_question(state: RunState, history: Sequence[EpochScores], deadline: datetime) -> mcp_types.InputRequiredResult:
    """End this run with a question: the task becomes ``input_required`` until an answer (or the deadline)."""
    best = max(history, key=lambda scores: scores.val_accuracy)
    message = (f"Validation accuracy has not improved for {history[-1].epoch - best.epoch} epochs (best "
               f"{best.val_accuracy:.3f} at epoch {best.epoch}, now epoch {history[-1].epoch}/{state.target}). Stop "
               f"early and keep the best model, or continue for N more epochs? Without an answer by "
               f"{deadline:%H:%M:%S} UTC the run stops early and keeps the best model.")
    ask = mcp_types.ElicitRequest(params=mcp_types.ElicitRequestFormParams(
        message=message, requested_schema=question_schema(MAX_EXTRA_EPOCHS)))
    return mcp_types.InputRequiredResult(input_requests={QUESTION: ask}, request_state=state.dump())


def read_decision(answer: mcp_types.InputResponse | None) -> tuple[str, int]:
    """``("stop", 0)`` or ``("continue", N)`` from the user's answer, with a reason for anything but an accept."""
    if not isinstance(answer, mcp_types.ElicitResult):
        return "stop", 0
    if answer.action != "accept" or not answer.content:
        return "stop", 0
    if answer.content.get("decision") == "continue":
        return "continue", int(answer.content.get("extra_epochs") or 10)
    return "stop", 0


def decision_text(answer: mcp_types.InputResponse | None, decision: str, extra: int) -> str:
    """What the run was told, in words the result shows: who decided what."""
    meta = getattr(answer, "meta", None) or {}
    if meta.get(ANSWERED_BY) == "deadline":
        return "stop: no answer before the deadline, so the run stopped early and kept the best model"
    if isinstance(answer, mcp_types.ElicitResult) and answer.action != "accept":
        return f"stop: the question was answered with {answer.action!r}, so the run stopped and kept the best model"
    return f"continue for {extra} more epochs" if decision == "continue" else "stop: the user chose to keep the best model"



def add_interactive_training_tool(mcp: FastMCP, settings: config.Settings, stopping: asyncio.Event,
                                  poll_interval: timedelta) -> None:
    """Declare ``interactive_training``: a training task that asks at a plateau whether to stop or go on."""

    @mcp.tool(task=TaskConfig(mode="required", poll_interval=poll_interval))
    async def interactive_training(
        ctx: Context, model_name: str, epochs: int = 30,
        patience: Annotated[int, Field(ge=1, le=MAX_PATIENCE)] = DEFAULT_PATIENCE,
        answer_seconds: Annotated[float, Field(gt=0, le=MAX_ANSWER_SECONDS)] = DEFAULT_ANSWER_SECONDS,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        docket: Docket = CurrentDocket(),
    ) -> dict[str, Any]:
        """Train like model_training, but when validation accuracy has not improved for `patience` epochs, pause
        (input_required) and ask: stop and keep the best model, or continue for N more epochs. Unanswered after
        `answer_seconds` (scaled), it stops and keeps the best model. Only runs as a task."""
        state = RunState.load(ctx.request_state, epochs)  # fresh on the first run, restored after an answer
        run = Run(ctx, settings, stopping, model_name, learning_rate, patience)
        if (answer := (ctx.input_responses or {}).get(QUESTION)) is not None:
            decision, extra = read_decision(answer)
            state.decisions.append(decision_text(answer, decision, extra))
            if decision == "stop":
                return finished(await run.keep_best(state), state)
            state.target = min(state.done + extra, settings.max_epochs)
        outcome = await run.train(state)
        if isinstance(outcome, list):  # a plateau: ask, and end this run until the answer (or the deadline) comes
            seconds = max(ANSWER_FLOOR, settings.scaled(answer_seconds))
            deadline = datetime.now(timezone.utc) + timedelta(seconds=seconds)
            state.done, state.questions = outcome[-1].epoch, state.questions + 1
            await schedule_deadline(docket, deadline)
            return plateau_question(state, outcome, deadline)  # type: ignore[return-value]
        return finished(outcome, state)


def finished(result: TrainingResult, state: RunState) -> dict[str, Any]:
    """The task's result: the kept model's scores and artifact, how far the run went, and what was decided."""
    return {**{key: value for key, value in result.to_dict().items() if key != "history"},
            "epochs_run": max(state.done, result.epochs), "questions": state.questions, "decisions": state.decisions}


@dataclass
class Run:
    """One run of the tool body: replays the epochs a paused run had done, then trains on, paced, until a plateau."""

    ctx: Context
    settings: config.Settings
    stopping: asyncio.Event
    model_name: str
    learning_rate: float
    patience: int

    async def train(self, state: RunState) -> TrainingResult | list[EpochScores]:
        """Train to ``state.target``; the scores so far if a plateau comes first (the run then ends, unsaved)."""
        history: list[EpochScores] = []

        async def on_epoch(scores: EpochScores) -> None:
            history.append(scores)
            if scores.epoch <= state.done:
                return  # replaying what the paused run had done: unpaced, already reported
            await asyncio.sleep(self.settings.scaled(EPOCH_SECONDS))
            if self.stopping.is_set():
                raise MCPError(code=INTERNAL_ERROR, message=f"training {self.model_name!r} stopped at epoch "
                               f"{scores.epoch}/{state.target}: the server shut down; start it again")
            await self.ctx.report_progress(scores.epoch, state.target, scores.summary())
            best = max(history, key=lambda s: s.val_accuracy).epoch
            if scores.epoch - max(best, state.done) >= self.patience and scores.epoch < state.target:
                raise Plateaued

        try:
            return await self.unpaced(state.target, on_epoch)
        except Plateaued:
            return history

    async def keep_best(self, state: RunState) -> TrainingResult:
        """The model as it was at its best epoch so far (rebuilt, deterministic), saved as the artifact."""
        history: list[EpochScores] = []

        async def collect(scores: EpochScores) -> None:
            history.append(scores)
            if scores.epoch == state.done:
                raise Plateaued  # stop the replay there, before it saves anything

        try:
            await self.unpaced(state.done + 1, collect)
        except Plateaued:
            pass
        return await self.unpaced(max(history, key=lambda s: s.val_accuracy).epoch, None)

    async def unpaced(self, epochs: int, on_epoch: Any) -> TrainingResult:
        """:func:`train_model` without its pacing (``on_epoch`` paces the new epochs); divergence fails the task."""
        try:
            return await train_model(self.model_name, epochs, time_scale=0, learning_rate=self.learning_rate,
                                     max_epochs=self.settings.max_epochs + 1,
                                     artifacts_dir=self.settings.artifacts_dir, on_epoch=on_epoch)
        except TrainingError as error:
            raise MCPError(code=INTERNAL_ERROR, message=str(error)) from error


async def schedule_deadline(docket: Docket, deadline: datetime) -> None:
    """Schedule the job that answers this run's question for the user at ``deadline`` (kept in the backend)."""
    task = get_task_context()
    if task is None:
        raise MCPError(code=INTERNAL_ERROR, message="interactive_training only runs as a task")
    leg = get_task_leg_number()
    schedule = docket.add(DEADLINE_JOB, when=deadline, key=f"lab-deadline:{task.task_id}:{leg}")
    await schedule(task.task_id, task.task_scope, leg)


def answer_when_due(server: FastMCP, docket: Docket) -> Any:
    """The Docket job behind the deadline: if the question is still open, answer it with the default, marked."""

    async def lab_answer_deadline(task_id: str, task_scope: str | None, leg: int) -> None:
        try:
            current = await read_task(server, task_id)
        except MCPError:
            return  # the task is gone (expired): nothing to answer
        _, current_leg = await load_current_leg(docket, task_scope, task_id)
        if current.status != "input_required" or current_leg != leg:
            return  # answered (or cancelled) in time
        default = {"action": "cancel", "_meta": {ANSWERED_BY: "deadline"}}
        await tasks_update(server, task_id, {key: default for key in current.input_requests or {}})

    return lab_answer_deadline


async def read_task(server: FastMCP, task_id: str,
                    get: Callable[[], Awaitable[GetTaskResult]] | None = None) -> GetTaskResult:
    """``tasks_get``, read again when an answer moved the task to its next run in the middle of the read.

    ``tasks_get`` reads which run is current, then whether that run still has an open question. ``tasks_update``
    switches to the next run and then clears the old run's question, so a read that straddles both sees the old
    run finished with nothing asked: ``completed`` with an empty result, until the next poll. The current run only
    moves forward, so an unchanged run number around the read means it read one run throughout; when it moved,
    the next read sees the new run (moving again needs that run to ask and be answered first). ``get`` is the read
    to repeat (the extension's own ``tasks/get`` handler, with its checks), ``tasks_get`` unless given.
    """
    docket, scope, read = server._docket, get_task_scope(), get or (lambda: tasks_get(server, task_id))
    if docket is None:
        return await read()  # refused as an unknown task
    while True:
        before = await load_current_leg(docket, scope, task_id)
        current = await read()  # an unknown task id raises "Task ... not found" here
        if current.status != "completed" or await load_current_leg(docket, scope, task_id) == before:
            return current


class AskingTasksExtension(TasksExtension):
    """fastmcp's ``TasksExtension``, plus a consistent ``tasks/get``, a checked ``tasks/update`` and the deadline
    job for unanswered questions."""

    def methods(self) -> Sequence[MethodBinding]:
        wrappers = {"tasks/get": self._consistent, "tasks/update": self._checked}
        return [MethodBinding(method=binding.method, params_type=binding.params_type,
                              handler=wrappers[binding.method](binding.handler),
                              protocol_versions=binding.protocol_versions)
                if binding.method in wrappers else binding for binding in super().methods()]

    def _consistent(self, get: Any) -> Any:
        async def consistent_get(ctx: Any, params: Any) -> Any:
            return await read_task(self.server, params.task_id, lambda: get(ctx, params))

        return consistent_get

    def _checked(self, update: Any) -> Any:
        async def checked_update(ctx: Any, params: Any) -> Any:
            await check_answer(self.server, params.task_id, params.input_responses)
            return await update(ctx, params)

        return checked_update

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with super().lifespan():
            docket = self.server._docket  # set by the extension's own lifespan (fastmcp_tasks.lifespan)
            if docket is not None:  # registered on every start, so a job scheduled before a restart still runs
                docket.register(answer_when_due(self.server, docket), names=[DEADLINE_JOB])
            yield


async def check_answer(server: FastMCP, task_id: str, responses: dict[str, Any]) -> None:
    """Refuse a ``tasks/update`` that answers nothing the task asks, with an error that says why."""
    current = await read_task(server, task_id)  # an unknown task id raises "Task ... not found" here
    if current.status != "input_required":
        raise MCPError(code=INVALID_PARAMS, message=f"Task {task_id} is not waiting for input: it is {current.status} "
                       "(answered already, never asked, or ended); nothing to answer")
    asked = current.input_requests or {}
    if not responses or set(responses) - set(asked):
        raise MCPError(code=INVALID_PARAMS, message=f"Task {task_id} waits for answers to {sorted(asked)}; got "
                       f"{sorted(responses) or 'none'} (a question's key changes each time the task asks)")
    for key, raw in responses.items():
        request = asked[key]
        try:
            answer = mcp_types.ElicitResult.model_validate(raw)
            if answer.action == "accept":
                jsonschema.validate(answer.content or {}, request["params"]["requestedSchema"])
        except (ValidationError, jsonschema.ValidationError) as error:
            detail = error.message if isinstance(error, jsonschema.ValidationError) else error.errors()[0]["msg"]
            raise MCPError(code=INVALID_PARAMS, message=f"Task {task_id}: the answer to {key} is malformed: {detail}. "
                           f"Send {{'action': 'accept', 'content': {{...}}}} matching the question's requestedSchema, "
                           "or action 'decline' / 'cancel'") from None
