"""requirements.txt pins everything exactly, environment.yml mirrors it, and .venv matches both."""

from __future__ import annotations

import re
from importlib import metadata

from lab_helpers.config import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def _requirement_lines() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"not an exact pin: {line!r}"
        pins[_canonical(match[1])] = match[2]
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_requirement_is_an_exact_pin() -> None:
    lines = _requirement_lines()
    pins = _pins(lines)
    assert len(pins) == len(lines), "a package is pinned twice"
    for needed in ("jupyterlab", "ipywidgets", "mcp", "strands-agents", "bedrock-agentcore", "boto3", "papermill",
                   "pytest", "nbval", "numpy", "uvicorn", "httpx", "httpx2"):
        assert _canonical(needed) in {_canonical(name) for name in pins}, f"{needed} is not pinned"


def test_environment_yml_mirrors_requirements() -> None:
    text = (REPO_ROOT / "environment.yml").read_text()
    pip_lines = [line.strip()[2:].strip() for line in text.splitlines() if line.startswith("      - ")]
    in_yml = {_canonical(k): v for k, v in (line.split("==") for line in pip_lines)}
    in_txt = {_canonical(k): v for k, v in (line.split("==") for line in _requirement_lines())}
    only_txt = sorted(f"{k}=={v}" for k, v in in_txt.items() if in_yml.get(k) != v)
    only_yml = sorted(f"{k}=={v}" for k, v in in_yml.items() if in_txt.get(k) != v)
    assert not only_txt and not only_yml, (
        f"environment.yml is out of step with requirements.txt:\n  only in requirements.txt: {only_txt}\n"
        f"  only in environment.yml: {only_yml}"
    )
    assert "python=3.11" in text


def test_the_installed_environment_matches_the_pins() -> None:
    wrong = []
    for line in _requirement_lines():
        name, version = line.split("==")
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name}: pinned {version}, installed {installed}")
    assert not wrong, "run `make test` to rebuild .venv:\n" + "\n".join(wrong)
