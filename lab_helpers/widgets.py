"""Live displays for the lessons' long calls and background tasks: :class:`ProgressPanel` and :class:`TaskBoard`.

* :class:`ProgressPanel` follows one long MCP tool call. The panel *is* the progress
  callback: ``await session.call_tool(..., progress_callback=panel)`` (or
  ``mcp.Client.call_tool``, or Strands' ``MCPClient(progress_callback=panel)``) feeds it
  progress notifications, and ``logging_callback=panel.on_log`` feeds it log notifications
  such as heartbeats. Each notification updates the widgets at once: ipywidgets push a comm
  message on every attribute assignment, so a cell that awaits a long call at top level
  still sees the bar move. A call that sends only log messages (a heartbeat) shows how many
  arrived and the last one, and no bar: a heartbeat measures no fraction of the work.
* :class:`TaskBoard` follows many background tasks at once (notebook 02): it polls a
  server's ``list_tasks`` tool and redraws one HTML table of them.

Headless (papermill, CI, plain Python, tests) there is nothing to render, so both print
plain lines to stdout instead (the panel a line per tenth of the work and per log message,
the board its table when a task appears or changes status), which keeps executed notebooks
readable as logs.

Two rules shape the code:

* A callback that raises would break the MCP call it reports on, so the callbacks
  record the event first and then swallow (and log) any display error. Odd values
  from servers (negative, nan, inf, totals of zero) are clamped for the bar but
  shown raw in the text.
* Strands invokes the progress callback on its own background thread and event
  loop, so every piece of shared state (and every widget update and print) is
  guarded by one lock.

:func:`format_progress` renders one notification as one line of text; both displays use it.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
import threading
from collections import deque
from typing import Any, Callable

import ipywidgets

from lab_helpers.waiting import WaitTimeout, eventually_async

logger = logging.getLogger(__name__)

#: How many progress events and log lines the panel remembers for inspection.
#: Counts (``progress_count``/``log_count``) stay exact beyond it; only the oldest
#: events are forgotten, so a call that reports for days cannot exhaust memory.
MAX_HISTORY = 10_000

#: Most lines the message log shows at once; it scrolls beyond that.
_LOG_ROWS = 8

#: Steps of the cycling bar shown while the total is unknown.
_INDETERMINATE_STEPS = 10

#: One progress notification as received: ``(progress, total, message)``.
ProgressEvent = tuple[float, float | None, str | None]


def _one_line(text: object) -> str:
    """``text`` as a single line: every line break becomes a space."""
    return " ".join(str(text).splitlines())


def _num(value: object) -> str:
    """A number as a person would write it: ``3`` not ``3.0``, ``0.25``, ``nan``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return _one_line(repr(value))
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6g}"


