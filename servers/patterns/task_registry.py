"""Background tasks behind task ids, kept in process memory: notebook 02's pattern and its limits.

A tool that would run for an hour instead starts the work as an asyncio task and
answers at once with a task id; the client asks about the id later, from any
connection. :class:`TaskManager` is that registry:

* every task moves ``submitted (or queued) -> running -> completed | failed | cancelled`` and
  never stays ``running`` after its work ended: an exception becomes ``failed``
  with its message, a cancellation becomes ``cancelled``;
* at most ``max_running`` tasks run at once (the size of the worker pool that does
  the work, ``worker_pool.py``); a task submitted beyond that is ``queued`` and
  starts, oldest first, when a running one ends. A queued task can be cancelled
  like a running one, and a client sees it waiting rather than a silent delay;
* finished tasks are kept for ``retention_seconds`` and then expire, so memory
  does not grow without bound; an expired id is still recognised (a bounded
  memory of recent expiries) so the client hears "expired", not just "unknown";
* looking a task up is a dict access, so status checks stay fast with thousands
  of tasks.

Everything lives in this process. When the process restarts, every task, running
or finished, is gone: that is the limit notebook 02 ends on and notebook 03 fixes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class TaskStatus(str, Enum):
    SUBMITTED = "submitted"
    #: Accepted, waiting for a free worker: every worker runs a task already.
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

#: The message of a task whose work was cancelled by its process going down, not by a cancel request.
SHUTDOWN_MESSAGE = "stopped: the server shut down before the task ended"

#: ``report(progress, message)``: what the work calls after each step.
Report = Callable[[int, str], None]
#: The background work: gets a ``report`` callback, returns the result dict.
Work = Callable[[Report], Awaitable[dict[str, Any]]]


class TaskError(Exception):
    """A request about a task that cannot be answered; the message says why, for the client."""


class TaskLookupError(TaskError, LookupError):
    """No such task: malformed, never issued, expired, or lost with a restart."""


class TaskStateError(TaskError):
    """The task exists but is in the wrong state for the request (results of a running task...)."""


@dataclass
class Task:
    """One background task and everything a client may ask about it."""

    task_id: str
    model_name: str
    epochs: int
    submitted_at: float
    status: TaskStatus = TaskStatus.SUBMITTED
    progress: int = 0
    message: str = "waiting to start"
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    #: Who asked, as the server defines it (notebook 03: the caller's Memory identity); None when nobody cares.
    owner: Any = field(default=None, repr=False)
    job: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self, now: float) -> dict[str, Any]:
        """The task as a tool returns it (JSON-safe)."""
        return {
            "task_id": self.task_id,
            "model_name": self.model_name,
            "epochs": self.epochs,
            "status": self.status.value,
            "progress": self.progress,
            "total": self.epochs,
            "percent": round(100.0 * self.progress / self.epochs, 1),
            "message": self.message,
            "submitted_at": _iso(self.submitted_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "age_seconds": round(now - self.submitted_at, 3),
            "error": self.error,
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def parse_task_id(task_id: object) -> str:
    """The canonical form of a task id, or a :class:`TaskLookupError` saying what a task id looks like."""
    if not isinstance(task_id, str):
        raise TaskLookupError(f"task_id must be a string like '3f1c2a9e-7b4d-4c1e-9a57-0d2f6e8b1c44', got {task_id!r}")
    try:
        return str(uuid.UUID(task_id.strip()))
    except ValueError:
        shown = task_id if len(task_id) <= 60 else task_id[:57] + "..."
        raise TaskLookupError(
            f"malformed task_id {shown!r}: a task id looks like '3f1c2a9e-7b4d-4c1e-9a57-0d2f6e8b1c44'"
        ) from None


class TaskManager:
    """The in-memory registry of background tasks of one server process."""

    def __init__(
        self,
        retention_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        remembered_expiries: int = 10_000,
        on_change: Callable[[Task], None] | None = None,
        max_running: int | None = None,
    ) -> None:
        """``on_change(task)`` is called when a task is queued, when it starts running and when it ends, however
        it ends: the hook a server uses to record each transition somewhere that outlives the process.
        ``max_running``: how many tasks may run at once (None: no limit); the others wait ``queued``."""
        if not retention_seconds >= 0:
            raise ValueError(f"retention_seconds must be >= 0, got {retention_seconds!r}")
        if max_running is not None and not (isinstance(max_running, int) and max_running >= 0):
            raise ValueError(f"max_running must be a whole number >= 0 or None, got {max_running!r}")
        self.max_running = max_running
        self._running = 0  # tasks whose work is under way (started, not yet ended)
        self._queued: OrderedDict[str, tuple[Task, Work]] = OrderedDict()  # waiting for a free worker, oldest first
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._tasks: dict[str, Task] = {}
        self._finished_order: OrderedDict[str, float] = OrderedDict()  # id -> finished_at, oldest first
        self._expired: OrderedDict[str, float] = OrderedDict()  # recently expired id -> when
        self._remembered_expiries = remembered_expiries
        self._on_change = on_change

    # -- asking --------------------------------------------------------------------------------
    def submit(self, model_name: str, epochs: int, work: Work, *, owner: Any = None) -> Task:
        """Register a task and start ``work`` in the background, or queue it when every worker is busy;
        returns at once. Must be called from a running event loop (a tool handler is).
        """
        task = Task(str(uuid.uuid4()), model_name, epochs, submitted_at=self._clock(), owner=owner)
        self._tasks[task.task_id] = task
        if self.max_running is None or self._running < self.max_running:
            self._start(task, work)
        else:
            task.status = TaskStatus.QUEUED
            task.message = f"queued: waiting for a free worker (all {self.max_running} busy)"
            self._queued[task.task_id] = (task, work)
            if self._on_change:
                self._on_change(task)
        return task

    def _start(self, task: Task, work: Work) -> None:
        """Take a worker slot and start the work as an asyncio task, which gives the slot back when it ends.

        A done callback, not a ``finally`` in ``_run``: a job cancelled before its first step never runs its body.
        """
        self._running += 1
        task.job = asyncio.get_running_loop().create_task(self._run(task, work), name=f"task-{task.task_id}")
        task.job.add_done_callback(self._slot_freed)

    def _slot_freed(self, _: asyncio.Task[None]) -> None:
        """A job ended: its slot goes to the oldest queued tasks."""
        self._running -= 1
        while self._queued and (self.max_running is None or self._running < self.max_running):
            _, (task, work) = self._queued.popitem(last=False)
            self._start(task, work)

    def get(self, task_id: object) -> Task:
        """The task with this id; a clear :class:`TaskLookupError` when there is none."""
        task_id = parse_task_id(task_id)
        self.expire()
        task = self._tasks.get(task_id)
        if task is not None:
            return task
        if task_id in self._expired:
            raise TaskLookupError(
                f"task {task_id} has expired: finished tasks are kept for {self.retention_seconds:g} s"
            )
        raise TaskLookupError(
            f"unknown task {task_id}: this server has no record of it (tasks live in server memory, "
            "so a restarted server has forgotten every task it had)"
        )

    def list(self) -> list[Task]:
        """Every task still held, newest first."""
        self.expire()
        return sorted(self._tasks.values(), key=lambda task: task.submitted_at, reverse=True)

    def results(self, task_id: object) -> dict[str, Any]:
        """The result of a completed task; for any other state, an error that says which state."""
        task = self.get(task_id)
        if task.status is TaskStatus.COMPLETED:
            assert task.result is not None
            return task.result
        if task.status is TaskStatus.FAILED:
            raise TaskStateError(f"task {task.task_id} failed, so it has no results: {task.error}")
        if task.status is TaskStatus.CANCELLED:
            raise TaskStateError(f"task {task.task_id} was cancelled, so it has no results")
        raise TaskStateError(
            f"task {task.task_id} is not finished: status is {task.status.value} "
            f"({task.progress}/{task.epochs} epochs); ask again later"
        )

    def cancel(self, task_id: object) -> Task:
        """Stop a queued or running task; it ends ``cancelled`` and its work stops at the next epoch."""
        task = self.get(task_id)
        if task.finished:
            raise TaskStateError(f"task {task.task_id} is already {task.status.value}; there is nothing to cancel")
        self._queued.pop(task.task_id, None)  # a queued task never starts
        self._finish(task, TaskStatus.CANCELLED, message="cancelled by request")
        if task.job is not None:
            task.job.cancel()
        return task

    def expire(self) -> int:
        """Forget finished tasks older than the retention time; returns how many went."""
        horizon = self._clock() - self.retention_seconds
        gone = 0
        while self._finished_order:
            task_id, finished_at = next(iter(self._finished_order.items()))
            if finished_at > horizon:
                break
            del self._finished_order[task_id]
            self._tasks.pop(task_id, None)
            self._expired[task_id] = finished_at
            gone += 1
        while len(self._expired) > self._remembered_expiries:
            self._expired.popitem(last=False)
        return gone

    def __len__(self) -> int:
        """How many tasks are held (after expiring the old ones); O(1), unlike :meth:`list`."""
        self.expire()
        return len(self._tasks)

    def counts(self) -> dict[str, int]:
        """How many tasks are held in each status."""
        counts = {status.value: 0 for status in TaskStatus}
        for task in self._tasks.values():
            counts[task.status.value] += 1
        return counts

    def now(self) -> float:
        return self._clock()

    async def shutdown(self) -> None:
        """Cancel every unfinished task (a server stopping gracefully); queued ones never start."""
        queued, self._queued = list(self._queued.values()), OrderedDict()
        for task, _ in queued:
            self._finish(task, TaskStatus.CANCELLED, message=SHUTDOWN_MESSAGE)
        jobs = [task.job for task in self._tasks.values() if task.job and not task.job.done()]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    # -- the background side -------------------------------------------------------------------
    async def _run(self, task: Task, work: Work) -> None:
        """Run ``work`` and record how it ended; whatever happens, the task does not stay running."""
        if task.finished:  # cancelled before it started
            return
        task.status, task.started_at, task.message = TaskStatus.RUNNING, self._clock(), "started"
        if self._on_change:
            self._on_change(task)

        def report(progress: int, message: str) -> None:
            if not task.finished:
                task.progress, task.message = progress, message

        try:
            result = await work(report)
        except asyncio.CancelledError:  # not a cancel() request (that finished it already): a shutdown
            self._finish(task, TaskStatus.CANCELLED, message=SHUTDOWN_MESSAGE)
            raise
        except Exception as error:  # noqa: BLE001 - every failure must end as a readable 'failed'
            self._finish(task, TaskStatus.FAILED, message="failed", error=str(error) or type(error).__name__)
        else:
            self._finish(task, TaskStatus.COMPLETED, message="completed", result=result)

    def _finish(
        self, task: Task, status: TaskStatus, *, message: str, result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        if task.finished:  # the first ending wins (a cancel request, then the CancelledError it causes)
            return
        task.status, task.finished_at, task.message = status, self._clock(), message
        task.result, task.error = result, error
        self._finished_order[task.task_id] = task.finished_at
        if self._on_change:
            self._on_change(task)
