"""The model behind the lessons' agents: offline by default, Bedrock or a local LLM server on request.

Most attendees have neither an AWS account nor network access, yet every lesson
needs an agent that calls the task server's MCP tools. :func:`load_model` picks
the model from ``LAB_MODEL`` (see :mod:`lab_helpers.config`):

* ``offline`` (default): :class:`OfflineModel`, a deterministic stand-in that
  recognises a handful of phrasings and calls the persistent-tasks tools. It is
  not an LLM, and every answer it writes starts with ``[offline model]`` so no
  notebook output can be mistaken for one.
* ``bedrock``: Strands' :class:`~strands.models.BedrockModel` in ``AWS_REGION``.
* an ``http(s)://`` URL: an OpenAI-compatible server the attendee already runs
  (llama.cpp, Ollama, vLLM), through Strands' ``LlamaCppModel``. It speaks the
  plain ``/v1/chat/completions`` protocol over httpx, which is installed; the
  ``openai`` and ``ollama`` providers would need packages this workbench lacks.

``LAB_MODEL_ID`` names the model for Bedrock or the server (Ollama and vLLM
need it; llama.cpp serves whatever model it loaded).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import AsyncGenerator, Collection, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from strands.models import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

from lab_helpers import config
from patterns.task_records import TaskRecord, parse_notice

T = TypeVar("T", bound=BaseModel)

#: Starts every text the offline model writes, so nobody mistakes it for an LLM's answer.
OFFLINE_LABEL = "[offline model] "

#: The persistent-tasks server's tools, by the names the offline model calls them.
TRAIN, STATUS, RESULTS, LIST, CANCEL = (
    "model_training", "check_task_status", "get_task_results", "list_tasks", "cancel_task")

#: Strands' own tool for an agent's background tasks (``Agent(background_tasks=...)``): list, get or cancel them.
BACKGROUND = "strands_manage_background_task"
#: The flag Strands adds to a tool's input schema when the model may choose to run that tool in the background
#: (``BackgroundTasksConfig(agentic=[...])``); the offline model sets it when the user asks for the background.
BACKGROUND_FLAG = "_background_execution"

#: The epoch count the server uses when none is given (``model_training``'s default).
DEFAULT_EPOCHS = 10

#: A large enough window that Strands does not warn about an unknown limit; the offline model reads any length.
_OFFLINE_CONTEXT_WINDOW = 1_000_000


# -- choosing a model -----------------------------------------------------------------------------
def load_model(settings: config.Settings | None = None) -> Model:
    """The model ``settings.model`` asks for; only the chosen provider is imported.

    Importing lazily keeps the offline path free of boto3 and httpx start-up cost, and
    an attendee without AWS never touches Bedrock code.
    """
    settings = config.load() if settings is None else settings
    model_id = os.environ.get("LAB_MODEL_ID", "").strip()
    if settings.model == "offline":
        return OfflineModel()
    if settings.model == "bedrock":
        from strands.models import BedrockModel

        if model_id:
            return BedrockModel(region_name=settings.region, model_id=model_id)
        return BedrockModel(region_name=settings.region)
    if settings.model.startswith(("http://", "https://")):
        from strands.models.llamacpp import LlamaCppModel

        # The provider appends /v1/chat/completions itself; accept the URL people copy from Ollama's docs too.
        base_url = re.sub(r"/v1/?$", "", settings.model.rstrip("/"))
        # A local model on a laptop CPU can think for minutes before its first token: 30 s (the default) is too short.
        return LlamaCppModel(base_url=base_url, timeout=300.0, model_id=model_id or "default")
    raise config.ConfigError(f"LAB_MODEL must be 'offline', 'bedrock' or an http(s) URL, got {settings.model!r}")


def describe_model(model: Model) -> str:
    """A one-line label for notebook output, so every run says which model produced it."""
    if isinstance(model, OfflineModel):
        return "offline model: a deterministic stand-in for an LLM, no AI involved"
    model_config = model.get_config()
    model_id = model_config.get("model_id") if isinstance(model_config, dict) else None
    name = type(model).__name__
    if name == "BedrockModel":
        region = getattr(getattr(getattr(model, "client", None), "meta", None), "region_name", None)
        return f"Amazon Bedrock model {model_id} in {region}"
    if name == "LlamaCppModel":
        return f"OpenAI-compatible server at {getattr(model, 'base_url', '?')} (model {model_id})"
    return f"{name} (model {model_id})"


# -- what the conversation says about tasks -----------------------------------------------------------
@dataclass
class _Task:
    """Everything the conversation has said about one task, latest statement winning."""

    task_id: str
    status: str = "unknown"
    model_name: str = "?"
    epochs: int | None = None
    learning_rate: float | None = None
    progress: int | None = None
    message: str = ""
    error: str | None = None
    result: dict[str, Any] | None = None


@dataclass
class _Conversation:
    """The tasks a conversation mentions, in order of their latest mention, and the notices' records."""

    tasks: dict[str, _Task] = field(default_factory=dict)
    #: The latest notice record per task id, in order of their latest notice.
    notices: dict[str, TaskRecord] = field(default_factory=dict)

    def update(self, task_id: str, **facts: Any) -> None:
        task = self.tasks.pop(task_id, None) or _Task(task_id)
        for name, value in facts.items():
            if value is not None:
                setattr(task, name, value)
        self.tasks[task_id] = task  # re-inserted last: dict order is the order of latest mention

    def latest(self) -> _Task | None:
        return next(reversed(self.tasks.values()), None)

    def restartable(self) -> _Task | None:
        """The most recently mentioned task that ended without a result and can be submitted again."""
        for task in reversed(self.tasks.values()):
            if task.status in ("interrupted", "failed", "cancelled"):
                return task
        return None


