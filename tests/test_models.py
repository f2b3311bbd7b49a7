"""The offline model drives a real Strands agent through the task tools, and load_model picks each provider.

The tools here are plain ``@tool`` functions named like the persistent-tasks MCP
tools and returning the same shapes, so the tests need no server and no network.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import pytest
from pydantic import BaseModel
from strands import Agent, tool

from lab_helpers import config
from lab_helpers.models import (
    BACKGROUND, BACKGROUND_FLAG, OFFLINE_LABEL, OfflineModel, background_payload, describe_model, load_model,
    tool_payload,
)
from lab_helpers.waiting import eventually
from patterns.task_records import TaskRecord, acknowledgement_text, notice_text

TASK_ID = "3f1c2a9e-7b4d-4c1e-9a57-0d2f6e8b1c44"
OTHER_ID = "7d0e5b1a-2c3f-4a8b-9e6d-1f2a3b4c5d6e"
NEW_ID = "11111111-2222-4333-8444-555555555555"
RESULT = {"train_accuracy": 0.95432, "val_accuracy": 0.91234, "train_loss": 0.12345, "val_loss": 0.23456,
          "artifact_path": "/tmp/artifacts/spiral-net.npz", "seconds": 1.5, "seed": 7, "learning_rate": 0.3}


class FakeTaskServer:
    """Deterministic stand-ins for the MCP tools, recording every call the model makes."""

    def __init__(self, *, completed: bool = True) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.completed = completed

    def status(self, task_id: str, status: str = "running") -> dict[str, Any]:
        return {"task_id": task_id, "model_name": "spiral-net", "epochs": 10, "status": status, "progress": 4,
                "total": 10, "message": "epoch 4: val accuracy 0.800", "error": None, "source": "live"}

    def tools(self) -> list[Any]:
        calls, server = self.calls, self

        @tool
        def model_training(model_name: str, epochs: int = 10, learning_rate: float = 0.3) -> dict[str, Any]:
            """Start training a small classifier in the background and return its task id at once."""
            calls.append(("model_training", {"model_name": model_name, "epochs": epochs,
                                             "learning_rate": learning_rate}))
            return {"task_id": NEW_ID, "model_name": model_name, "epochs": epochs, "status": "submitted",
                    "progress": 0, "total": epochs, "message": "waiting to start",
                    "next": f"call check_task_status with task_id {NEW_ID!r}"}

        @tool
        def check_task_status(task_id: str) -> dict[str, Any]:
            """Status and progress of a task."""
            calls.append(("check_task_status", {"task_id": task_id}))
            return server.status(task_id)

        @tool
        def get_task_results(task_id: str) -> dict[str, Any]:
            """The scores and artifact path of a completed task."""
            calls.append(("get_task_results", {"task_id": task_id}))
            if not server.completed:
                raise ValueError(f"task {task_id} is not finished: status is running (4/10 epochs); ask again later")
            return {"task_id": task_id, "model_name": "spiral-net", "epochs": 10, **RESULT, "source": "memory"}

        @tool
        def list_tasks() -> dict[str, Any]:
            """Every task, newest first."""
            calls.append(("list_tasks", {}))
            return {"tasks": [server.status(TASK_ID), server.status(OTHER_ID, "completed")],
                    "counts": {"running": 1, "completed": 1}}

        @tool
        def cancel_task(task_id: str) -> dict[str, Any]:
            """Stop a running task."""
            calls.append(("cancel_task", {"task_id": task_id}))
            return server.status(task_id, "cancelled")

        return [model_training, check_task_status, get_task_results, list_tasks, cancel_task]


@pytest.fixture
def server() -> FakeTaskServer:
    return FakeTaskServer()


def make_agent(server: FakeTaskServer | None, messages: list[dict[str, Any]] | None = None) -> Agent:
    return Agent(model=OfflineModel(), tools=server.tools() if server else [], messages=messages or [],
                 callback_handler=None)


def ask(agent: Agent, prompt: str) -> str:
    """Ask the agent and check the answer is labelled, so no output passes for an LLM's."""
    answer = str(agent(prompt)).strip()
    assert answer.startswith(OFFLINE_LABEL.strip()), answer
    return answer


