"""The task board: text table, HTML table, headless printing policy, polling with watch().

A scripted fake session stands in for the MCP server: each ``list_tasks`` call
returns the next task list of a script (the last one repeats), so the tests run
in milliseconds without a server.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from lab_helpers.widgets import TaskBoard

ID_A = "3f1c2a9e-1111-4222-8333-444455556666"
ID_B = "9b8a7c6d-aaaa-4bbb-8ccc-ddddeeeeffff"


def task(task_id: str = ID_A, status: str = "running", progress: int = 7, **extra: Any) -> dict:
    """A task row shaped like the server's ``list_tasks`` / ``check_task_status`` rows."""
    row = {
        "task_id": task_id, "model_name": "spiral-a", "epochs": 20, "status": status,
        "progress": progress, "total": 20, "percent": progress / 20 * 100,
        "message": f"epoch {progress}/20: train acc 0.81", "age_seconds": 3.2,
        "submitted_at": "2026-11-22T04:30:00+00:00", "started_at": "2026-11-22T04:30:01+00:00",
        "finished_at": None, "error": None,
    }
    row.update(extra)
    return row


class FakeSession:
    """Answers ``list_tasks`` with successive scripted task lists; records every call."""

    def __init__(self, *script: list[dict], error: str | None = None) -> None:
        self.script = list(script)
        self.error = error
        self.calls: list[tuple[str, dict]] = []

    async def call_tool(self, name: str, arguments: dict) -> SimpleNamespace:
        self.calls.append((name, arguments))
        if self.error is not None:
            return SimpleNamespace(is_error=True, structured_content=None, content=[SimpleNamespace(text=self.error)])
        tasks = self.script[min(len(self.calls), len(self.script)) - 1]
        return SimpleNamespace(is_error=False, structured_content={"tasks": tasks}, content=[])


def widget_html(board: TaskBoard) -> str:
    assert board.widget is not None
    return board.widget.children[1].value


# -- construction ------------------------------------------------------------------


@pytest.mark.parametrize("title", ["", "  ", None, 7])
def test_title_must_be_a_non_empty_string(title) -> None:
    with pytest.raises(ValueError, match="title"):
        TaskBoard(title, headless=True)


def test_headless_none_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HEADLESS", "1")
    board = TaskBoard()
    assert board.headless is True and board.widget is None
    assert TaskBoard(headless=False).widget is not None


# -- text --------------------------------------------------------------------------


def test_text_has_aligned_columns_one_line_per_task() -> None:
    board = TaskBoard(headless=True)
    board.update([
        task(ID_A, "running", 7, message="epoch 7/20:\ntrain acc 0.81", age_seconds=3.25),
        task(ID_B, "failed", 3, model_name="moons-long-name", error="CUDA out of memory\nat epoch 3", age_seconds=12),
    ])
    lines = board.text().splitlines()
    assert len(lines) == 3  # header + one line per task, multi-line messages flattened
    header, first, second = lines
    assert header.split() == ["ID", "MODEL", "STATUS", "PROGRESS", "AGE", "MESSAGE"]
    assert first.split("  ")[0] == "3f1c2a9e" and second.startswith("9b8a7c6d  ")
    for column, values in (("MODEL", ("spiral-a", "moons-long-name")), ("STATUS", ("running", "failed")),
                           ("PROGRESS", ("7/20 (35%)", "3/20 (15%)")), ("AGE", ("3.2s", "12.0s"))):
        at = header.index(column)
        assert first[at:].startswith(values[0]) and second[at:].startswith(values[1]), column
    at = header.index("MESSAGE")
    assert first[at:] == "epoch 7/20: train acc 0.81"
    assert second[at:] == "CUDA out of memory at epoch 3"  # the error, not the message, for failed tasks


def test_text_without_tasks_is_just_the_header() -> None:
    board = TaskBoard(headless=True)
    board.update([])
    assert board.text() == "ID  MODEL  STATUS  PROGRESS  AGE  MESSAGE"