def _texts(message: dict[str, Any]) -> list[str]:
    return [block["text"] for block in message.get("content", []) if isinstance(block.get("text"), str)]


def tool_payload(tool_result: dict[str, Any]) -> dict[str, Any] | str:
    """What a tool returned: its JSON object if it sent one, else its text.

    An MCP result reaches the model as text items (FastMCP serialises a dict to JSON)
    and maybe a ``structuredContent`` field or a ``json`` item; a plain ``@tool``
    function's dict arrives as JSON text. All of them end up here as the same dict.
    """
    structured = tool_result.get("structuredContent")
    candidates: list[Any] = [structured] if structured is not None else []
    texts: list[str] = []
    for item in tool_result.get("content", []):
        if "json" in item:
            candidates.append(item["json"])
        elif isinstance(item.get("text"), str):
            texts.append(item["text"])
            try:
                candidates.append(json.loads(item["text"]))
            except ValueError:
                pass
    for candidate in candidates:
        if isinstance(candidate, dict):
            # FastMCP wraps a non-object return value as {"result": value}.
            if set(candidate) == {"result"} and isinstance(candidate["result"], dict):
                return candidate["result"]
            return candidate
    return "\n".join(texts).strip()


def _read_conversation(messages: Messages) -> _Conversation:
    """Collect what notices and tool results in ``messages`` say about each task, in conversation order."""
    seen = _Conversation()
    tool_inputs: dict[str, dict[str, Any]] = {}
    tool_names: dict[str, str] = {}
    for message in messages:
        for block in message.get("content", []):
            if isinstance(block.get("text"), str) and message.get("role") == "user":
                record = parse_notice(block["text"])
                if record is not None:
                    seen.notices.pop(record.task_id, None)
                    seen.notices[record.task_id] = record
                    seen.update(record.task_id, status=record.status, model_name=record.model_name,
                                epochs=record.epochs, learning_rate=record.learning_rate, progress=record.progress,
                                message=record.message, error=record.error, result=record.result)
            elif "toolUse" in block:
                tool_inputs[block["toolUse"].get("toolUseId", "")] = block["toolUse"].get("input") or {}
                tool_names[block["toolUse"].get("toolUseId", "")] = block["toolUse"].get("name", "")
            elif "toolResult" in block and block["toolResult"].get("status") != "error":
                use_id = block["toolResult"].get("toolUseId", "")
                asked = tool_inputs.get(use_id, {})
                if tool_names.get(use_id) == BACKGROUND:
                    payload = background_payload(block["toolResult"])
                else:
                    payload = tool_payload(block["toolResult"])
                if isinstance(payload, str) and (dispatched := _dispatched(payload)) is not None:
                    seen.update(dispatched["task_id"], status=dispatched["status"], model_name=asked.get("model_name"),
                                epochs=asked.get("epochs"), learning_rate=asked.get("learning_rate"))
                elif isinstance(payload, dict):
                    for item in payload.get("tasks", [payload]):
                        _learn_from(seen, item, asked if item is payload else {})
    return seen


