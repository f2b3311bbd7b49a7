"""lab_helpers.timeline: the emulator's transition log as per-session segments, and the plot of them."""

from __future__ import annotations

import matplotlib
import pytest

from lab_helpers.timeline import Mark, Segment, ended_because, plot, segments, session_table

matplotlib.use("Agg")


def event(at: float, session: str, state: str, detail: str = "", runtime: str = "rt-1") -> dict:
    return {"at": at, "runtimeId": runtime, "sessionId": session, "state": state, "detail": detail}


LOG = [
    event(0.0, "a", "starting"), event(1.0, "a", "Healthy"), event(1.5, "b", "starting"),
    event(2.0, "a", "HealthyBusy"), event(2.5, "b", "Healthy"), event(4.0, "b", "ended", "idle timeout"),
    event(5.0, "a", "Healthy"), event(6.5, "a", "ended", "idle timeout"),
    event(7.0, "a", "starting"),  # the same session id again: a fresh process
    event(0.5, "c", "starting", runtime="rt-2"),
]


def test_each_state_becomes_a_segment_closed_by_the_next_and_the_end_says_why() -> None:
    by_session = segments(LOG, "rt-1")
    assert list(by_session) == ["a", "b"]
    assert by_session["b"] == [Segment("b", "starting", 1.5, 2.5), Segment("b", "Healthy", 2.5, 4.0, "idle timeout")]
    a = by_session["a"]
    assert [(s.state, s.start, s.end) for s in a] == [
        ("starting", 0.0, 1.0), ("Healthy", 1.0, 2.0), ("HealthyBusy", 2.0, 5.0), ("Healthy", 5.0, 6.5),
        ("starting", 7.0, None)]
    assert a[3].ended_because == "idle timeout" and a[-1].ended_because is None


def test_all_runtimes_without_a_filter_and_a_plot_with_a_row_per_session() -> None:
    by_session = segments(LOG)
    assert list(by_session) == ["a", "b", "c"]
    figure = plot(by_session, labels={"a": "busy one"})
    (axes,) = figure.axes
    assert [label.get_text() for label in axes.get_yticklabels()] == ["busy one", "b", "c"]
    assert any(text.get_text().strip() == "idle timeout" for text in axes.texts)


def test_marks_sit_on_their_session_s_row_one_shape_per_kind_in_the_chosen_unit() -> None:
    by_session = segments(LOG, "rt-1")
    marks = [Mark(2.0, "a", "finding"), Mark(3.0, "a", "finding"), Mark(3.5, "b", "report")]
    figure = plot(by_session, marks=marks, origin=-1.0, unit=("lesson days", 2.0))
    (axes,) = figure.axes
    assert axes.get_xlabel() == "lesson days"
    finding, report = axes.collections
    assert finding.get_offsets().tolist() == [[1.5, 0.0], [2.0, 0.0]], "(at - origin) / 2 s, on row 0 (session a)"
    assert report.get_offsets().tolist() == [[2.25, 1.0]]
    assert [text.get_text() for text in axes.get_legend().get_texts()][-2:] == ["finding", "report"]
    with pytest.raises(ValueError, match="marks on sessions without a bar: zzz"):
        plot(by_session, marks=[Mark(1.0, "zzz", "finding")])


def live(session: str, ping: str, idle: float, age: float) -> dict:
    return {"runtimeId": "rt-1", "sessionId": session, "pid": 1, "ping": ping, "invocations": 1, "inFlight": 0,
            "timeScale": 0.1, "ageSeconds": age, "idleSeconds": idle, "idleTimeoutSeconds": 6.0,
            "maxLifetimeSeconds": 360.0}


def test_ended_because_says_why_the_latest_process_ended_and_none_while_one_runs() -> None:
    report = {"sessions": [live("a", "starting", 0.0, 0.1)], "transitions": LOG}
    assert ended_because(report, "b") == "idle timeout"
    assert ended_because(report, "a") is None, "ended once, then started again: it runs"
    assert ended_because(report, "never") is None


def test_the_session_table_has_a_plain_line_per_labelled_session() -> None:
    report = {"sessions": [live("lab-session-0123456789abcdef", "HealthyBusy", 0.04, 12.5)], "transitions": LOG}
    table = session_table(report, {"lab-session-0123456789abcdef": "training", "b": "idle"})
    assert table.splitlines() == [
        "training  ..abcdef  HealthyBusy  idle   0.0 of 6.0 s   age   12.5 of 360.0 s",
        "idle      ..b  ended: idle timeout"]
    assert "\x1b" not in table
    # Not live and not ended: its process is starting, or being stopped (it is recorded as ended once it is gone).
    starting = {"sessions": [], "transitions": LOG}  # session "a" was started again last
    stopping = {"sessions": [], "transitions": LOG[:7]}  # session "a" was last seen Healthy
    assert session_table(starting, {"a": "busy"}) == "busy  ..a  starting"
    assert session_table(stopping, {"a": "busy"}) == "busy  ..a  stopping"
    assert session_table(starting, {"zzz": "new"}) == "new  ..zzz  not started"