def test_odd_rows_show_question_marks_and_never_raise(capsys: pytest.CaptureFixture[str]) -> None:
    odd = [
        {},
        None,
        {"task_id": 12345, "status": "running", "progress": None, "total": None, "percent": None, "age_seconds": "x"},
        {"task_id": ID_A, "status": "failed", "progress": math.nan, "total": 0, "error": None, "message": None},
        task(ID_B, progress=5, total=None, percent=None),
    ]
    for headless in (True, False):
        board = TaskBoard(headless=headless)
        board.update(odd)  # type: ignore[list-item]
        lines = board.text().splitlines()
        assert len(lines) == 6
        assert lines[1].split() == ["?", "?", "?", "?", "?"]
        assert lines[3].split()[:4] == ["12345", "?", "running", "?"]
        assert lines[4].split()[:4] == ["3f1c2a9e", "?", "failed", "nan/0"]
        assert "5 (no total)" in lines[5]
    assert "[Tasks] poll 1: 5 tasks" in capsys.readouterr().out


# -- widget ------------------------------------------------------------------------


def test_widget_escapes_messages_and_errors() -> None:
    board = TaskBoard(headless=False)
    board.update([
        task(ID_A, message="<script>alert('x')</script>"),
        task(ID_B, "failed", error="bad <b>tag</b> & more", model_name="<img>"),
    ])
    value = widget_html(board)
    assert "<script>" not in value and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in value
    assert "bad &lt;b&gt;tag&lt;/b&gt; &amp; more" in value and "&lt;img&gt;" in value


def test_widget_colors_statuses_and_draws_bars() -> None:
    board = TaskBoard(headless=False)
    statuses = {"running": "blue", "completed": "green", "failed": "red", "cancelled": "grey", "submitted": "black",
                "queued": "darkorange"}
    board.update([task(f"{i:08d}-x", status, progress=i * 4) for i, status in enumerate(statuses)])
    value = widget_html(board)
    for status, color in statuses.items():
        assert f"<span style='color:{color}'>{status}</span>" in value
    assert "<progress value='4' max='20'></progress> 4/20 (20%)" in value
    assert value.count("<tr>") == 1 + len(statuses)
    assert re.findall(r"<code>(\w+)</code>", value) == [f"{i:08d}" for i in range(len(statuses))]


def test_widget_short_columns_never_wrap_and_the_message_takes_the_rest() -> None:
    board = TaskBoard(headless=False)
    board.update([task(ID_A, "failed", 3, error="diverged " * 30)])
    value = widget_html(board)
    cells = re.findall(r"<td style='([^']*)'>", value)
    assert len(cells) == 6
    assert all("white-space:nowrap" in style for style in cells[:5]), "id, model, status, progress, age: one line"
    assert "white-space:normal" in cells[5] and "min-width" in cells[5], "the message wraps, at a readable width"
    assert "width:100%" in value


def test_widget_rerenders_on_every_update_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    board = TaskBoard(headless=False)
    assert "(no tasks)" in widget_html(board)
    seen = set()
    for epoch in range(1, 6):
        board.update([task(progress=epoch)])
        seen.add(widget_html(board))
        assert f"{epoch}/20 ({epoch * 5}%)" in widget_html(board)
    assert len(seen) == 5 and board.polls == 5
    assert capsys.readouterr().out == ""


def test_display_only_in_widget_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[object] = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    TaskBoard(headless=True)._ipython_display_()
    board = TaskBoard(headless=False)
    board._ipython_display_()
    assert shown == [board.widget]


# -- headless printing -------------------------------------------------------------


def test_headless_prints_only_when_tasks_or_statuses_change(capsys: pytest.CaptureFixture[str]) -> None:
    board = TaskBoard("Training", headless=True)
    board.update([task(ID_A, "submitted", 0)])  # print 1: first poll
    for epoch in range(1, 100):
        board.update([task(ID_A, "running", epoch % 20, age_seconds=epoch)])  # print 2 only at epoch 1
    board.update([task(ID_B, "queued", 0), task(ID_A, "running", 19)])  # print 3: a task appeared, queued
    board.update([task(ID_B, "running", 1), task(ID_A, "running", 19)])  # print 4: status change
    board.update([task(ID_B, "running", 2), task(ID_A, "completed", 20)])  # print 5
    board.update([task(ID_B, "running", 3, message="new message")])  # print 6: a task disappeared
    board.update([task(ID_B, "running", 4)])
    out = capsys.readouterr().out
    headers = re.findall(r"^\[Training\] poll (\d+): (\d+) tasks$", out, re.MULTILINE)
    assert headers == [("1", "1"), ("2", "1"), ("101", "2"), ("102", "2"), ("103", "2"), ("104", "1")]
    assert board.polls == 105
    assert out.count("\nID  ") == 6  # each print is the whole table
    assert re.search(r"^\w{8}\s+spiral-a\s+queued\s", out, re.MULTILINE), "a queued task shows as queued"
    assert "completed" in out and "3/20 (15%)" in out