#: The acknowledgement Strands returns for a tool call it started in the background (``submit_tool_call``).
_DISPATCHED = re.compile(r"Background task dispatched\.\s+Task ID: (\S+)\s+Tool: (\S+)\s+Status: (\w+)")


def _dispatched(text: str) -> dict[str, str] | None:
    """Task id, tool and status from Strands' "Background task dispatched" acknowledgement, or None."""
    match = _DISPATCHED.search(text)
    return {"task_id": match[1], "tool_name": match[2], "status": match[3]} if match else None


def background_payload(tool_result: dict[str, Any]) -> dict[str, Any]:
    """What ``strands_manage_background_task`` said, as one dict: the task's status with its tool's result merged in.

    Strands answers ``get`` (and delivers a finished task) as a ``json`` item with the task's metadata
    (``task_id``, ``tool_name``, ``status``, ``error``) followed by the tool's own result items; ``list`` as
    ``{"tasks": [...]}``. The tool's result (here the training scores) is merged under the metadata.
    """
    items = tool_result.get("content", [])
    metadata = next((item["json"] for item in items if isinstance(item.get("json"), dict)), {})
    if "tasks" in metadata:
        return dict(metadata)
    own = tool_payload({"content": [item for item in items if "json" not in item]})
    merged: dict[str, Any] = dict(own) if isinstance(own, dict) else ({"output": own} if own else {})
    merged.update({key: metadata[key] for key in ("task_id", "tool_name", "status") if key in metadata})
    error = metadata.get("error")
    if isinstance(error, dict):
        merged["error"] = error.get("message") or error.get("type")
    return merged


def _learn_from(seen: _Conversation, data: Any, asked: dict[str, Any]) -> None:
    """Record what one status or result dict says about its task."""
    if not isinstance(data, dict) or not isinstance(data.get("task_id"), str):
        return
    result = data if "val_accuracy" in data else None
    seen.update(
        data["task_id"],
        status="completed" if result else data.get("status"),
        model_name=data.get("model_name"),
        epochs=data.get("epochs"),
        learning_rate=data.get("learning_rate", asked.get("learning_rate")),
        progress=data.get("progress"),
        message=data.get("message"),
        error=data.get("error"),
        result=result,
    )


# -- reading the user's request --------------------------------------------------------------------
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_NAME = r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63}+)"  # possessive: a name is taken whole or not at all
_NAME_PATTERNS = (
    re.compile(r"[\"'`‘“]" + _NAME + r"[\"'`’”]"),
    re.compile(r"\b(?:called|named)\s+" + _NAME, re.IGNORECASE),
    re.compile(r"\bmodel\s+" + _NAME, re.IGNORECASE),
    re.compile(r"\btrain(?:ing)?\s+(?:of\s+)?" + _NAME, re.IGNORECASE),
)
#: Words that follow "model" or "train" without being a model's name.
_NOT_NAMES = {
    "a", "an", "the", "my", "our", "new", "another", "model", "models", "for", "with", "on", "of", "to", "and",
    "using", "run", "runs", "job", "task", "it", "this", "that", "again", "please", "now", "some", "me", "us",
    "called", "named", "training", "epoch", "epochs", "at", "in", "by", "from", "learning", "rate", "lr",
}
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
}
_COUNT = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
_EPOCHS = (
    re.compile(r"\b(?:a\s+|one\s+)?" + _COUNT + r"\s*-?\s*epochs?\b", re.IGNORECASE),
    re.compile(r"\bepochs?\s*(?:=|:|of|to|is)?\s*" + _COUNT + r"\b", re.IGNORECASE),
)
_LEARNING_RATE = re.compile(
    r"\b(?:learning[\s_-]?rate|lr)\s*(?:of|=|:|is|to|at)?\s*(\d*\.?\d+(?:e-?\d+)?)", re.IGNORECASE)

_IN_BACKGROUND = re.compile(r"\bbackground\b|\bdon'?t wait\b|\bwithout waiting\b", re.IGNORECASE)
_RESTART = re.compile(r"\b(?:start|run|kick|launch|do)\b(?:\s+\w+){0,3}?\s+(?:off\s+)?again\b"
                      r"|\brestart|\bretry\b|\bre-?run\b|\bresubmit|\btry\s+(?:it\s+)?again\b")
