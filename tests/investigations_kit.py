"""What notebook 07's tests share: an emulator, a memory with notebook 06's strategies, the bank and the team.

Not a test module. :func:`investigation_lab` starts a private emulator (as a notebook does, through
``use_agentcore``), creates a memory with ``servers/memory_for_days.py``'s ``STRATEGIES``, starts the bank on the
lesson clock and deploys the three runtimes with ``supervisor_agent.deploy_team``: one :class:`Lab` per test
module, shared by its tests.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from conftest import LOCAL_HTTP, LocalAgentCore, local_agentcore
from lab_helpers import deploy
from lab_helpers.processes import SERVERS_DIR, ServerProcess
from lab_helpers.timeline import runtime_report
from lab_helpers.waiting import eventually
from patterns import investigation_log as log
from patterns.lesson_calendar import lesson_clock

#: The lesson clock at CI's time scale: a lesson day of 12 s.
CLOCK = lesson_clock(0.02)


def server_module(name: str) -> ModuleType:
    """A module of ``servers/`` imported in the test process (its ``app`` is built, nothing is served), once."""
    if name in sys.modules:
        return sys.modules[name]
    if str(SERVERS_DIR) not in sys.path:
        sys.path.insert(0, str(SERVERS_DIR))
    spec = importlib.util.spec_from_file_location(name, SERVERS_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Lab:
    """One emulator, its memory, the bank and the deployed team."""

    local: LocalAgentCore
    memory_id: str
    bank: ServerProcess
    team: dict[str, deploy.Deployment]
    data: Any  # a bedrock-agentcore client

    @property
    def actor(self) -> str:
        return log.DEFAULT_ACTOR

    def ref(self, investigation_id: str) -> log.InvestigationRef:
        return log.InvestigationRef(self.memory_id, self.actor, investigation_id)

    def state(self, investigation_id: str) -> log.Investigation | None:
        return log.reconstruct(self.data, self.ref(investigation_id))

    def ask(self, prompt: str) -> dict[str, Any]:
        """One user turn to the supervisor, in a new session (a new microVM)."""
        answer = deploy.invoke(self.team["supervisor"].arn, {"prompt": prompt}, deploy.new_session_id(),
                               settings=self.local.settings)
        assert isinstance(answer, dict), answer
        return answer

    def bank_request(self, request_id: str) -> dict[str, Any]:
        return LOCAL_HTTP.get(f"{self.bank.base_url}/requests/{request_id}").json()

    def sessions(self, worker: str) -> list[dict[str, Any]]:
        """The live sessions of one runtime of the team."""
        runtime_id = self.team[worker].runtime_id
        return [s for s in runtime_report()["sessions"] if s["runtimeId"] == runtime_id]


def create_memory(region: str, name: str) -> str:
    """A memory with notebook 06's strategies, ACTIVE."""
    strategies = server_module("memory_for_days").STRATEGIES
    control = boto3.client("bedrock-agentcore-control", region_name=region)
    memory_id = control.create_memory(name=name, eventExpiryDuration=30, memoryStrategies=strategies)["memory"]["id"]
    eventually(lambda: control.get_memory(memoryId=memory_id)["memory"]["status"] == "ACTIVE", 30,
               what="the memory ACTIVE")
    return memory_id


def start_bank(settings: Any, directory: Path, delay_days: float) -> ServerProcess:
    """The bank on the lesson clock, its queue in ``directory``."""
    return ServerProcess("bank_service.py", "--db", str(directory / "bank.sqlite"), "--delay-days", str(delay_days),
                         settings=replace(settings, time_scale=CLOCK), ready_path="/health", name="bank").start()


def deploy_team(supervisor: ModuleType, memory_id: str, bank_url: str, settings: Any,
                extra: dict[str, dict[str, str]]) -> dict[str, deploy.Deployment]:
    """The three runtimes, workers first, with ``team_environment`` (plus ``extra`` variables per runtime)."""
    made: dict[str, deploy.Deployment] = {}
    for name, script in supervisor.TEAM.items():
        environment = supervisor.team_environment(
            name, memory_id=memory_id, clock=CLOCK, mode=settings.mode, bank_url=bank_url,
            worker_arns={worker: made[worker].arn for worker in made})
        made[name] = deploy.deploy(f"lesson07_{name}", SERVERS_DIR, script, settings=settings,
                                   environment={**environment, **extra.get(name, {})})
    return made


@contextmanager
def investigation_lab(tmp: Path, *, delay_days: float = 0.5,
                      extra: dict[str, dict[str, str]] | None = None) -> Iterator[Lab]:
    """Emulator, memory, bank and team (runtimes deployed, no session started yet); stopped afterwards."""
    supervisor = server_module("supervisor_agent")
    with local_agentcore(tmp, emulator_extractor="rules") as local:
        settings = local.settings  # its state_dir (in tmp) holds the generated internal records
        memory_id = create_memory(settings.region, "lesson07_test")
        bank = start_bank(settings, tmp, delay_days)
        try:
            team = deploy_team(supervisor, memory_id, bank.base_url, settings, extra or {})
            yield Lab(local, memory_id, bank, team, log.memory_client(settings.region))
        finally:
            bank.stop()


def kill_session(session: dict[str, Any]) -> None:
    """kill -9 a runtime session's process (the microVM dies): no clean-up, nothing saved."""
    os.kill(session["pid"], signal.SIGKILL)
