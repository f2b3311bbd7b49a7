"""The lessons as an attendee meets them: JupyterLab started by ``make lab``, in a real browser.

The other tests drive kernels and papermill; this one drives the page. It runs ``make lab`` itself (on free ports,
with a temporary token, settings and emulator database, so it is safe next to a real ``make lab`` and in parallel),
opens JupyterLab in headless Chromium through Playwright, and checks what a person sees:

* ``make lab`` opens notebook 00 on the kernel "Python (agentcore-longrun-lab)", which the launcher offers;
* notebook 00's mermaid diagrams are drawn as SVG images, not shown as code;
* notebook 01's progress panel is an ipywidgets progress bar (not text, not "Loading widget...") whose bar grows
  while the tool call runs;
* notebook 02's task board redraws while its tasks run, and ends with every task's outcome;
* after Run All, every code cell ran and none shows a traceback.

Screenshots of those moments land in ``build/browser/``. Playwright is pointed at Debian's Chromium
(``apt-get install chromium``): ``playwright install`` would download a browser, which this lab never does.
Autosave is off in the test's JupyterLab settings, so running the notebooks never writes outputs into them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import nbformat
import psutil
import pytest

from conftest import LOCAL_HTTP
from lab_helpers import config
from lab_helpers.processes import free_port
from lab_helpers.waiting import eventually

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: `sudo apt-get install chromium` (Debian/Ubuntu) runs the browser test "
           "(make test installs it under CI)",
)

KERNEL_NAME = "Python (agentcore-longrun-lab)"
SCREENSHOTS = config.REPO_ROOT / "build" / "browser"
NOTEBOOKS = config.REPO_ROOT / "notebooks"
#: Debian's Chromium, headless, quiet: no GPU, no QUIC, no first-run, update or sync traffic.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: JupyterLab user settings for the test: no autosave (the notebooks stay as committed), no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

#: What the page shows of one open notebook (by its tab's name, whether or not that tab is in front): each code
#: cell's prompt and outputs, the progress panels (a VBox with a title and a FloatProgress) and the task boards
#: (a VBox with a title and a table).
NOTEBOOK_STATE_JS = """name => {
  const tab = [...document.querySelectorAll('.lm-DockPanel-tabBar .lm-TabBar-tab')]
    .find(tab => tab.querySelector('.lm-TabBar-tabLabel')?.textContent.trim() === name);
  const panel = tab && document.getElementById(tab.dataset.id);
  if (!panel || !panel.classList.contains('jp-NotebookPanel')) return null;
  const title = box => box.querySelector('.widget-html')?.textContent.trim() ?? '';
  const boxes = [...panel.querySelectorAll('.widget-vbox')];
  return {
    kernel: panel.querySelector('.jp-Toolbar-kernelName')?.textContent.trim() ?? '',
    status: panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? '',
    cells: [...panel.querySelectorAll('.jp-CodeCell')].map(cell => ({
      prompt: cell.querySelector('.jp-InputArea-prompt')?.textContent.trim() ?? '',
      source: cell.querySelector('.jp-InputArea-editor')?.textContent.slice(0, 80) ?? '',
      outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(output => output.textContent),
    })),
    panels: boxes.filter(box => box.querySelector('.widget-hprogress')).map(box => ({
      title: title(box),
      percent: parseFloat(box.querySelector('.widget-hprogress .progress-bar').style.width),
    })),
    boards: boxes.filter(box => box.querySelector('table')).map(box => ({
      title: title(box),
      rows: [...box.querySelectorAll('table tr')].slice(1)
        .map(row => [...row.cells].map(cell => cell.textContent.trim())),
    })),
  };
}"""


@dataclass(frozen=True)
class Lab:
    """A JupyterLab that ``make lab`` started, and where to find it."""

    base_url: str
    token: str
    log: Path

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}?token={self.token}"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """``make lab`` on free ports with its own token, JupyterLab settings and emulator state; stopped afterwards.

    The environment is ``make lab``'s at CI time scale, minus ``LAB_HEADLESS`` (widgets must render), and minus
    an outer make's flags (``make test`` runs this). The installation stamp is taken as up to date (``-o``): the
    test checks the environment it runs in and never reinstalls it.
    """
    port = free_port()
    settings = config.load(
        env={}, time_scale=float(os.environ.get("LAB_TIME_SCALE") or 0.02), headless=False, jupyter_port=port,
        emulator_port=free_port(), emulator_db=tmp_path / "agentcore" / "memory.db",
        artifacts_dir=tmp_path / "artifacts", logs_dir=tmp_path / "logs", state_dir=tmp_path / "state",
    )
    for plugin, values in LAB_SETTINGS.items():
        path = tmp_path / "jupyter-config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(settings.as_env(), JUPYTER_TOKEN=token, JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"))
    log = tmp_path / "make-lab.log"
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", f"VENV={sys.prefix}", "-o", f"{sys.prefix}/.lab-installed", "lab"],
            cwd=config.REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: make, its shell, the emulator and JupyterLab
        )
    running = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        def answers() -> bool:
            assert make.poll() is None, f"make lab exited with {make.returncode}:\n{log.read_text()[-3000:]}"
            try:
                return LOCAL_HTTP.get(f"{running.base_url}/api/status", params={"token": token}, timeout=2).is_success
            except httpx.HTTPError:
                return False

        eventually(answers, timeout=120, every=0.2, what="make lab's JupyterLab to answer",
                   show=lambda: f"{len(log.read_bytes())} bytes of make lab's output")
        user_settings = LOCAL_HTTP.get(f"{running.base_url}/lab/api/settings/@jupyterlab/docmanager-extension:plugin",
                                  params={"token": token}, timeout=10).json()
        assert user_settings["settings"]["autosave"] is False, "autosave would write outputs into the notebooks"
        yield running
    finally:
        _stop_process_tree(make)


def _stop_process_tree(make: subprocess.Popen) -> None:
    """SIGTERM make's process group (JupyterLab shuts its kernels down, kernels stop their servers), then
    SIGKILL whatever of that tree (kernels and servers included, in their own sessions) is left after 20 s."""
    try:
        tree = [psutil.Process(make.pid), *psutil.Process(make.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(make.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(tree, timeout=20)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=5)
    make.wait(5)


@pytest.fixture
def page(lab: Lab) -> Iterator[Page]:
    """A headless Chromium page (Debian's Chromium driven by Playwright), closed with its browser afterwards.

    ``build/browser/`` is emptied first, so the screenshots there are this run's.
    """
    from playwright.sync_api import sync_playwright

    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def _state(page: Page, name: str) -> dict | None:
    """What the page shows of the open notebook ``name`` (see NOTEBOOK_STATE_JS), or None if it is not open."""
    return page.evaluate(NOTEBOOK_STATE_JS, name)


def _tracebacks(state: dict) -> list[str]:
    """Each output that shows a traceback, as ``[n]: last line``."""
    return [f"{cell['prompt']} {output.strip().splitlines()[-1]}"
            for cell in state["cells"] for output in cell["outputs"]
            if "Traceback (most recent call last)" in output]


def _menu(page: Page, menu: str, item: str) -> None:
    """Click ``item`` in the menu bar's ``menu``, as a person does."""
    page.locator(".lm-MenuBar-itemLabel").get_by_text(menu, exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def _open_notebook(page: Page, name: str) -> None:
    """Open ``notebooks/<name>`` from the file browser, as a person does, and wait for its kernel to be idle."""
    page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()
    page.locator(".jp-DirListing-itemText").get_by_text("notebooks", exact=True).dblclick()
    page.locator(".jp-DirListing-itemText").get_by_text(name, exact=True).dblclick()
    _wait_for_kernel(page, name)


def _wait_for_kernel(page: Page, name: str) -> None:
    """Wait until notebook ``name`` is open on the lab's kernel, and that kernel is idle."""
    def shown() -> str:
        state = _state(page, name) or {}
        return f"{name} on {state.get('kernel')!r}, {state.get('status')}"

    eventually(lambda: shown() == f"{name} on {KERNEL_NAME!r}, idle", timeout=120,
               what=f"{name} to open on its kernel", show=shown)


def _run_all(page: Page, name: str) -> None:
    """Run > Run All Cells in the notebook in front, and wait until its cells are queued (prompt ``[*]``)."""
    _menu(page, "Run", "Run All Cells")
    eventually(lambda: any(cell["prompt"] == "[*]:" for cell in _state(page, name)["cells"]), timeout=30,
               what=f"Run All to start in {name}")


def _until_run_all_ends(page: Page, watchers: dict[str, Callable[[dict], object]]) -> dict[str, dict]:
    """Poll the notebooks named in ``watchers`` (each called with every state seen) until Run All ended in each.

    Run All stops at a failing cell and leaves the cells below it unnumbered, so "no cell waiting or running"
    is the end either way. Then every cell must have run, none may show a traceback and every widget must have
    rendered. Returns each notebook's last state.
    """
    states: dict[str, dict] = {}

    def all_ended() -> bool:
        for name, watch in watchers.items():
            states[name] = _state(page, name)
            watch(states[name])
        return all("[*]:" not in [cell["prompt"] for cell in state["cells"]] for state in states.values())

    def ran(cell: dict) -> bool:
        return cell["prompt"][1:-2].isdigit()  # "[12]:"

    def progress() -> str:
        return "; ".join(f"{name}: {sum(map(ran, state['cells']))}/{len(state['cells'])} cells ran"
                         for name, state in states.items())

    try:
        eventually(all_ended, timeout=240, every=0.05, what="Run All to end", show=progress)
        for name, state in states.items():
            not_run = [cell["source"] for cell in state["cells"] if not ran(cell)]
            assert not _tracebacks(state), f"{name} shows errors: {_tracebacks(state)}"
            assert not not_run, f"cells of {name} that did not run: {not_run}"
            shown = " ".join(output for cell in state["cells"] for output in cell["outputs"])
            assert "Loading widget" not in shown and "Error displaying widget" not in shown, \
                f"a widget of {name} did not render"
    except AssertionError:
        page.screenshot(path=SCREENSHOTS / "run-all-failed.png")
        raise
    return states


#: Scroll an element to the top of its notebook and report where it landed, two frames later.
SCROLL_TO_TOP_JS = """element => new Promise(done => {
  element.scrollIntoView({block: 'start'});
  requestAnimationFrame(() => requestAnimationFrame(() => done(element.getBoundingClientRect().top)));
})"""


def _screenshot(page: Page, name: str, element: Locator | None = None) -> None:
    """The page, with ``element`` scrolled to the top of its notebook, saved as ``build/browser/<name>``.

    Off-screen cells are laid out only when scrolled to (JupyterLab's content-visibility windowing), so the
    cells above ``element`` change height as it comes into view: scroll until it stays put.
    """
    if element is not None:
        eventually(lambda: abs(element.evaluate(SCROLL_TO_TOP_JS) - element.evaluate(SCROLL_TO_TOP_JS)) < 1,
                   timeout=10, what=f"the page to settle for {name}")
    page.screenshot(path=SCREENSHOTS / name)


def _cell_showing(page: Page, selector: str, text: str = "") -> Locator:
    """The code cell of the active notebook whose output has ``selector`` (containing ``text``)."""
    return (page.locator(".jp-NotebookPanel:visible .jp-CodeCell")
            .filter(has=page.locator(selector, has_text=text)).first)


def _mermaid_blocks(name: str) -> int:
    """How many ```mermaid blocks the markdown cells of ``notebooks/<name>`` hold."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    return sum(cell.source.count("```mermaid") for cell in notebook.cells if cell.cell_type == "markdown")


def test_an_attendee_runs_the_first_lessons_in_jupyterlab(lab: Lab, page: Page) -> None:
    # make lab's address opens notebook 00, on the lab's kernel; the launcher offers that kernel.
    page.goto(lab.url("/"))
    _wait_for_kernel(page, "00_setup.ipynb")
    _menu(page, "File", "New Launcher")
    page.locator(".jp-LauncherCard").get_by_text(KERNEL_NAME, exact=True).first.wait_for()
    _screenshot(page, "00-launcher-kernel.png")
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tabLabel").get_by_text("00_setup.ipynb", exact=True).click()

    # The mermaid diagrams are drawn: one SVG image per ```mermaid block, no block left as code or as a warning.
    diagrams = page.locator(".jp-NotebookPanel:visible .jp-RenderedMermaid img[src^='data:image/svg+xml']")
    expected = _mermaid_blocks("00_setup.ipynb")
    assert expected >= 1
    eventually(lambda: diagrams.count() == expected, timeout=30,
               what=f"{expected} mermaid diagrams drawn as SVG", show=lambda: f"{diagrams.count()} drawn")
    assert page.locator(".jp-RenderedMermaid.jp-mod-warning").count() == 0
    assert page.evaluate("() => [...document.querySelectorAll('.jp-RenderedMermaid img')].every(i => i.naturalWidth)")
    _screenshot(page, "00-mermaid.png", diagrams.first)
    _run_all(page, "00_setup.ipynb")
    _until_run_all_ends(page, {"00_setup.ipynb": lambda state: None})

    # Notebook 01: the first progress panel is a widget whose bar grows while train_model runs.
    nb01, title, bar_seen = "01_context_messaging.ipynb", "train_model with progress", []

    def watch_the_bar(state: dict) -> bool:
        """Record each new width of the panel's bar (a screenshot when it is half full); True once it is full."""
        bar = next((panel["percent"] for panel in state["panels"] if panel["title"] == title), None)
        if bar is not None and (not bar_seen or bar != bar_seen[-1]):
            bar_seen.append(bar)
            if 30 <= bar <= 70 and not (SCREENSHOTS / "01-progress-live.png").exists():
                _screenshot(page, "01-progress-live.png", _cell_showing(page, ".widget-vbox", title))
        return bar == 100

    _open_notebook(page, nb01)
    _run_all(page, nb01)
    eventually(lambda: watch_the_bar(_state(page, nb01)), timeout=120, what=f"the bar of {title!r} to fill",
               show=lambda: f"{bar_seen[-1] if bar_seen else 'no bar yet'}%")
    rising = [percent for percent in bar_seen if 0 < percent < 100]
    assert len(rising) >= 3, f"the bar did not move while the call ran; it showed {bar_seen}"
    assert rising == sorted(rising), bar_seen
    _screenshot(page, "01-progress-done.png", _cell_showing(page, ".widget-vbox", title))

    # Notebook 02, opened while 01 runs on: the task board redraws while its tasks run, and ends with each outcome.
    nb02, tables = "02_async_tasks.ipynb", []

    def watch_the_board(state: dict) -> None:
        """Record each new table the board shows (a screenshot when two tasks run at once)."""
        if state["boards"] and (not tables or state["boards"][0]["rows"] != tables[-1]):
            tables.append(state["boards"][0]["rows"])
            live = SCREENSHOTS / "02-task-board-live.png"
            if sum("running" in row for row in tables[-1]) >= 2 and not live.exists():
                _screenshot(page, live.name, _cell_showing(page, ".widget-vbox table"))

    _open_notebook(page, nb02)
    _run_all(page, nb02)
    states = _until_run_all_ends(page, {nb01: lambda state: None, nb02: watch_the_board})
    assert len(tables) >= 3, f"the task board did not update while the tasks ran: {tables}"
    assert any(sum("running" in row for row in table) >= 2 for table in tables), "no two tasks seen running at once"
    outcomes = {"spiral-small": "completed", "spiral-large": "completed", "too-hot": "failed", "to-cancel": "cancelled"}
    assert {row[1]: row[2] for row in tables[-1] if row[1] in outcomes} == outcomes, tables[-1]
    _screenshot(page, "02-task-board-done.png", _cell_showing(page, ".widget-vbox table"))
    assert not any(f"[{title}]" in output for cell in states[nb01]["cells"] for output in cell["outputs"]), \
        "notebook 01's panel printed headless text lines instead of drawing the widget"