_AWAY = re.compile(r"\bwhile i was (?:away|gone|out)|\bany news\b|\bcatch me up\b|\bwhat did i miss"
                   r"|\bwhat happened\b|\bany updates?\b|\banything new\b|\bnews\b"
                   r"|\bdid (?:my|the|it|that|this)\b[^?.!]*\b(?:finish|complete|end|succeed)")
_CANCEL = re.compile(r"\b(?:cancel|abort|kill|halt|stop)\b")
_TRAIN_VERB = re.compile(r"\b(?:re)?train\b|\btraining\s+(?:run|of|job)\b|\bnew training\b"
                         r"|\b(?:start|kick off|kick-off|launch|begin|run|fire off|spin up)\b[^.?!]*\btrain")
_IMPERATIVE = re.compile(r"^\W*(?:ok(?:ay)?,?\s+|hey,?\s+|now,?\s+)?(?:please\s+|can you\s+|could you\s+|would you\s+"
                         r"|i want to\s+|i'd like to\s+|let's\s+|go\s+(?:and\s+)?)?"
                         r"(?:train|retrain|start|kick|launch|begin|run|fire|spin)\b")
_QUESTION = re.compile(r"^\W*(?:what|what's|whats|how|how's|hows|is|are|did|does|has|have|was|were|where|when"
                       r"|which|why|show|tell|list|give)\b")
_LIST = re.compile(r"\blist\b|\b(?:what|which)\s+(?:tasks|runs|jobs|trainings)\b|\b(?:tasks|runs|jobs) do i have\b"
                   r"|\ball (?:of )?(?:my|the) (?:tasks|runs|jobs|trainings)\b|\bshow (?:me )?(?:all )?my tasks\b")
_RESULTS = re.compile(r"\bresults?\b|\bscores?\b|\baccuracy\b|\baccuracies\b|\bloss(?:es)?\b|\bmetrics?\b"
                      r"|\bhow (?:well|good) did\b|\bperform")
_STATUS = re.compile(r"\bstatus\b|\bhow(?:'s| is| are)\s+(?:my|the|it|that|this|task|training|run|job)\b"
                     r"|\bprogress\b|\bcheck\b|\bdone\b|\bfinished\b|\bstill running\b|\bhow far\b"
                     r"|\bwhere (?:is|are) (?:my|the|it)\b|\bcomplete[d]?\b|\bready\b")


def _intent(text: str) -> str:
    """Which of the offline model's few skills a request asks for; "help" when none.

    The order settles overlaps: "stop my training" is a cancel, not a training run;
    "show the results of my training run" asks for results.
    """
    lower = text.lower().strip()
    if not lower:
        return "help"
    if _RESTART.search(lower) and _model_name(text) is None:
        return "restart"
    if _AWAY.search(lower):
        return "away"
    if _CANCEL.search(lower):
        return "cancel"
    if _TRAIN_VERB.search(lower) and not _QUESTION.search(lower) and (
            _IMPERATIVE.search(lower) or _epochs(text) is not None or _model_name(text) is not None):
        return "train"
    for intent, pattern in (("list", _LIST), ("results", _RESULTS), ("status", _STATUS)):
        if pattern.search(lower):
            return intent
    return "help"


def _model_name(text: str) -> str | None:
    for pattern in _NAME_PATTERNS:
        for match in pattern.finditer(text):
            name = match.group(1).rstrip(".")
            if name and name.lower() not in _NOT_NAMES and name.lower() not in _NUMBER_WORDS:
                return name
    return None


def _epochs(text: str) -> int | None:
    for pattern in _EPOCHS:
        match = pattern.search(text)
        if match:
            word = match.group(1).lower()
            return int(word) if word.isdigit() else _NUMBER_WORDS[word]
    return None


def _learning_rate(text: str) -> float | None:
    match = _LEARNING_RATE.search(text)
    return float(match.group(1)) if match else None


# -- writing answers -------------------------------------------------------------------------------
def _scores(result: dict[str, Any]) -> str:
    """The final scores of a result, as people read them (three decimals)."""
    parts = [f"{name.replace('_', ' ')} {result[name]:.3f}"
             for name in ("val_accuracy", "train_accuracy", "train_loss", "val_loss")
             if isinstance(result.get(name), (int, float))]
    return ", ".join(parts) or "no scores recorded"


