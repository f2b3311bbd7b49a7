"""The heartbeat beats while work runs and stops when the work ends, however it ends."""

from __future__ import annotations

import asyncio

import pytest

from patterns.heartbeat import heartbeat

INTERVAL = 0.02


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.beats: list[int] = []
        self.fail_first = fail_first

    async def __call__(self, count: int, elapsed: float) -> None:
        assert elapsed > 0
        if count <= self.fail_first:
            raise ConnectionError("client went away")
        self.beats.append(count)


async def _beats_after(recorder: Recorder) -> int:
    """How many beats arrive in the 5 intervals after the work ended (must be 0)."""
    before = len(recorder.beats)
    await asyncio.sleep(5 * INTERVAL)
    return len(recorder.beats) - before


def test_beats_while_the_work_runs_then_stops() -> None:
    async def scenario() -> tuple[int, int, bool]:
        recorder = Recorder()
        async with heartbeat(recorder, INTERVAL) as stats:
            await asyncio.sleep(10 * INTERVAL)
        return len(recorder.beats), await _beats_after(recorder), stats.stopped

    beats, after, stopped = asyncio.run(scenario())
    assert beats >= 5
    assert after == 0 and stopped


def test_stops_when_the_work_raises() -> None:
    async def scenario() -> int:
        recorder = Recorder()
        with pytest.raises(ValueError, match="training diverged"):
            async with heartbeat(recorder, INTERVAL):
                await asyncio.sleep(4 * INTERVAL)
                raise ValueError("training diverged")
        assert recorder.beats
        return await _beats_after(recorder)

    assert asyncio.run(scenario()) == 0


def test_stops_when_the_work_is_cancelled() -> None:
    async def scenario() -> int:
        recorder = Recorder()

        async def work() -> None:
            async with heartbeat(recorder, INTERVAL):
                await asyncio.sleep(3600)

        task = asyncio.create_task(work())
        await asyncio.sleep(4 * INTERVAL)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert recorder.beats
        leftover = [t for t in asyncio.all_tasks() if t.get_name() == "heartbeat"]
        assert leftover == []
        return await _beats_after(recorder)

    assert asyncio.run(scenario()) == 0


def test_a_failing_beat_is_counted_and_does_not_stop_the_work() -> None:
    async def scenario() -> tuple[int, int]:
        recorder = Recorder(fail_first=2)
        async with heartbeat(recorder, INTERVAL) as stats:
            await asyncio.sleep(8 * INTERVAL)
        return stats.failures, len(recorder.beats)

    failures, delivered = asyncio.run(scenario())
    assert failures == 2
    assert delivered >= 2


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), "1"])
def test_rejects_an_interval_that_is_not_positive_seconds(interval: object) -> None:
    async def scenario() -> None:
        async with heartbeat(Recorder(), interval):  # type: ignore[arg-type]
            pass

    with pytest.raises(ValueError, match="heartbeat interval must be a positive number of seconds"):
        asyncio.run(scenario())
