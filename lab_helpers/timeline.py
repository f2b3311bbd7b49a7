"""Runtime sessions as the local emulator sees them: a live table while a lesson waits, and a timeline after.

The emulator records every state a runtime session passes through (``starting``, ``Healthy``,
``HealthyBusy``, ``ended`` with the reason) and each live session's ping status, idle time and age, at
``GET /local/runtime-sessions``. Notebook 04 shows :func:`session_table` live while it waits for a rule to end
a session (:func:`ended_because` says when it has), then turns the log into one bar per session, so the
lifecycle rules can be *seen*: the busy session outliving the idle timeout, the idle one ended, the long one
cut at its maximum lifetime. Notebook 07 draws days of an investigation with it: a time ``unit`` (lesson days),
an ``origin`` (the investigation's start) and :class:`Mark` s for what sessions did at a moment (Memory writes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

#: Colours of the states in the plot.
COLOURS = {"starting": "#bbbbbb", "Healthy": "#4c9be8", "HealthyBusy": "#f0a030", "Unresponsive": "#d04040"}
#: Marker shapes for the kinds of marks, in order of first appearance.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass(frozen=True)
class Segment:
    """One stretch of one session in one state; ``end`` is None while it lasts."""

    session_id: str
    state: str
    start: float
    end: float | None
    ended_because: str | None = None  # on a session's last segment, why it ended


@dataclass(frozen=True)
class Mark:
    """Something a session did at one moment (a Memory write, say), drawn on that session's bar as a marker.

    ``what`` picks the marker: marks of one kind share a shape and one entry in the legend.
    """

    at: float
    session_id: str
    what: str


def runtime_report(endpoint: str | None = None) -> dict[str, Any]:
    """The emulator's sessions and transitions (local mode only: AWS has no such view)."""
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE")
    if not endpoint:
        raise RuntimeError("no local emulator: the session timeline exists in local mode only (use_agentcore())")
    return httpx.get(endpoint.rstrip("/") + "/local/runtime-sessions", timeout=5.0).json()


def ended_because(report: dict[str, Any], session_id: str) -> str | None:
    """Why the session's latest process ended (``"idle timeout"``...), or None while it runs or never ran."""
    last = next((t for t in reversed(report["transitions"]) if t["sessionId"] == session_id), None)
    return last["detail"] if last is not None and last["state"] == "ended" else None


def session_table(report: dict[str, Any], labels: dict[str, str]) -> str:
    """One plain line per labelled session: its ping status, idle time and age against its limits, or its end.

    Times are real seconds, as the emulator counts them for the lifecycle rules (idle time is reset by every
    invocation and, under the measured /ping rule, by ``time_of_last_update``: see runtime_sessions). For the
    live view of a wait; ids are cut to their last 6 characters.
    """
    live = {s["sessionId"]: s for s in report["sessions"]}
    width = max(map(len, labels.values()), default=0)
    lines = []
    for session_id, label in labels.items():
        name = f"{label:<{width}}  ..{session_id[-6:]}"
        session = live.get(session_id)
        if session is None:
            lines.append(f"{name}  {_between_lives(report, session_id)}")
            continue
        lines.append(f"{name}  {session['ping']:<12} idle {session['idleSeconds']:5.1f} of "
                     f"{session['idleTimeoutSeconds']:.1f} s   age {session['ageSeconds']:6.1f} of "
                     f"{session['maxLifetimeSeconds']:.1f} s")
    return "\n".join(lines)


def _between_lives(report: dict[str, Any], session_id: str) -> str:
    """What a session without a live process is doing: ended (and why), starting, stopping, or never started."""
    why = ended_because(report, session_id)
    if why:
        return f"ended: {why}"
    states = [t["state"] for t in report["transitions"] if t["sessionId"] == session_id]
    if not states:
        return "not started"
    return "starting" if states[-1] == "starting" else "stopping"  # the process is starting, or being stopped


def segments(transitions: list[dict[str, Any]], runtime_id: str | None = None) -> dict[str, list[Segment]]:
    """Per session (in order of first appearance), its states as consecutive segments."""
    by_session: dict[str, list[Segment]] = {}
    for event in transitions:
        if runtime_id is not None and event["runtimeId"] != runtime_id:
            continue
        session = by_session.setdefault(event["sessionId"], [])
        if session and session[-1].end is None:
            last = session[-1]
            session[-1] = Segment(last.session_id, last.state, last.start, event["at"],
                                  event["detail"] if event["state"] == "ended" else None)
        if event["state"] != "ended":
            session.append(Segment(event["sessionId"], event["state"], event["at"], None))
    return by_session


def plot(by_session: dict[str, list[Segment]], labels: dict[str, str] | None = None, now: float | None = None, *,
         marks: Sequence[Mark] = (), origin: float | None = None, unit: tuple[str, float] = ("seconds", 1.0),
         title: str = "runtime sessions (local emulator)") -> Any:
    """A horizontal bar per session, coloured by state, with why it ended; returns the matplotlib figure.

    ``marks`` on a session's row are drawn as markers, one shape per kind (a mark on a session not drawn raises:
    it would be lost silently). Times are shown from ``origin`` (default: the first segment's start) in ``unit``:
    its name and how many seconds it lasts, e.g. ``("lesson days", 12.0)``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    labels = labels or {}
    unit_name, unit_seconds = unit
    if unit_seconds <= 0:
        raise ValueError(f"a unit must last a positive number of seconds, got {unit_seconds!r}")
    rows = {session_id: row for row, session_id in enumerate(by_session)}
    stray = sorted({mark.session_id for mark in marks} - set(rows))
    if stray:
        raise ValueError(f"marks on sessions without a bar: {', '.join(stray)}")
    starts = [segment.start for session in by_session.values() for segment in session]
    origin = origin if origin is not None else (min(starts) if starts else 0.0)
    latest = max([s.end or s.start for session in by_session.values() for s in session]
                 + [mark.at for mark in marks] + [now or 0.0])

    def x(at: float) -> float:
        return (at - origin) / unit_seconds

    fig, ax = plt.subplots(figsize=(9, 0.6 * len(by_session) + 1.4))
    for row, session in enumerate(by_session.values()):
        for segment in session:
            end = segment.end if segment.end is not None else latest
            ax.barh(row, (end - segment.start) / unit_seconds, left=x(segment.start),
                    color=COLOURS.get(segment.state, "#888888"), edgecolor="white", linewidth=0.3)
            if segment.ended_because:
                ax.text(x(end), row, f"  {segment.ended_because}", va="center", fontsize=8)
    kinds = list(dict.fromkeys(mark.what for mark in marks))
    shapes = {kind: MARKERS[i % len(MARKERS)] for i, kind in enumerate(kinds)}
    for kind in kinds:
        mine = [mark for mark in marks if mark.what == kind]
        ax.scatter([x(mark.at) for mark in mine], [rows[mark.session_id] for mark in mine], marker=shapes[kind],
                   s=22, facecolor="black", edgecolor="white", linewidth=0.4, zorder=3)
    ax.set_yticks(range(len(by_session)), [labels.get(s, s[:18]) for s in by_session])
    ax.invert_yaxis()
    ax.set_xlim(min(0.0, x(min(starts, default=origin))), x(latest) * 1.2 + 0.1 / unit_seconds)  # room for "why"
    ax.set_xlabel(unit_name)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in COLOURS.values()]
    handles += [Line2D([], [], marker=shapes[kind], color="black", linestyle="none") for kind in kinds]
    names = list(COLOURS) + kinds
    ax.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(by_session or [1])),
              ncol=min(len(names), 5), fontsize=8, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig
