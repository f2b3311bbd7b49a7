"""One settings object for the whole workbench, read from the environment.

Every notebook, server and test reads its knobs here, so that one variable (say
``LAB_TIME_SCALE=0.02`` in CI) changes the lesson everywhere at once: in the
kernel and in every server the kernel launches (they inherit :meth:`Settings.as_env`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Mapping

Mode = Literal["local", "aws"]

#: The repository root (``lab_helpers/`` lives directly below it).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Largest time scale accepted: 100x slower than real pacing is already absurd.
MAX_TIME_SCALE = 100.0


class ConfigError(ValueError):
    """A setting in the environment has a value the workbench cannot use."""


@dataclass(frozen=True)
class Settings:
    """What the workbench runs against and how fast.

    ``time_scale`` multiplies every pause in the lessons (epoch pacing, heartbeat
    intervals, how long finished tasks are kept): 1.0 paces a lesson for a person reading along, 0.02 runs the same
    code path in seconds under CI, 0 removes pacing entirely (benchmarks). So a duration the workbench states in
    seconds (``task_retention_seconds``, an idle timeout in a notebook) means seconds at time scale 1, and
    :meth:`scaled` gives the real seconds: 3600 s of retention last 72 s at 0.02.
    """

    mode: Mode = "local"
    region: str = "us-east-1"
    time_scale: float = 1.0
    host: str = "127.0.0.1"
    jupyter_port: int = 8888
    emulator_port: int = 8787
    #: Seconds a new Memory event stays out of the emulator's metadata-filtered ListEvents (real seconds, not
    #: scaled): AWS's eventual consistency there, off (0) for the lessons (``lab_helpers/emulator/memory_store.py``).
    emulator_filter_delay: float = 0.0
    #: Seconds (at time scale 1) between a Memory event and the long-term records extracted from it: AWS extracts
    #: asynchronously, reportedly within 20-40 s, so 30 by default (0: inside CreateEvent). And which extractor
    #: writes them: "auto" (default: "model" when ``model`` names a real one, else the offline "rules"),
    #: "rules", "model" or "verbatim" (a literal copy): ``lab_helpers/emulator/extractors.py``.
    emulator_extraction_delay: float = 30.0
    emulator_extractor: str = "auto"
    #: A principals file that turns the emulator's local IAM on (None: off): ``lab_helpers/emulator/local_iam.py``.
    emulator_iam: Path | None = None
    max_epochs: int = 1000
    task_retention_seconds: float = 3600.0
    artifacts_dir: Path = field(default_factory=lambda: REPO_ROOT / "build" / "artifacts")
    logs_dir: Path = field(default_factory=lambda: REPO_ROOT / "build" / "logs")
    emulator_db: Path = field(default_factory=lambda: REPO_ROOT / "build" / "agentcore-local" / "memory.db")
    #: Where servers keep what must outlive their process on this machine (open-task journal, unsent records).
    state_dir: Path = field(default_factory=lambda: REPO_ROOT / "build" / "state")
    #: Which model drives the lessons' agents: "offline", "bedrock", or an OpenAI-compatible server URL.
    model: str = "offline"
    headless: bool = False

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        return {
            "LAB_MODE": self.mode,
            "AWS_REGION": self.region,
            "LAB_TIME_SCALE": repr(self.time_scale),
            "LAB_HOST": self.host,
            "LAB_JUPYTER_PORT": str(self.jupyter_port),
            "LAB_EMULATOR_PORT": str(self.emulator_port),
            "LAB_EMULATOR_DB": str(self.emulator_db),
            "LAB_EMULATOR_FILTER_DELAY": repr(self.emulator_filter_delay),
            "LAB_EMULATOR_EXTRACTION_DELAY": repr(self.emulator_extraction_delay),
            "LAB_EMULATOR_EXTRACTOR": self.emulator_extractor,
            "LAB_EMULATOR_IAM": str(self.emulator_iam or ""),
            "LAB_MAX_EPOCHS": str(self.max_epochs),
            "LAB_TASK_RETENTION_SECONDS": repr(self.task_retention_seconds),
            "LAB_ARTIFACTS_DIR": str(self.artifacts_dir),
            "LAB_LOGS_DIR": str(self.logs_dir),
            "LAB_STATE_DIR": str(self.state_dir),
            "LAB_MODEL": self.model,
            "LAB_HEADLESS": "1" if self.headless else "0",
        }

    def scaled(self, seconds: float) -> float:
        """A lesson duration in real seconds at this time scale."""
        return seconds * self.time_scale


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:  # also rejects nan
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default, 1, 65535)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole port number, got {env[name]!r}")
    return int(value)


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {env[name]!r}")


def _model(env: Mapping[str, str], mode: str) -> str:
    """``LAB_MODEL``: ``offline`` (default locally), ``bedrock`` (default in aws mode) or an http(s) URL."""
    raw = env.get("LAB_MODEL", "").strip()
    if not raw:
        return "bedrock" if mode == "aws" else "offline"
    if raw.lower() in ("offline", "bedrock"):
        return raw.lower()
    if raw.startswith(("http://", "https://")):
        return raw.rstrip("/")
    raise ConfigError(
        f"LAB_MODEL must be 'offline', 'bedrock' or the URL of an OpenAI-compatible server "
        f"(llama.cpp, Ollama, vLLM: http://127.0.0.1:8080), got {env['LAB_MODEL']!r}"
    )


#: The values of ``LAB_EMULATOR_EXTRACTOR`` (``auto`` is resolved by the emulator at start-up).
EXTRACTOR_CHOICES = ("auto", "rules", "model", "verbatim")


def _extractor(env: Mapping[str, str]) -> str:
    """``LAB_EMULATOR_EXTRACTOR``: ``auto`` (default), ``rules``, ``model`` (``LAB_MODEL``) or ``verbatim``."""
    raw = env.get("LAB_EMULATOR_EXTRACTOR", "").strip().lower() or "auto"
    if raw not in EXTRACTOR_CHOICES:
        raise ConfigError(f"LAB_EMULATOR_EXTRACTOR must be one of {', '.join(EXTRACTOR_CHOICES)}, "
                          f"got {env['LAB_EMULATOR_EXTRACTOR']!r}")
    return raw


def resolve_extractor(extractor: str, model: str) -> str:
    """The extractor ``auto`` stands for: ``model`` when ``model`` (``LAB_MODEL``) names a real model (Bedrock or
    a server URL), as AWS extracts with a model; else ``rules``, the offline stand-in. Other values are kept."""
    if extractor != "auto":
        return extractor
    return "rules" if model == "offline" else "model"


def _in_notebook_frontend() -> bool:
    """True inside a Jupyter kernel, where widgets can render; False in scripts and tests."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def load(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``), then apply ``overrides``.

    Overrides whose value is ``None`` are ignored, so a notebook can pass its
    papermill parameters straight through (``load(time_scale=time_scale)``).
    Bad values raise :class:`ConfigError` naming the variable and the value.
    """
    env = os.environ if env is None else env
    mode = env.get("LAB_MODE", "local").strip().lower() or "local"
    if mode not in ("local", "aws"):
        raise ConfigError(f"LAB_MODE must be 'local' or 'aws', got {env['LAB_MODE']!r}")
    settings = Settings(
        mode=mode,  # type: ignore[arg-type]
        region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1").strip(),
        time_scale=_number(env, "LAB_TIME_SCALE", 1.0, 0.0, MAX_TIME_SCALE),
        host=env.get("LAB_HOST", "").strip() or "127.0.0.1",
        jupyter_port=_port(env, "LAB_JUPYTER_PORT", 8888),
        emulator_port=_port(env, "LAB_EMULATOR_PORT", 8787),
        emulator_filter_delay=_number(env, "LAB_EMULATOR_FILTER_DELAY", 0.0, 0.0, 3600.0),
        emulator_extraction_delay=_number(env, "LAB_EMULATOR_EXTRACTION_DELAY", 30.0, 0.0, 3600.0),
        emulator_extractor=_extractor(env),
        emulator_iam=Path(env["LAB_EMULATOR_IAM"].strip()) if env.get("LAB_EMULATOR_IAM", "").strip() else None,
        max_epochs=int(_number(env, "LAB_MAX_EPOCHS", 1000, 1, 1_000_000)),
        task_retention_seconds=_number(env, "LAB_TASK_RETENTION_SECONDS", 3600.0, 0.0, 30 * 24 * 3600.0),
        artifacts_dir=Path(env.get("LAB_ARTIFACTS_DIR") or REPO_ROOT / "build" / "artifacts"),
        logs_dir=Path(env.get("LAB_LOGS_DIR") or REPO_ROOT / "build" / "logs"),
        emulator_db=Path(env.get("LAB_EMULATOR_DB") or REPO_ROOT / "build" / "agentcore-local" / "memory.db"),
        state_dir=Path(env.get("LAB_STATE_DIR") or REPO_ROOT / "build" / "state"),
        model=_model(env, mode),  # type: ignore[arg-type]
        headless=_flag(env, "LAB_HEADLESS") or not _in_notebook_frontend(),
    )
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if "time_scale" in overrides:
        scale = float(overrides["time_scale"])  # type: ignore[arg-type]
        if not 0.0 <= scale <= MAX_TIME_SCALE:
            raise ConfigError(f"time_scale must be between 0 and {MAX_TIME_SCALE:g}, got {scale!r}")
        overrides["time_scale"] = scale
    for key in ("artifacts_dir", "logs_dir", "emulator_db", "state_dir", "emulator_iam"):
        if key in overrides:
            overrides[key] = Path(overrides[key])  # type: ignore[arg-type]
    return replace(settings, **overrides)  # type: ignore[arg-type]
