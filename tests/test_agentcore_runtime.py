"""AgentCore Runtime in the local emulator, through boto3 and an MCP client: resources, sessions, lifecycle, errors.

The emulator runs at the test time scale (0.02), so the AWS minimum lifecycle settings of 60 s last 1.2 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from conftest import LOCAL_HTTP, LocalAgentCore
from lab_helpers import config
from lab_helpers.waiting import eventually
from patterns.caller_identity import Identity
from lab_helpers.emulator.api import LOCAL_AUTHORIZATION as SIGNED
from lab_helpers.mcp_client import open_session

SERVERS = str(config.REPO_ROOT / "servers")
ROLE = "arn:aws:iam::123456789012:role/agentcore-local"


def artifact(entry_point: str, directory: str = SERVERS) -> dict[str, Any]:
    return {"codeConfiguration": {"code": {"s3": {"bucket": "agentcore-local", "prefix": directory}},
                                  "runtime": "PYTHON_3_11", "entryPoint": [entry_point]}}


@pytest.fixture(scope="module")
def control(agentcore: LocalAgentCore):
    return boto3.client("bedrock-agentcore-control")


@pytest.fixture(scope="module")
def data(agentcore: LocalAgentCore):
    return boto3.client("bedrock-agentcore")


@pytest.fixture(scope="module")
def agent_runtime(control, agentcore: LocalAgentCore) -> Iterator[dict[str, Any]]:
    """notebook 03's agent as an HTTP runtime: idle timeout 1 hour (72 s here, above a cold start on a loaded
    machine, so that a test's first session outlives the start of its second), 8 h lifetime."""
    created = control.create_agent_runtime(
        agentRuntimeName="lab_agent", agentRuntimeArtifact=artifact("agent_app.py"), roleArn=ROLE,
        environmentVariables={"LAB_MEMORY_ID": agentcore.memory_id},
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 3600, "maxLifetime": 28800})
    yield created
    control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])


def session_id() -> str:
    return f"runtime-test-{uuid.uuid4()}"


def sessions(agentcore: LocalAgentCore) -> dict[str, Any]:
    return LOCAL_HTTP.get(f"{agentcore.process.base_url}/local/runtime-sessions").json()


def states(agentcore: LocalAgentCore, session: str) -> list[tuple[str, str]]:
    return [(t["state"], t["detail"]) for t in sessions(agentcore)["transitions"] if t["sessionId"] == session]


def invoke(data, arn: str, session: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps(payload),
                                       qualifier="DEFAULT")
    assert answer["contentType"] == "application/json" and answer["runtimeSessionId"] == session
    return json.loads(answer["response"].read())


def until(condition: Any, timeout: float = 20.0) -> None:
    eventually(condition, timeout, every=0.05)


# -- control plane ----------------------------------------------------------------------------------
def test_create_is_creating_then_ready_and_listed_and_updated(control, agent_runtime) -> None:
    runtime_id = agent_runtime["agentRuntimeId"]
    assert agent_runtime["status"] == "CREATING" and runtime_id.startswith("lab_agent-")
    assert agent_runtime["agentRuntimeArn"].endswith(f":runtime/{runtime_id}")
    assert control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] in ("CREATING", "READY")
    got = control.get_agent_runtime(agentRuntimeId=runtime_id)
    assert got["status"] == "READY" and got["protocolConfiguration"] == {"serverProtocol": "HTTP"}
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 3600, "maxLifetime": 28800}
    listed = control.list_agent_runtimes()["agentRuntimes"]
    assert [r["agentRuntimeName"] for r in listed if r["agentRuntimeId"] == runtime_id] == ["lab_agent"]


