"""servers/runtime_agent.py as a real process: /ping says HealthyBusy exactly while background training runs.

Each of the three ways to track background work (``@app.async_task``, ``add_async_task`` around a
thread, a custom ``@app.ping`` handler) keeps /ping busy until its job ends, and the custom handler
does not hide the other two. Invocations answer at once; finished jobs report real scores; a
diverging run ends as failed; the SDK's debug actions force and clear the status; notes live as
long as the process; bad input gets a 400 that says why.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import LOCAL_HTTP, TEST_TIME_SCALE
from lab_helpers import config
from lab_helpers.waiting import eventually
from lab_helpers.processes import ServerProcess

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
#: Long enough (1.2 s at the test time scale) to look at /ping while it runs.
LONG_EPOCHS = 60
WAYS = ("decorator", "manual", "custom_ping")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("runtime_agent")
    settings = config.load(env={}, time_scale=TEST_TIME_SCALE, artifacts_dir=tmp / "artifacts",
                           logs_dir=tmp / "logs", max_epochs=500)
    with ServerProcess("runtime_agent.py", settings=settings, ready_path="/ping") as process:
        yield process


def invoke(agent: ServerProcess, payload: Any, session: str | None = None) -> httpx.Response:
    headers = {SESSION_HEADER: session} if session else {}
    return LOCAL_HTTP.post(agent.base_url + "/invocations", json=payload, headers=headers, timeout=10)


def ok(agent: ServerProcess, payload: Any, session: str | None = None) -> dict[str, Any]:
    reply = invoke(agent, payload, session)
    assert reply.status_code == 200, reply.text
    return reply.json()


def ping(agent: ServerProcess) -> dict[str, Any]:
    reply = LOCAL_HTTP.get(agent.base_url + "/ping", timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def wait_for_ping(agent: ServerProcess, status: str, timeout: float = 15) -> dict[str, Any]:
    return eventually(lambda: (answer := ping(agent))["status"] == status and answer, timeout, every=0.02,
                      what=f"/ping to say {status}")


def job(agent: ServerProcess, job_id: str) -> dict[str, Any]:
    (found,) = [item for item in ok(agent, {"action": "status"})["jobs"] if item["job_id"] == job_id]
    return found


def new_session() -> str:
    return f"test-session-{uuid.uuid4()}"


def test_ping_has_the_runtime_shape(agent: ServerProcess) -> None:
    answer = wait_for_ping(agent, "Healthy")
    assert set(answer) == {"status", "time_of_last_update"}
    assert isinstance(answer["time_of_last_update"], int)
    assert 0 <= time.time() - answer["time_of_last_update"] < 300


def test_time_of_last_update_is_when_the_status_last_changed(agent: ServerProcess) -> None:
    """What the Runtime's idle reaper reads, as AWS users measured it: it moves when the status changes, only then."""
    idle = wait_for_ping(agent, "Healthy")
    assert ping(agent)["time_of_last_update"] == idle["time_of_last_update"], "not re-stamped on every ping"
    asked = int(time.time())
    ok(agent, {"action": "train", "model_name": "stamped", "epochs": LONG_EPOCHS})
    busy = wait_for_ping(agent, "HealthyBusy")
    assert busy["time_of_last_update"] >= asked, "stamped when a ping saw the change"
    assert ping(agent) == busy
    done = wait_for_ping(agent, "Healthy")
    assert done["time_of_last_update"] >= busy["time_of_last_update"]
    assert ping(agent) == done


@pytest.mark.parametrize("tracking", WAYS)
def test_each_way_keeps_ping_busy_until_its_job_ends(agent: ServerProcess, tracking: str) -> None:
    wait_for_ping(agent, "Healthy")
    session = new_session()
    sent = time.monotonic()
    started = ok(agent, {"action": "train", "model_name": f"spiral-{tracking}", "epochs": LONG_EPOCHS,
                         "tracking": tracking}, session)
    answered_in = time.monotonic() - sent
    assert started["status"] == "running" and started["tracking"] == tracking
    assert started["session_id"] == session and started["pid"] == agent.pid

    assert ping(agent)["status"] == "HealthyBusy"
    tracked_by_sdk = ok(agent, {"_agent_core_app_action": "job_status"})
    if tracking == "custom_ping":  # only the app's registry knows this job: the custom handler makes /ping busy
        assert tracked_by_sdk["active_count"] == 0
    else:
        expected = {"decorator": "train_tracked_by_decorator", "manual": "train_tracked_manually"}[tracking]
        assert [item["name"] for item in tracked_by_sdk["running_jobs"]] == [expected]
    during = ok(agent, {"action": "status"}, session)
    assert during["ping_status"] == "HealthyBusy" and during["session_id"] == session
    assert job(agent, started["job_id"])["status"] == "running"

    wait_for_ping(agent, "Healthy")
    done = job(agent, started["job_id"])  # the ending is recorded before the tracking lets go
    assert done["status"] == "completed" and done["error"] is None
    assert done["epoch"] == LONG_EPOCHS and done["progress"] == 1.0
    assert done["result"]["val_accuracy"] > 0.5 and done["result"]["val_accuracy"] == done["latest"]["val_accuracy"]
    assert done["result"]["artifact_path"].endswith(".npz")
    assert answered_in < done["result"]["seconds"] / 4, "the invocation answered before the training ended"
    assert ok(agent, {"_agent_core_app_action": "job_status"})["active_count"] == 0