#: Where a task server's answer came from (its ``source`` field), in words; other sources are said as given.
_SOURCES = {"live": "the task server's running task", "memory": "AgentCore Memory"}


def _read_from(data: dict[str, Any]) -> str:
    """Where the facts of an answer came from, e.g. ``" (Read from AgentCore Memory.)"``, when the server said so."""
    source = data.get("source")
    return f" (Read from {_SOURCES.get(source, source)}.)" if source else ""


def _status_sentence(data: dict[str, Any]) -> str:
    """One line about a task from a status dict (check_task_status, list_tasks, cancel_task)."""
    total = data.get("total", data.get("epochs"))
    line = (f"Task {data.get('task_id')} (model '{data.get('model_name')}') is {data.get('status')}: "
            f"{data.get('progress', 0)} of {total} epochs done.")
    if data.get("message"):
        line += f" Last message: {data['message']}."
    if data.get("error"):
        line += f" Error: {data['error']}."
    return line + _read_from(data)


def _help(reason: str = "") -> str:
    return (
        f"{reason}I am the offline stand-in for an LLM in this lab: I recognise a few kinds of request, "
        "no AI involved. I can:\n"
        "- start a training run with a model name and an epoch count: \"Train a model called spiral-net for "
        "20 epochs\"\n"
        "- check a task: \"What's the status of my task?\" (or name its task id)\n"
        "- show a finished task's results: \"Show me the results\"\n"
        "- list your tasks: \"List my tasks\"\n"
        "- cancel a task: \"Cancel my training\"\n"
        "- tell you what happened while you were away: \"What happened while I was away?\"\n"
        "- submit an interrupted or failed task again: \"Start it again\"\n"
        "- run a training in the agent's background, where the agent allows it: \"Train spiral-net in the "
        "background\"\n"
        "For a real model, set LAB_MODEL=bedrock or LAB_MODEL=<URL of an OpenAI-compatible server>."
    )


@dataclass(frozen=True)
class Turn:
    """What the offline model says in one turn: some text, and maybe one tool call (what a subclass's ``respond`` returns)."""

    text: str
    tool: str | None = None
    tool_input: dict[str, Any] = field(default_factory=dict)


class OfflineModel(Model):
    """A deterministic, network-free stand-in for an LLM that drives the persistent-tasks tools.

    It lets attendees without AWS or a local LLM run every lesson: it reads the last
    user request with a few regular expressions, calls at most one tool per request,
    and words the tool's answer. It also answers "what happened while I was away"
    from task notices restored into the conversation, which is the point of the
    Memory lesson. Same conversation in, same events out: no randomness, no clock.
    """

    def __init__(self, **model_config: Any) -> None:
        self.config: dict[str, Any] = {"model_id": "offline", "context_window_limit": _OFFLINE_CONTEXT_WINDOW,
                                       **model_config}

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Not supported: filling an arbitrary schema needs a language model."""
        raise NotImplementedError(
            f"the offline model cannot produce structured output ({output_model.__name__}); "
            "set LAB_MODEL=bedrock or the URL of an OpenAI-compatible server for that"
        )
        yield  # pragma: no cover - unreachable; makes this an async generator like every provider's

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Answer the conversation in Strands' stream events, as a real provider would."""
        specs = tool_specs or []
        selectable = {spec["name"] for spec in specs
                      if BACKGROUND_FLAG in (spec.get("inputSchema", {}).get("json", {}).get("properties") or {})}
        turn = self.respond(messages, [spec["name"] for spec in specs], selectable)
        for event in _events(turn, messages):
            yield event

    # -- deciding --------------------------------------------------------------------------------
    def respond(self, messages: Messages, tool_names: list[str], background_selectable: Collection[str] = ()) -> Turn:
        """The next turn for ``messages`` when the tools named ``tool_names`` are available.

        ``background_selectable`` names the tools the agent lets the model run in the background
        (Strands' ``agentic`` mode): a training the user asks to run "in the background" sets the flag.
        """
        last = messages[-1] if messages else None
        if last is None or last.get("role") != "user":
            return Turn(OFFLINE_LABEL + _help())
        results = _unanswered_results(messages)
        if results:
            # dict.fromkeys: a cancelled background task is answered by the cancel and again by its delivery
            answers = dict.fromkeys(_answer_tool_result(result, messages) for result in results)
            return Turn(OFFLINE_LABEL + "\n".join(answers))
        text = " ".join(_texts(last))
        seen = _read_conversation(messages)
        if parse_notice(text) is not None:  # not typed by anyone: say what it means
            return Turn(OFFLINE_LABEL + _away(seen))
        return _plan(_intent(text), text, seen, tool_names, background_selectable)


