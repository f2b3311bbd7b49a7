"""The training workload really learns, reports what it computed, paces itself and saves a real model."""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab_helpers import training
from lab_helpers.training import EpochScores, TrainingError, TrainingResult, train_model, validate_request


def train(tmp_path: Path, name: str = "spiral", epochs: int = 20, **kwargs: Any) -> TrainingResult:
    """One unpaced run with its artifact under tmp_path."""
    kwargs.setdefault("time_scale", 0)
    kwargs.setdefault("artifacts_dir", tmp_path)
    return asyncio.run(train_model(name, epochs, **kwargs))


def files_in(directory: Path) -> list[str]:
    """Every file in the directory, hidden temporary files included."""
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def without_timing(result: TrainingResult) -> dict[str, Any]:
    data = result.to_dict()
    for key in ("seconds", "artifact_path"):
        del data[key]
    for scores in data["history"]:
        del scores["elapsed_seconds"]
    return data


@pytest.mark.parametrize("name", ["spiral", "demo-model", "run.7"])
def test_learning_is_visible_over_epochs(tmp_path: Path, name: str) -> None:
    long_run = train(tmp_path, name, 20)
    short_run = train(tmp_path, name, 2)
    assert long_run.val_accuracy > 0.85
    assert long_run.train_accuracy > 0.85
    assert short_run.val_accuracy < long_run.val_accuracy - 0.05
    assert long_run.val_loss < short_run.val_loss
    # The two runs share their first two epochs: same seed, same data, same shuffles.
    assert [s.val_accuracy for s in long_run.history[:2]] == [s.val_accuracy for s in short_run.history]
    assert long_run.history[-1].train_loss < long_run.history[0].train_loss


def test_result_reports_the_last_epoch_and_is_json_safe(tmp_path: Path) -> None:
    result = train(tmp_path, "report", 5)
    last = result.history[-1]
    assert (result.model_name, result.epochs, len(result.history)) == ("report", 5, 5)
    assert (result.train_accuracy, result.val_accuracy) == (last.train_accuracy, last.val_accuracy)
    assert (result.train_loss, result.val_loss) == (last.train_loss, last.val_loss)
    assert result.learning_rate == training.DEFAULT_LEARNING_RATE
    assert result.seconds >= last.elapsed_seconds > 0
    data = json.loads(json.dumps(result.to_dict()))
    assert data == result.to_dict()
    assert data["history"][2] == {**result.history[2].to_dict(), "epoch": 3, "epochs": 5}
    assert all(type(data[key]) is float for key in ("train_accuracy", "val_accuracy", "train_loss", "val_loss"))


def test_summary_line() -> None:
    scores = EpochScores(3, 10, 0.41234, 0.8123, 0.45149, 0.79, 1.5)
    assert scores.summary() == "epoch 3/10: train acc 0.812 loss 0.412 | val acc 0.790 loss 0.451"


def test_sync_callback_gets_every_epoch_in_order(tmp_path: Path) -> None:
    seen: list[EpochScores] = []
    result = train(tmp_path, "sync-cb", 6, on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3, 4, 5, 6]
    assert {s.epochs for s in seen} == {6}
    assert seen == result.history


def test_async_callback_is_awaited_for_every_epoch(tmp_path: Path) -> None:
    seen: list[EpochScores] = []

    async def report(scores: EpochScores) -> None:
        await asyncio.sleep(0)
        seen.append(scores)

    result = train(tmp_path, "async-cb", 4, on_epoch=report)
    assert [s.epoch for s in seen] == [1, 2, 3, 4]
    assert seen == result.history
    assert [s.elapsed_seconds for s in seen] == sorted(s.elapsed_seconds for s in seen)


def test_same_name_gives_the_same_numbers(tmp_path: Path) -> None:
    first, second = train(tmp_path, "repeatable", 5), train(tmp_path, "repeatable", 5)
    assert first.seed == second.seed == zlib.crc32(b"repeatable")
    assert without_timing(first) == without_timing(second)
    assert first.artifact_path != second.artifact_path  # every run keeps its own artifact


def test_another_seed_or_name_gives_other_numbers(tmp_path: Path) -> None:
    default = train(tmp_path, "repeatable", 5)
    reseeded = train(tmp_path, "repeatable", 5, seed=default.seed + 1)
    renamed = train(tmp_path, "repeatable2", 5)
    assert reseeded.seed == default.seed + 1
    assert [s.train_loss for s in reseeded.history] != [s.train_loss for s in default.history]
    assert renamed.seed != default.seed
    assert [s.train_loss for s in renamed.history] != [s.train_loss for s in default.history]
    same_seed = train(tmp_path, "other-name", 5, seed=default.seed)
    assert without_timing(same_seed)["history"] == without_timing(default)["history"]


