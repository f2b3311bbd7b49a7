"""One way to wait for something to become true: ``eventually`` (and ``eventually_async`` inside a coroutine).

Lessons and tests wait for other processes all the time (a task to end, a record to reach Memory, a session to be
reaped). A fixed ``time.sleep`` is either too short under load or wastes time; a hand-written deadline loop is
repeated everywhere with small differences. ``eventually`` polls a condition until it returns something truthy,
returns that value, and fails with a message naming what it waited for when the deadline passes.

``show`` makes the wait itself visible: a function returning one line (say, the sessions' states) that is drawn
live while waiting, updated in place in JupyterLab and printed whenever it changes headless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: How often a wait's status line is redrawn (seconds).
REFRESH_SECONDS = 0.5


class WaitTimeout(AssertionError):
    """The condition did not hold in time (an ``AssertionError``, so a notebook or test fails on it as on an assert)."""


class _LiveLine:
    """One line of status that a wait keeps up to date: in place in JupyterLab, one printed line per change headless."""

    def __init__(self, show: Callable[[], str] | None, what: str) -> None:
        self.show, self.what = show, what
        self.shown: str | None = None
        self.handle: Any = None
        self.started = time.monotonic()
        self.next_at = 0.0  # the status line is redrawn at most every REFRESH_SECONDS: `show` may cost a request
        if show is not None:
            from lab_helpers import config

            self.headless = config.load().headless

    def finish(self) -> None:
        """The last redraw: the status line as the wait ends, and how long it took."""
        self.refresh(final=f" (done after {time.monotonic() - self.started:.1f} s)")

    def refresh(self, final: str = "") -> None:
        if self.show is None or (not final and time.monotonic() < self.next_at):
            return
        self.next_at = time.monotonic() + REFRESH_SECONDS
        try:
            line = self.show()
        except Exception as error:  # noqa: BLE001 - a status line must never break the wait it describes
            line = f"(status unavailable: {error})"
        text = f"waiting for {self.what}: {line}{final}"
        if line == self.shown and not final:
            return
        self.shown = line
        if self.headless:
            print(f"[{time.monotonic() - self.started:5.1f} s] {text}", flush=True)
            return
        from IPython.display import display

        if self.handle is None:
            self.handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self.handle.update({"text/plain": text}, raw=True)


def _give_up(what: str, timeout: float, last: object) -> WaitTimeout:
    return WaitTimeout(f"gave up waiting for {what} after {timeout:g} s (last seen: {last!r})")


def eventually(
    condition: Callable[[], T],
    timeout: float = 60.0,
    every: float = 0.05,
    *,
    what: str = "the condition",
    show: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` every ``every`` seconds until it returns something truthy, and return that.

    Raises :class:`WaitTimeout` after ``timeout`` seconds, naming ``what`` and the last value seen.
    """
    live = _LiveLine(show, what)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            live.finish()
            return value
        live.refresh()
        if time.monotonic() >= deadline:
            raise _give_up(what, timeout, value)
        time.sleep(every)


async def eventually_async(
    condition: Callable[[], Awaitable[T]],
    timeout: float = 60.0,
    every: float = 0.05,
    *,
    what: str = "the condition",
    show: Callable[[], str] | None = None,
) -> T:
    """:func:`eventually` for a coroutine condition (an MCP call, say), waiting with ``asyncio.sleep``."""
    live = _LiveLine(show, what)
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            live.finish()
            return value
        live.refresh()
        if time.monotonic() >= deadline:
            raise _give_up(what, timeout, value)
        await asyncio.sleep(every)