def test_update_makes_a_new_version(control, agentcore: LocalAgentCore) -> None:
    created = control.create_agent_runtime(agentRuntimeName="to_update", agentRuntimeArtifact=artifact("agent_app.py"),
                                           roleArn=ROLE)
    updated = control.update_agent_runtime(agentRuntimeId=created["agentRuntimeId"],
                                           agentRuntimeArtifact=artifact("persistent_tasks.py"), roleArn=ROLE,
                                           protocolConfiguration={"serverProtocol": "MCP"})
    assert (updated["status"], updated["agentRuntimeVersion"]) == ("UPDATING", "2")
    control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
    got = control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
    assert got["status"] == "READY" and got["protocolConfiguration"]["serverProtocol"] == "MCP"
    deleted = control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
    assert deleted["status"] == "DELETING"
    with pytest.raises(ClientError) as raised:
        control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"agentRuntimeName": "bad-name"}, "agentRuntimeName"),
        ({"agentRuntimeArtifact": artifact("missing.py")}, "entryPoint must name a script"),
        ({"agentRuntimeArtifact": artifact("agent_app.py", "relative/dir")}, "absolute path"),
        ({"agentRuntimeArtifact": {"containerConfiguration": {
            "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:1"}}}, "code directories only"),
        ({"protocolConfiguration": {"serverProtocol": "A2A"}}, "not emulated"),
        ({"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 600, "maxLifetime": 300}}, "must not exceed"),
        ({"environmentVariables": {"LAB_TIME_SCALE": "fast"}}, "LAB_TIME_SCALE sets the runtime's clock"),
        ({"environmentVariables": {"LAB_TIME_SCALE": "-1"}}, "between 0 and 100, got '-1'"),
    ],
)
def test_bad_runtime_definitions_are_validation_errors(control, changes: dict[str, Any], message: str) -> None:
    request = {"agentRuntimeName": "rejected", "agentRuntimeArtifact": artifact("agent_app.py"), "roleArn": ROLE,
               **changes}
    with pytest.raises(ClientError) as raised:
        control.create_agent_runtime(**request)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]


def test_a_duplicate_name_is_a_conflict(control, agent_runtime) -> None:
    with pytest.raises(ClientError) as raised:
        control.create_agent_runtime(agentRuntimeName="lab_agent", agentRuntimeArtifact=artifact("agent_app.py"),
                                     roleArn=ROLE)
    assert raised.value.response["Error"]["Code"] == "ConflictException"


# -- sessions ---------------------------------------------------------------------------------------
def test_one_process_per_session_and_the_same_process_for_the_same_session(
    data, agent_runtime, agentcore: LocalAgentCore
) -> None:
    arn = agent_runtime["agentRuntimeArn"]
    first, second = session_id(), session_id()
    hello = {"prompt": "Train a model called sessions-test for 2 epochs", "actor_id": "user-1"}
    invoke(data, arn, first, hello)
    invoke(data, arn, second, hello)
    pids = {s["sessionId"]: s["pid"] for s in sessions(agentcore)["sessions"]}
    assert pids[first] != pids[second]
    again = invoke(data, arn, first, {"prompt": "What happened while I was away?", "actor_id": "user-1"})
    assert {s["sessionId"]: s["pid"] for s in sessions(agentcore)["sessions"]}[first] == pids[first]
    assert again["session_id"] == first and again["restored_messages"] >= 2  # same session: the context is there


def test_an_idle_session_is_ended_at_the_idle_timeout(data, control, agentcore: LocalAgentCore) -> None:
    created = control.create_agent_runtime(
        agentRuntimeName="idle_agent", agentRuntimeArtifact=artifact("agent_app.py"), roleArn=ROLE,
        environmentVariables={"LAB_MEMORY_ID": agentcore.memory_id},
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 60, "maxLifetime": 28800})
    session = session_id()
    invoke(data, created["agentRuntimeArn"], session, {"prompt": "hello", "actor_id": "user-1"})
    until(lambda: ("ended", "idle timeout") in states(agentcore, session))
    assert [state for state, _ in states(agentcore, session)] == ["starting", "Healthy", "ended"]
    control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])


def test_the_agents_error_is_a_runtime_client_error(data, agent_runtime) -> None:
    with pytest.raises(ClientError) as raised:
        data.invoke_agent_runtime(agentRuntimeArn=agent_runtime["agentRuntimeArn"], runtimeSessionId=session_id(),
                                  payload=json.dumps({"prompt": "no actor"}))
    assert raised.value.response["Error"]["Code"] == "RuntimeClientError"
    assert "Received error (400) from runtime" in raised.value.response["Error"]["Message"]
    assert "needs actor_id" in raised.value.response["Error"]["Message"]