def _finite_positive(value: object) -> float | None:
    """``value`` as a float if it is a usable total (finite and > 0), else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def format_progress(progress: float, total: float | None, message: str | None) -> str:
    """One progress notification as one line of text.

    ``format_progress(3, 10, "epoch 3/10")`` -> ``"3/10 (30%) epoch 3/10"``;
    ``format_progress(7, None, "warming up")`` -> ``"7 (no total) warming up"``.
    A total of zero (or negative, nan, inf) has no meaningful percentage, so it
    shows ``(?%)``. Numbers are shown raw (a server's 150% or -1 is visible as
    such); line breaks in the message become spaces so the result stays one line.
    Never raises, whatever the server sent.
    """
    if total is None:
        text = f"{_num(progress)} (no total)"
    else:
        usable_total = _finite_positive(total)
        percent = "?%"
        try:
            if usable_total:
                ratio = float(progress) / usable_total * 100
                percent = f"{ratio:.0f}%" if not abs(ratio) >= 1e6 else f"{ratio:.3g}%"  # nan keeps the first
        except (TypeError, ValueError, OverflowError):
            pass
        text = f"{_num(progress)}/{_num(total)} ({percent})"
    if message:
        text += " " + _one_line(message)
    return text


def _log_data(data: Any) -> str:
    """The ``data`` of a log notification as text: strings as-is, anything else as JSON."""
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, default=str)
    except (TypeError, ValueError):
        return repr(data)


class ProgressPanel:
    """A progress bar, a status line and a message log (newest message first) for one long-running call.

    Pass the panel itself as ``progress_callback`` and ``panel.on_log`` as
    ``logging_callback``; end a cell with ``panel`` to display it. When headless
    (see :func:`lab_helpers.config.load`) it prints one line per event instead and
    ``widget`` is None.
    """

    def __init__(self, title: str = "Progress", *, headless: bool | None = None, max_log_lines: int = 200) -> None:
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"title must be a non-empty string, got {title!r}")
        if isinstance(max_log_lines, bool) or not isinstance(max_log_lines, int) or max_log_lines < 1:
            raise ValueError(f"max_log_lines must be a positive whole number, got {max_log_lines!r}")
        if headless is None:
            from lab_helpers import config  # late: reading settings is only needed here

            headless = config.load().headless
        self.title = _one_line(title)
        self.headless = bool(headless)
        self.max_log_lines = max_log_lines
        self._lock = threading.Lock()
        self._progress_events: deque[ProgressEvent] = deque(maxlen=MAX_HISTORY)
        self._log_events: deque[str] = deque(maxlen=MAX_HISTORY)
        self._shown_lines: deque[str] = deque(maxlen=max_log_lines)  # what the log widget shows
        self._progress_count = 0
        self._log_count = 0
        self._server_messages = 0  # log notifications from the server (the panel's own notes not counted)
        self._status_text = "waiting for the first message from the server..."
        self._printed_tenth: int | None = None  # headless: the tenth of the total last printed

        self.bar: ipywidgets.FloatProgress | None = None
        self.status_label: ipywidgets.Label | None = None
        self.log_area: ipywidgets.Textarea | None = None
        self.widget: ipywidgets.VBox | None = None
        if not self.headless:
            # Widths are "auto", not "100%": a child of 100% plus its margin is wider than the box, which then
            # shows a horizontal scrollbar. The message log stays hidden until there is a message to show.
            self.bar = ipywidgets.FloatProgress(
                value=0.0, min=0.0, max=1.0, description="", bar_style="info",
                layout=ipywidgets.Layout(width="auto"),
            )
            self.status_label = ipywidgets.Label(value=self._status_text, layout=ipywidgets.Layout(width="auto"))
            self.log_area = ipywidgets.Textarea(
                value="", disabled=True, rows=1, layout=ipywidgets.Layout(width="auto", display="none"),
            )
            title = ipywidgets.HTML(value=f"<b>{html.escape(self.title)}</b>")
            self.widget = ipywidgets.VBox([title, self.bar, self.status_label, self.log_area],
                                          layout=ipywidgets.Layout(overflow="hidden"))

    # -- callbacks -----------------------------------------------------------------

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        """A progress notification (``ProgressFnT``): update bar and status line, record it.

        Never raises: the event is recorded first, and a failure to display it is
        only logged, because an exception here would abort the MCP call itself.
        """
        with self._lock:
            self._progress_events.append((progress, total, message))
            self._progress_count += 1
            count = self._progress_count
            try:
                line = format_progress(progress, total, message)
                self._status_text = line
                if self.headless:
                    if self._worth_printing(progress, total):
                        print(f"[{self.title}] {line}", flush=True)
                else:
                    self._update_bar(progress, total, count)
                    assert self.status_label is not None
                    self.status_label.value = line
            except Exception:  # noqa: BLE001 - see docstring: display must never break the call
                logger.warning("could not display progress %r/%r", progress, total, exc_info=True)

    async def on_log(self, params: Any) -> None:
        """A log notification (``LoggingFnT``), e.g. a server heartbeat: add ``[level] data`` to the log.

        While no progress has arrived, the status line says how many messages came and shows the last one, and
        the bar is hidden: a heartbeat is the call's only sign of life, and it measures no fraction of the work.
        Never raises, for the same reason as :meth:`__call__`.
        """
        try:
            text = f"[{getattr(params, 'level', '?')}] {_log_data(getattr(params, 'data', params))}"
        except Exception:  # noqa: BLE001
            text = "[?] (unprintable log message)"
        self._add_line(_one_line(text), from_server=True)

    def log(self, text: str) -> None:
        """Append one line to the message log (the notebook's own notes; server messages come via :meth:`on_log`)."""
        self._add_line(_one_line(text), from_server=False)

    def _add_line(self, line: str, *, from_server: bool) -> None:
        with self._lock:
            self._log_events.append(line)
            self._log_count += 1
            if from_server:
                self._server_messages += 1
                if self._progress_count == 0:
                    plural = "s" if self._server_messages != 1 else ""
                    self._status_text = (f"{self._server_messages} message{plural} from the server "
                                         f"(no progress reported), last: {line}")
            try:
                if self.headless:
                    print(f"[{self.title}] log: {line}", flush=True)
                    return
                self._shown_lines.append(line)
                assert self.log_area is not None and self.status_label is not None
                # Newest first: the kernel cannot scroll a text area, so the newest line goes where it is seen.
                self.log_area.value = "\n".join(reversed(self._shown_lines))
                self.log_area.rows = min(len(self._shown_lines), _LOG_ROWS)  # grows up to _LOG_ROWS, then scrolls
                self.log_area.layout.display = None  # shown from the first message on
                if from_server and self._progress_count == 0:
                    self.status_label.value = self._status_text
                    assert self.bar is not None
                    self.bar.layout.display = "none"
            except Exception:  # noqa: BLE001 - a log line is never worth an exception in a callback
                logger.warning("could not display log line %r", line, exc_info=True)

    def finish(self, text: str = "done") -> None:
        """Mark the call as finished: full bar, green, ``text`` in the status line."""
        self._end(_one_line(text), style="success", full=True, headless_line=_one_line(text))

    def fail(self, text: str) -> None:
        """Mark the call as failed: red bar, the error in the status line."""
        line = f"failed: {_one_line(text)}"
        self._end(line, style="danger", full=False, headless_line=line)

    # -- what was received ---------------------------------------------------------

    @property
    def progress_events(self) -> list[ProgressEvent]:
        """A copy of the progress notifications received, oldest first (the last :data:`MAX_HISTORY`)."""
        with self._lock:
            return list(self._progress_events)

    @property
    def log_events(self) -> list[str]:
        """A copy of the log lines, oldest first (the last :data:`MAX_HISTORY`)."""
        with self._lock:
            return list(self._log_events)

    @property
    def progress_count(self) -> int:
        """How many progress notifications arrived (exact, not bounded by the history)."""
        with self._lock:
            return self._progress_count

    @property
    def log_count(self) -> int:
        """How many log lines were added (exact, not bounded by the history)."""
        with self._lock:
            return self._log_count

    @property
    def status_text(self) -> str:
        """The current status line, in both modes."""
        with self._lock:
            return self._status_text

    # -- display -------------------------------------------------------------------

    def _ipython_display_(self) -> None:
        """Show the widget when a cell ends with ``panel``; headless, show nothing extra."""
        if self.widget is not None:
            from IPython.display import display

            display(self.widget)

    def __repr__(self) -> str:
        return f"ProgressPanel({self.title!r}, progress_count={self.progress_count}, log_count={self.log_count})"

    # -- internals (called with the lock held) -------------------------------------

    def _worth_printing(self, progress: object, total: object) -> bool:
        """Headless, print the first event, each new tenth of the total and the last one.

        A 150-epoch run would otherwise print 150 lines into an executed notebook;
        every event is still recorded in ``progress_events``.
        """
        usable_total = _finite_positive(total) if total is not None else None
        if usable_total is None:
            return True
        try:
            tenth = math.floor(float(progress) / usable_total * 10)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return True
        if tenth == self._printed_tenth and float(progress) != usable_total:  # type: ignore[arg-type]
            return False
        self._printed_tenth = tenth
        return True

    def _update_bar(self, progress: object, total: object, count: int) -> None:
        """Move the bar. Known total: clamp to [0, total]. Unknown: cycle so that motion shows liveness."""
        assert self.bar is not None
        self.bar.layout.display = None  # hidden while only log messages had come
        usable_total = _finite_positive(total) if total is not None else None
        if usable_total is None:
            # No true indeterminate bar in ipywidgets: cycle the value, show the raw count.
            self.bar.bar_style = "info"
            self.bar.max = 1.0
            self.bar.value = (count % _INDETERMINATE_STEPS or _INDETERMINATE_STEPS) / _INDETERMINATE_STEPS
            self.bar.description = _num(progress)[:12]
            return
        try:
            value = float(progress)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            value = 0.0
        value = 0.0 if math.isnan(value) else min(max(value, 0.0), usable_total)
        self.bar.bar_style = ""
        self.bar.max = usable_total  # max before value: ipywidgets clamps value to the current max
        self.bar.value = value
        self.bar.description = f"{value / usable_total * 100:.0f}%"

    def _end(self, status: str, *, style: str, full: bool, headless_line: str) -> None:
        with self._lock:
            self._status_text = status
            try:
                if self.headless:
                    print(f"[{self.title}] {headless_line}", flush=True)
                    return
                assert self.bar is not None and self.status_label is not None
                self.bar.layout.display = None
                if full:
                    self.bar.value = self.bar.max
                    self.bar.description = "100%"
                self.bar.bar_style = style
                self.status_label.value = status
            except Exception:  # noqa: BLE001 - finishing the display must not mask the real outcome
                logger.warning("could not display the end of %r", self.title, exc_info=True)



#: Text colour of each task status in the board's HTML table.
_STATUS_COLORS = {"submitted": "black", "queued": "darkorange", "running": "blue", "completed": "green", "failed": "red",
                  "cancelled": "grey"}

_BOARD_COLUMNS = ("ID", "MODEL", "STATUS", "PROGRESS", "AGE", "MESSAGE")

#: Cell styles of the board's HTML table: the short columns never wrap and keep some air between them; the
#: message column (last) takes the rest of the width and wraps, so a long error does not squeeze the others.
_CELL_STYLE = "padding:3px 1.2em 3px 0; text-align:left; vertical-align:top; white-space:nowrap"
_MESSAGE_STYLE = "padding:3px 0; text-align:left; vertical-align:top; white-space:normal; min-width:18em"


def _task_cells(task: object) -> list[str]:
    """One task row as the board's six one-line text cells; missing or None fields show ``?``."""
    row = task if isinstance(task, dict) else {}
    cell = lambda key: "?" if row.get(key) is None else _one_line(row[key])  # noqa: E731
    progress = row.get("progress")
    age = row.get("age_seconds")
    try:
        age_text = f"{float(age):.1f}s"  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        age_text = "?"
    detail = row.get("error") if row.get("status") == "failed" and row.get("error") else row.get("message")
    return [
        cell("task_id")[:8], cell("model_name"), cell("status"),
        "?" if progress is None else format_progress(progress, row.get("total"), None),
        age_text, "" if detail is None else _one_line(detail),
    ]


class TaskBoard:
    """A live table of an MCP server's background tasks, refreshed by polling ``list_tasks``.

    Notebook 02 submits training tasks that outlive the tool call, then watches them
    with ``await board.watch(session)``; ``polls`` shows what that polling cost. In a
    notebook each update re-renders an HTML table (pushed live by ipywidgets). Headless
    it prints the table only when a task appears, disappears or changes status, so an
    executed notebook stays short however many polls it took. Updates may come from
    other threads (e.g. a Strands callback), so state, prints and widget share one lock.
    """

    FINISHED = frozenset({"completed", "failed", "cancelled"})

    def __init__(self, title: str = "Tasks", *, headless: bool | None = None) -> None:
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"title must be a non-empty string, got {title!r}")
        if headless is None:
            from lab_helpers import config  # late, as in ProgressPanel

            headless = config.load().headless
        self.title = _one_line(title)
        self.headless = bool(headless)
        self._lock = threading.Lock()
        self._tasks: list[dict] = []
        self._polls = 0
        self._printed: tuple | None = None  # headless: (id, status) pairs of the last printed table
        self._table: ipywidgets.HTML | None = None
        self.widget: ipywidgets.VBox | None = None
        if not self.headless:
            self._table = ipywidgets.HTML(value=self._html(), layout=ipywidgets.Layout(width="auto"))
            self.widget = ipywidgets.VBox([ipywidgets.HTML(value=f"<b>{html.escape(self.title)}</b>"), self._table],
                                          layout=ipywidgets.Layout(overflow="hidden"))

    @property
    def polls(self) -> int:
        """How many updates (one per :meth:`refresh`) the board has shown: the cost of polling."""
        with self._lock:
            return self._polls

    @property
    def last_tasks(self) -> list[dict]:
        """A copy of the rows last shown."""
        with self._lock:
            return list(self._tasks)

    def update(self, tasks: list[dict]) -> None:
        """Show these rows (in the order given, newest first). Never raises on odd rows."""
        rows = list(tasks or [])
        with self._lock:
            self._tasks, self._polls = rows, self._polls + 1
            try:
                if not self.headless:
                    assert self._table is not None
                    self._table.value = self._html()
                    return
                shape = tuple((t.get("task_id"), t.get("status")) if isinstance(t, dict) else None for t in rows)
                if shape != self._printed:  # progress alone moving is not worth a table
                    self._printed = shape
                    print(f"[{self.title}] poll {self._polls}: {len(rows)} tasks\n{self._text()}", flush=True)
            except Exception:  # noqa: BLE001 - a display glitch must not stop the polling loop
                logger.warning("could not display %d tasks", len(rows), exc_info=True)

    @classmethod
    def all_finished(cls, tasks: list[dict]) -> bool:
        """The default ``watch`` condition: at least one task, and every task finished."""
        return bool(tasks) and all(isinstance(t, dict) and t.get("status") in cls.FINISHED for t in tasks)

    @staticmethod
    async def fetch(session: Any) -> list[dict]:
        """The server's task rows from its ``list_tasks`` tool; a tool error becomes RuntimeError."""
        result = await session.call_tool("list_tasks", {})
        if result.is_error:
            text = " ".join(getattr(item, "text", "") for item in result.content or [])
            raise RuntimeError(f"list_tasks failed: {text or 'no error text'}")
        if not isinstance(result.structured_content, dict) or "tasks" not in result.structured_content:
            raise RuntimeError(f"list_tasks returned no task list: {result.structured_content!r}")
        return list(result.structured_content["tasks"])

    async def refresh(self, session: Any) -> list[dict]:
        """Poll once: fetch the rows, show them, return them."""
        tasks = await self.fetch(session)
        self.update(tasks)
        return tasks

    async def watch(
        self, session: Any, *, interval: float = 0.5,
        until: Callable[[list[dict]], bool] | None = None, timeout: float = 600.0,
    ) -> list[dict]:
        """Refresh every ``interval`` seconds until ``until(tasks)`` (default: all finished, at least one).

        Raises TimeoutError after ``timeout`` seconds, with the last table in the message,
        so a stuck task shows up in the failing cell rather than as a silent hang.
        """
        for name, value in (("interval", interval), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        done = until or self.all_finished
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        async def poll() -> tuple[list[dict]] | None:
            """One refresh, bounded by the deadline (a hanging server must not outlast it); the rows once done."""
            try:
                tasks = await asyncio.wait_for(self.refresh(session), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                return None
            return (tasks,) if done(tasks) else None  # a tuple: an empty list may be "done" too

        try:
            (tasks,) = await eventually_async(poll, timeout=timeout, every=interval, what=self.title)
        except WaitTimeout:
            message = f"{self.title}: not done after {timeout:g}s ({self.polls} polls)\n{self.text()}"
            raise TimeoutError(message) from None
        return tasks

    def text(self) -> str:
        """The current table as plain text: a header line and one aligned line per task."""
        with self._lock:
            return self._text()

    def _ipython_display_(self) -> None:
        """Show the widget when a cell ends with ``board``; headless, show nothing extra."""
        if self.widget is not None:
            from IPython.display import display

            display(self.widget)

    def __repr__(self) -> str:
        return f"TaskBoard({self.title!r}, polls={self.polls}, tasks={len(self.last_tasks)})"

    # -- internals (called with the lock held) -------------------------------------

    def _text(self) -> str:
        rows = [list(_BOARD_COLUMNS)] + [_task_cells(t) for t in self._tasks]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_BOARD_COLUMNS) - 1)]
        return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows)

    def _html(self) -> str:
        styles = [_CELL_STYLE] * (len(_BOARD_COLUMNS) - 1) + [_MESSAGE_STYLE]
        head = "".join(f"<th style='{style}; border-bottom:1px solid #bbb'>{column.lower()}</th>"
                       for column, style in zip(_BOARD_COLUMNS, styles))
        body = [self._html_row(t) for t in self._tasks] or ["<tr><td colspan='6'><i>(no tasks)</i></td></tr>"]
        # white-space:normal on the table: the HTML widget's content does not wrap by default.
        return (f"<table style='border-collapse:collapse; width:100%; white-space:normal; line-height:1.4'>"
                f"<tr>{head}</tr>{''.join(body)}</table>")

    @staticmethod
    def _html_row(task: object) -> str:
        short_id, model, status, progress, age, detail = (html.escape(c) for c in _task_cells(task))
        row = task if isinstance(task, dict) else {}
        color = _STATUS_COLORS.get(str(row.get("status")), "black")
        total = _finite_positive(row.get("total"))
        try:
            value = min(max(float(row.get("progress")), 0.0), total or 0.0)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            value = 0.0
        value = 0.0 if math.isnan(value) else value
        bar = f"<progress value='{value:g}' max='{total:g}'></progress>" if total else "<progress></progress>"
        status = f"<span style='color:{color}'>{status}</span>"
        cells = [f"<code>{short_id}</code>", model, status, f"{bar} {progress}", age]
        return ("<tr>" + "".join(f"<td style='{_CELL_STYLE}'>{c}</td>" for c in cells)
                + f"<td style='{_MESSAGE_STYLE}'>{detail}</td></tr>")
