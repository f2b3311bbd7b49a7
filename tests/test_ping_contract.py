"""The emulator's /ping rule, both variants: what keeps a runtime session alive, as measured in AWS or as documented.

``measured`` (the default): ``HealthyBusy`` keeps a session only with a numeric ``time_of_last_update``; a time
stamped on every ping keeps it until ``maxLifetime``. ``documented``: ``HealthyBusy`` alone keeps it. Both judge
``BedrockAgentCoreApp`` (which reports the time of its last status change) the same: busy while it works, idle
after. The agents are ``servers/handwritten_ping.py`` (one ``/ping`` handler per ``PING_STYLE``) and
``servers/runtime_agent.py``; each variant runs in an emulator of its own, at the test time scale (0.02: the 60 s
idle timeout lasts 1.2 s).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import LOCAL_HTTP, TEST_TIME_SCALE
from lab_helpers import config
from lab_helpers.agentcore import EMULATOR_SCRIPT
from lab_helpers.emulator import __main__ as emulator_command
from lab_helpers.emulator.runtime_sessions import PING_RULE_VARIABLE, PING_RULES, _time_of_last_update
from lab_helpers.processes import ServerProcess, free_port
from lab_helpers.waiting import eventually

SERVERS = str(config.REPO_ROOT / "servers")
ROLE = "arn:aws:iam::123456789012:role/agentcore-local"
IDLE = 60  # seconds of the runtime's clock: 1.2 s here
#: A maximum lifetime that never ends a test's session first, even on a loaded machine (72 s here).
LONG_LIFETIME = 3600
TRAINING_EPOCHS = 100  # 2 s here: longer than the idle timeout, and done with an idle timeout to spare


@dataclass(frozen=True)
class Emulator:
    rule: str
    process: ServerProcess
    control: Any
    data: Any

    def report(self) -> dict[str, Any]:
        return LOCAL_HTTP.get(f"{self.process.base_url}/local/runtime-sessions", timeout=5).json()

    def states(self, session: str) -> list[tuple[str, str]]:
        return [(t["state"], t["detail"]) for t in self.report()["transitions"] if t["sessionId"] == session]

    def deploy(self, entry_point: str, environment: dict[str, str] | None = None,
               max_lifetime: int = LONG_LIFETIME) -> str:
        """A runtime of ``entry_point`` with AWS's shortest idle timeout; its ARN."""
        created = self.control.create_agent_runtime(
            agentRuntimeName=f"ping_{uuid.uuid4().hex[:12]}", roleArn=ROLE,
            agentRuntimeArtifact={"codeConfiguration": {
                "code": {"s3": {"bucket": "agentcore-local", "prefix": SERVERS}}, "runtime": "PYTHON_3_11",
                "entryPoint": [entry_point]}},
            lifecycleConfiguration={"idleRuntimeSessionTimeout": IDLE, "maxLifetime": max_lifetime},
            **({"environmentVariables": environment} if environment else {}))
        return created["agentRuntimeArn"]

    def invoke(self, arn: str, session: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = self.data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session,
                                                payload=json.dumps(payload))
        return json.loads(answer["response"].read())

    def ended(self, session: str, timeout: float = 60) -> str:
        """Wait for the session's end and return why."""
        return eventually(lambda: next((detail for state, detail in reversed(self.states(session))
                                        if state == "ended"), None), timeout=timeout, what=f"the end of {session}")