def _unanswered_results(messages: Messages) -> list[dict[str, Any]]:
    """The tool results at the end of ``messages`` that no text has answered yet, oldest first.

    Usually the last message's. Strands delivers several finished background tasks at once as
    several pairs of a silent tool call (no text) and its result: all of them are answered.
    """
    results: list[dict[str, Any]] = []
    index = len(messages) - 1
    while index >= 0 and messages[index].get("role") == "user":
        found = [block["toolResult"] for block in messages[index].get("content", []) if "toolResult" in block]
        if not found:
            break
        results[:0] = found
        previous = messages[index - 1] if index > 0 else {}
        if previous.get("role") != "assistant" or _texts(previous):
            break
        index -= 2
    return results


def _tool(tool_names: list[str], wanted: str) -> str | None:
    """The available tool called ``wanted``, also when the agent prefixed MCP tool names (``tasks_list_tasks``)."""
    for name in tool_names:
        if name == wanted or name.endswith("_" + wanted):
            return name
    return None


def _call(tool_names: list[str], wanted: str, tool_input: dict[str, Any], doing: str) -> Turn:
    """Call ``wanted`` if the task server offers it, else say the server is not connected."""
    name = _tool(tool_names, wanted)
    arguments = ", ".join(f"{key}={value!r}" for key, value in tool_input.items())
    if name is None:
        return Turn(
            f"{OFFLINE_LABEL}The task server is not connected (I have no {wanted} tool), so I cannot {doing}. "
            f"With it connected I would call {wanted}({arguments})."
        )
    return Turn(f"{OFFLINE_LABEL}Calling {wanted}({arguments}) to {doing}.", name, tool_input)


def _plan(intent: str, text: str, seen: _Conversation, tool_names: list[str],
          background_selectable: Collection[str] = ()) -> Turn:
    """The turn that serves one request: a tool call, or an answer without one."""
    explicit_id = _UUID.search(text)
    task_id = explicit_id.group(0).lower() if explicit_id else None
    latest = seen.latest()
    if intent == "train":
        name = _model_name(text)
        if name is None:
            return Turn(f"{OFFLINE_LABEL}Which model should I train? Give it a name, for example: "
                         "\"Train a model called spiral-net for 20 epochs\".")
        tool_input: dict[str, Any] = {"model_name": name, "epochs": _epochs(text) or DEFAULT_EPOCHS}
        if (rate := _learning_rate(text)) is not None:
            tool_input["learning_rate"] = rate
        if _tool(tool_names, TRAIN) in background_selectable and _IN_BACKGROUND.search(text):
            tool_input[BACKGROUND_FLAG] = True
        return _call(tool_names, TRAIN, tool_input, f"start training '{name}'")
    if intent == "restart":
        task = seen.restartable()
        if task is None:
            return Turn(f"{OFFLINE_LABEL}I find no interrupted, failed or cancelled task in this conversation, "
                         "so there is nothing to start again. Ask me to train a model by name instead.")
        tool_input = {"model_name": task.model_name, "epochs": task.epochs or DEFAULT_EPOCHS}
        if task.learning_rate is not None:
            tool_input["learning_rate"] = task.learning_rate
        return _call(tool_names, TRAIN, tool_input, f"start task {task.task_id} ({task.status}) again")
    if intent == "away":
        return Turn(OFFLINE_LABEL + _away(seen))
    own_tasks = BACKGROUND in tool_names and _tool(tool_names, STATUS) is None  # no task server: the agent's own
    if own_tasks and intent in ("list", "status", "results", "cancel"):
        return _plan_background(intent, task_id, seen, tool_names)
    if intent == "list" or (intent == "status" and task_id is None and latest is None):
        return _call(tool_names, LIST, {}, "list your tasks")
    if intent in ("status", "results", "cancel"):
        task_id = task_id or (latest.task_id if latest else None)
        if task_id is None:
            return Turn(f"{OFFLINE_LABEL}Which task? I see no task id in this conversation; "
                         "say \"list my tasks\" to find one, then name its task id.")
        tool, doing = {"status": (STATUS, f"check task {task_id}"),
                       "results": (RESULTS, f"fetch the results of task {task_id}"),
                       "cancel": (CANCEL, f"cancel task {task_id}")}[intent]
        return _call(tool_names, tool, {"task_id": task_id}, doing)
    return Turn(OFFLINE_LABEL + _help("I did not recognise that request. "))