def test_concurrent_updates_do_not_interleave(capsys: pytest.CaptureFixture[str]) -> None:
    board = TaskBoard("T", headless=True)
    statuses = ["submitted", "queued", "running", "completed", "failed", "cancelled"]

    def worker(n: int) -> None:
        for i in range(40):
            board.update([task(ID_A, statuses[(n + i) % 6]), task(ID_B, statuses[(n * 3 + i) % 6])])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = capsys.readouterr().out.splitlines()
    assert board.polls == 320
    assert len(lines) % 4 == 0 and len(lines) >= 4
    polls = []
    for at in range(0, len(lines), 4):  # each block: poll line, header, two task lines
        block = lines[at:at + 4]
        match = re.fullmatch(r"\[T\] poll (\d+): 2 tasks", block[0])
        assert match, block
        polls.append(int(match.group(1)))
        assert block[1].startswith("ID  ") and block[2].startswith("3f1c2a9e") and block[3].startswith("9b8a7c6d")
    assert polls == sorted(set(polls))


# -- polling -----------------------------------------------------------------------


def test_fetch_and_refresh_return_the_server_rows() -> None:
    rows = [task(ID_A), task(ID_B, "completed", 20)]
    session = FakeSession(rows)
    board = TaskBoard(headless=False)
    assert asyncio.run(TaskBoard.fetch(session)) == rows
    assert asyncio.run(board.refresh(session)) == rows
    assert board.last_tasks == rows and board.polls == 1
    assert session.calls == [("list_tasks", {}), ("list_tasks", {})]


def test_fetch_raises_the_tool_error() -> None:
    session = FakeSession(error="unknown tool: list_tasks")
    board = TaskBoard(headless=True)
    with pytest.raises(RuntimeError, match="unknown tool: list_tasks"):
        asyncio.run(board.refresh(session))
    assert board.polls == 0


def test_watch_returns_when_all_tasks_finished(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession(
        [],  # nothing submitted yet: an empty board is not "all finished"
        [task(ID_A, "running", 3), task(ID_B, "submitted", 0)],
        [task(ID_A, "running", 9), task(ID_B, "running", 1)],
        [task(ID_A, "completed", 20), task(ID_B, "failed", 2, error="boom")],
        [task(ID_A, "completed", 20)],
    )
    board = TaskBoard("W", headless=True)
    final = asyncio.run(board.watch(session, interval=0.001, timeout=5))
    assert [t["status"] for t in final] == ["completed", "failed"]
    assert board.polls == 4 and len(session.calls) == 4
    assert board.last_tasks == final
    assert "boom" in capsys.readouterr().out


def test_watch_honours_until() -> None:
    session = FakeSession([task(progress=1)], [task(progress=2)], [task(progress=12)], [task(progress=20)])
    board = TaskBoard(headless=True)
    tasks = asyncio.run(board.watch(session, interval=0.001, until=lambda rows: rows[0]["progress"] >= 10))
    assert tasks[0]["progress"] == 12 and board.polls == 3


def test_watch_times_out_with_the_table_in_the_message() -> None:
    session = FakeSession([task(ID_A, "running", 7), task(ID_B, "completed", 20)])
    board = TaskBoard("Stuck", headless=False)
    with pytest.raises(TimeoutError) as caught:
        asyncio.run(board.watch(session, interval=0.01, timeout=0.05))
    message = str(caught.value)
    assert message.startswith("Stuck: not done after 0.05s")
    assert board.text() in message and "3f1c2a9e" in message and "running" in message
    assert 2 <= board.polls <= 8


def test_watch_times_out_when_the_server_hangs() -> None:
    class Hanging:
        async def call_tool(self, name: str, arguments: dict) -> None:
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError, match="0 polls"):
        asyncio.run(TaskBoard(headless=True).watch(Hanging(), timeout=0.05))


@pytest.mark.parametrize(("name", "value"), [("interval", 0), ("interval", -1), ("interval", math.nan),
                                             ("timeout", 0), ("timeout", -0.5), ("timeout", True)])
def test_watch_rejects_non_positive_interval_and_timeout(name: str, value: float) -> None:
    session = FakeSession([task(status="completed")])
    with pytest.raises(ValueError, match=name):
        asyncio.run(TaskBoard(headless=True).watch(session, **{name: value}))
    assert session.calls == []