def test_stop_runtime_session_ends_it_and_a_crashed_session_starts_afresh(
    data, agent_runtime, agentcore: LocalAgentCore
) -> None:
    arn, session = agent_runtime["agentRuntimeArn"], session_id()
    invoke(data, arn, session, {"prompt": "hello", "actor_id": "user-1"})
    data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
    assert states(agentcore, session)[-1] == ("ended", "stopped by StopRuntimeSession")
    with pytest.raises(ClientError) as raised:
        data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    invoke(data, arn, session, {"prompt": "hello", "actor_id": "user-1"})
    (live,) = [s for s in sessions(agentcore)["sessions"] if s["sessionId"] == session]
    os.kill(live["pid"], signal.SIGKILL)
    until(lambda: states(agentcore, session)[-1][0] == "ended")
    assert states(agentcore, session)[-1][1].startswith("crashed")
    reply = invoke(data, arn, session, {"prompt": "hello", "actor_id": "user-1"})
    assert reply["answer"].startswith("[offline model]")
    (fresh,) = [s for s in sessions(agentcore)["sessions"] if s["sessionId"] == session]
    assert fresh["pid"] != live["pid"]


# -- bad input on the data plane ----------------------------------------------------------------------
def test_unknown_and_deleted_runtimes_and_short_session_ids(data, control, agentcore: LocalAgentCore) -> None:
    with pytest.raises(ClientError) as raised:
        data.invoke_agent_runtime(agentRuntimeArn="arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/"
                                  "nothing-0123456789", runtimeSessionId=session_id(), payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    gone = control.create_agent_runtime(agentRuntimeName="gone", agentRuntimeArtifact=artifact("agent_app.py"),
                                        roleArn=ROLE)
    control.delete_agent_runtime(agentRuntimeId=gone["agentRuntimeId"])
    with pytest.raises(ClientError) as raised:
        data.invoke_agent_runtime(agentRuntimeArn=gone["agentRuntimeArn"], runtimeSessionId=session_id(), payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    with pytest.raises(ParamValidationError, match="runtimeSessionId"):  # botocore stops it before sending
        data.invoke_agent_runtime(agentRuntimeArn=gone["agentRuntimeArn"], runtimeSessionId="short", payload=b"{}")
    raw = LOCAL_HTTP.post(f"{agentcore.process.base_url}/runtimes/{quote(gone['agentRuntimeArn'], safe='')}/invocations",
                     headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "short", "Authorization": SIGNED},
                     content=b"{}")
    assert raw.status_code in (400, 404)


def test_a_session_id_shorter_than_33_characters_is_refused_by_the_emulator_too(
    agent_runtime, agentcore: LocalAgentCore
) -> None:
    url = f"{agentcore.process.base_url}/runtimes/{quote(agent_runtime['agentRuntimeArn'], safe='')}/invocations"
    raw = LOCAL_HTTP.post(url, headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "short", "Authorization": SIGNED},
                     content=b"{}")
    assert raw.status_code == 400 and raw.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "'runtimeSessionId'" in raw.json()["message"] and "greater than or equal to 33" in raw.json()["message"]


def test_an_oversized_payload_is_refused_before_it_is_read(agent_runtime, agentcore: LocalAgentCore) -> None:
    # Declared, never sent: the emulator must answer from the header alone (httpx would refuse to lie about it).
    path = f"/runtimes/{quote(agent_runtime['agentRuntimeArn'], safe='')}/invocations"
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000001\r\n"
               f"Authorization: {SIGNED}\r\nX-Amzn-Bedrock-AgentCore-Runtime-Session-Id: {session_id()}\r\n\r\n")
    with socket.create_connection((agentcore.process.host, agentcore.process.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"larger than the limit" not in answer and (chunk := sock.recv(65536)):
            answer += chunk  # the status line and the body may arrive in separate packets
    assert answer.startswith(b"HTTP/1.1 400") and b"larger than the limit" in answer


# -- an MCP server behind the runtime URL ---------------------------------------------------------------
def test_an_mcp_client_reaches_a_deployed_mcp_server_through_the_runtime_url(
    control, agentcore: LocalAgentCore
) -> None:
    identity = Identity(agentcore.memory_id, "user-1", f"mcp-{uuid.uuid4()}")
    created = control.create_agent_runtime(
        agentRuntimeName="lab_tasks", agentRuntimeArtifact=artifact("persistent_tasks.py"), roleArn=ROLE,
        protocolConfiguration={"serverProtocol": "MCP"},
        requestHeaderConfiguration={"requestHeaderAllowlist": list(identity.headers())})
    from lab_helpers.deploy import mcp_url

    url = mcp_url(created["agentRuntimeArn"], settings=agentcore.settings)
    assert url.startswith(agentcore.process.base_url + "/runtimes/arn%3Aaws%3Abedrock-agentcore%3A")
    headers = {**identity.headers(), "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": session_id(),
               "Authorization": "Bearer local-token"}  # an MCP client sends an OAuth token, as on AWS

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with open_session(url, headers=headers) as session:
            started = (await session.call_tool("model_training", {"model_name": "via-runtime", "epochs": 3}))
            assert not started.is_error, started.content[0].text
            task_id = started.structured_content["task_id"]
            for _ in range(200):
                status = (await session.call_tool("check_task_status", {"task_id": task_id})).structured_content
                if status["status"] == "completed":
                    break
                await asyncio.sleep(0.05)
            return started.structured_content, status

    try:
        started, status = asyncio.run(scenario())
        assert status["status"] == "completed" and status["task_id"] == started["task_id"]
    finally:
        control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])