def _plan_background(intent: str, task_id: str | None, seen: _Conversation, tool_names: list[str]) -> Turn:
    """Serve a status, results, list or cancel request about the agent's own background tasks.

    A task whose ending was already delivered into the conversation is answered from there: Strands forgets a
    task once it delivered it, so asking it again would only say "not found".
    """
    task = seen.tasks.get(task_id) if task_id else seen.latest()
    task_id = task_id or (task.task_id if task else None)
    if intent == "list" or task_id is None:
        return _call(tool_names, BACKGROUND, {"mode": "list"}, "list the background tasks")
    if task and intent != "cancel" and task.status in ("completed", "failed", "cancelled"):
        return Turn(OFFLINE_LABEL + _background_sentence(asdict(task)) + " (Delivered earlier in this conversation.)")
    mode, doing = ("cancel", "cancel") if intent == "cancel" else ("get", "check")
    return _call(tool_names, BACKGROUND, {"mode": mode, "task_id": task_id}, f"{doing} background task {task_id}")


def _background_sentence(data: dict[str, Any]) -> str:
    """One line about a background task of this agent, from its (merged) status dict."""
    name = f" training '{data['model_name']}'" if data.get("model_name") not in (None, "?") else ""
    epochs = f" for {data['epochs']} epochs" if name and data.get("epochs") else ""
    head = f"Background task {data.get('task_id')}{name}{epochs}"
    status = data.get("status")
    result = data if "val_accuracy" in data else data.get("result")
    if isinstance(result, dict) and "val_accuracy" in result:
        saved = f" The model is saved at {result['artifact_path']}." if result.get("artifact_path") else ""
        return f"{head} completed: {_scores(result)}.{saved}"
    if status == "queued":
        return head + " is queued: it waits for a free slot (the agent's max_concurrency)."
    if status in ("failed", "cancelled"):
        return head + f" {status}" + (f": {data['error']}." if data.get("error") else ".")
    return head + f" is {status}."


def _away(seen: _Conversation) -> str:
    """What the task server recorded in this session's Memory, read from the restored notices alone."""
    if not seen.notices:
        return ("Nothing was recorded for this session: no task notice from the task server is in our "
                "conversation. Ask me \"what's the status of my task?\" to check on the server directly.")
    lines = [f"- {record.summary()}" for record in seen.notices.values()]
    return "Here is what the task server recorded in memory while you were away:\n" + "\n".join(lines)


def tool_call_for(tool_use_id: str, messages: Messages) -> tuple[str, dict[str, Any]]:
    """The name and input of the tool call a result answers."""
    for message in reversed(messages):
        for block in message.get("content", []):
            use = block.get("toolUse")
            if use and use.get("toolUseId") == tool_use_id:
                return use.get("name", "?"), use.get("input") or {}
    return "?", {}


