"""Notebook 07's whole flow through the Runtime at CI speed (a lesson day of 12 s): the supervisor answers at once
and delegates; the workers' sessions end idle and no session is alive while the investigation waits for the bank;
then the bank wakes a brand-new compliance session, which files the report once (a duplicate delivery files
nothing more); the user comes back to a new supervisor session and is told. The bank takes one lesson day here,
not the lesson's three: a day already outlasts every session (8 lesson hours at most), and the suite is spared
24 s of waiting (the notebook waits the three days)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import LOCAL_HTTP
from investigations_kit import Lab, investigation_lab
from lab_helpers.timeline import runtime_report
from lab_helpers.waiting import eventually


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with investigation_lab(tmp_path_factory.mktemp("flow"), delay_days=1) as made:
        yield made


def test_an_investigation_from_the_question_to_the_report(lab: Lab) -> None:
    # Day 0: "Investigate TechCorp", answered at once with the plan; the work is delegated.
    opened = lab.ask("Investigate TechCorp")
    investigation = opened["investigation_id"]
    assert opened["tools"] == ["open_investigation", "delegate", "delegate"]
    assert "The plan:" in opened["answer"] and investigation in opened["answer"]
    waiting = eventually(lambda: (s := lab.state(investigation)) and s.retrieval_done and s.bank_request and s,
                         60, 0.1, what="the findings and the bank request in Memory",
                         show=lambda: lab.state(investigation).stage)
    assert len(waiting.findings) == 4 and waiting.stage == "waiting for the bank"

    # The bank delivers a day later to a brand-new compliance session, which files the report once.
    filed = eventually(lambda: (s := lab.state(investigation)).report and s, 120, 0.2, what="the report",
                       show=lambda: lab.state(investigation).stage)
    delivery = filed.deliveries[0]
    assert delivery["session_id"] not in {d["session_id"] for d in waiting.delegations.values()}
    assert "Recommendation: file a Suspicious Activity Report" in filed.report["text"]
    assert "Blue Lagoon Holdings Ltd" in filed.report["text"] and filed.report["insiders"]

    # While the bank took its day, no session of any agent was alive: each had ended at its idle timeout.
    transitions = runtime_report()["transitions"]
    woken = next(t["at"] for t in transitions if t["sessionId"] == delivery["session_id"] and t["state"] == "starting")
    before = {t["sessionId"] for t in transitions if t["at"] < woken}
    ended = {t["sessionId"]: t["detail"] for t in transitions if t["state"] == "ended" and t["at"] < woken}
    assert len(before) == 3 and ended == dict.fromkeys(before, "idle timeout"), (before, ended)

    # A duplicate delivery files nothing more.
    request_id = waiting.bank_request["request_id"]
    assert LOCAL_HTTP.post(f"{lab.bank.base_url}/requests/{request_id}/redeliver").status_code == 202
    duplicate = eventually(lambda: (d := lab.bank_request(request_id)["deliveries"])[-1]["status"] == "delivered"
                           and d[-1], 60, 0.1, what="the duplicate delivery")
    assert duplicate["answer"]["status"] == "already filed"
    after = lab.state(investigation)
    assert len(after.reports) == 1 and len(after.deliveries) == 2

    # The user comes back: a new supervisor session answers with the report and its evidence, from Memory.
    told = lab.ask(f"What did we find in {investigation}?")
    assert told["tools"] == ["investigation_status"] and told["investigation_id"] == investigation
    assert filed.report["text"] in told["answer"] and "Evidence from the internal records:" in told["answer"]
    assert "Long-term memory recalls:" in told["answer"], "the findings came back as long-term records"
    assert lab.state(investigation).told, "the supervisor recorded that the user was told"
    ends = [t["detail"] for t in runtime_report()["transitions"] if t["state"] == "ended"]
    assert "max lifetime reached" not in ends, "no session outlived its maximum lifetime"
