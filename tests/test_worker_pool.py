"""patterns.worker_pool without processes: its size and the servers' --workers option.

The pool at work (queued beyond it, cancel, a SIGKILLed worker) is tested through the servers over HTTP, in
test_async_tasks.py and test_persistent_tasks.py.
"""

from __future__ import annotations

import pytest

from patterns.worker_pool import WorkerPool, machine_size, split_workers_option


def test_the_workers_option_is_taken_out_and_the_rest_is_left_for_the_server() -> None:
    assert split_workers_option(["--port", "8000", "--workers", "3", "--resumable"]) == (3, ["--port", "8000",
                                                                                           "--resumable"])
    assert split_workers_option(["--port", "8000"]) == (None, ["--port", "8000"])


@pytest.mark.parametrize("bad", ["-1", "257", "two"])
def test_a_bad_workers_option_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        split_workers_option(["--workers", bad])


def test_the_pool_is_sized_to_the_machine_unless_told_and_starts_nothing_until_used() -> None:
    assert WorkerPool().size == machine_size() >= 1
    pool = WorkerPool(0)
    assert pool.describe() == {"workers": 0, "busy": 0, "started": 0, "busy_pids": []}
    with pytest.raises(ValueError, match="size must be a whole number >= 0"):
        WorkerPool(-1)
