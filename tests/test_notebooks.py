"""Every lesson notebook runs top to bottom under papermill at CI speed; its own asserts are the test.

Each notebook is executed once per run. What nbval used to add on top, a second execution comparing the outputs
of the cells marked ``# NBVAL_CHECK_OUTPUT`` with the committed ones, is done here on papermill's executed copy.

Tests run in parallel (pytest-xdist), so each notebook gets a lab of its own: its kernel and every server it starts
write state, artifacts and logs under the test's tmp_path, and its ``use_agentcore()`` starts a private emulator on a
free port with its own database, instead of sharing 127.0.0.1:8787 and build/ with a notebook running next to it.

``nbformat`` is imported where it is used: it pulls in jsonschema's IRI checker, whose grammar takes seconds to
build, and every pytest-xdist worker collects this module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from lab_helpers.processes import free_port
from lab_helpers.run_notebooks import notebook_paths, run_notebook

NOTEBOOKS = notebook_paths()

#: The marker that keeps a cell's committed output and has it compared with a fresh run (nbval's convention).
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"

#: Output fields never compared: they change from run to run or carry no lesson (nbval skips the same, and images).
UNCOMPARED = {"metadata", "traceback", "execution_count", "output_type", "name", "transient", "text/latex",
              "application/javascript", "application/vnd.jupyter.widget-view+json"}


def _time_scale() -> float:
    return float(os.environ.get("LAB_TIME_SCALE") or 0.02)


@pytest.fixture
def private_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the notebook's kernel (it inherits this environment): everything it writes under tmp_path."""
    lab = tmp_path / "lab"
    monkeypatch.setenv("LAB_EMULATOR_PORT", str(free_port()))
    monkeypatch.setenv("LAB_EMULATOR_DB", str(lab / "agentcore-local" / "memory.db"))
    for name, folder in (("LAB_STATE_DIR", "state"), ("LAB_ARTIFACTS_DIR", "artifacts"), ("LAB_LOGS_DIR", "logs")):
        monkeypatch.setenv(name, str(lab / folder))
    return lab


def _checked_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"
            and any(line.strip() == CHECK_OUTPUT for line in cell.source.splitlines())]


def _comparable(outputs: list[Any]) -> dict[str, list[str]]:
    """Outputs as nbval compares them: per field (stream name, MIME type, error), the values in order.

    Stream text is joined per stream (how a cell's prints are split into messages varies), carriage-return
    overwrites are resolved, and images are left out (their bytes differ between runs).
    """
    fields: dict[str, list[str]] = {}
    streams: dict[str, str] = {}
    for output in outputs:
        if output["output_type"] == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        elif output["output_type"] == "error":
            fields.setdefault("error", []).append(f"{output['ename']}: {output['evalue']}")
        else:
            for mime, value in output.get("data", {}).items():
                if mime not in UNCOMPARED and not mime.startswith("image/"):
                    fields.setdefault(mime, []).append(value if isinstance(value, str) else repr(value))
    for name, text in streams.items():
        fields[f"stream {name}"] = [re.sub(r"[^\n]*\r(?!\n)", "", text)]
    return fields


def output_differences(committed: Any, executed: Any) -> list[str]:
    """How the outputs of the committed notebook's checked cells differ in the executed copy (empty: they match).

    Cells are matched by id (papermill keeps ids and adds its injected-parameters cell with a new one).
    """
    by_id = {cell.get("id"): cell for cell in executed.cells}
    problems = []
    for cell in _checked_cells(committed):
        first_line = cell.source.splitlines()[1] if "\n" in cell.source else cell.source
        ran = by_id.get(cell.get("id"))
        if ran is None:
            problems.append(f"checked cell {first_line!r} is missing from the executed notebook")
            continue
        want, got = _comparable(cell.outputs), _comparable(ran.outputs)
        if want != got:
            problems.append(f"checked cell {first_line!r}:\n  committed: {want}\n  this run:  {got}")
    return problems


