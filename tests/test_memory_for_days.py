"""servers/memory_for_days.py: namespaces from the strategies, what a new session recalls, the offline stand-in's
answers; and day 0 -> day 3 in the emulator with the rules extractor (extraction asynchronous: day 3 waits for it)."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from conftest import LocalAgentCore, local_agentcore
from lab_helpers.models import OFFLINE_LABEL
from lab_helpers.processes import SERVERS_DIR
from lab_helpers.waiting import eventually

FACT = "The user is investigating the checkout latency regression in the payments service."


@pytest.fixture(scope="module")
def days() -> ModuleType:
    spec = importlib.util.spec_from_file_location("memory_for_days", SERVERS_DIR / "memory_for_days.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgentCore]:
    with local_agentcore(tmp_path_factory.mktemp("days"), emulator_extractor="rules") as local:
        yield local


@pytest.fixture(scope="module")
def memory(lt: LocalAgentCore, days: ModuleType) -> dict[str, Any]:
    control = boto3.client("bedrock-agentcore-control", region_name=lt.settings.region)
    memory_id = control.create_memory(name="days_test", eventExpiryDuration=7,
                                      memoryStrategies=days.STRATEGIES)["memory"]["id"]
    return eventually(lambda: (m := control.get_memory(memoryId=memory_id)["memory"])["status"] == "ACTIVE" and m,
                      timeout=30, what="the memory ACTIVE")


def test_namespaces_and_what_a_new_session_searches(days: ModuleType, memory: dict[str, Any]) -> None:
    assert days.namespaces(memory, "t/ana", "s-1") == {
        "facts": "/tenants/t/ana/facts/", "summaries": "/tenants/t/ana/summaries/s-1/",
        "preferences": "/tenants/t/ana/preferences/"}
    assert sorted(days.retrieval_config(memory)) == [
        "/tenants/{actorId}/facts/", "/tenants/{actorId}/preferences/", "/tenants/{actorId}/summaries/"]


def test_the_offline_stand_in_acknowledges_statements_and_quotes_recalled_memory(days: ModuleType) -> None:
    model = days.RecallingOfflineModel()
    context = {"text": "<user_context>fact one\nfact two</user_context>"}
    question = [{"role": "user", "content": [context, {"text": "Where was I?"}]}]
    assert days.recalled(question) == ["fact one", "fact two"]
    assert model.respond(question, []).text == OFFLINE_LABEL + "From long-term memory:\n- fact one\n- fact two"
    assert model.respond([{"role": "user", "content": [context, {"text": "I like tea."}]}], []).text == (
        OFFLINE_LABEL + "Noted.")
    assert "nothing" in model.respond([{"role": "user", "content": [{"text": "Where was I?"}]}], []).text


def test_day_3_recalls_day_0_from_long_term_memory_only(lt: LocalAgentCore, days: ModuleType,
                                                        memory: dict[str, Any]) -> None:
    day_0, day_3 = f"day-0-{uuid.uuid4()}", f"day-3-{uuid.uuid4()}"
    days.answer("Hi! I am investigating the checkout latency regression in the payments service.",
                memory["id"], "t/ana", day_0)
    days.answer("I prefer short answers.", memory["id"], "t/ana", day_0)
    data = boto3.client("bedrock-agentcore", region_name=lt.settings.region)

    def long_term() -> set[str]:
        return {r["content"]["text"] for kind in ("facts", "preferences") for r in data.list_memory_records(
            memoryId=memory["id"], namespace=f"/tenants/t/ana/{kind}/")["memoryRecordSummaries"]}

    eventually(lambda: {FACT, "The user prefers short answers."} <= long_term(), 30, 0.05,
               what="day 0's fact and preference, extracted asynchronously", show=lambda: str(long_term()))
    reply = days.answer("Where did I get to with the checkout latency investigation?", memory["id"], "t/ana", day_3)
    assert reply["restored_messages"] == 0
    assert FACT in reply["recalled"] and "The user prefers short answers." in reply["recalled"]
    assert FACT in reply["answer"]
    other = days.answer("Where did I get to with the checkout latency investigation?", memory["id"], "t/bo", day_3)
    assert not any("payments service" in text for text in other["recalled"]), "another actor recalls none of Ana's"
