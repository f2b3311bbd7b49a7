"""Shared fixtures: settings that keep tests fast and their files inside tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab_helpers import config
from lab_helpers.agentcore import ENDPOINT_VARIABLES, get_or_create_memory, use_agentcore
from lab_helpers.processes import ServerProcess, free_port

#: Tests pace the lessons 50x faster than a person reads them, as CI runs the notebooks.
TEST_TIME_SCALE = 0.02


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    """Settings for one test: fast pacing, artifacts and server logs under tmp_path."""
    return config.load(
        env={},
        time_scale=TEST_TIME_SCALE,
        artifacts_dir=tmp_path / "artifacts",
        logs_dir=tmp_path / "logs",
        max_epochs=500,
    )


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


@pytest.fixture(scope="module")
def agentcore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgentCore]:
    """A fresh emulator on a free port (``use_agentcore``, as a notebook does), boto3 pointed at it, one memory."""
    tmp = tmp_path_factory.mktemp("agentcore")
    settings = config.load(
        env={}, time_scale=TEST_TIME_SCALE, artifacts_dir=tmp / "artifacts", logs_dir=tmp / "logs",
        state_dir=tmp / "state", emulator_port=free_port(), emulator_db=tmp / "memory.db", max_epochs=500,
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
