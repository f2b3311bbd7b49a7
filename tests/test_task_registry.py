"""patterns.task_registry: every state transition, cancel, failure, expiry, and clear errors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from patterns.task_registry import TaskLookupError, TaskManager, TaskStateError, TaskStatus, parse_task_id


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _steps(count: int, *, fail_at: int | None = None, pause: float = 0.005):
    """Work that reports each step, optionally raising at one."""

    async def work(report) -> dict[str, Any]:
        for step in range(1, count + 1):
            await asyncio.sleep(pause)
            if step == fail_at:
                raise RuntimeError(f"loss diverged at step {step}")
            report(step, f"step {step}/{count}")
        return {"score": 0.9, "steps": count}

    return work


def test_submitted_running_completed_with_progress_and_results() -> None:
    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60)
        task = tasks.submit("m", 5, _steps(5))
        assert task.status is TaskStatus.SUBMITTED and task.progress == 0
        await asyncio.sleep(0)
        assert task.status is TaskStatus.RUNNING and task.started_at is not None
        await asyncio.sleep(0.015)
        middle = tasks.get(task.task_id)
        assert 0 < middle.progress < 5 and middle.message.startswith("step ")
        with pytest.raises(TaskStateError, match=r"is not finished: status is running \(\d/5 epochs\)"):
            tasks.results(task.task_id)
        await task.job
        assert task.status is TaskStatus.COMPLETED and task.progress == 5
        assert tasks.results(task.task_id) == {"score": 0.9, "steps": 5}
        row = task.to_dict(tasks.now())
        assert row["status"] == "completed" and row["percent"] == 100.0 and row["finished_at"].endswith("+00:00")

    asyncio.run(scenario())


def test_a_failing_run_ends_failed_with_its_message() -> None:
    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60)
        task = tasks.submit("m", 5, _steps(5, fail_at=3))
        await task.job
        assert task.status is TaskStatus.FAILED and task.error == "loss diverged at step 3"
        assert task.progress == 2
        with pytest.raises(TaskStateError, match="failed, so it has no results: loss diverged at step 3"):
            tasks.results(task.task_id)

    asyncio.run(scenario())


def test_cancel_stops_the_work_and_cannot_be_repeated() -> None:
    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60)
        task = tasks.submit("m", 100, _steps(100))
        await asyncio.sleep(0.02)
        progress = task.progress
        assert tasks.cancel(task.task_id).status is TaskStatus.CANCELLED
        with pytest.raises(asyncio.CancelledError):
            await task.job
        await asyncio.sleep(0.02)
        assert task.progress == progress, "the work stopped"
        assert task.status is TaskStatus.CANCELLED and task.message == "cancelled by request"
        with pytest.raises(TaskStateError, match="is already cancelled; there is nothing to cancel"):
            tasks.cancel(task.task_id)
        with pytest.raises(TaskStateError, match="was cancelled, so it has no results"):
            tasks.results(task.task_id)

    asyncio.run(scenario())


def test_cancel_before_start_never_runs_the_work() -> None:
    started = []

    async def work(report) -> dict[str, Any]:
        started.append(True)
        return {}

    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60)
        task = tasks.submit("m", 1, work)
        tasks.cancel(task.task_id)
        await asyncio.gather(task.job, return_exceptions=True)
        assert task.status is TaskStatus.CANCELLED

    asyncio.run(scenario())
    assert started == []


def test_finished_tasks_expire_after_the_retention_time_and_say_so() -> None:
    clock = Clock()

    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=30, clock=clock)
        done = tasks.submit("done", 1, _steps(1, pause=0))
        running = tasks.submit("running", 1000, _steps(1000, pause=0.01))
        await done.job
        clock.now += 29
        assert tasks.get(done.task_id) is done
        clock.now += 2
        assert tasks.expire() == 1  # get() and list() also sweep, so this is never needed by hand
        with pytest.raises(TaskLookupError, match=rf"task {done.task_id} has expired: finished tasks are kept for 30 s"):
            tasks.get(done.task_id)
        assert [task.model_name for task in tasks.list()] == ["running"], "running tasks never expire"
        tasks.cancel(running.task_id)

    asyncio.run(scenario())


def test_expired_ids_are_remembered_only_up_to_a_bound() -> None:
    clock = Clock()

    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=0, clock=clock, remembered_expiries=2)
        finished = [tasks.submit(f"m{n}", 1, _steps(1, pause=0)) for n in range(3)]
        await asyncio.gather(*(task.job for task in finished))
        clock.now += 1
        assert tasks.expire() == 3
        with pytest.raises(TaskLookupError, match="unknown task"):
            tasks.get(finished[0].task_id)  # forgotten entirely
        with pytest.raises(TaskLookupError, match="has expired"):
            tasks.get(finished[2].task_id)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("task_id", "message"),
    [
        ("abc", "malformed task_id 'abc'"),
        ("", "malformed task_id ''"),
        ("x" * 500, "malformed task_id 'xxxx"),
        (42, "task_id must be a string"),
        (None, "task_id must be a string"),
        (str(uuid.uuid4()), "unknown task"),
    ],
)
def test_bad_task_ids_get_clear_errors(task_id: object, message: str) -> None:
    with pytest.raises(TaskLookupError, match=message.replace("(", r"\(")):
        TaskManager(retention_seconds=1).get(task_id)


def test_task_ids_are_canonicalised() -> None:
    task_id = str(uuid.uuid4())
    assert parse_task_id(f"  {task_id.upper()} ") == task_id


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="retention_seconds must be >= 0"):
        TaskManager(retention_seconds=-1)


def test_many_tasks_at_once_and_shutdown_cancels_the_rest() -> None:
    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60)
        quick = [tasks.submit(f"q{n}", 3, _steps(3, pause=0.001)) for n in range(300)]
        slow = [tasks.submit(f"s{n}", 1000, _steps(1000, pause=0.01)) for n in range(200)]
        await asyncio.gather(*(task.job for task in quick))
        assert tasks.counts() == {"submitted": 0, "queued": 0, "running": 200, "completed": 300, "failed": 0,
                                  "cancelled": 0}
        await tasks.shutdown()
        assert all(task.status is TaskStatus.CANCELLED for task in slow)

    asyncio.run(scenario())


def test_beyond_max_running_tasks_wait_queued_and_start_oldest_first() -> None:
    changes: list[tuple[str, str]] = []

    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60, max_running=2,
                            on_change=lambda task: changes.append((task.model_name, task.status.value)))
        first, second = tasks.submit("first", 3, _steps(3)), tasks.submit("second", 30, _steps(30))
        third, fourth = (tasks.submit(name, 3, _steps(3)) for name in ("third", "fourth"))
        assert [t.status for t in (first, second, third, fourth)] == [TaskStatus.SUBMITTED] * 2 + [TaskStatus.QUEUED] * 2
        assert third.job is None and "waiting for a free worker (all 2 busy)" in third.message
        await asyncio.sleep(0)
        assert tasks.counts()["running"] == 2 and tasks.counts()["queued"] == 2
        await first.job
        await asyncio.sleep(0)
        assert third.status is TaskStatus.RUNNING and fourth.status is TaskStatus.QUEUED, "oldest queued first"
        await asyncio.gather(second.job, third.job)
        await asyncio.sleep(0)
        await fourth.job
        assert all(t.status is TaskStatus.COMPLETED for t in (first, second, third, fourth))

    asyncio.run(scenario())
    assert ("third", "queued") in changes and changes.index(("third", "queued")) < changes.index(("third", "running"))


def test_a_cancelled_queued_task_never_starts_and_frees_its_place() -> None:
    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60, max_running=1)
        running = tasks.submit("running", 100, _steps(100))
        queued = tasks.submit("queued", 100, _steps(100))
        behind = tasks.submit("behind", 1, _steps(1))
        assert tasks.cancel(queued.task_id).status is TaskStatus.CANCELLED
        tasks.cancel(running.task_id)
        await asyncio.gather(running.job, return_exceptions=True)
        await asyncio.sleep(0)
        assert queued.job is None and queued.started_at is None, "the cancelled queued task never ran"
        await behind.job
        assert behind.status is TaskStatus.COMPLETED

    asyncio.run(scenario())


def test_shutdown_ends_queued_tasks_without_starting_them() -> None:
    async def scenario() -> None:
        tasks = TaskManager(retention_seconds=60, max_running=0)
        queued = tasks.submit("never", 1, _steps(1))
        await tasks.shutdown()
        assert queued.status is TaskStatus.CANCELLED and queued.job is None and "shut down" in queued.message

    asyncio.run(scenario())


@pytest.mark.parametrize("bad", [-1, 1.5, "2"])
def test_a_bad_max_running_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="max_running must be a whole number >= 0 or None"):
        TaskManager(retention_seconds=1, max_running=bad)  # type: ignore[arg-type]
