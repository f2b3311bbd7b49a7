"""Notebook 07's parts without a server: the lesson clock, the internal records and their checks, the investigation
log read back from paged newest-first events, and the supervisor's offline stand-in and environments."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from investigations_kit import server_module
from lab_helpers.models import OFFLINE_LABEL
from patterns import internal_records, investigation_log as log, lesson_calendar as cal


def test_the_lesson_clock_keeps_a_day_of_at_least_12_seconds() -> None:
    assert cal.day_seconds(1.0) == 60.0 and cal.day_seconds(0.02) == cal.day_seconds(0.0) == 12.0
    clock = cal.lesson_clock(0.02)
    assert cal.real_seconds(cal.IDLE_TIMEOUT, clock) == pytest.approx(0.125)
    assert cal.real_seconds(cal.MAX_LIFETIME, clock) == pytest.approx(4.0)
    assert cal.real_seconds(3 * cal.DAY, clock) == pytest.approx(36.0)
    assert cal.lesson_time(30.0, clock) == "day 2 12:00"
    with pytest.raises(ValueError, match="time_scale must be a number of 0 or more"):
        cal.day_seconds(-1)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    return internal_records.open_records(tmp_path_factory.mktemp("records") / "records.sqlite")


def test_the_records_are_generated_the_same_from_a_seed(records: sqlite3.Connection, tmp_path: Path) -> None:
    again = internal_records.open_records(tmp_path / "again.sqlite")
    dump = "SELECT * FROM transactions ORDER BY id"
    assert [tuple(r) for r in again.execute(dump)] == [tuple(r) for r in records.execute(dump)]
    other = internal_records.open_records(tmp_path / "other.sqlite", seed=8)
    assert [tuple(r) for r in other.execute(dump)] != [tuple(r) for r in records.execute(dump)]


def test_every_check_finds_techcorp_and_no_other_company(records: sqlite3.Connection) -> None:
    findings = {check.name: internal_records.run_check(records, check, "TechCorp")
                for check in internal_records.CHECKS}
    assert all(findings.values()), findings
    structuring = findings["structuring"]["evidence"][0]
    assert (structuring["counterparty"], structuring["transfers"]) == ("Blue Lagoon Holdings Ltd", 14)
    assert 14 * 0.9 * internal_records.REPORTING_THRESHOLD <= structuring["total"] < 14 * 10_000
    assert len(findings["round_trips"]["evidence"]) == 2
    assert "lay dormant until 2024-06-03" in findings["dormant_account"]["summary"]
    others = [(name, check.name) for name in internal_records.companies(records) if name != "TechCorp"
              for check in internal_records.CHECKS if internal_records.run_check(records, check, name)]
    assert others == [] and len(internal_records.companies(records)) == 30


def test_the_bank_knows_who_owns_the_offshore_account(records: sqlite3.Connection) -> None:
    owned = {r["holder"]: r for r in internal_records.bank_records(records, "TechCorp")}
    assert owned["Blue Lagoon Holdings Ltd"]["owner_directs"] == "TechCorp"
    assert owned["Northwind Trading FZE"]["owner_directs"] is None


class PagedMemory:
    """The part of AgentCore Memory the log uses, as AWS answers it: newest first, two events a page, tokens kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = 1000.0

    def create_event(self, **request: Any) -> dict[str, Any]:
        token = request.get("clientToken")
        same = [e for e in self.events if token is not None and e["token"] == token]
        if same:
            return {"event": same[0]}
        self.clock += 1  # every event a later timestamp, whatever the caller's clock says
        event = {"eventId": f"{int(self.clock * 1000):019d}#{len(self.events):08x}", "eventTimestamp": self.clock,
                 "sessionId": request["sessionId"], "payload": request["payload"], "token": token}
        self.events.append(event)
        return {"event": event}

    def list_events(self, sessionId: str, nextToken: str | None = None, **_: Any) -> dict[str, Any]:
        newest_first = [e for e in reversed(self.events) if e["sessionId"] == sessionId]
        start = int(nextToken or 0)
        page = newest_first[start:start + 2]
        return {"events": page, **({"nextToken": str(start + 2)} if start + 2 < len(newest_first) else {})}