def notices(*records: TaskRecord) -> list[dict[str, Any]]:
    """The conversation the Memory session manager restores: a notice and its acknowledgement per ending."""
    messages: list[dict[str, Any]] = []
    for record in records:
        messages.append({"role": "user", "content": [{"text": notice_text(record)}]})
        messages.append({"role": "assistant", "content": [{"text": acknowledgement_text(record)}]})
    return messages


def record(status: str, task_id: str = TASK_ID, **changes: Any) -> TaskRecord:
    fields: dict[str, Any] = {"task_id": task_id, "status": status, "model_name": "spiral-net", "epochs": 20,
                              "learning_rate": 0.1, "at": "2025-01-01T00:00:00.000+00:00", "progress": 7}
    return TaskRecord(**{**fields, **changes})


# -- training -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("prompt", "expected"), [
    ("Train a model called spiral-net for 20 epochs", {"model_name": "spiral-net", "epochs": 20}),
    ("please start a training run named fraud_v2 with 5 epochs", {"model_name": "fraud_v2", "epochs": 5}),
    ("kick off training of model abc for twelve epochs", {"model_name": "abc", "epochs": 12}),
    ("train spiral for 3 epochs with learning rate 0.1", {"model_name": "spiral", "epochs": 3, "learning_rate": 0.1}),
    ("Can you train 'Net.v3' for fifty epochs?", {"model_name": "Net.v3", "epochs": 50}),
    ("TRAIN MODEL big-one FOR A HUNDRED EPOCHS", {"model_name": "big-one", "epochs": 100}),
])
def test_training_requests_call_model_training_once(server: FakeTaskServer, prompt: str,
                                                    expected: dict[str, Any]) -> None:
    answer = ask(make_agent(server), prompt)
    assert server.calls == [("model_training", {"learning_rate": 0.3, **expected})]
    assert NEW_ID in answer and "recorded in memory" in answer


def test_missing_epochs_uses_the_default_and_says_so(server: FakeTaskServer) -> None:
    answer = ask(make_agent(server), "Train a model called quick")
    assert server.calls == [("model_training", {"model_name": "quick", "epochs": 10, "learning_rate": 0.3})]
    assert "default of 10" in answer


def test_missing_model_name_asks_for_it_without_a_tool_call(server: FakeTaskServer) -> None:
    answer = ask(make_agent(server), "Train a model for 5 epochs")
    assert server.calls == []
    assert "Which model" in answer


def test_without_the_task_server_it_says_what_it_would_have_done() -> None:
    answer = ask(make_agent(None), "Train a model called spiral-net for 20 epochs")
    assert "not connected" in answer and "model_training(model_name='spiral-net', epochs=20)" in answer


# -- status, results, list, cancel -------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", [
    f"what's the status of task {TASK_ID}?",
    f"How is task {TASK_ID.upper()} doing?",
    f"check on {TASK_ID}",
    f"is {TASK_ID} done?",
])
def test_status_with_an_explicit_task_id(server: FakeTaskServer, prompt: str) -> None:
    answer = ask(make_agent(server), prompt)
    assert server.calls == [("check_task_status", {"task_id": TASK_ID})]
    assert "running" in answer and "4 of 10 epochs" in answer
    assert answer.endswith("(Read from the task server's running task.)"), answer


@pytest.mark.parametrize("prompt", ["what's the status of my task", "check on my training", "is it done?"])
def test_status_uses_the_most_recent_task_of_the_conversation(server: FakeTaskServer, prompt: str) -> None:
    agent = make_agent(server)
    ask(agent, "Train a model called spiral-net for 10 epochs")
    ask(agent, prompt)
    assert server.calls[-1] == ("check_task_status", {"task_id": NEW_ID})
    assert len(server.calls) == 2  # one tool call per request


def test_status_without_any_known_task_lists_the_tasks(server: FakeTaskServer) -> None:
    answer = ask(make_agent(server), "is it done?")
    assert server.calls == [("list_tasks", {})]
    assert TASK_ID in answer and OTHER_ID in answer


@pytest.mark.parametrize("prompt", ["show me the results", "what scores did it get",
                                    f"what accuracy did {TASK_ID} reach?"])
