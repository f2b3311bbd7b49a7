"""``python -m lab_helpers doctor`` names what will run and what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_helpers import config
from lab_helpers.doctor import report


def _doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "LAB_"))}
    # No credentials anywhere, and never ask the instance-metadata service (no network here).
    clean.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "lab_helpers", "doctor"], capture_output=True, text=True, env=clean, timeout=60
    )


def test_local_mode_needs_no_credentials(tmp_path: Path) -> None:
    run = _doctor(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for expected in ("mcp                2.1.1", "strands-agents", "bedrock-agentcore", "mode               local",
                     "AWS credentials    none found", "runs locally       MCP servers from servers/ on 127.0.0.1",
                     "AgentCore          local emulator",
                     "long-term memory   rules extractor (an offline stand-in; LAB_EMULATOR_EXTRACTOR=auto), "
                     "records 30 s after each event"):
        assert expected in run.stdout
    assert run.stdout.rstrip().endswith("All set.")


def test_aws_mode_without_credentials_is_a_problem(tmp_path: Path) -> None:
    run = _doctor(tmp_path, LAB_MODE="aws")
    assert run.returncode == 1
    assert "LAB_MODE=aws but boto3 finds no AWS credentials" in run.stdout
    assert "AgentCore          the real AWS service in us-east-1" in run.stdout


def test_aws_mode_with_credentials_is_fine(tmp_path: Path) -> None:
    run = _doctor(tmp_path, LAB_MODE="aws", AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")
    assert run.returncode == 0, run.stdout
    assert "AWS credentials    found (env)" in run.stdout


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    run = _doctor(tmp_path, LAB_TIME_SCALE="fast")
    assert run.returncode == 2
    assert "LAB_TIME_SCALE must be a number, got 'fast'" in run.stderr


def test_a_missing_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab_helpers.doctor.PACKAGES", ("mcp", "no-such-package-xyz"))
    lines, problems = report(config.load(env={}))
    assert "  no-such-package-xyz MISSING" in lines or any("no-such-package-xyz" in line and "MISSING" in line for line in lines)
    assert problems == ["no-such-package-xyz is not installed in this Python: run `make lab` (or `make test`) to set up .venv"]


def test_it_says_which_redis_runs() -> None:
    from lab_helpers.redis_server import find_redis

    lines, _ = report(config.load(env={}))
    [line] = [line for line in lines if line.startswith("  Redis ")]
    found = find_redis()
    if found is None:
        assert "none found: notebook 05 keeps its tasks in memory" in line
    else:
        assert f"Redis {found.version()} from {found.source} ({found.path})" in line


def test_no_redis_is_reported_with_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab_helpers.redis_server.find_redis", lambda: None)
    lines, problems = report(config.load(env={}))
    assert any(line.startswith("  Redis              none found") and "apt-get install redis-server" in line
               for line in lines)
    assert not problems, "the lesson runs without Redis, on the in-memory backend"


def test_it_says_which_extractor_a_real_model_gets_and_how_late(tmp_path: Path) -> None:
    run = _doctor(tmp_path, LAB_MODEL="http://127.0.0.1:9", LAB_TIME_SCALE="0.02")
    assert ("long-term memory   model extractor (asks http://127.0.0.1:9; LAB_EMULATOR_EXTRACTOR=auto), "
            "records 0.6 s after each event") in run.stdout
