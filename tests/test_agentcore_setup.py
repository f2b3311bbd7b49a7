"""lab_helpers.agentcore: one call points the kernel at AgentCore; the lessons' memory is get-or-create."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_helpers import config, processes
from lab_helpers.agentcore import ENDPOINT_VARIABLES, get_or_create_memory, use_agentcore

VARIABLES = (*ENDPOINT_VARIABLES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_EC2_METADATA_DISABLED")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AWS variables before; whatever use_agentcore() sets is undone after (monkeypatch records it)."""
    for name in VARIABLES:
        monkeypatch.setenv(name, "recorded")  # so that monkeypatch restores the original state afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    yield
    processes.stop_all()


@pytest.fixture
def local(settings: config.Settings, tmp_path: Path) -> config.Settings:
    return dataclasses.replace(settings, emulator_port=processes.free_port(), emulator_db=tmp_path / "agentcore.db")


def test_local_mode_starts_the_emulator_once_and_points_boto3_at_it(clean_env: None, local: config.Settings) -> None:
    first = use_agentcore(local)
    assert first.mode == "local" and first.process is not None and first.process.is_running
    assert first.endpoint == f"http://127.0.0.1:{local.emulator_port}"
    assert first.data == str(local.emulator_db) and local.emulator_db.exists()
    assert all(os.environ[name] == first.endpoint for name in ENDPOINT_VARIABLES)
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == local.region
    assert "started by this kernel" in str(first)

    again = use_agentcore(local)
    assert again.process is None and again.endpoint == first.endpoint and "reused" in str(again)


def test_the_lesson_memory_is_created_once_and_found_afterwards(clean_env: None, local: config.Settings) -> None:
    use_agentcore(local)
    memory_id = get_or_create_memory(local, wait_seconds=30)
    assert memory_id.startswith("agentcore_longrun_lab-") and len(memory_id) >= 12
    assert get_or_create_memory(local, wait_seconds=30) == memory_id
    assert get_or_create_memory(local, "another_memory", wait_seconds=30) != memory_id


def test_a_port_taken_by_something_else_is_named(clean_env: None, local: config.Settings, tmp_path: Path) -> None:
    script = tmp_path / "other.py"
    script.write_text(
        "from lab_helpers import config\nfrom lab_helpers.asgi import LabMCPServer, serve\n"
        "serve(LabMCPServer('someone-else', config.load()))\n"
    )
    with processes.ServerProcess(script, port=local.emulator_port, settings=local):
        with pytest.raises(RuntimeError, match="answers, but not as the AgentCore emulator"):
            use_agentcore(local)


def test_aws_mode_changes_nothing(clean_env: None, settings: config.Settings) -> None:
    target = use_agentcore(dataclasses.replace(settings, mode="aws", region="eu-west-1"))
    assert (target.mode, target.endpoint, target.process) == ("aws", None, None)
    assert "the real AWS service (region eu-west-1)" in str(target)
    assert not any(name in os.environ for name in ENDPOINT_VARIABLES)
