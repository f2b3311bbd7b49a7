"""The progress panel: text rendering, widget state, headless lines, thread safety, MCP wiring.

ipywidgets 8 widgets can be created and updated outside a kernel (there is no comm
to send to, so updates only change the Python-side state), which is what the
widget-mode tests inspect.
"""

from __future__ import annotations

import asyncio
import math
import threading

import mcp
import mcp.types
import pytest
from mcp.server.mcpserver import Context, MCPServer

from lab_helpers.widgets import ProgressPanel, format_progress


def widget_panel(**kwargs: object) -> ProgressPanel:
    return ProgressPanel("Training", headless=False, **kwargs)  # type: ignore[arg-type]


# -- format_progress ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "total", "message", "expected"),
    [
        (3, 10, "epoch 3/10: loss 0.5", "3/10 (30%) epoch 3/10: loss 0.5"),
        (3.0, 10.0, None, "3/10 (30%)"),
        (1, 3, "", "1/3 (33%)"),
        (0.25, 1, "quarter", "0.25/1 (25%) quarter"),
        (7, None, "message", "7 (no total) message"),
        (7, None, None, "7 (no total)"),
        (5, 0, "zero total", "5/0 (?%) zero total"),
        (15, 10, None, "15/10 (150%)"),
        (-1, 10, None, "-1/10 (-10%)"),
        (2, 4, "line one\nline two\r\nthree", "2/4 (50%) line one line two three"),
    ],
)
def test_format_progress(progress, total, message, expected) -> None:
    assert format_progress(progress, total, message) == expected


def test_format_progress_odd_numbers_never_raise() -> None:
    assert format_progress(math.nan, 10, None) == "nan/10 (nan%)"
    assert format_progress(math.inf, None, None) == "inf (no total)"
    assert format_progress(1, math.nan, None) == "1/nan (?%)"
    assert format_progress(1e300, 10, None) == "1e+300/10 (1e+301%)"
    assert "\n" not in format_progress("??", "x", "a\nb")  # type: ignore[arg-type]


# -- construction ------------------------------------------------------------------


@pytest.mark.parametrize("title", ["", "   ", None, 3])
def test_title_must_be_a_non_empty_string(title) -> None:
    with pytest.raises(ValueError, match="title"):
        ProgressPanel(title, headless=True)


@pytest.mark.parametrize("lines", [0, -1, 2.5, True])
def test_max_log_lines_must_be_positive(lines) -> None:
    with pytest.raises(ValueError, match="max_log_lines"):
        ProgressPanel("x", headless=True, max_log_lines=lines)