# -- lifecycle with background work, through lab_helpers.deploy ------------------------------------------
def test_a_busy_session_outlives_the_idle_timeout_and_an_idle_one_does_not(agentcore: LocalAgentCore) -> None:
    from lab_helpers import deploy

    settings = agentcore.settings
    deployment = deploy.deploy("busy_agent", SERVERS, "runtime_agent.py", idle_timeout=60, max_lifetime=3600,
                                settings=settings)
    busy, idle = deploy.new_session_id(), deploy.new_session_id()
    try:
        epochs = 300  # 6 s of training at the test time scale: five idle timeouts (1.2 s each)
        # The idle session starts first: on a loaded machine a cold start can outlast the whole training.
        deploy.invoke(deployment.arn, {"action": "status"}, idle, settings=settings)
        started = deploy.invoke(deployment.arn, {"action": "train", "model_name": "busy", "epochs": epochs},
                                 busy, settings=settings)
        assert started["status"] == "running"
        # The emulator sees the training at its next /ping of the session; the idle session may end before that.
        until(lambda: ("HealthyBusy", "") in states(agentcore, busy))
        until(lambda: ("ended", "idle timeout") in states(agentcore, idle))
        assert busy in {s["sessionId"] for s in sessions(agentcore)["sessions"]}, "background work keeps it"
        until(lambda: ("ended", "idle timeout") in states(agentcore, busy), timeout=60)
        assert [state for state, _ in states(agentcore, busy)] == [
            "starting", "Healthy", "HealthyBusy", "Healthy", "ended"]  # ready, training, done, idle too long
    finally:
        assert deploy.destroy(settings)


def test_no_session_outlives_its_maximum_lifetime(agentcore: LocalAgentCore) -> None:
    from lab_helpers import deploy

    settings = agentcore.settings
    deployment = deploy.deploy("short_lived", SERVERS, "runtime_agent.py", idle_timeout=60, max_lifetime=120,
                                settings=settings)
    session = deploy.new_session_id()
    try:
        deploy.invoke(deployment.arn, {"_agent_core_app_action": "force_busy"}, session, settings=settings)
        until(lambda: ("ended", "max lifetime reached") in states(agentcore, session), timeout=60)
        assert ("HealthyBusy", "") in states(agentcore, session), "busy the whole time, and ended all the same"
    finally:
        deploy.destroy(settings)