def test_the_lessons_are_there() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "00_setup.ipynb", "01_context_messaging.ipynb", "02_async_tasks.ipynb", "03_persistent_tasks.ipynb",
        "04_runtime_async_agents.ipynb", "05_mcp_native_tasks.ipynb", "06_memory_for_days.ipynb",
        "07_days_long_work.ipynb", "08_tasks_that_ask_and_tell.ipynb", "09_tasks_that_scale_out.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_headless(path: Path, tmp_path: Path, private_lab: Path) -> None:
    """The notebook runs top to bottom (its asserts hold), and its checked cells print what was committed."""
    import nbformat

    run = run_notebook(path, time_scale=_time_scale(), output_dir=tmp_path)
    assert run.ok, f"{run.summary()}\nexecuted notebook: {run.output_path}"
    differences = output_differences(nbformat.read(path, as_version=4), nbformat.read(run.output_path, as_version=4))
    assert not differences, "\n".join(differences) + f"\nexecuted notebook: {run.output_path}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path) -> None:
    """A parameters cell, the lab kernel, and outputs only where they are compared with a fresh run."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code), "no cell tagged 'parameters'"
    assert notebook.metadata["kernelspec"]["name"] == "agentcore-longrun-lab"
    for cell in code:
        if cell.outputs:
            assert cell.source.startswith(CHECK_OUTPUT), f"unexpected committed output in: {cell.source[:60]}"
            assert cell.get("id"), "a checked cell needs an id to be found in the executed copy"


def _cell(source: str, outputs: list[dict[str, Any]], cell_id: str = "c1") -> Any:
    import nbformat

    cell = nbformat.v4.new_code_cell(source, id=cell_id)
    cell.outputs = [nbformat.from_dict(output) for output in outputs]
    return cell


def _notebook(*cells: Any) -> Any:
    import nbformat

    return nbformat.v4.new_notebook(cells=list(cells))


def _stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def test_a_checked_cell_with_the_same_output_passes_however_its_prints_were_split() -> None:
    import nbformat

    committed = _notebook(_cell(f"{CHECK_OUTPUT}\nprint(tools)", [_stream("['a', 'b']\n")]))
    executed = _notebook(nbformat.v4.new_code_cell("time_scale = 0.02", id="injected"),
                         _cell(f"{CHECK_OUTPUT}\nprint(tools)", [_stream("['a', "), _stream("'b']\n")]))
    assert output_differences(committed, executed) == []


def test_a_checked_cell_whose_output_changed_fails_and_says_how() -> None:
    committed = _notebook(_cell(f"{CHECK_OUTPUT}\nprint(tools)", [_stream("['a', 'b']\n")]))
    executed = _notebook(_cell(f"{CHECK_OUTPUT}\nprint(tools)", [_stream("['a']\n")]))
    [problem] = output_differences(committed, executed)
    assert "print(tools)" in problem and "['a', 'b']" in problem and "this run:  {'stream stdout': [\"['a']\\n\"]}" in problem


def test_unchecked_cells_and_volatile_fields_are_not_compared() -> None:
    result = {"output_type": "execute_result", "execution_count": 3, "metadata": {}, "data": {"text/plain": "42"}}
    committed = _notebook(_cell(f"{CHECK_OUTPUT}\n6 * 7", [result]), _cell("print(time.time())", [], "c2"))
    executed = _notebook(
        _cell(f"{CHECK_OUTPUT}\n6 * 7", [{**result, "execution_count": 9,
                                         "data": {"text/plain": "42", "image/png": "iVBOR..."}}]),
        _cell("print(time.time())", [_stream("1700000000.0\n")], "c2"))
    assert output_differences(committed, executed) == []


def test_a_checked_cell_that_did_not_run_is_a_difference() -> None:
    committed = _notebook(_cell(f"{CHECK_OUTPUT}\nprint(1)", [_stream("1\n")]))
    executed = _notebook(_cell(f"{CHECK_OUTPUT}\nprint(1)", [], "other-id"))
    assert "missing from the executed notebook" in output_differences(committed, executed)[0]
