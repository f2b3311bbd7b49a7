from __future__ import annotations

from pathlib import Path

import pytest

from lab_helpers import config


def test_defaults_need_nothing_from_the_environment() -> None:
    settings = config.load(env={})
    assert settings.mode == "local"
    assert settings.host == "127.0.0.1"
    assert settings.time_scale == 1.0
    assert settings.region == "us-east-1"
    assert settings.headless  # pytest is not a notebook frontend


def test_reads_every_setting_from_the_environment(tmp_path: Path) -> None:
    env = {
        "LAB_MODE": "AWS",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "LAB_TIME_SCALE": "0.05",
        "LAB_JUPYTER_PORT": "9999",
        "LAB_MAX_EPOCHS": "50",
        "LAB_ARTIFACTS_DIR": str(tmp_path / "a"),
        "LAB_LOGS_DIR": str(tmp_path / "l"),
        "LAB_HEADLESS": "yes",
    }
    settings = config.load(env=env)
    assert (settings.mode, settings.region, settings.time_scale) == ("aws", "eu-west-1", 0.05)
    assert (settings.jupyter_port, settings.max_epochs) == (9999, 50)
    assert settings.artifacts_dir == tmp_path / "a" and settings.logs_dir == tmp_path / "l"
    assert config.load(env={"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}).region == "us-west-2"


def test_the_model_is_offline_locally_bedrock_in_aws_mode_or_a_server_url(tmp_path: Path) -> None:
    assert config.load(env={}).model == "offline"
    assert config.load(env={"LAB_MODE": "aws"}).model == "bedrock"
    assert config.load(env={"LAB_MODE": "aws", "LAB_MODEL": "Offline"}).model == "offline"
    assert config.load(env={"LAB_MODEL": "http://127.0.0.1:8080/"}).model == "http://127.0.0.1:8080"
    assert config.load(env={"LAB_STATE_DIR": str(tmp_path)}).state_dir == tmp_path


def test_long_term_extraction_is_asynchronous_and_by_a_model_when_there_is_one() -> None:
    settings = config.load(env={})
    assert (settings.emulator_extractor, settings.emulator_extraction_delay) == ("auto", 30.0)
    assert config.resolve_extractor("auto", "offline") == "rules"
    for real in ("bedrock", "http://127.0.0.1:8080"):
        assert config.resolve_extractor("auto", real) == "model"
    assert config.resolve_extractor("verbatim", "bedrock") == "verbatim", "an explicit choice is kept"
    assert config.load(env={"LAB_EMULATOR_EXTRACTOR": "Verbatim"}).emulator_extractor == "verbatim"


def test_as_env_reproduces_the_settings_in_a_child() -> None:
    settings = config.load(env={}, time_scale=0.3, max_epochs=7)
    assert config.load(env=settings.as_env()) == settings


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LAB_MODE", "cloud", "LAB_MODE must be 'local' or 'aws', got 'cloud'"),
        ("LAB_TIME_SCALE", "fast", "LAB_TIME_SCALE must be a number, got 'fast'"),
        ("LAB_TIME_SCALE", "-1", "LAB_TIME_SCALE must be between 0 and 100, got '-1'"),
        ("LAB_TIME_SCALE", "nan", "LAB_TIME_SCALE must be between 0 and 100, got 'nan'"),
        ("LAB_TIME_SCALE", "1e9", "LAB_TIME_SCALE must be between 0 and 100, got '1e9'"),
        ("LAB_JUPYTER_PORT", "70000", "LAB_JUPYTER_PORT must be between 1 and 65535"),
        ("LAB_JUPYTER_PORT", "80.5", "LAB_JUPYTER_PORT must be a whole port number"),
        ("LAB_MAX_EPOCHS", "0", "LAB_MAX_EPOCHS must be between 1 and 1e+06"),
        ("LAB_HEADLESS", "maybe", "LAB_HEADLESS must be 1 or 0"),
        ("LAB_EMULATOR_EXTRACTOR", "llm", "LAB_EMULATOR_EXTRACTOR must be one of auto, rules, model, verbatim"),
        ("LAB_MODEL", "gpt-9", "LAB_MODEL must be 'offline', 'bedrock' or the URL of an OpenAI-compatible server"),
    ],
)
def test_bad_values_name_the_variable_and_the_value(name: str, value: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.load(env={name: value})
    assert message in str(raised.value)


def test_overrides_win_and_none_means_not_given() -> None:
    assert config.load(env={"LAB_TIME_SCALE": "0.5"}, time_scale=None).time_scale == 0.5
    assert config.load(env={"LAB_TIME_SCALE": "0.5"}, time_scale=0.1).time_scale == 0.1
    with pytest.raises(config.ConfigError, match="time_scale must be between 0 and 100, got -2"):
        config.load(env={}, time_scale=-2)


def test_scaled_multiplies_lesson_seconds() -> None:
    assert config.load(env={}, time_scale=0.5).scaled(4.0) == 2.0
