"""Shared fixtures: settings that keep tests fast and their files inside tmp_path; parallel runs; the closing line.

``make test`` runs the tests in several processes at once (pytest-xdist). Nothing a test writes may be shared with
another worker: every worker gets its own stand-ins for build/ (state, artifacts, logs, the emulator's database) and
its own emulator port in the environment, which ``config.load()`` and every server or notebook kernel started from a
test inherit; fixtures put what they start under ``tmp_path`` and on free ports.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab_helpers import config
from lab_helpers.agentcore import ENDPOINT_VARIABLES, get_or_create_memory, use_agentcore
from lab_helpers.processes import ServerProcess, free_port

#: One HTTP client for the tests' plain http:// calls to local servers (``LOCAL_HTTP.get(url)``). ``httpx.get``
#: builds a client and a TLS context (the CA bundle parsed, ~27 ms of CPU) per call, which polling loops made a
#: large share of the whole suite's CPU.
LOCAL_HTTP = httpx.Client(verify=False)

#: Tests pace the lessons 50x faster than a person reads them, as CI runs the notebooks.
TEST_TIME_SCALE = 0.02


#: The variables that point the workbench at build/ and the shared emulator port: private per test process.
PRIVATE_VARIABLES = ("LAB_STATE_DIR", "LAB_ARTIFACTS_DIR", "LAB_LOGS_DIR", "LAB_EMULATOR_DB", "LAB_EMULATOR_PORT")


@pytest.fixture(scope="session", autouse=True)
def private_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This test process's stand-in for build/, and an emulator port of its own, in its environment."""
    build = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_STATE_DIR", str(build / "state"))
        patch.setenv("LAB_ARTIFACTS_DIR", str(build / "artifacts"))
        patch.setenv("LAB_LOGS_DIR", str(build / "logs"))
        patch.setenv("LAB_EMULATOR_DB", str(build / "agentcore-local" / "memory.db"))
        patch.setenv("LAB_EMULATOR_PORT", str(free_port()))
        yield build


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    """Settings for one test: fast pacing; artifacts, logs, state and an emulator's port and database its own."""
    return config.load(
        env={},
        time_scale=TEST_TIME_SCALE,
        artifacts_dir=tmp_path / "artifacts",
        logs_dir=tmp_path / "logs",
        state_dir=tmp_path / "state",
        emulator_db=tmp_path / "agentcore-local" / "memory.db",
        emulator_port=free_port(),
        max_epochs=500,
    )


@pytest.fixture(scope="module")
def module_settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> config.Settings:
    """Settings shared by a module's tests (its servers start once): fast pacing, files in a directory of its own."""
    root = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    return config.load(env={}, time_scale=TEST_TIME_SCALE, artifacts_dir=root / "artifacts", logs_dir=root / "logs",
                       max_epochs=500)


@dataclass(frozen=True)
class LocalAgentCore:
    """The local AgentCore emulator of one test module, the lessons' memory in it, and settings that use it."""

    process: ServerProcess
    memory_id: str
    settings: config.Settings


#: What ``use_agentcore`` sets in ``os.environ``; restored after the module, with the credential sources.
AWS_VARIABLES = (*ENDPOINT_VARIABLES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED", "AWS_PROFILE", "LAB_MEMORY_ID",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@contextmanager
def local_agentcore(tmp: Path, **overrides: Any) -> Iterator[LocalAgentCore]:
    """A fresh emulator on a free port in ``tmp`` (``use_agentcore``, as a notebook does), boto3 pointed at it,
    one memory; ``overrides`` change its settings (``emulator_filter_delay``, say). The environment comes back after."""
    settings = config.load(
        env={}, time_scale=TEST_TIME_SCALE, artifacts_dir=tmp / "artifacts", logs_dir=tmp / "logs",
        state_dir=tmp / "state", emulator_port=free_port(), emulator_db=tmp / "memory.db", max_epochs=500,
        **overrides,
    )
    with pytest.MonkeyPatch.context() as patch:
        for name in AWS_VARIABLES:
            patch.setenv(name, "recorded")  # so that the original state comes back afterwards
            patch.delenv(name)
        patch.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
        target = use_agentcore(settings)
        assert target.process is not None, "a test must never reuse an emulator it did not start"
        try:
            yield LocalAgentCore(target.process, get_or_create_memory(settings), settings)
        finally:
            target.process.stop()


@pytest.fixture(scope="module")
def agentcore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgentCore]:
    """A fresh emulator of this test module's own (see :func:`local_agentcore`)."""
    with local_agentcore(tmp_path_factory.mktemp("agentcore")) as local:
        yield local