def _request_text(messages: Messages) -> str:
    """The user's typed request this turn serves: the last user text that is not a notice."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        for text in _texts(message):
            if parse_notice(text) is None:
                return text
    return ""


def _answer_tool_result(tool_result: dict[str, Any], messages: Messages) -> str:
    """Put a tool's answer into plain words."""
    name, tool_input = tool_call_for(tool_result.get("toolUseId", ""), messages)
    wanted = next((tool for tool in (TRAIN, STATUS, RESULTS, LIST, CANCEL) if _tool([name], tool)), name)
    if name == BACKGROUND and tool_result.get("status") != "error":
        return _answer_background(background_payload(tool_result), messages)
    payload = tool_payload(tool_result)
    if tool_result.get("status") == "error":
        reason = payload if isinstance(payload, str) else json.dumps(payload)
        return f"The task server answered {wanted} with an error: {reason}"
    if wanted == TRAIN and isinstance(payload, str) and (dispatched := _dispatched(payload)) is not None:
        return (f"Started training '{tool_input.get('model_name')}' for {tool_input.get('epochs')} epochs in my "
                f"background as task {dispatched['task_id']} (status {dispatched['status']}). I answer you "
                "meanwhile: ask me how it is going; its result comes into our conversation when it completes. "
                "The work runs inside this agent's process.")
    if not isinstance(payload, dict):
        return f"{wanted} answered: {payload}"
    if wanted == TRAIN and "val_accuracy" in payload:  # a task-capable server ran it to the end (notebook 05)
        return (f"Trained '{payload.get('model_name')}' for {payload.get('epochs')} epochs: {_scores(payload)}. "
                f"The model is saved at {payload.get('artifact_path')}.")
    if wanted == TRAIN:
        answer = (f"Started training '{payload.get('model_name')}' for {payload.get('epochs')} epochs as task "
                  f"{payload.get('task_id')}. It runs in the background; when it ends, its result will be recorded "
                  "in memory, so you can ask me later what happened, even from a new session.")
        if _intent(_request_text(messages)) == "train" and _epochs(_request_text(messages)) is None:
            answer += f" You gave no epoch count, so I used the default of {DEFAULT_EPOCHS}."
        return answer
    if wanted == RESULTS:
        answer = (f"Task {payload.get('task_id')} (model '{payload.get('model_name')}', {payload.get('epochs')} "
                  f"epochs) finished with {_scores(payload)}. The model is saved at {payload.get('artifact_path')}.")
        return answer + _read_from(payload)
    if wanted == LIST:
        tasks = payload.get("tasks") or []
        if not tasks:
            return "The task server holds no tasks."
        lines = [f"- {_status_sentence(task)}" for task in tasks if isinstance(task, dict)]
        return f"The task server holds {len(tasks)} task(s), newest first:\n" + "\n".join(lines)
    if "task_id" in payload:  # check_task_status, cancel_task
        return _status_sentence(payload)
    return f"{wanted} answered: {json.dumps(payload, sort_keys=True)}"


def _answer_background(payload: dict[str, Any], messages: Messages) -> str:
    """Put ``strands_manage_background_task``'s answer (or a delivered result) into plain words."""
    seen = _read_conversation(messages)

    def known(item: dict[str, Any]) -> dict[str, Any]:
        task = seen.tasks.get(item.get("task_id", ""))
        return {**(asdict(task) if task else {}), **{k: v for k, v in item.items() if v is not None}}

    if "tasks" in payload:
        tasks = [item for item in payload["tasks"] if isinstance(item, dict)]
        if not tasks:
            return "I hold no background tasks."
        return (f"I hold {len(tasks)} background task(s):\n"
                + "\n".join(f"- {_background_sentence(known(item))}" for item in tasks))
    return _background_sentence(known(payload))


# -- speaking Strands' stream protocol ----------------------------------------------------------------
def _tool_use_id(messages: Messages, name: str, tool_input: dict[str, Any]) -> str:
    """An id that is the same for the same conversation, and different for every turn of one."""
    digest = hashlib.sha256(json.dumps([len(messages), name, tool_input], sort_keys=True).encode()).hexdigest()
    return f"tooluse_offline_{digest[:16]}"


def _events(turn: Turn, messages: Messages) -> Iterator[StreamEvent]:
    """The events a Converse-style provider streams for ``turn``."""
    yield {"messageStart": {"role": "assistant"}}
    yield {"contentBlockStart": {"start": {}}}
    yield {"contentBlockDelta": {"delta": {"text": turn.text}}}
    yield {"contentBlockStop": {}}
    if turn.tool is not None:
        tool_use_id = _tool_use_id(messages, turn.tool, turn.tool_input)
        yield {"contentBlockStart": {"start": {"toolUse": {"toolUseId": tool_use_id, "name": turn.tool}}}}
        yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(turn.tool_input)}}}}
        yield {"contentBlockStop": {}}
    yield {"messageStop": {"stopReason": "tool_use" if turn.tool else "end_turn"}}
    # No tokens are spent: the usage says so honestly.
    yield {"metadata": {"usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
                        "metrics": {"latencyMs": 0}}}