def test_results_report_the_real_scores(server: FakeTaskServer, prompt: str) -> None:
    answer = ask(make_agent(server, notices(record("interrupted"))), prompt)
    assert server.calls == [("get_task_results", {"task_id": TASK_ID})]
    for expected in ("val accuracy 0.912", "train accuracy 0.954", "train loss 0.123", "val loss 0.235",
                     "/tmp/artifacts/spiral-net.npz", "(Read from AgentCore Memory.)"):
        assert expected in answer


def test_a_tool_error_is_relayed(server: FakeTaskServer) -> None:
    server.completed = False
    answer = ask(make_agent(server), f"show me the results of {TASK_ID}")
    assert "error" in answer and "is not finished: status is running" in answer


@pytest.mark.parametrize("prompt", ["list my tasks", "What tasks do I have?", "show me all my tasks"])
def test_list_has_one_line_per_task(server: FakeTaskServer, prompt: str) -> None:
    answer = ask(make_agent(server), prompt)
    assert server.calls == [("list_tasks", {})]
    lines = [line for line in answer.splitlines() if line.startswith("- ")]
    assert len(lines) == 2 and TASK_ID in lines[0] and "completed" in lines[1]


@pytest.mark.parametrize("prompt", [f"cancel task {TASK_ID}", "stop my training", "please abort it"])
def test_cancel(server: FakeTaskServer, prompt: str) -> None:
    answer = ask(make_agent(server, notices(record("failed", error="diverged"))), prompt)
    assert server.calls == [("cancel_task", {"task_id": TASK_ID})]
    assert "cancelled" in answer


# -- what happened while I was away: answered from the notices, without a tool ----------------------------
@pytest.mark.parametrize("prompt", ["What happened while I was away?", "any news?", "did my training finish?",
                                    "catch me up"])
def test_away_is_answered_from_the_notices(server: FakeTaskServer, prompt: str) -> None:
    history = notices(
        record("interrupted", message="the server restarted"),
        record("failed", task_id=OTHER_ID, model_name="fraud_v2", error="loss became nan"),
        record("completed", result=RESULT, progress=20),  # the same task, finished later: the latest record wins
    )
    answer = ask(make_agent(server, history), prompt)
    assert server.calls == []
    lines = [line for line in answer.splitlines() if line.startswith("- ")]
    assert len(lines) == 2
    assert "fraud_v2" in lines[0] and "failed" in lines[0] and "loss became nan" in lines[0]
    assert TASK_ID in lines[1] and "completed" in lines[1] and "interrupted" not in lines[1]
    assert "val accuracy 0.912" in lines[1] and "/tmp/artifacts/spiral-net.npz" in lines[1]


def test_away_without_notices_says_nothing_was_recorded(server: FakeTaskServer) -> None:
    answer = ask(make_agent(server), "What happened while I was away?")
    assert server.calls == []
    assert "Nothing was recorded" in answer and "status" in answer


@pytest.mark.parametrize("prompt", ["start it again", "Restart it please", "run it again", "retry"])
def test_start_it_again_resubmits_the_interrupted_task(server: FakeTaskServer, prompt: str) -> None:
    history = notices(record("completed", task_id=OTHER_ID, result=RESULT),
                      record("interrupted", model_name="spiral-net", epochs=20, learning_rate=0.1))
    answer = ask(make_agent(server, history), prompt)
    assert server.calls == [("model_training", {"model_name": "spiral-net", "epochs": 20, "learning_rate": 0.1})]
    assert NEW_ID in answer and "default" not in answer


def test_start_it_again_without_an_interrupted_task_says_so(server: FakeTaskServer) -> None:
    answer = ask(make_agent(server, notices(record("completed", result=RESULT))), "start it again")
    assert server.calls == []
    assert "nothing to start again" in answer


# -- everything else -------------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", ["hello", "How are you?", "What is the capital of France?", "tell me a joke",
                                    "   "])
def test_unknown_requests_list_what_it_can_do(server: FakeTaskServer, prompt: str) -> None:
    answer = ask(make_agent(server), prompt)
    assert server.calls == []
    assert "offline stand-in" in answer
    for skill in ("training run", "check a task", "results", "list", "cancel", "while you were away"):
        assert skill in answer