@pytest.mark.parametrize("tracking", WAYS)
def test_a_diverging_run_ends_failed_and_ping_returns_to_healthy(agent: ServerProcess, tracking: str) -> None:
    wait_for_ping(agent, "Healthy")
    started = ok(agent, {"action": "train", "model_name": "too-fast", "epochs": 50, "learning_rate": 1e5,
                         "tracking": tracking})
    wait_for_ping(agent, "Healthy")
    failed = eventually(lambda: (answer := job(agent, started["job_id"]))["status"] != "running" and answer, 10,
                        every=0.02, what="the diverging run to end")
    assert failed["status"] == "failed" and failed["result"] is None
    assert failed["error"].startswith("TrainingError:") and "diverged" in failed["error"]
    assert ping(agent)["status"] == "Healthy"


def test_debug_actions_force_and_clear_the_status(agent: ServerProcess) -> None:
    wait_for_ping(agent, "Healthy")
    assert ok(agent, {"_agent_core_app_action": "ping_status"})["status"] == "Healthy"
    assert ok(agent, {"_agent_core_app_action": "force_busy"}) == {"forced_status": "HealthyBusy"}
    try:
        busy = ping(agent)
        assert busy["status"] == "HealthyBusy"
        assert ok(agent, {"_agent_core_app_action": "ping_status"}) == busy
    finally:
        assert ok(agent, {"_agent_core_app_action": "clear_forced_status"}) == {"forced_status": "Cleared"}
    assert ping(agent)["status"] == "Healthy"

    started = ok(agent, {"action": "train", "model_name": "forced", "epochs": LONG_EPOCHS,
                         "tracking": "custom_ping"})
    assert ok(agent, {"_agent_core_app_action": "force_healthy"}) == {"forced_status": "Healthy"}
    try:
        assert ping(agent)["status"] == "Healthy", "a forced status beats the custom ping handler"
    finally:
        ok(agent, {"_agent_core_app_action": "clear_forced_status"})
    assert ping(agent)["status"] == "HealthyBusy"
    wait_for_ping(agent, "Healthy")
    assert job(agent, started["job_id"])["status"] == "completed"

    unknown = invoke(agent, {"_agent_core_app_action": "nap"})
    assert unknown.status_code == 400 and unknown.json() == {"error": "Unknown action: nap"}
    # The SDK reads the debug key before the entrypoint runs, so a body that is no JSON object fails there.
    not_an_object = invoke(agent, ["train"])
    assert not_an_object.status_code == 500 and "has no attribute 'get'" in not_an_object.json()["error"]


@pytest.mark.parametrize(("payload", "reason"), [
    ({"action": "train", "epochs": 5}, "model_name must be"),
    ({"action": "train", "model_name": "../escape", "epochs": 5}, "model_name must be"),
    ({"action": "train", "model_name": "m", "epochs": 0}, "epochs must be between 1 and 500"),
    ({"action": "train", "model_name": "m", "epochs": 501}, "epochs must be between 1 and 500"),
    ({"action": "train", "model_name": "m", "epochs": "ten"}, "epochs must be a whole number"),
    ({"action": "train", "model_name": "m", "epochs": 5, "learning_rate": -1}, "learning_rate must be"),
    ({"action": "train", "model_name": "m", "epochs": 5, "tracking": "cron"},
     "tracking must be one of decorator, manual, custom_ping"),
    ({"action": "remember"}, "non-empty 'note'"),
    ({"action": "dance"}, "one of: train, status, watch, remember, recall"),
    ({"prompt": "hi"}, "one of: train, status, watch, remember, recall"),
])
def test_bad_input_gets_400_with_the_reason(agent: ServerProcess, payload: dict[str, Any], reason: str) -> None:
    jobs_before = len(ok(agent, {"action": "status"})["jobs"])
    reply = invoke(agent, payload)
    assert reply.status_code == 400
    assert reason in reply.json()["error"]
    assert len(ok(agent, {"action": "status"})["jobs"]) == jobs_before


def test_notes_live_as_long_as_the_process(agent: ServerProcess) -> None:
    """Same process (on AgentCore Runtime: the same session id) keeps notes; a new process starts empty."""
    first, second = new_session(), new_session()
    note = f"the user prefers spirals ({uuid.uuid4().hex[:6]})"
    remembered = ok(agent, {"action": "remember", "note": note}, first)
    assert remembered["remembered"] == note and remembered["session_id"] == first
    recalled = ok(agent, {"action": "recall"}, first)
    assert [(item["note"], item["session_id"]) for item in recalled["notes"]][-1] == (note, first)
    assert ok(agent, {"action": "recall"}, second)["pid"] == recalled["pid"] == agent.pid

    old_pid = agent.pid
    agent.restart()
    fresh = ok(agent, {"action": "recall"}, second)
    assert fresh["notes"] == [] and fresh["pid"] == agent.pid != old_pid
    assert ok(agent, {"action": "status"})["jobs"] == []


def test_watch_streams_each_epoch_then_the_ending_as_server_sent_events(agent: ServerProcess) -> None:
    job = ok(agent, {"action": "train", "model_name": "watched", "epochs": 20})
    reply = invoke(agent, {"action": "watch", "job_id": job["job_id"]})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in reply.text.splitlines() if line.startswith("data: ")]
    epochs = [event["epoch"] for event in events if "epoch" in event]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 20, epochs
    assert events[-1]["status"] == "completed" and events[-1]["result"]["val_accuracy"] > 0.5
    assert events[-2]["scores"]["val_accuracy"] == events[-1]["result"]["val_accuracy"]


def test_watching_an_unknown_job_is_a_400(agent: ServerProcess) -> None:
    reply = invoke(agent, {"action": "watch", "job_id": "job-nope"})
    assert reply.status_code == 400 and "unknown job_id 'job-nope'" in reply.json()["error"]