# -- parallel scheduling and the closing line --------------------------------------------------------------------

#: Started first, longest first: a long notebook started last would end the run alone on one worker.
SLOW_FIRST = ("tests/test_browser.py::",
              "tests/test_notebooks.py::test_notebook_runs_headless[04_",
              "tests/test_notebooks.py::test_notebook_runs_headless[07_",
              "tests/test_notebooks.py::test_notebook_runs_headless[03_",
              "tests/test_notebooks.py::test_notebook_runs_headless[09_",
              "tests/test_investigation_flow.py::",
              "tests/test_investigation_agents.py::",
              "tests/test_notebooks.py::test_notebook_runs_headless[08_",
              "tests/test_notebooks.py::test_notebook_runs_headless[01_",
              "tests/test_notebooks.py::test_notebook_runs_headless[06_",
              "tests/test_notebooks.py::test_notebook_runs_headless[05_",
              "tests/test_notebooks.py::test_notebook_runs_headless[02_")


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    """Does the test use a fixture set up once per module or class (a server, an emulator)?"""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        definitions[-1].scope in ("module", "class") for definitions in info.name2fixturedefs.values())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Schedule for parallel runs (``-n N --dist loadgroup``); the same result in every worker, as xdist requires.

    A module whose tests share a module-scoped fixture goes to one worker as a whole (``xdist_group``), so its
    servers start once rather than once per worker. Every other test is scheduled on its own. The slowest come
    first: the notebooks, then the grouped modules, largest first.
    """
    grouped: dict[str, int] = {}
    for item in items:
        if _shares_a_module_fixture(item):
            module = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(module))
            grouped[module] = grouped.get(module, 0) + 1

    def rank(item: pytest.Item) -> tuple[int, int]:
        slow = next((i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)), None)
        if slow is not None:
            return (0, slow)
        module = item.nodeid.split("::")[0]
        return (1, -grouped[module]) if module in grouped else (2, 0)

    items.sort(key=rank)  # stable: within a rank, the collection order


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A parameter that is a fresh uuid is named "uuid": xdist needs the same test ids in every worker."""
    return "uuid" if isinstance(val, str) and _UUID.match(val) else None


_outcome: dict[str, object] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _outcome["tests_started"] = time.time()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _outcome["exitstatus"] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Under ``make test`` (``LAB_MAKE_STARTED``), one last line: the counts and the time, set-up included."""
    made = os.environ.get("LAB_MAKE_STARTED")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not made or reporter is None or hasattr(config, "workerinput") or "tests_started" not in _outcome:
        return
    now = time.time()
    counts = {kind: len(reporter.stats.get(kind, [])) for kind in ("passed", "failed", "error", "skipped", "xfailed",
                                                                   "xpassed")}
    told = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no tests ran"
    status = _outcome.get("exitstatus", 0)
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        told += " (pytest exit code 5: nothing was collected, which fails `make test`)"

    def minutes(seconds: float) -> str:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"

    started = float(made)
    tests_started = float(_outcome["tests_started"])  # type: ignore[arg-type]
    reporter.write_line(f"make test: {told} in {minutes(now - started)} (set-up {minutes(tests_started - started)}, "
                        f"tests {minutes(now - tests_started)})")
