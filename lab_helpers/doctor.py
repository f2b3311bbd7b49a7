"""``python -m lab_helpers doctor``: what this machine will run, before anything runs.

Attendees hit three problems most: a kernel without the packages, AWS mode
without credentials, and a mistyped setting. The doctor names each one plainly,
and exits non-zero when the lessons cannot run as configured.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

from lab_helpers import config

#: Distributions the lessons import, in the order a reader cares about.
PACKAGES = (
    "mcp", "strands-agents", "bedrock-agentcore", "boto3", "numpy",
    "jupyterlab", "ipywidgets", "papermill", "pytest", "pytest-xdist",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of each package the lessons need (None when missing)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def aws_credentials_source(settings: config.Settings) -> str | None:
    """Where boto3 would find credentials ('env', 'shared-credentials-file', ...), or None.

    In local mode the instance-metadata lookup is switched off for the check:
    with no network it only waits for a time-out, and local mode needs no credentials.
    """
    import boto3

    saved = os.environ.get("AWS_EC2_METADATA_DISABLED")
    if settings.mode == "local":
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        credentials = boto3.Session(region_name=settings.region).get_credentials()
    except Exception:  # noqa: BLE001 - a broken profile is reported as "no credentials"
        credentials = None
    finally:
        if settings.mode == "local":
            if saved is None:
                os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
            else:
                os.environ["AWS_EC2_METADATA_DISABLED"] = saved
    return credentials.method if credentials else None


def agentcore_status(settings: config.Settings) -> str:
    """Where Memory calls go: the real service (aws mode) or the local emulator, and whether it is up."""
    if settings.mode == "aws":
        return f"the real AWS service in {settings.region}"
    from lab_helpers.agentcore import emulator_health

    endpoint = f"http://{settings.host}:{settings.emulator_port}"
    health = emulator_health(endpoint)
    if health and health.get("server") == "agentcore-local":
        return f"local emulator running at {endpoint}, data in {health.get('db')}"
    return f"local emulator not running yet (make lab, or use_agentcore() in a notebook, starts it at {endpoint})"


def extraction_status(settings: config.Settings) -> str:
    """Which extractor a new emulator writes long-term records with (``auto`` resolved), and how late."""
    chosen = config.resolve_extractor(settings.emulator_extractor, settings.model)
    how = "an offline stand-in" if chosen != "model" else f"asks {settings.model}"
    return (f"{chosen} extractor ({how}; LAB_EMULATOR_EXTRACTOR={settings.emulator_extractor}), records "
            f"{settings.scaled(settings.emulator_extraction_delay):g} s after each event")


def redis_status() -> str:
    """Which Redis notebook 05's durable task backend runs (version and where from), or why it runs in memory."""
    from lab_helpers.redis_server import INSTALL_HINT, find_redis

    found = find_redis()
    if found is None:
        return f"none found: notebook 05 keeps its tasks in memory ({INSTALL_HINT})"
    return f"{found.describe()}: notebook 05's durable task backend"


def report(settings: config.Settings) -> tuple[list[str], list[str]]:
    """The doctor's lines, and the problems that stop the lessons from running."""
    problems: list[str] = []
    lines = [
        "agentcore-longrun-lab doctor",
        f"  python             {sys.version.split()[0]} ({sys.executable})",
    ]
    versions = package_versions()
    for name, version in versions.items():
        lines.append(f"  {name:<18} {version or 'MISSING'}")
        if version is None:
            problems.append(f"{name} is not installed in this Python: run `make lab` (or `make test`) to set up .venv")
    source = aws_credentials_source(settings)
    lines += [
        f"  mode               {settings.mode} (LAB_MODE; local is the default and needs no AWS account)",
        f"  region             {settings.region}",
        f"  time scale         {settings.time_scale:g} (LAB_TIME_SCALE: one training epoch lasts {settings.scaled(1.0):g} s)",
        f"  AWS credentials    {'found (' + source + ')' if source else 'none found'}",
        f"  runs locally       MCP servers from servers/ on {settings.host} (free ports), the NumPy training workload",
        f"  AgentCore          {agentcore_status(settings)}",
        *([f"  long-term memory   {extraction_status(settings)}"] if settings.mode == "local" else []),
        f"  Redis              {redis_status()}",
        f"  agents' model      {settings.model} (LAB_MODEL: offline is a deterministic stand-in, no LLM)",
        f"  artifacts          {settings.artifacts_dir}",
        f"  server logs        {settings.logs_dir}",
    ]
    if settings.model == "bedrock" and settings.mode == "local" and source is None:
        problems.append("LAB_MODEL=bedrock needs AWS credentials, and none were found: configure them, "
                        "or set LAB_MODEL=offline")
    if settings.mode == "aws" and source is None:
        problems.append(
            "LAB_MODE=aws but boto3 finds no AWS credentials: configure them (aws configure, AWS_PROFILE, "
            "or a SageMaker execution role), or unset LAB_MODE to run everything locally"
        )
    return lines, problems


def main() -> int:
    try:
        settings = config.load()
    except config.ConfigError as error:
        print(f"doctor: {error}", file=sys.stderr)
        return 2
    lines, problems = report(settings)
    print("\n".join(lines))
    if problems:
        print("\nProblems:", *(f"  - {problem}" for problem in problems), sep="\n")
        return 1
    print("\nAll set.")
    return 0
