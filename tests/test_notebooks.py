"""Every lesson notebook runs top to bottom under papermill at CI speed; its own asserts are the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab_helpers.run_notebooks import notebook_paths, run_notebook

NOTEBOOKS = notebook_paths()


def test_the_lessons_are_there() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "00_setup.ipynb", "01_context_messaging.ipynb", "02_async_tasks.ipynb", "03_persistent_tasks.ipynb",
        "04_runtime_async_agents.ipynb", "05_mcp_native_tasks.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_headless(path: Path, tmp_path: Path) -> None:
    time_scale = float(os.environ.get("LAB_TIME_SCALE") or 0.02)
    run = run_notebook(path, time_scale=time_scale, output_dir=tmp_path)
    assert run.ok, f"{run.summary()}\nexecuted notebook: {run.output_path}"


def test_notebook_05_on_the_in_memory_backend_loses_tasks_in_a_restart(tmp_path: Path) -> None:
    """Where Redis is missing the lesson falls back to memory; its restart step asserts the task is gone."""
    time_scale = float(os.environ.get("LAB_TIME_SCALE") or 0.02)
    path = next(p for p in NOTEBOOKS if p.name.startswith("05_"))
    run = run_notebook(path, time_scale=time_scale, output_dir=tmp_path, parameters={"backend": "memory"})
    assert run.ok, f"{run.summary()}\nexecuted notebook: {run.output_path}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path) -> None:
    """A parameters cell, the lab kernel, and outputs only where nbval checks them."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code), "no cell tagged 'parameters'"
    assert notebook.metadata["kernelspec"]["name"] == "agentcore-longrun-lab"
    for cell in code:
        if cell.outputs:
            assert cell.source.startswith("# NBVAL_CHECK_OUTPUT"), f"unexpected committed output in: {cell.source[:60]}"