def test_a_runtime_runs_on_its_own_clock_whatever_the_emulators(control, agentcore: LocalAgentCore) -> None:
    """deploy() gives the runtime the caller's time scale: its lifecycle and its code run at it (not the emulator's)."""
    from lab_helpers import deploy

    own_scale = replace(agentcore.settings, time_scale=0.05)  # the emulator runs at 0.02
    # Long limits (minutes here): the sessions must outlive a slow cold start of the other one.
    deployment = deploy.deploy("own_clock", SERVERS, "runtime_agent.py", idle_timeout=3600, max_lifetime=7200,
                                settings=own_scale)
    unscaled = control.create_agent_runtime(agentRuntimeName="emulator_clock", roleArn=ROLE,
                                            agentRuntimeArtifact=artifact("runtime_agent.py"),
                                            lifecycleConfiguration={"idleRuntimeSessionTimeout": 3600,
                                                                    "maxLifetime": 7200})
    own, default = deploy.new_session_id(), deploy.new_session_id()
    try:
        assert deployment.time_scale == 0.05
        paces = {own: deploy.invoke(deployment.arn, {"action": "status"}, own, settings=own_scale)["time_scale"],
                 default: deploy.invoke(unscaled["agentRuntimeArn"], {"action": "status"}, default,
                                        settings=own_scale)["time_scale"]}
        live = {s["sessionId"]: s for s in sessions(agentcore)["sessions"]}
        assert (live[own]["timeScale"], live[own]["idleTimeoutSeconds"], live[own]["maxLifetimeSeconds"]) == (
            0.05, 180.0, 360.0)
        assert (live[default]["timeScale"], live[default]["idleTimeoutSeconds"]) == (0.02, 72.0)
        assert paces == {own: 0.05, default: 0.02}, "the code runs at its runtime's pace too"
    finally:
        control.delete_agent_runtime(agentRuntimeId=unscaled["agentRuntimeId"])
        deploy.destroy(own_scale)


def test_stop_sessions_ends_every_live_session_of_one_runtime_only(agentcore: LocalAgentCore) -> None:
    """What a notebook calls first when an interrupted run left sessions busy on its runtime."""
    from lab_helpers import deploy

    settings = agentcore.settings
    # An hour's idle timeout (72 s here): no session may end on its own while three cold starts happen under load.
    left, spared = (deploy.deploy(name, SERVERS, "runtime_agent.py", idle_timeout=3600, max_lifetime=7200,
                                  settings=settings) for name in ("left_behind", "spared"))
    busy, idle, other = deploy.new_session_id(), deploy.new_session_id(), deploy.new_session_id()
    try:
        deploy.invoke(left.arn, {"action": "train", "model_name": "forgotten", "epochs": 500}, busy, settings=settings)
        deploy.invoke(left.arn, {"action": "recall"}, idle, settings=settings)
        deploy.invoke(spared.arn, {"action": "recall"}, other, settings=settings)

        assert sorted(deploy.stop_sessions(left, settings=settings)) == sorted([busy, idle])
        assert states(agentcore, busy)[-1] == ("ended", "stopped by StopRuntimeSession")
        assert [s["sessionId"] for s in sessions(agentcore)["sessions"]
                if s["runtimeId"] in (left.runtime_id, spared.runtime_id)] == [other]
        assert deploy.stop_sessions(left, settings=settings) == []
    finally:
        deploy.destroy(settings)


def test_a_streamed_answer_passes_through_and_the_sdk_client_works_too(agentcore: LocalAgentCore) -> None:
    """``AgentCoreRuntimeClient`` (bedrock-agentcore's own client): create and wait, invoke, stream, delete."""
    from bedrock_agentcore.runtime import AgentCoreRuntimeClient, WaitConfig

    client = AgentCoreRuntimeClient(region_name=agentcore.settings.region)
    ready = client.create_agent_runtime_and_wait(
        wait_config=WaitConfig(poll_interval=1, max_wait=30), agent_runtime_name="sdk_agent",
        agent_runtime_artifact=artifact("runtime_agent.py"), role_arn=ROLE)
    assert ready["status"] == "READY"
    session = session_id()
    try:
        started = client.invoke_agent_runtime(agent_runtime_arn=ready["agentRuntimeArn"], runtime_session_id=session,
                                              payload=json.dumps({"action": "train", "model_name": "streamed",
                                                                  "epochs": 15}))
        job = json.loads(started["response"].read())
        streamed = client.invoke_agent_runtime(agent_runtime_arn=ready["agentRuntimeArn"], runtime_session_id=session,
                                               payload=json.dumps({"action": "watch", "job_id": job["job_id"]}))
        assert streamed["contentType"].startswith("text/event-stream")
        events = [json.loads(line[len(b"data: "):]) for line in streamed["response"].iter_lines()
                  if line.startswith(b"data: ")]
        assert [e["epoch"] for e in events if "epoch" in e][-1] == 15 and events[-1]["status"] == "completed"
    finally:
        client.delete_agent_runtime_and_wait(wait_config=WaitConfig(poll_interval=1, max_wait=30),
                                             agent_runtime_id=ready["agentRuntimeId"])