def test_headless_prints_each_tenth_not_every_event(capsys: pytest.CaptureFixture[str]) -> None:
    panel = ProgressPanel("Long", headless=True)
    for epoch in range(1, 151):
        asyncio.run(panel(epoch, 150, f"epoch {epoch}"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[Long] 1/150 (1%) epoch 1" and lines[-1] == "[Long] 150/150 (100%) epoch 150"
    assert len(lines) == 11  # the first event, then one per new tenth up to 100%
    assert panel.progress_count == 150  # every event is still recorded


def test_headless_default_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HEADLESS", "0")  # still headless: tests do not run in a Jupyter kernel
    assert ProgressPanel("x").headless is True


# -- widget mode -------------------------------------------------------------------


def test_widget_progress_updates_bar_and_status() -> None:
    panel = widget_panel()
    assert panel.widget is not None and panel.bar is not None and panel.status_label is not None
    asyncio.run(panel(3, 10, "epoch 3/10"))
    assert (panel.bar.value, panel.bar.max, panel.bar.bar_style) == (3, 10, "")
    assert panel.bar.description == "30%"
    assert panel.status_label.value == "3/10 (30%) epoch 3/10"
    assert panel.status_text == panel.status_label.value
    assert panel.progress_events == [(3, 10, "epoch 3/10")]
    assert panel.progress_count == 1


def test_widget_unknown_total_is_indeterminate() -> None:
    panel = widget_panel()
    assert panel.bar is not None
    values = []
    for i in range(1, 4):
        asyncio.run(panel(i * 100, None, "working"))
        values.append(panel.bar.value)
    assert panel.bar.bar_style == "info"
    assert panel.bar.max == 1.0
    assert len(set(values)) == 3  # the bar moves although there is no total
    assert panel.bar.description == "300"  # the raw count
    assert panel.status_text == "300 (no total) working"


def test_widget_finish_and_fail() -> None:
    panel = widget_panel()
    assert panel.bar is not None and panel.status_label is not None
    asyncio.run(panel(4, 10, None))
    panel.finish("trained")
    assert (panel.bar.value, panel.bar.max, panel.bar.bar_style) == (10, 10, "success")
    assert panel.status_label.value == "trained"

    failed = widget_panel()
    assert failed.bar is not None and failed.status_label is not None
    asyncio.run(failed(2, 10, None))
    failed.fail("server went away\nretrying")
    assert failed.bar.bar_style == "danger"
    assert failed.bar.value == 2
    assert failed.status_label.value == "failed: server went away retrying"


def test_widget_log_is_trimmed_but_counts_are_exact() -> None:
    panel = widget_panel(max_log_lines=5)
    assert panel.log_area is not None
    for i in range(12):
        panel.log(f"note {i}")
    shown = panel.log_area.value.split("\n")
    assert shown == [f"note {i}" for i in range(11, 6, -1)]  # the last 5, newest first (where it is seen)
    assert panel.log_count == 12
    assert panel.log_events == [f"note {i}" for i in range(12)]


def test_widget_on_log_with_real_mcp_params() -> None:
    panel = widget_panel()
    assert panel.log_area is not None
    params = mcp.types.LoggingMessageNotificationParams(level="info", data="heartbeat 3", logger="x")
    asyncio.run(panel.on_log(params))
    asyncio.run(panel.on_log(mcp.types.LoggingMessageNotificationParams(level="warning", data={"beat": 4})))
    assert panel.log_events == ["[info] heartbeat 3", '[warning] {"beat": 4}']
    assert panel.log_area.value == '[warning] {"beat": 4}\n[info] heartbeat 3'


def test_widget_log_is_hidden_until_the_first_line_and_grows_with_it() -> None:
    panel = widget_panel()
    assert panel.log_area is not None
    assert panel.log_area.layout.display == "none", "no empty message box before there is a message"
    panel.log("network drop")
    assert panel.log_area.layout.display is None and panel.log_area.rows == 1
    for i in range(20):
        panel.log(f"note {i}")
    assert panel.log_area.rows == 8, "at most eight rows, then it scrolls"


def test_widget_children_never_overflow_their_box() -> None:
    panel = widget_panel()
    assert panel.widget is not None and panel.bar is not None and panel.log_area is not None
    # width 100% plus a widget's margin is wider than the box, which then shows a horizontal scrollbar
    assert all(child.layout.width in (None, "auto") for child in panel.widget.children)
    assert panel.widget.layout.overflow == "hidden"


def test_widget_heartbeats_alone_say_how_many_arrived_and_the_last_one() -> None:
    panel = widget_panel()
    assert panel.bar is not None and panel.status_label is not None
    assert panel.status_label.value == "waiting for the first message from the server..."
    for beat in (1, 2, 3):
        asyncio.run(panel.on_log(mcp.types.LoggingMessageNotificationParams(level="info", data=f"heartbeat {beat}")))
    assert panel.status_label.value == "3 messages from the server (no progress reported), last: [info] heartbeat 3"
    assert panel.status_text == panel.status_label.value
    assert panel.bar.layout.display == "none", "no empty bar that suggests nothing is happening"
    panel.log("a note of the notebook's own")  # not a server message: the status line stays
    assert panel.status_label.value.startswith("3 messages")
    panel.finish("done after 3 heartbeats")
    assert panel.bar.layout.display is None and panel.bar.bar_style == "success"


def test_widget_progress_wins_over_log_messages_in_the_status_line() -> None:
    panel = widget_panel()
    assert panel.bar is not None and panel.status_label is not None
    asyncio.run(panel.on_log(mcp.types.LoggingMessageNotificationParams(level="info", data="starting")))
    asyncio.run(panel(1, 4, "epoch 1/4"))
    asyncio.run(panel.on_log(mcp.types.LoggingMessageNotificationParams(level="info", data="heartbeat")))
    assert panel.status_label.value == "1/4 (25%) epoch 1/4"
    assert panel.bar.layout.display is None and panel.bar.value == 1


def test_display_shows_the_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[object] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    panel = widget_panel()
    panel._ipython_display_()
    assert shown == [panel.widget]


# -- headless mode -----------------------------------------------------------------


def test_headless_prints_one_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    panel = ProgressPanel("Train", headless=True)
    assert panel.widget is None and panel.bar is None
    asyncio.run(panel(3, 10, "epoch 3\nof 10"))
    asyncio.run(panel(7, None, None))
    asyncio.run(panel.on_log(mcp.types.LoggingMessageNotificationParams(level="info", data="heartbeat 3", logger="x")))
    panel.log("a note\nover two lines")
    panel.finish()
    panel.fail("boom")
    panel._ipython_display_()  # displaying a headless panel adds nothing
    assert capsys.readouterr().out.splitlines() == [
        "[Train] 3/10 (30%) epoch 3 of 10",
        "[Train] 7 (no total)",
        "[Train] log: [info] heartbeat 3",
        "[Train] log: a note over two lines",
        "[Train] done",
        "[Train] failed: boom",
    ]
    assert panel.progress_count == 2 and panel.log_count == 2


# -- robustness --------------------------------------------------------------------


@pytest.mark.parametrize("headless", [True, False])
@pytest.mark.parametrize(
    ("progress", "total"),
    [(math.nan, 10), (-5, 10), (1e300, 10), (math.inf, 10), (5, 0), (5, -3), (5, math.nan), (5, math.inf),
     (-1, None), (math.nan, None), ("junk", "junk")],
)
def test_callback_never_raises_on_odd_values(headless: bool, progress, total, capsys) -> None:
    panel = ProgressPanel("Odd", headless=headless)
    asyncio.run(panel(progress, total, "odd"))
    assert panel.progress_events == [(progress, total, "odd")]
    if panel.bar is not None:
        assert 0 <= panel.bar.value <= panel.bar.max
    panel.finish()


def test_bar_shrinking_total_keeps_value_in_range() -> None:
    panel = widget_panel()
    assert panel.bar is not None
    asyncio.run(panel(90, 100, None))
    asyncio.run(panel(3, 5, None))  # a smaller total after a larger one
    assert (panel.bar.value, panel.bar.max) == (3, 5)


@pytest.mark.parametrize("headless", [True, False])
def test_concurrent_calls_from_threads_lose_nothing(headless: bool, capsys) -> None:
    panel = ProgressPanel("Threads", headless=headless, max_log_lines=50)
    threads_n, per_thread = 4, 250
    start = threading.Barrier(threads_n + 1)

    async def hammer(tag: str) -> None:
        for i in range(per_thread):
            await panel(i, per_thread, f"{tag} {i}")
            await panel.on_log(mcp.types.LoggingMessageNotificationParams(level="debug", data=f"{tag} {i}"))

    def worker(tag: str) -> None:  # like Strands: its own thread, its own event loop
        start.wait()
        asyncio.run(hammer(tag))

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    start.wait()
    asyncio.run(hammer("main"))
    for thread in threads:
        thread.join()

    expected = (threads_n + 1) * per_thread
    assert panel.progress_count == len(panel.progress_events) == expected
    assert panel.log_count == len(panel.log_events) == expected
    for tag in ["main"] + [f"t{n}" for n in range(threads_n)]:  # each source's events stay in order
        mine = [event[0] for event in panel.progress_events if event[2].startswith(f"{tag} ")]
        assert mine == list(range(per_thread))
    if headless:
        lines = capsys.readouterr().out.splitlines()
        assert all(line.startswith("[Threads] ") and line.count("[Threads]") == 1 for line in lines)  # none interleaved
        assert sum(line.startswith("[Threads] log: ") for line in lines) == expected
    else:
        assert panel.log_area is not None
        assert len(panel.log_area.value.split("\n")) == 50


# -- a real MCP call ---------------------------------------------------------------


def make_server() -> MCPServer:
    server = MCPServer("widgets-test")

    @server.tool()
    async def work(steps: int, ctx: Context) -> str:
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps, f"step {i}")
            await ctx.info(f"heartbeat {i}")
        return f"did {steps} steps"

    return server


@pytest.mark.parametrize("headless", [True, False])
def test_panel_plugs_into_mcp_client_unchanged(headless: bool, capsys) -> None:
    panel = ProgressPanel("MCP", headless=headless)

    async def main() -> mcp.types.CallToolResult:
        # log_level opts in to log notifications on the modern protocol; without it none arrive.
        async with mcp.Client(make_server(), logging_callback=panel.on_log, log_level="info") as client:
            return await client.call_tool("work", {"steps": 3}, progress_callback=panel)

    result = asyncio.run(main())
    panel.finish()
    assert not result.is_error
    assert panel.progress_count == 3
    assert [(p, t, m) for p, t, m in panel.progress_events] == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert panel.log_events == ["[info] heartbeat 1", "[info] heartbeat 2", "[info] heartbeat 3"]
    if headless:
        assert "[MCP] 3/3 (100%) step 3" in capsys.readouterr().out
    else:
        assert panel.bar is not None
        assert (panel.bar.value, panel.bar.max, panel.bar.bar_style) == (3, 3, "success")