def test_same_conversation_gives_the_same_messages() -> None:
    def run() -> list[dict[str, Any]]:
        agent = make_agent(FakeTaskServer())
        ask(agent, "Train a model called spiral-net for 20 epochs")
        ask(agent, "what's the status of my task")
        # Strands stamps each message with a random tracking_id; the model decides only role and content.
        return [{"role": message["role"], "content": message["content"]} for message in agent.messages]

    first = run()
    assert first == run()
    assert any("toolUse" in block for message in first for block in message["content"])


def test_tool_payload_reads_mcp_and_plain_results() -> None:
    data = {"task_id": TASK_ID, "status": "running"}
    assert tool_payload({"content": [{"text": '{"task_id": "x"}'}], "structuredContent": data}) == data
    assert tool_payload({"content": [{"json": data}]}) == data
    assert tool_payload({"content": [{"text": '{\n  "task_id": "3f1c"\n}'}]}) == {"task_id": "3f1c"}
    assert tool_payload({"content": [{"text": "unknown task"}]}) == "unknown task"
    assert tool_payload({"content": [], "structuredContent": {"result": data}}) == data


def test_structured_output_is_not_supported() -> None:
    class Answer(BaseModel):
        text: str

    async def consume() -> None:
        async for _ in OfflineModel().structured_output(Answer, []):
            pass

    with pytest.raises(NotImplementedError, match="offline model"):
        asyncio.run(consume())


# -- load_model ------------------------------------------------------------------------------------
def test_load_model_offline(settings: config.Settings) -> None:
    model = load_model(settings)
    assert isinstance(model, OfflineModel)
    assert describe_model(model) == "offline model: a deterministic stand-in for an LLM, no AI involved"


def test_load_model_bedrock_builds_a_client_without_calling_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    from strands.models import BedrockModel

    monkeypatch.setenv("LAB_MODEL_ID", "us.amazon.nova-lite-v1:0")
    model = load_model(config.load(env={"LAB_MODEL": "bedrock", "AWS_REGION": "eu-west-1"}))
    assert isinstance(model, BedrockModel)
    assert model.get_config()["model_id"] == "us.amazon.nova-lite-v1:0"
    assert describe_model(model) == "Amazon Bedrock model us.amazon.nova-lite-v1:0 in eu-west-1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://127.0.0.1:9/v1"])
def test_load_model_url_builds_an_openai_compatible_provider(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from strands.models.llamacpp import LlamaCppModel

    monkeypatch.delenv("LAB_MODEL_ID", raising=False)
    model = load_model(config.load(env={"LAB_MODEL": url}))
    assert isinstance(model, LlamaCppModel)
    assert model.base_url == "http://127.0.0.1:9"
    assert model.get_config()["model_id"] == "default"
    assert "http://127.0.0.1:9" in describe_model(model)

    monkeypatch.setenv("LAB_MODEL_ID", "qwen2.5:7b")
    assert load_model(config.load(env={"LAB_MODEL": url})).get_config()["model_id"] == "qwen2.5:7b"


def test_a_training_run_to_the_end_is_answered_with_its_scores() -> None:
    """A task-capable server (notebook 05) hands back the finished result instead of a task id."""

    @tool
    def model_training(model_name: str, epochs: int = 10, learning_rate: float = 0.3) -> dict[str, Any]:
        """Train a small classifier (the client waits for the task)."""
        return {"model_name": model_name, "epochs": epochs, **RESULT}

    agent = Agent(model=OfflineModel(), tools=[model_training], callback_handler=None)
    answer = ask(agent, "Train a model called native-net for 8 epochs")
    assert f"Trained 'native-net' for 8 epochs: val accuracy {RESULT['val_accuracy']:.3f}" in answer
    assert "as task" not in answer


# -- the agent's own background tasks (Strands' BackgroundTasksConfig) ----------------------------------------
def gated_agent(gate: threading.Event, **background: Any) -> Agent:
    """An agent whose model_training runs in its background and ends when ``gate`` opens (or fails for 'bad')."""

    @tool
    async def model_training(model_name: str, epochs: int = 10, learning_rate: float = 0.3) -> dict[str, Any]:
        """Train a small classifier."""
        await asyncio.to_thread(gate.wait)
        if model_name == "bad":
            raise ValueError("learning rate far too high: the loss diverged")
        return {"model_name": model_name, "epochs": epochs, **RESULT}

    config_: dict[str, Any] = {"always": [model_training], "wait_for_completion": False, **background}
    return Agent(model=OfflineModel(), tools=[model_training], callback_handler=None, background_tasks=config_)


def background_statuses(agent: Agent) -> list[str]:
    return [task["status"] for task in agent.state.get("strands.background_tasks") or []]


def test_background_tasks_are_started_listed_and_delivered_together() -> None:
    gate = threading.Event()
    agent = gated_agent(gate, max_concurrency=1)
    first = ask(agent, "Train a model called spiral-net for 20 epochs")
    assert re.search(r"in my background as task [0-9a-f-]{36} \(status queued\)", first), first
    ask(agent, "Train a model called bad for 5 epochs")
    eventually(lambda: background_statuses(agent) == ["working", "queued"], 10, what="one working, one queued")
    listing = ask(agent, "List my tasks")
    assert "I hold 2 background task(s)" in listing
    assert "training 'spiral-net' for 20 epochs is working" in listing
    assert "training 'bad' for 5 epochs is queued: it waits for a free slot" in listing

    gate.set()
    eventually(lambda: background_statuses(agent) == ["completed", "failed"], 10, what="both tasks ended")
    delivered = ask(agent, "What's the status of my task?")  # both results come in before the model answers
    assert f"training 'spiral-net' for 20 epochs completed: val accuracy {RESULT['val_accuracy']:.3f}" in delivered
    assert "training 'bad' for 5 epochs failed: learning rate far too high" in delivered
    assert background_statuses(agent) == []


def test_status_questions_use_the_task_server_when_it_is_there() -> None:
    """An agent with both a task server and background tasks asks the server about the server's tasks."""
    model = OfflineModel()
    messages = [{"role": "user", "content": [{"text": f"What's the status of task {TASK_ID}?"}]}]
    assert model.respond(messages, ["check_task_status", BACKGROUND]).tool == "check_task_status"
    turn = model.respond(messages, ["model_training", BACKGROUND])
    assert (turn.tool, turn.tool_input) == (BACKGROUND, {"mode": "get", "task_id": TASK_ID})


@pytest.mark.parametrize(("prompt", "selectable", "flag"), [
    ("Train a model called spiral-net for 20 epochs in the background", {"model_training"}, True),
    ("Train spiral-net for 20 epochs, don't wait for it", {"model_training"}, True),
    ("Train a model called spiral-net for 20 epochs", {"model_training"}, None),
    ("Train a model called spiral-net for 20 epochs in the background", set(), None),
])
def test_the_background_flag_is_set_only_when_asked_and_offered(prompt: str, selectable: set[str],
                                                                flag: bool | None) -> None:
    turn = OfflineModel().respond([{"role": "user", "content": [{"text": prompt}]}],
                                  ["model_training", BACKGROUND], selectable)
    assert turn.tool == "model_training" and turn.tool_input.get(BACKGROUND_FLAG) == flag


def test_background_payload_merges_the_status_and_the_tool_result() -> None:
    delivered = {"toolUseId": TASK_ID, "status": "success", "content": [
        {"json": {"task_id": TASK_ID, "tool_name": "model_training", "status": "failed",
                  "error": {"type": "tool_error", "message": "diverged"}}},
        {"text": json.dumps({"model_name": "spiral-net", "epochs": 20})},
    ]}
    assert background_payload(delivered) == {"model_name": "spiral-net", "epochs": 20, "task_id": TASK_ID,
                                             "tool_name": "model_training", "status": "failed", "error": "diverged"}
    listing = {"content": [{"json": {"tasks": [{"task_id": TASK_ID, "status": "working"}]}}]}
    assert background_payload(listing) == {"tasks": [{"task_id": TASK_ID, "status": "working"}]}