def test_artifact_is_the_model_that_earned_the_scores(tmp_path: Path) -> None:
    result = train(tmp_path / "new" / "dir", "round-trip", 12)
    path = Path(result.artifact_path)
    assert path.is_absolute() and path.parent == (tmp_path / "new" / "dir").resolve()
    assert re.fullmatch(r"round-trip-[0-9a-f]{8}\.npz", path.name)
    assert files_in(path.parent) == [path.name]  # no temporary file left behind

    model = training.load_artifact(path)
    X_train, y_train, X_val, y_val = training.make_dataset(result.seed)
    assert (len(X_train), len(X_val)) == (800, 200)
    assert model.accuracy(X_val, y_val) == pytest.approx(result.val_accuracy, abs=1e-9)
    assert model.accuracy(X_train, y_train) == pytest.approx(result.train_accuracy, abs=1e-9)
    proba = model.predict_proba(X_val)
    assert proba.shape == (200,) and np.all((proba >= 0) & (proba <= 1))
    assert np.array_equal(model.predict(X_val), (proba >= 0.5).astype(int))
    assert model.metadata["model_name"] == "round-trip"
    assert (model.metadata["epochs"], model.metadata["seed"]) == (12, result.seed)
    assert model.metadata["learning_rate"] == result.learning_rate
    assert model.metadata["val_accuracy"] == result.val_accuracy
    assert model.metadata["created"]


def test_missing_or_damaged_artifact_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no training artifact at .*nothing.npz"):
        training.load_artifact(tmp_path / "nothing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="garbage.npz is not a readable training artifact"):
        training.load_artifact(garbage)
    whole = Path(train(tmp_path, "cut", 2).artifact_path).read_bytes()
    half = tmp_path / "half.npz"
    half.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="half.npz is not a readable training artifact"):
        training.load_artifact(half)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, W1=np.zeros(3))
    with pytest.raises(ValueError, match="foreign.npz is not a readable training artifact"):
        training.load_artifact(foreign)


def test_huge_learning_rate_diverges_without_an_artifact(tmp_path: Path) -> None:
    seen: list[EpochScores] = []
    with pytest.raises(TrainingError) as raised:
        train(tmp_path, "unstable", 20, learning_rate=1e5, on_epoch=seen.append)
    message = str(raised.value)
    epoch = int(re.search(r"diverged at epoch (\d+)/20", message).group(1))  # type: ignore[union-attr]
    assert epoch <= 3 and len(seen) == epoch - 1
    assert "lower learning rate" in message and "'unstable'" in message
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("seed", range(5))
def test_divergence_is_reliable_for_any_seed(tmp_path: Path, seed: int) -> None:
    with pytest.raises(TrainingError, match="diverged at epoch [123]/"):
        train(tmp_path, "unstable", 20, learning_rate=1e5, seed=seed)


