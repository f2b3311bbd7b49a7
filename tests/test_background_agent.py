"""servers/background_agent.py: a Strands agent whose training tool runs in its own background, with the offline model.

In the test process (``build_agent``): the agent answers while the training runs, reports the task's state,
queues what exceeds ``max_concurrency``, delivers the result, lets the model choose (``agentic``) and waits when
asked to (``wait_for_completion``). As a process (``/invocations``): a SIGKILL ends the work with the process,
and the restored agent reports the task failed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import LOCAL_HTTP
from lab_helpers import config
from lab_helpers.models import OFFLINE_LABEL, OfflineModel
from lab_helpers.processes import SERVERS_DIR, ServerProcess
from lab_helpers.waiting import eventually

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIMEOUT = 60.0
#: A run that cannot end during a test at any load (2,000 s at the test time scale): it is cancelled or killed.
LONG_EPOCHS = 100_000


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("background_agent", SERVERS_DIR / "background_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


background_agent = _load()


def ask(agent: Any, prompt: str) -> str:
    answer = str(agent(prompt)).strip()
    assert answer.startswith(OFFLINE_LABEL.strip()), answer
    return answer


def statuses(agent: Any) -> dict[str, str]:
    return {task["task_id"]: task["status"] for task in background_agent.background_tasks(agent)}


def started_task(answer: str) -> str:
    match = re.search(rf"in my background as task ({UUID})", answer)
    assert match, answer
    return match[1]


def test_answers_at_once_reports_queued_and_working_and_delivers_the_result(settings: config.Settings) -> None:
    settings = dataclasses.replace(settings, max_epochs=LONG_EPOCHS)
    agent = background_agent.build_agent(settings, max_concurrency=1, model=OfflineModel())
    long_id = started_task(ask(agent, f"Train a model called marathon for {LONG_EPOCHS} epochs"))
    # The invocation has returned, and the run it started has not ended: it is the agent's background task.
    assert statuses(agent)[long_id] in ("queued", "working")
    short_id = started_task(ask(agent, "Train a model called sprint for 3 epochs"))
    eventually(lambda: statuses(agent)[long_id] == "working", TIMEOUT, what="the marathon working")
    assert statuses(agent)[short_id] == "queued"  # max_concurrency=1: it waits for the marathon's slot

    listing = ask(agent, "List my tasks")
    assert f"{long_id} training 'marathon' for {LONG_EPOCHS} epochs is working" in listing
    assert f"{short_id} training 'sprint' for 3 epochs is queued" in listing
    assert "is queued" in ask(agent, "What's the status of my task?")  # the latest task: sprint
    assert "is working" in ask(agent, f"What's the status of task {long_id}?")

    cancelled = ask(agent, f"Cancel task {long_id}")
    assert f"{long_id} training 'marathon' for {LONG_EPOCHS} epochs cancelled" in cancelled
    eventually(lambda: statuses(agent).get(short_id) == "completed", TIMEOUT, what="sprint completed")

    delivered = ask(agent, "How is my training going?")  # Strands delivers the ended tasks before the model answers
    match = re.search(rf"{short_id} training 'sprint' for 3 epochs completed: val accuracy (\d\.\d+).*"
                      r"The model is saved at (\S+)\.$", delivered, re.S)
    assert match, delivered
    assert Path(match[2]).is_file() and Path(match[2]).parent == settings.artifacts_dir
    assert statuses(agent) == {}  # delivered tasks are forgotten by Strands; the conversation keeps them
    assert "Delivered earlier" in ask(agent, "Show me the results")
    assert not list(settings.artifacts_dir.glob("marathon*"))  # the cancelled run saved nothing


def test_agentic_mode_lets_the_model_choose_per_call(settings: config.Settings) -> None:
    agent = background_agent.build_agent(settings, mode="agentic", model=OfflineModel())
    foreground = ask(agent, "Train a model called here-net for 2 epochs")
    assert "Trained 'here-net' for 2 epochs: val accuracy" in foreground and statuses(agent) == {}
    task_id = started_task(ask(agent, "Train a model called there-net for 2 epochs in the background"))
    assert task_id in statuses(agent)


def test_wait_for_completion_answers_first_and_returns_with_the_result(settings: config.Settings) -> None:
    agent = background_agent.build_agent(settings, wait_for_completion=True, model=OfflineModel())
    final = ask(agent, "Train a model called patient-net for 3 epochs")
    task_id = re.search(UUID, final)
    assert task_id and "training 'patient-net' for 3 epochs completed: val accuracy" in final
    answers = [block["text"] for message in agent.messages if message["role"] == "assistant"
               for block in message["content"] if "text" in block]
    # Before the result: the answer given while the task ran.
    assert f"in my background as task {task_id[0]}" in answers[-2] and answers[-1] == final


# -- as a process ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("background-agent")
    settings = config.load(env={}, time_scale=0.02, artifacts_dir=tmp / "artifacts", logs_dir=tmp / "logs",
                           state_dir=tmp / "state", max_epochs=LONG_EPOCHS)
    with ServerProcess("background_agent.py", settings=settings, ready_path="/ping") as process:
        yield process


def invoke(process: ServerProcess, prompt: str, session: str = "session-1") -> dict[str, Any]:
    reply = LOCAL_HTTP.post(f"{process.base_url}/invocations", json={"prompt": prompt, "session_id": session},
                       timeout=TIMEOUT)
    reply.raise_for_status()
    return reply.json()


def ping(process: ServerProcess) -> str:
    return LOCAL_HTTP.get(f"{process.base_url}/ping", timeout=TIMEOUT).json()["status"]


def test_the_work_ends_with_the_agent_process(agent_process: ServerProcess) -> None:
    first = invoke(agent_process, f"Train a model called doomed-net for {LONG_EPOCHS} epochs")
    task_id = started_task(first["answer"])
    assert [task["status"] for task in first["background_tasks"]] in (["queued"], ["working"])
    assert ping(agent_process) == "HealthyBusy"  # on AgentCore Runtime, busy keeps the session alive
    assert "is working" in invoke(agent_process, "How is my training going?")["answer"]

    agent_process.kill()  # SIGKILL: the process and its background loop are gone
    agent_process.start()
    assert ping(agent_process) == "Healthy"  # nothing runs in the new process
    after = invoke(agent_process, "How is my training going?")
    assert after["pid"] != first["pid"]
    # The saved agent state remembered the task; Strands cannot resume it and says so.
    assert (f"{task_id} training 'doomed-net' for {LONG_EPOCHS} epochs failed: "
            "Background task cannot resume after restoring persisted state") in after["answer"]
    assert after["background_tasks"] == []
    assert not list(agent_process.settings.artifacts_dir.glob("doomed-net*"))


@pytest.mark.parametrize(("body", "expected"), [
    ({"session_id": "s"}, "non-empty 'prompt'"),
    ({"prompt": "hello"}, "needs a session"),
    (["not", "an", "object"], "non-empty 'prompt'"),
])
def test_a_bad_invocation_is_refused_with_the_reason(agent_process: ServerProcess, body: Any, expected: str) -> None:
    reply = LOCAL_HTTP.post(f"{agent_process.base_url}/invocations", json=body, timeout=TIMEOUT)
    assert reply.status_code == 400 and expected in reply.text
