"""Notebook 07: lesson time for work that takes days, so that three days pass in seconds and sessions keep their shape.

An investigation waits three days for a bank, while an AgentCore Runtime session lives at most 8 hours and ends
after 15 idle minutes. The lesson keeps those proportions and shrinks them all by one factor, the **lesson clock**
``S`` (real seconds per lesson second): every runtime of the investigation is deployed with ``LAB_TIME_SCALE=S``
(the emulator then runs its idle timeout and maximum lifetime on that clock, see
``lab_helpers/emulator/runtime_sessions.py``), the agents pace their own work with it, and the bank waits its days
on it. So the lifecycle settings stay AWS's (900 s idle, 28800 s lifetime) and the lesson compresses *time*, not
the rules.

How long a lesson day lasts in real seconds, from the notebook's ``time_scale``: :func:`day_seconds` is
``max(MIN_DAY_SECONDS, DAY_SECONDS_AT_SCALE_1 * time_scale)``. At ``time_scale=1`` a day is a minute (the bank's
three days take three minutes to read along); at CI's 0.02 the floor holds it at 12 s:

================  ============  ===============  ===================  ===================
time_scale        a lesson day  idle timeout     maximum lifetime     the bank's 3 days
================  ============  ===============  ===================  ===================
1.0               60 s          0.63 s           20 s                 180 s
0.2 and below     12 s          0.125 s          4 s                  36 s
================  ============  ===============  ===================  ===================

Why a floor: what cannot shrink is a process start (a new session's microVM here is a Python process, about a
second of CPU on a loaded 2-core machine) and a Memory round trip. Every invocation of these agents must end far
inside the maximum lifetime, so they answer at once and work in the background, and nothing waits for another
runtime's process start inside an invocation that also has to stay short (the supervisor delegates in its
background, see ``servers/supervisor_agent.py``). 4 s of lifetime leaves room for that; a smaller floor would
not. The emulator checks lifecycle rules every 0.2 s real, so a 0.125 s idle timeout ends an idle session at
the next check, never a busy one (its ``/ping`` says ``HealthyBusy`` first).

``time_scale=0`` (benchmarks: no pacing) gets the floor too: sessions still need a lifetime to live in.

AWS mode: nothing is scaled (the Runtime's clock is AWS's, and its lifecycle settings are 60 s at least), so the
lesson clock is 1: a lesson day is a day, the bank waits three real days (or as many seconds as its ``delay_days``
says, a knob of the bank) and the agents work at their real pace.
"""

from __future__ import annotations

import math

#: Lesson seconds in a lesson day, hour and minute.
DAY, HOUR, MINUTE = 86_400.0, 3_600.0, 60.0
#: Real seconds of a lesson day at time_scale 1 (reading along), and the least it may last (CI and below).
DAY_SECONDS_AT_SCALE_1 = 60.0
MIN_DAY_SECONDS = 12.0
#: AWS's lifecycle defaults, which the lesson's runtimes keep (seconds of the lesson clock).
IDLE_TIMEOUT, MAX_LIFETIME = 900, 28_800


def day_seconds(time_scale: float) -> float:
    """Real seconds a lesson day lasts for a notebook at ``time_scale`` (see the table in the module's docstring)."""
    if not isinstance(time_scale, (int, float)) or math.isnan(time_scale) or time_scale < 0:
        raise ValueError(f"time_scale must be a number of 0 or more, got {time_scale!r}")
    return max(MIN_DAY_SECONDS, DAY_SECONDS_AT_SCALE_1 * time_scale)


def lesson_clock(time_scale: float) -> float:
    """The lesson clock ``S`` for a notebook at ``time_scale``: real seconds per lesson second.

    Deploy the investigation's runtimes and start its bank with it as their ``LAB_TIME_SCALE``.
    """
    return day_seconds(time_scale) / DAY


def lesson_time(elapsed_real_seconds: float, clock: float) -> str:
    """``elapsed_real_seconds`` since the start, as lesson time: ``"day 2 14:05"`` (day 0 is the first)."""
    lesson = max(0.0, elapsed_real_seconds) / clock if clock > 0 else 0.0
    day, rest = divmod(lesson, DAY)
    return f"day {int(day)} {int(rest // HOUR):02d}:{int(rest % HOUR // MINUTE):02d}"


def real_seconds(lesson_seconds: float, clock: float) -> float:
    """A lesson duration in real seconds on the lesson clock (``3 * DAY`` -> 36 s at CI)."""
    return lesson_seconds * clock