@pytest.fixture(scope="module", params=PING_RULES)
def emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator of its own per rule, chosen with ``--ping-rule``, at the test time scale."""
    rule: str = request.param
    tmp = tmp_path_factory.mktemp(f"ping-{rule}")
    settings = config.load(env={}, time_scale=TEST_TIME_SCALE, artifacts_dir=tmp / "artifacts",
                           logs_dir=tmp / "logs", state_dir=tmp / "state", max_epochs=500)
    process = ServerProcess(EMULATOR_SCRIPT, "--db", str(tmp / "memory.db"), "--ping-rule", rule,
                            port=free_port(), settings=settings, name=f"emulator-{rule}").start()
    clients = {service: boto3.client(service, endpoint_url=process.base_url, region_name="us-east-1",
                                      aws_access_key_id="local", aws_secret_access_key="local")
               for service in ("bedrock-agentcore-control", "bedrock-agentcore")}
    try:
        yield Emulator(rule, process, clients["bedrock-agentcore-control"], clients["bedrock-agentcore"])
    finally:
        process.stop()


def new_session() -> str:
    return f"ping-test-{uuid.uuid4()}"


def test_the_report_names_the_rule_in_force(emulator: Emulator) -> None:
    assert emulator.report()["pingRule"] == emulator.rule


def test_healthy_busy_without_the_field(emulator: Emulator) -> None:
    """Measured: ended at the idle timeout mid-work, its work lost. Documented: kept until the work ends."""
    arn, session = emulator.deploy("handwritten_ping.py", {"PING_STYLE": "status_only"}), new_session()
    started = emulator.invoke(arn, session, {"action": "train", "model_name": "no-field", "epochs": TRAINING_EPOCHS})
    assert started["status"] == "running"
    assert emulator.ended(session) == "idle timeout"
    states = [state for state, _ in emulator.states(session)]
    if emulator.rule == "measured":
        assert states == ["starting", "Healthy", "HealthyBusy", "ended"], "ended while busy: the training is lost"
    else:
        assert states == ["starting", "Healthy", "HealthyBusy", "Healthy", "ended"], "busy kept it, then idle"


def test_a_time_stamped_on_every_ping_keeps_a_session_until_its_maximum_lifetime(emulator: Emulator) -> None:
    arn = emulator.deploy("handwritten_ping.py", {"PING_STYLE": "stamped_every_ping"}, max_lifetime=4 * IDLE)
    session = new_session()
    emulator.invoke(arn, session, {"action": "status"})
    assert emulator.ended(session) == "max lifetime reached"
    assert [state for state, _ in emulator.states(session)] == ["starting", "Healthy", "ended"], "never busy"


@pytest.mark.parametrize(("entry_point", "environment"), [
    ("runtime_agent.py", None),  # BedrockAgentCoreApp
    ("handwritten_ping.py", {"PING_STYLE": "stamped_at_change"}),  # the same by hand
], ids=["BedrockAgentCoreApp", "stamped_at_change"])
def test_the_time_of_the_last_status_change_keeps_a_busy_session_and_lets_an_idle_one_go(
    emulator: Emulator, entry_point: str, environment: dict[str, str] | None
) -> None:
    arn, session = emulator.deploy(entry_point, environment), new_session()
    started = emulator.invoke(arn, session, {"action": "train", "model_name": "right", "epochs": TRAINING_EPOCHS})
    assert started["status"] == "running"
    assert emulator.ended(session) == "idle timeout"
    assert [state for state, _ in emulator.states(session)] == [
        "starting", "Healthy", "HealthyBusy", "Healthy", "ended"]  # ready, training (kept), done, idle too long


def test_a_stuck_busy_session_is_kept_until_the_caller_stops_it(emulator: Emulator) -> None:
    """Work that never ends keeps /ping busy; the caller's StopRuntimeSession ends the session (and the work)."""
    arn, session = emulator.deploy("handwritten_ping.py", {"PING_STYLE": "stamped_at_change"}), new_session()
    stuck_job = {key: value for key, value in emulator.invoke(arn, session, {"action": "stuck"}).items()
                 if key != "pid"}
    eventually(lambda: next((s for s in emulator.report()["sessions"] if s["sessionId"] == session
                             and s["sinceInvocationSeconds"] > s["idleTimeoutSeconds"]), None),
               timeout=30, what="the stuck session to outlive its idle timeout")
    assert emulator.invoke(arn, session, {"action": "status"})["jobs"] == [stuck_job]  # still "running"
    emulator.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
    assert emulator.states(session)[-1] == ("ended", "stopped by StopRuntimeSession")


@pytest.mark.parametrize(("answer", "read"), [
    ({"status": "HealthyBusy", "time_of_last_update": 1767225600}, 1767225600.0),
    ({"status": "HealthyBusy", "time_of_last_update": 1767225600.5}, 1767225600.5),
    ({"status": "HealthyBusy"}, None),
    ({"status": "HealthyBusy", "time_of_last_update": "2026-01-01T00:00:00Z"}, None),  # an ISO date: ignored
    ({"status": "HealthyBusy", "time_of_last_update": True}, None),
    ({"status": "HealthyBusy", "time_of_last_update": 10 ** 400}, None),
    ({"status": "HealthyBusy", "time_of_last_update": float("nan")}, None),
])
def test_only_a_number_is_a_time_of_last_update(answer: dict[str, Any], read: float | None) -> None:
    assert _time_of_last_update(answer) == read


def test_the_rule_comes_from_the_flag_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PING_RULE_VARIABLE, raising=False)
    assert emulator_command.parse_args([]).ping_rule == "measured"
    monkeypatch.setenv(PING_RULE_VARIABLE, "documented")
    assert emulator_command.parse_args([]).ping_rule == "documented"
    assert emulator_command.parse_args(["--ping-rule", "measured"]).ping_rule == "measured"
    monkeypatch.setenv(PING_RULE_VARIABLE, "guessed")
    with pytest.raises(SystemExit):
        emulator_command.parse_args([])


def test_the_handwritten_agent_refuses_an_unknown_style() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("handwritten_ping", Path(SERVERS) / "handwritten_ping.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match="PING_STYLE must be one of status_only, stamped_every_ping"):
        module.build_app("guessed")
