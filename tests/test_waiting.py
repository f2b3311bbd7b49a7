"""lab_helpers.waiting: one way to wait, which returns what it waited for and says what it gave up on."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from lab_helpers.waiting import WaitTimeout, eventually, eventually_async


def test_it_returns_the_first_truthy_value() -> None:
    calls = itertools.count(1)
    assert eventually(lambda: (n := next(calls)) >= 3 and f"call {n}", timeout=5, every=0.001) == "call 3"


def test_it_gives_up_naming_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"gave up waiting for the answer after 0.05 s \(last seen: \[\]\)"):
        eventually(lambda: [], timeout=0.05, every=0.01, what="the answer")
    assert issubclass(WaitTimeout, AssertionError)  # fails a notebook cell or a test like an assert


def test_the_async_form_awaits_the_condition() -> None:
    calls = itertools.count(1)

    async def condition() -> int | None:
        await asyncio.sleep(0)
        n = next(calls)
        return n if n >= 2 else None

    assert asyncio.run(eventually_async(condition, timeout=5, every=0.001)) == 2
    with pytest.raises(WaitTimeout, match="the task"):
        asyncio.run(eventually_async(lambda: asyncio.sleep(0, result=0), timeout=0.05, every=0.01, what="the task"))


def test_headless_the_status_line_is_printed_when_it_changes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAB_HEADLESS", "1")
    monkeypatch.setattr("lab_helpers.waiting.REFRESH_SECONDS", 0.0)
    states = iter(["queued", "queued", "running", "running", "done"])
    seen: list[str] = []

    def condition() -> bool:
        seen.append(next(states))
        return seen[-1] == "done"

    eventually(condition, timeout=5, every=0.001, what="the job", show=lambda: seen[-1])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1].split(" (done after")[0] for line in lines] == [
        "waiting for the job: queued", "waiting for the job: running", "waiting for the job: done"]
    assert " (done after " in lines[-1]


def test_a_failing_status_line_never_breaks_the_wait(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_HEADLESS", "1")
    assert eventually(lambda: True, timeout=1, show=lambda: 1 / 0) is True
    assert "status unavailable: division by zero" in capsys.readouterr().out
