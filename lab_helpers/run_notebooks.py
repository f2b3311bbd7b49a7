"""Execute the lesson notebooks headless with papermill, the way CI, ``make run`` and ``tests/test_notebooks.py`` do.

Each notebook has a ``parameters`` cell with ``time_scale``; papermill injects
the CI value, so the same lesson runs in seconds with the same code paths. A
notebook passes when every cell ran: the lessons assert what they teach in their
own cells, so a lesson that stops being true fails here. ``python -m lab_helpers run``
runs them all; one notebook at another pace (a lesson must pass at any time scale)::

    from lab_helpers.run_notebooks import NOTEBOOKS_DIR, run_notebook
    print(run_notebook(NOTEBOOKS_DIR / "04_runtime_async_agents.ipynb", time_scale=0.05).summary())
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from lab_helpers.config import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "build" / "executed"


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    output_path: Path
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:<32} {self.seconds:6.1f} s" + (
            f"  {self.error}" if self.error else ""
        )


def notebook_paths() -> list[Path]:
    """The lesson notebooks, in their numbered order."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def run_notebook(
    path: Path, *, time_scale: float, output_dir: Path = EXECUTED_DIR, cell_timeout: float = 600,
    parameters: dict[str, object] | None = None,
) -> NotebookRun:
    """Execute ``path`` into ``output_dir`` with papermill; never raises for a failing cell.

    ``parameters`` go to the notebook's ``parameters`` cell besides ``time_scale`` (notebook 05's ``backend``).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output_dir.mkdir(parents=True, exist_ok=True)
    output_path = output_dir / path.name
    # The kernel inherits this process's environment: headless widgets print plain text.
    os.environ["LAB_HEADLESS"] = "1"
    started = time.monotonic()
    error: str | None = None
    try:
        papermill.execute_notebook(
            str(path),
            str(output_path),
            parameters={"time_scale": time_scale, **(parameters or {})},
            cwd=str(path.parent),
            progress_bar=False,
            execution_timeout=cell_timeout,
        )
    except PapermillExecutionError as failure:
        error = f"cell [{failure.exec_count}] raised {failure.ename}: {failure.evalue}"
    except Exception as failure:  # noqa: BLE001 - a kernel that died or a bad notebook is a failed run, reported
        error = f"{type(failure).__name__}: {failure}"
    return NotebookRun(path.name, output_path, time.monotonic() - started, error)


def run_all(time_scale: float, output_dir: Path = EXECUTED_DIR) -> list[NotebookRun]:
    """Execute every lesson notebook in order, printing one line per notebook as it finishes."""
    runs = []
    for path in notebook_paths():
        run = run_notebook(path, time_scale=time_scale, output_dir=output_dir)
        print(run.summary(), flush=True)
        runs.append(run)
    return runs
