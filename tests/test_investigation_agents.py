"""Notebook 07's agents, offline: each through ``/invocations`` (a process of its own) and through the Runtime; a
worker started with nothing in it resumes from Memory alone; a compliance session killed (-9) mid-review is
delivered to again by the bank, and the report is filed exactly once. The bank's own delay is 30 lesson days
here: only the test's redelivery reaches the compliance worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from conftest import LOCAL_HTTP
from investigations_kit import CLOCK, Lab, investigation_lab, kill_session, server_module
from lab_helpers.processes import ServerProcess
from lab_helpers.timeline import ended_because, runtime_report
from lab_helpers.waiting import eventually
from patterns.investigation_log import Investigation

#: One review step lasts an hour of lesson time (0.5 s here): a kill after the first step lands mid-review.
REVIEW_STEP_MINUTES = "60"
UNKNOWN = "inv-nobody-0123456789ab"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with investigation_lab(tmp_path_factory.mktemp("agents"), delay_days=30,
                           extra={"compliance": {"LAB_REVIEW_STEP_MINUTES": REVIEW_STEP_MINUTES}}) as made:
        yield made


@pytest.fixture(scope="module")
def direct(lab: Lab) -> Iterator[dict[str, ServerProcess]]:
    """The three agents as plain processes (``/invocations`` and ``/ping``), configured as their runtimes are."""
    supervisor = server_module("supervisor_agent")
    settings = replace(lab.local.settings, time_scale=CLOCK)
    arns = {name: deployment.arn for name, deployment in lab.team.items()}
    started: dict[str, ServerProcess] = {}
    try:
        for name, script in supervisor.TEAM.items():
            environment = supervisor.team_environment(name, memory_id=lab.memory_id, clock=CLOCK, mode="local",
                                                      bank_url=lab.bank.base_url, worker_arns=arns)
            started[name] = ServerProcess(script, settings=settings, ready_path="/ping", name=f"direct-{name}",
                                          env={**environment, "LAB_REVIEW_STEP_MINUTES": REVIEW_STEP_MINUTES}).start()
        yield started
    finally:
        for process in started.values():
            process.stop()


def post(process: ServerProcess, payload: Any) -> tuple[int, Any]:
    reply = LOCAL_HTTP.post(f"{process.base_url}/invocations", json=payload, timeout=30,
                            headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "direct-" + "0" * 32})
    return reply.status_code, reply.json()


@pytest.mark.parametrize(("agent", "payload", "reason"), [
    ("supervisor", [1], "the payload must be a JSON object"),
    ("supervisor", {"prompt": " "}, "the invocation needs 'prompt'"),
    ("retrieval", {"action": "train"}, "unknown action 'train'"),
    ("retrieval", {"action": "investigate", "company": "TechCorp", "investigation_id": "x"},
     "investigation_id must look like"),
    ("retrieval", {"action": "investigate", "company": "TechCorp", "investigation_id": UNKNOWN},
     f"no investigation {UNKNOWN}"),
    ("compliance", {"action": "request", "company": "TechCorp"}, "'callback_arn' must be a non-empty string"),
    ("compliance", {"action": "delivery", "investigation_id": UNKNOWN, "request_id": "req-1",
                    "delivery_id": "dlv-1", "records": []}, f"unknown investigation {UNKNOWN}"),
    ("compliance", {"action": "delivery", "request_id": "req-1", "delivery_id": "dlv-1", "records": "none"},
     "'records' must be a list"),
])
def test_a_bad_payload_is_a_400_with_the_reason(direct: dict[str, ServerProcess], agent: str, payload: Any,
                                                reason: str) -> None:
    status, answer = post(direct[agent], payload)
    assert status == 400 and reason in answer["error"], answer


@pytest.fixture(scope="module")
def opened(lab: Lab, direct: dict[str, ServerProcess]) -> tuple[str, Investigation]:
    """An investigation the supervisor process opened, once its workers (on the Runtime) have done their part."""
    status, answer = post(direct["supervisor"], {"prompt": "Investigate TechCorp"})
    assert status == 200 and answer["tools"] == ["open_investigation", "delegate", "delegate"], answer
    investigation = answer["investigation_id"]
    assert f"Opened investigation {investigation} of TechCorp" in answer["answer"]
    state = eventually(lambda: (s := lab.state(investigation)) and s.retrieval_done and s.bank_request and s,
                       60, 0.1, what="the findings and the bank request in Memory",
                       show=lambda: str(lab.state(investigation).summary()))
    return investigation, state


def test_the_supervisor_delegates_and_each_worker_session_ends_idle(lab: Lab, opened: tuple[str, Investigation]
                                                                    ) -> None:
    investigation, state = opened
    assert sorted(state.delegations) == ["compliance", "retrieval"]
    assert all(d["status"] == "accepted" for d in state.delegations.values())
    assert [f["check"] for f in state.findings] == ["structuring", "round_trips", "dormant_account",
                                                    "high_risk_jurisdictions"]
    assert state.bank_request["request_id"] == lab.bank_request(state.bank_request["request_id"])["request_id"]
    for worker, delegation in state.delegations.items():  # each worker got a session of its own, ended idle
        eventually(lambda: ended_because(runtime_report(), delegation["session_id"]), 30, 0.1,
                   what=f"the {worker} session to end")
        assert ended_because(runtime_report(), delegation["session_id"]) == "idle timeout"


def test_workers_started_with_nothing_resume_from_memory_and_repeat_nothing(
        lab: Lab, direct: dict[str, ServerProcess], opened: tuple[str, Investigation]) -> None:
    investigation, state = opened
    common = {"investigation_id": investigation, "company": "TechCorp"}
    status, again = post(direct["retrieval"], {"action": "investigate", **common})
    assert status == 200 and again["status"] == "already done" and again["findings"] == 4
    status, asked = post(direct["compliance"], {"action": "request", "callback_arn": lab.team["compliance"].arn,
                                                **common})
    assert status == 200 and asked["status"] == "already requested"
    assert asked["request_id"] == state.bank_request["request_id"]
    assert len(lab.state(investigation).entries) == len(state.entries), "nothing written twice"


def test_a_compliance_session_killed_mid_review_is_retried_and_files_once(
        lab: Lab, opened: tuple[str, Investigation]) -> None:
    investigation, state = opened
    request_id = state.bank_request["request_id"]
    assert LOCAL_HTTP.post(f"{lab.bank.base_url}/requests/{request_id}/redeliver").status_code == 202
    step = eventually(lambda: (s := lab.state(investigation)).review_steps and s.review_steps[0], 60, 0.02,
                      what="the first review step in Memory")
    victim = next(s for s in lab.sessions("compliance") if s["sessionId"] == step["session_id"])
    kill_session(victim)
    done = eventually(lambda: (s := lab.state(investigation)).report and s, 60, 0.1, what="the report",
                      show=lambda: lab.state(investigation).stage)
    assert len(done.reports) == 1 and done.report["delivery_id"] == step["delivery_id"]
    reviewers = [s["session_id"] for s in done.review_steps]
    assert reviewers[0] == victim["sessionId"] and reviewers.count(victim["sessionId"]) < 4, "killed mid-review"
    assert len(set(reviewers)) == 2, "the bank's retry reviewed again in a new session"
    assert [d["delivery_id"] for d in done.deliveries] == [step["delivery_id"]], "one delivery, tried twice"
    delivery = eventually(lambda: (d := lab.bank_request(request_id)["deliveries"][-1])["status"] == "delivered"
                          and d, 30, 0.1, what="the bank to record the delivery")
    assert delivery["attempts"] == 2 and delivery["answer"]["status"] == "filed"
    assert delivery["answer"]["resumed_from_memory"]["stage"] == "bank records delivered, under review"
    assert ended_because(runtime_report(), victim["sessionId"]).startswith("crashed")