def test_reconstruct_reads_every_page_in_order_and_a_token_files_once() -> None:
    memory = PagedMemory()
    ref = log.InvestigationRef("mem-0123456789", "bank/desk", log.new_investigation_id("Tech Corp!"))
    assert ref.investigation_id.startswith("inv-tech-corp-") and log.reconstruct(memory, ref) is None
    log.record(memory, ref, "opened", {"company": "TechCorp", "plan": ["a"]}, by="supervisor")
    log.record(memory, ref, "delegated", {"worker": "retrieval"}, by="supervisor")
    for check in ("structuring", "structuring", "round_trips"):  # a repeated check, written again
        log.record(memory, ref, "finding", {"check": check}, by="retrieval", once_as=f"finding-{check}")
    log.record(memory, ref, "bank_requested", {"request_id": "req-1"}, by="compliance")
    for delivery in ("dlv-1", "dlv-2"):
        log.record(memory, ref, "bank_delivered", {"delivery_id": delivery}, by="compliance")
        log.record(memory, ref, "report_filed", {"text": "report"}, by="compliance", once_as="report",
                   text="The report.")
    state = log.reconstruct(memory, ref)
    assert state is not None and state.company == "TechCorp" and state.stage == "report filed"
    assert [f["check"] for f in state.findings] == ["structuring", "round_trips"]
    assert len(state.deliveries) == 2 and len(state.reports) == 1, "two deliveries, one report"
    assert [e.kind for e in state.entries][:2] == ["opened", "delegated"], "oldest first across pages"
    assert state.summary()["events"] == len(memory.events) == 8


def test_investigation_ids_are_checked_and_found_in_text() -> None:
    assert log.find_investigation_id("what about inv-techcorp-0123456789ab?") == "inv-techcorp-0123456789ab"
    with pytest.raises(ValueError, match="investigation_id must look like"):
        log.check_investigation_id("techcorp")
    ref = log.InvestigationRef("m", "a", "inv-x-0123456789ab")
    assert log.client_token(ref, "report") == log.client_token(ref, "report") != log.client_token(ref, "finding")


def _result(use_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"toolResult": {"toolUseId": use_id, "status": "success",
                                                        "content": [{"text": json.dumps(payload)}]}}]}


def _use(use_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"toolUse": {"toolUseId": use_id, "name": name, "input": tool_input}}]}


def test_the_offline_supervisor_opens_delegates_twice_then_answers_with_the_plan() -> None:
    supervisor = server_module("supervisor_agent")
    model = supervisor.SupervisorOfflineModel()
    tools = ["open_investigation", "delegate", "investigation_status"]
    conversation: list[dict[str, Any]] = [{"role": "user", "content": [{"text": "Investigate TechCorp please"}]}]
    turn = model.respond(conversation, tools)
    assert (turn.tool, turn.tool_input) == ("open_investigation", {"company": "TechCorp"})
    inv = "inv-techcorp-0123456789ab"
    conversation += [_use("1", turn.tool, turn.tool_input),
                     _result("1", {"investigation_id": inv, "company": "TechCorp", "plan": ["check", "ask"]})]
    turn = model.respond(conversation, tools)
    assert (turn.tool, turn.tool_input) == ("delegate", {"investigation_id": inv, "worker": "retrieval"})
    conversation += [_use("2", turn.tool, turn.tool_input), _result("2", {"investigation_id": inv})]
    turn = model.respond(conversation, tools)
    assert (turn.tool, turn.tool_input) == ("delegate", {"investigation_id": inv, "worker": "compliance"})
    conversation += [_use("3", turn.tool, turn.tool_input), _result("3", {"investigation_id": inv})]
    turn = model.respond(conversation, tools)
    assert turn.tool is None and turn.text.startswith(OFFLINE_LABEL) and inv in turn.text and "2. ask" in turn.text

    asked = model.respond([{"role": "user", "content": [{"text": f"What did we find in {inv}?"}]}], tools)
    assert (asked.tool, asked.tool_input) == ("investigation_status", {"investigation_id": inv})
    latest = model.respond([{"role": "user", "content": [{"text": "Any news on the investigation?"}]}], tools)
    assert (latest.tool, latest.tool_input) == ("investigation_status", {"investigation_id": ""})
    assert model.respond([{"role": "user", "content": [{"text": "hello"}]}], tools).tool is None


def test_team_environments_say_what_each_runtime_needs() -> None:
    supervisor = server_module("supervisor_agent")
    common = {"memory_id": "mem-0123456789", "clock": 0.5, "mode": "local"}
    assert supervisor.team_environment("retrieval", **common)["LAB_TIME_SCALE"] == "0.5"
    assert supervisor.team_environment("compliance", bank_url="http://b", **common)["LAB_BANK_URL"] == "http://b"
    aws = supervisor.team_environment("retrieval", **{**common, "mode": "aws"})
    assert "LAB_TIME_SCALE" not in aws and aws["LAB_INTERNAL_DB"].startswith("/tmp/")
    with pytest.raises(ValueError, match="needs bank_url"):
        supervisor.team_environment("compliance", **common)
    with pytest.raises(ValueError, match="worker_arns for retrieval, compliance"):
        supervisor.team_environment("supervisor", **common)
