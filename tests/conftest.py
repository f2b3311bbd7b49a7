"""Shared fixtures: settings that keep tests fast and their files inside tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_helpers import config

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