@pytest.mark.parametrize(
    ("name", "epochs", "learning_rate", "message"),
    [
        ("ok", 0, 0.1, "epochs must be between 1 and 1000, got 0"),
        ("ok", -1, 0.1, "epochs must be between 1 and 1000, got -1"),
        ("ok", 1001, 0.1, "epochs must be between 1 and 1000, got 1001"),
        ("ok", True, 0.1, "epochs must be a whole number between 1 and 1000, got True"),
        ("ok", 2.5, 0.1, "epochs must be a whole number between 1 and 1000, got 2.5"),
        ("ok", "5", 0.1, "epochs must be a whole number between 1 and 1000, got '5'"),
        ("", 5, 0.1, "model_name must be 1-64 characters of letters, digits, '_', '.', '-' "
         "(starting with a letter or digit), got ''"),
        ("a" * 65, 5, 0.1, "model_name must be 1-64 characters"),
        ("../x", 5, 0.1, "got '../x'"),
        ("a/b", 5, 0.1, "got 'a/b'"),
        (".hidden", 5, 0.1, "got '.hidden'"),
        ("name\n", 5, 0.1, "got 'name\\n'"),
        (None, 5, 0.1, "model_name must be 1-64 characters"),
        ("ok", 5, 0, "learning_rate must be a finite number greater than 0 and at most 1e+06, got 0"),
        ("ok", 5, -0.1, "learning_rate must be a finite number greater than 0 and at most 1e+06, got -0.1"),
        ("ok", 5, float("nan"), "learning_rate must be a finite number greater than 0 and at most 1e+06, got nan"),
        ("ok", 5, float("inf"), "learning_rate must be a finite number greater than 0 and at most 1e+06, got inf"),
        ("ok", 5, 2e6, "learning_rate must be a finite number greater than 0 and at most 1e+06, got 2000000.0"),
    ],
)
def test_bad_requests_name_the_argument_and_the_range(
    tmp_path: Path, name: Any, epochs: Any, learning_rate: Any, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        validate_request(name, epochs, max_epochs=1000, learning_rate=learning_rate)
    assert message in str(raised.value)
    with pytest.raises(ValueError, match=re.escape(message)):
        train(tmp_path, name, epochs, learning_rate=learning_rate)
    assert files_in(tmp_path) == []


def test_good_requests_pass_and_max_epochs_is_the_limit() -> None:
    validate_request("a", 1, max_epochs=1)
    validate_request("A" * 64, 7, max_epochs=7, learning_rate=1e6)
    validate_request("model_v1.2-final", np.int64(3), max_epochs=10)
    with pytest.raises(ValueError, match="epochs must be between 1 and 7, got 8"):
        validate_request("a", 8, max_epochs=7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_scale": -1}, "time_scale must be a finite number >= 0, got -1"),
        ({"time_scale": float("nan")}, "time_scale must be a finite number >= 0, got nan"),
        ({"epoch_seconds": -0.5}, "epoch_seconds must be a finite number >= 0, got -0.5"),
        ({"seed": -1}, "seed must be a whole number >= 0, got -1"),
    ],
)
def test_bad_pacing_or_seed_is_rejected(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        train(tmp_path, "ok", 3, **kwargs)


def test_each_epoch_lasts_at_least_the_scaled_epoch_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    result = train(tmp_path, "paced", 3, epoch_seconds=0.05, time_scale=1)
    assert time.monotonic() - started >= 0.15
    ends = [0.0] + [s.elapsed_seconds for s in result.history]
    assert all(later - earlier >= 0.05 for earlier, later in zip(ends, ends[1:]))

    started = time.monotonic()
    result = train(tmp_path, "paced", 3, epoch_seconds=0.05, time_scale=0.5)
    assert time.monotonic() - started >= 0.075
    assert result.history[-1].elapsed_seconds >= 0.075


def test_concurrent_runs_take_turns_every_epoch(tmp_path: Path) -> None:
    order: list[tuple[str, int]] = []

    def run(name: str) -> Any:
        def report(scores: EpochScores) -> None:
            order.append((name, scores.epoch))

        return train_model(name, 4, time_scale=0, artifacts_dir=tmp_path, on_epoch=report)

    async def both() -> None:
        await asyncio.gather(run("a"), run("b"))

    asyncio.run(both())
    assert order == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3), ("a", 4), ("b", 4)]


def test_cancellation_mid_run_leaves_no_artifact(tmp_path: Path) -> None:
    seen: list[int] = []

    async def cancel_after_two_epochs() -> None:
        second_epoch = asyncio.Event()

        def report(scores: EpochScores) -> None:
            seen.append(scores.epoch)
            if scores.epoch == 2:
                second_epoch.set()

        task = asyncio.create_task(
            train_model("cancelled", 50, epoch_seconds=0.02, time_scale=1, artifacts_dir=tmp_path, on_epoch=report)
        )
        await second_epoch.wait()
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancel_after_two_epochs())
    assert 2 <= len(seen) <= 3
    assert files_in(tmp_path) == []


def test_the_worker_job_trains_the_same_model_and_a_cancel_in_its_pause_leaves_no_artifact(tmp_path: Path) -> None:
    """training_job is the run a task server's worker process makes: same numbers as train_model, paced by pause."""
    reports: list[tuple[int, str]] = []
    pauses: list[float] = []
    job = {"model_name": "in-worker", "epochs": 5, "learning_rate": 0.3, "time_scale": 0.001, "max_epochs": 100}
    result = training.training_job(lambda *report: reports.append(report), pauses.append,
                                   artifacts_dir=str(tmp_path / "job"), **job)
    reference = train(tmp_path / "reference", "in-worker", 5)
    assert [r["val_accuracy"] for r in result["history"]] == [s.val_accuracy for s in reference.history]
    assert [epoch for epoch, _ in reports] == [1, 2, 3, 4, 5] and reports[-1][1].startswith("epoch 5/5: train acc")
    assert len(pauses) == 5 and all(0 <= pause <= 0.001 for pause in pauses)

    class Cancelled(Exception):
        pass

    def pause(_: float) -> None:
        if len(reports) >= 7:  # two epochs into the second run
            raise Cancelled

    with pytest.raises(Cancelled):
        training.training_job(lambda *report: reports.append(report), pause,
                              artifacts_dir=str(tmp_path / "cancelled"), **{**job, "epochs": 50})
    assert files_in(tmp_path / "cancelled") == []
