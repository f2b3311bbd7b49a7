"""A real, small training workload for the long-running-task lessons.

The MCP demo tools need work that takes a while and produces something true to
report. A ``sleep`` loop reports nothing true, so this module really trains a
tiny model with NumPy: a 2-16-1 multilayer perceptron learning two interleaving
spirals, epoch by epoch, scoring itself on a training and a held-out validation
set after every epoch and saving its weights to a file whose path it returns.

Each epoch's arithmetic takes about half a millisecond of CPU; the lesson's sense
of "long-running" comes from pacing (``epoch_seconds * time_scale`` per epoch, a
stand-in for a real model's compute), and every epoch is a point where a run can be
cancelled. :class:`TrainingRun` is the run itself, one epoch at a time;
:func:`train_model` paces it on an event loop (notebook 01's server), and
:func:`training_job` in a worker process (notebooks 02 and 03's task servers,
``servers/patterns/worker_pool.py``), where a thousand runs do not hold the loop
that answers calls. Everything is seeded (by default from
the model name), so the same request gives the same numbers, and
:func:`load_artifact` with :func:`make_dataset` lets a notebook prove that the
saved file is the model that earned the reported scores.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import numbers
import os
import re
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab_helpers.config import Settings

if TYPE_CHECKING:  # the pool imports nothing from here; only the type is needed
    from patterns.worker_pool import WorkerPool

#: Length of one epoch at time scale 1 (the reading pace; multiplied by the time scale): a run of 20 epochs reads along in 20 s.
EPOCH_SECONDS = 1.0

#: Allowed model names. The name becomes part of the artifact's file name, so no
#: path separators, no leading dot (hidden files, ``..``) and a bounded length.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: Step size that reaches > 0.9 validation accuracy in 20 epochs (with the momentum below),
#: yet slow enough that the first epochs visibly score lower.
DEFAULT_LEARNING_RATE = 0.3
#: Largest learning rate accepted: far past divergence already, but still finite arithmetic.
MAX_LEARNING_RATE = 1e6
#: Momentum of the gradient descent: plain SGD needs many more epochs on spirals.
MOMENTUM = 0.9
#: Mini-batch size: 13 updates per epoch on 800 training points.
BATCH_SIZE = 64
#: Points in the generated dataset, and the share held out for validation.
N_SAMPLES = 1000
VALIDATION_FRACTION = 0.2
#: Width of the single hidden layer.
HIDDEN_UNITS = 16
#: Spiral noise (standard deviation, in the spiral's radius units).
NOISE = 0.1
#: A run has diverged once its training loss exceeds this multiple of the untrained model's loss.
DIVERGENCE_FACTOR = 100.0
#: Mixed into the seed for weight initialisation and shuffling, so they never reuse the data's random stream.
_TRAINING_STREAM = 1
#: Identifies the artifact layout, so a later format can refuse old files clearly.
ARTIFACT_FORMAT = "lab-mlp-v1"
_WEIGHT_NAMES = ("W1", "b1", "w2", "b2")

Weights = dict[str, np.ndarray]
OnEpoch = Callable[["EpochScores"], Awaitable[None] | None]


class TrainingError(RuntimeError):
    """A run that cannot go on, e.g. the loss diverged."""


@dataclass(frozen=True)
class EpochScores:
    """The scores measured after one epoch: what a progress notification reports."""

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    #: Seconds since the run started, at the end of this (paced) epoch.
    elapsed_seconds: float

    def summary(self) -> str:
        """One line for a progress message, e.g. ``epoch 3/10: train acc 0.812 loss 0.412 | val acc ...``."""
        return (
            f"epoch {self.epoch}/{self.epochs}: "
            f"train acc {self.train_accuracy:.3f} loss {self.train_loss:.3f} | "
            f"val acc {self.val_accuracy:.3f} loss {self.val_loss:.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values."""
        return asdict(self)


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run returns: final scores, their history and where the model was saved."""

    model_name: str
    epochs: int
    train_accuracy: float
    val_accuracy: float
    train_loss: float
    val_loss: float
    history: list[EpochScores]
    artifact_path: str
    seconds: float
    seed: int
    learning_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values (a tool result), the history as a list of dicts."""
        return {
            "model_name": self.model_name,
            "epochs": self.epochs,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "history": [scores.to_dict() for scores in self.history],
            "artifact_path": self.artifact_path,
            "seconds": self.seconds,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
        }


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained network loaded back from its artifact, able to score new points.

    It takes raw points (as :func:`make_dataset` returns them): the standardisation
    learnt from the training set is part of the model, as it must be to use it.
    """

    weights: Weights
    mean: np.ndarray
    std: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row of ``X`` (shape ``(n, 2)``)."""
        return _sigmoid(_logits(self.weights, _standardise(np.asarray(X, dtype=float), self.mean, self.std)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class 0 or 1 for each row of ``X``, decided exactly as during training (logit >= 0)."""
        return (_logits(self.weights, _standardise(np.asarray(X, dtype=float), self.mean, self.std)) >= 0).astype(int)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Share of rows whose predicted class equals ``y``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut short so a huge bad argument cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def validate_request(
    model_name: str, epochs: int, *, max_epochs: int, learning_rate: float = DEFAULT_LEARNING_RATE
) -> None:
    """Reject a request before any work starts, with a message a tool caller can act on.

    These values arrive from a model's tool call, so each message names the
    argument, the allowed range and the value received.
    """
    if not (isinstance(model_name, str) and MODEL_NAME_PATTERN.fullmatch(model_name)):
        raise ValueError(
            "model_name must be 1-64 characters of letters, digits, '_', '.', '-' "
            f"(starting with a letter or digit), got {_shown(model_name)}"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
        raise ValueError(f"epochs must be a whole number between 1 and {max_epochs}, got {_shown(epochs)}")
    if not 1 <= epochs <= max_epochs:
        raise ValueError(f"epochs must be between 1 and {max_epochs}, got {epochs}")
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, numbers.Real)
        or not (math.isfinite(learning_rate) and 0 < learning_rate <= MAX_LEARNING_RATE)
    ):
        raise ValueError(
            f"learning_rate must be a finite number greater than 0 and at most {MAX_LEARNING_RATE:g}, "
            f"got {_shown(learning_rate)}"
        )


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {_shown(value)}")


def seed_for(model_name: str) -> int:
    """The default seed of a model name: stable across processes (unlike ``hash``), so a name means its numbers."""
    return zlib.crc32(model_name.encode("utf-8"))


def make_dataset(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two interleaving noisy spirals: ``(X_train, y_train, X_val, y_val)``, split 80/20.

    A straight line cannot separate the spirals (the best linear boundary scores
    about 0.75), so accuracy above that shows the hidden layer really learning.
    Features are raw coordinates: :func:`train_model` standardises them with the
    training set's mean and standard deviation and saves those with the weights.
    """
    rng = np.random.default_rng(seed)
    half = N_SAMPLES // 2
    arms = []
    for label, phase in ((0, 0.0), (1, np.pi)):
        # sqrt spreads points evenly along the arm instead of crowding the centre.
        angle = np.sqrt(rng.uniform(0.0, 1.0, half)) * 2 * np.pi
        radius = angle / (2 * np.pi)
        arms.append(np.column_stack([radius * np.cos(angle + phase), radius * np.sin(angle + phase)]))
    X = np.concatenate(arms) + rng.normal(0.0, NOISE, (2 * half, 2))
    y = np.repeat([0, 1], half)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    n_val = int(round(len(y) * VALIDATION_FRACTION))
    return X[n_val:], y[n_val:], X[:n_val], y[:n_val]


def _standardise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (X - mean) / std


def _init_weights(rng: np.random.Generator) -> Weights:
    """Glorot-scaled random weights: large enough to break symmetry, small enough that tanh is not saturated."""
    return {
        "W1": rng.normal(0.0, 1 / math.sqrt(2), (2, HIDDEN_UNITS)),
        "b1": np.zeros(HIDDEN_UNITS),
        "w2": rng.normal(0.0, 1 / math.sqrt(HIDDEN_UNITS), HIDDEN_UNITS),
        "b2": np.zeros(()),
    }


def _logits(weights: Weights, X: np.ndarray) -> np.ndarray:
    return np.tanh(X @ weights["W1"] + weights["b1"]) @ weights["w2"] + weights["b2"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function without overflow for large ``|z|``."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _scores(weights: Weights, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean binary cross-entropy and accuracy on a whole set.

    The loss is computed from logits (``max(z,0) - z*y + log(1+exp(-|z|))``), which
    stays finite where ``log(sigmoid(z))`` would hit ``log(0)``: a diverging run
    shows a huge loss instead of a misleading ``inf``.
    """
    z = _logits(weights, X)
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return float(loss), float(np.mean((z >= 0) == (y == 1)))


def _train_epoch(
    weights: Weights, velocity: Weights, X: np.ndarray, y: np.ndarray, rng: np.random.Generator, learning_rate: float
) -> None:
    """One pass over ``X`` in shuffled mini-batches of gradient descent with momentum, updating in place."""
    order = rng.permutation(len(y))
    W1, b1, w2 = weights["W1"], weights["b1"], weights["w2"]
    for start in range(0, len(y), BATCH_SIZE):
        batch = order[start : start + BATCH_SIZE]
        xb, yb = X[batch], y[batch]
        hidden = np.tanh(xb @ W1 + b1)
        dz = (_sigmoid(hidden @ w2 + weights["b2"]) - yb) / len(batch)  # d(mean BCE)/d(logit)
        da = np.outer(dz, w2) * (1 - hidden * hidden)
        grads = {"W1": xb.T @ da, "b1": da.sum(axis=0), "w2": hidden.T @ dz, "b2": dz.sum()}
        for name in _WEIGHT_NAMES:
            velocity[name] *= MOMENTUM
            velocity[name] -= learning_rate * grads[name]
            weights[name] += velocity[name]


def _save_artifact(
    artifacts_dir: Path, model_name: str, weights: Weights, mean: np.ndarray, std: np.ndarray, metadata: dict[str, Any]
) -> str:
    """Write the artifact under a temporary name, then rename it into place.

    ``os.replace`` within one directory is atomic, so a reader listing the
    directory sees either no artifact or a complete one, never half a file.
    """
    final = (artifacts_dir / f"{model_name}-{uuid.uuid4().hex[:8]}.npz").resolve()
    fd, tmp = tempfile.mkstemp(dir=artifacts_dir, prefix=f".{model_name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **weights, mean=mean, std=std, metadata=np.array(json.dumps(metadata)))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(final)


def load_artifact(path: str | os.PathLike[str]) -> TrainedModel:
    """Load a model saved by :func:`train_model`; raise a clear error for a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training artifact at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {name: np.array(data[name], dtype=float) for name in _WEIGHT_NAMES}
            mean, std = np.array(data["mean"], dtype=float), np.array(data["std"], dtype=float)
            metadata = json.loads(str(data["metadata"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path} is not a readable training artifact: {error}") from error
    shapes = {"W1": (2, HIDDEN_UNITS), "b1": (HIDDEN_UNITS,), "w2": (HIDDEN_UNITS,), "b2": ()}
    if (
        not isinstance(metadata, dict)
        or metadata.get("format") != ARTIFACT_FORMAT
        or any(weights[name].shape != shape for name, shape in shapes.items())
        or mean.shape != (2,)
        or std.shape != (2,)
    ):
        raise ValueError(f"{path} is not a training artifact in format {ARTIFACT_FORMAT!r}")
    return TrainedModel(weights=weights, mean=mean, std=std, metadata=metadata)


class TrainingRun:
    """One training run, advanced one epoch at a time by whoever paces it.

    The arithmetic of a run without its pacing: :func:`train_model` drives it on an event loop (awaiting
    between epochs), :func:`training_job` in a worker process (pausing where a cancel can land). Building it
    validates the request and makes the data; :meth:`epoch` trains and scores one epoch; :meth:`save` writes
    the artifact of a finished run and returns its :class:`TrainingResult`.
    """

    def __init__(
        self,
        model_name: str,
        epochs: int,
        *,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        max_epochs: int = 1000,
        artifacts_dir: Path,
        seed: int | None = None,
    ) -> None:
        validate_request(model_name, epochs, max_epochs=max_epochs, learning_rate=learning_rate)
        if seed is None:
            seed = seed_for(model_name)
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {_shown(seed)}")
        self.model_name, self.seed, self.epochs = model_name, int(seed), int(epochs)
        self.learning_rate = float(learning_rate)
        self.artifacts_dir = Path(artifacts_dir)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)  # fail now, not after the whole run
        self.started = time.monotonic()
        X_train, y_train, X_val, y_val = make_dataset(self.seed)
        self.mean, self.std = X_train.mean(axis=0), X_train.std(axis=0)
        self._X_train = _standardise(X_train, self.mean, self.std)
        self._X_val = _standardise(X_val, self.mean, self.std)
        self._y_train, self._y_val = y_train.astype(float), y_val.astype(float)
        self._rng = np.random.default_rng([self.seed, _TRAINING_STREAM])
        self.weights = _init_weights(self._rng)
        self._velocity = {name: np.zeros_like(value) for name, value in self.weights.items()}
        # The untrained loss (about ln 2) is the yardstick for divergence: epoch 1's
        # loss would not do, as a huge learning rate has already diverged by then.
        self._divergence_limit = DIVERGENCE_FACTOR * _scores(self.weights, self._X_train, self._y_train)[0]
        self.history: list[EpochScores] = []

    def epoch(self) -> EpochScores:
        """Train and score the next epoch (not yet in :attr:`history`: the pacer adds it once the epoch is over)."""
        epoch = len(self.history) + 1
        # Overflow is checked below as a TrainingError, so NumPy need not warn about it.
        with np.errstate(over="ignore", invalid="ignore"):
            _train_epoch(self.weights, self._velocity, self._X_train, self._y_train, self._rng, self.learning_rate)
            train_loss, train_accuracy = _scores(self.weights, self._X_train, self._y_train)
            val_loss, val_accuracy = _scores(self.weights, self._X_val, self._y_val)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)) or train_loss > self._divergence_limit:
            raise TrainingError(
                f"training {self.model_name!r} diverged at epoch {epoch}/{self.epochs} (training loss "
                f"{train_loss:.3g}, untrained {self._divergence_limit / DIVERGENCE_FACTOR:.3g}) with learning_rate "
                f"{self.learning_rate:g}; try a lower learning rate such as {DEFAULT_LEARNING_RATE:g}"
            )
        return EpochScores(epoch=epoch, epochs=self.epochs, train_loss=train_loss, train_accuracy=train_accuracy,
                           val_loss=val_loss, val_accuracy=val_accuracy, elapsed_seconds=0.0)

    def ended(self, scores: EpochScores) -> EpochScores:
        """``scores`` stamped with the time the (paced) epoch ended, and kept in the history."""
        scores = replace(scores, elapsed_seconds=time.monotonic() - self.started)
        self.history.append(scores)
        return scores

    def save(self) -> TrainingResult:
        """Write the artifact of the finished run; its result."""
        final = self.history[-1]
        metadata = {
            "format": ARTIFACT_FORMAT,
            "model_name": self.model_name,
            "epochs": self.epochs,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "train_accuracy": final.train_accuracy,
            "val_accuracy": final.val_accuracy,
            "train_loss": final.train_loss,
            "val_loss": final.val_loss,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        artifact_path = _save_artifact(self.artifacts_dir, self.model_name, self.weights, self.mean, self.std,
                                       metadata)
        return TrainingResult(
            model_name=self.model_name,
            epochs=self.epochs,
            train_accuracy=final.train_accuracy,
            val_accuracy=final.val_accuracy,
            train_loss=final.train_loss,
            val_loss=final.val_loss,
            history=list(self.history),
            artifact_path=artifact_path,
            seconds=time.monotonic() - self.started,
            seed=self.seed,
            learning_rate=self.learning_rate,
        )


async def train_model(
    model_name: str,
    epochs: int,
    *,
    time_scale: float = 1.0,
    epoch_seconds: float = 1.0,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    max_epochs: int = 1000,
    artifacts_dir: Path,
    seed: int | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainingResult:
    """Train the spiral classifier for ``epochs`` epochs on the event loop and save it under ``artifacts_dir``.

    Every epoch lasts at least ``epoch_seconds * time_scale`` seconds (0: no
    pacing) and ends by awaiting, so concurrent runs share the event loop and a
    cancellation lands within one epoch. After each epoch ``on_epoch`` (sync or
    async) receives the epoch's :class:`EpochScores`. A loss that is not finite
    or grows past ``DIVERGENCE_FACTOR`` times the untrained loss raises
    :class:`TrainingError`. Only a run that finishes writes an artifact.
    (The task servers of notebooks 02 and 03 run :func:`training_job` in worker processes instead.)
    """
    _check_seconds("time_scale", time_scale)
    _check_seconds("epoch_seconds", epoch_seconds)
    run = TrainingRun(model_name, epochs, learning_rate=learning_rate, max_epochs=max_epochs,
                      artifacts_dir=artifacts_dir, seed=seed)
    epoch_budget = epoch_seconds * time_scale
    for _ in range(run.epochs):
        epoch_started = time.monotonic()
        scores = run.epoch()
        # Always yield once per epoch, even unpaced: other runs get their turn and cancellation can land.
        await asyncio.sleep(max(0.0, epoch_budget - (time.monotonic() - epoch_started)))
        scores = run.ended(scores)
        if on_epoch is not None:
            reply = on_epoch(scores)
            if inspect.isawaitable(reply):
                await reply
    return run.save()


def training_job(
    report: Callable[[int, str], None],
    pause: Callable[[float], None],
    *,
    model_name: str,
    epochs: int,
    learning_rate: float,
    time_scale: float,
    max_epochs: int,
    artifacts_dir: str,
) -> dict[str, Any]:
    """One training run as a worker process runs it (``patterns.worker_pool``): plain arguments in, a dict out.

    ``pause(seconds)`` waits out the rest of each epoch's pacing and is where a cancel lands (it raises);
    ``report(epoch, summary)`` sends the progress to the server after every epoch.
    """
    run = TrainingRun(model_name, epochs, learning_rate=learning_rate, max_epochs=max_epochs,
                      artifacts_dir=Path(artifacts_dir))
    epoch_budget = EPOCH_SECONDS * time_scale
    for _ in range(run.epochs):
        epoch_started = time.monotonic()
        scores = run.epoch()
        pause(max(0.0, epoch_budget - (time.monotonic() - epoch_started)))
        scores = run.ended(scores)
        report(scores.epoch, scores.summary())
    return run.save().to_dict()


async def train_with_settings(
    settings: Settings,
    model_name: str,
    epochs: int,
    *,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    on_epoch: OnEpoch | None = None,
) -> TrainingResult:
    """:func:`train_model` paced and bounded by the workbench settings: how every server trains."""
    return await train_model(
        model_name,
        epochs,
        time_scale=settings.time_scale,
        epoch_seconds=EPOCH_SECONDS,
        learning_rate=learning_rate,
        max_epochs=settings.max_epochs,
        artifacts_dir=settings.artifacts_dir,
        on_epoch=on_epoch,
    )


def training_work(
    settings: Settings, pool: WorkerPool, model_name: str, epochs: int, *, learning_rate: float = DEFAULT_LEARNING_RATE
) -> Callable[[Callable[[int, str], None]], Awaitable[dict[str, Any]]]:
    """The background work a task server runs for one training request (``TaskManager.submit``'s ``work``).

    The training runs in one of ``pool``'s worker processes (:func:`training_job`), off the server's event
    loop; it reports ``(epoch, scores summary)`` after every epoch and returns the result as a plain dict.
    """
    job = {"model_name": model_name, "epochs": epochs, "learning_rate": learning_rate,
           "time_scale": settings.time_scale, "max_epochs": settings.max_epochs,
           "artifacts_dir": str(settings.artifacts_dir)}

    async def work(report: Callable[[int, str], None]) -> dict[str, Any]:
        return await pool.run(training_job, job, report)

    return work
