"""lab_helpers.show_code: the code a lesson shows is read from the tested file, and a stale name fails loudly."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from lab_helpers import config
from lab_helpers.show_code import MAX_LINES, code_of, show_code


def test_a_nested_tool_comes_with_its_decorator_and_without_its_indent() -> None:
    block = code_of("servers/async_tasks.py", "build_server.model_training")
    assert block.source.startswith("@server.tool()\nasync def model_training(")
    assert "tasks.submit(" in block.source and "def check_task_status" not in block.source
    lines = (config.REPO_ROOT / "servers/async_tasks.py").read_text().splitlines()
    assert lines[block.first_line - 1].strip() == "@server.tool()"
    assert lines[block.last_line - 1].strip() == block.source.splitlines()[-1].strip()


def test_methods_classes_and_assignments_are_found() -> None:
    assert code_of("servers/patterns/task_registry.py", "TaskManager.cancel").source.startswith("def cancel(")
    assert code_of("servers/patterns/tool_errors.py", "tool_errors").source.startswith("@contextmanager\ndef tool_errors(")
    assert code_of("lab_helpers/show_code.py", "MAX_LINES").source == f"MAX_LINES = {MAX_LINES}"


def test_a_name_that_is_gone_or_a_missing_file_fails_with_a_clear_message() -> None:
    with pytest.raises(LookupError, match=r"servers/async_tasks.py defines no 'build_server.no_such_tool'"):
        code_of("servers/async_tasks.py", "build_server.no_such_tool")
    with pytest.raises(LookupError, match="no file servers/nope.py"):
        code_of("servers/nope.py", "anything")
    with pytest.raises(TypeError, match="needs the name"):
        show_code("servers/async_tasks.py")


def test_a_block_too_long_to_read_is_refused() -> None:
    with pytest.raises(ValueError, match="split it and show the parts"):
        code_of("servers/async_tasks.py", "build_server", max_lines=10)


def test_headless_it_is_plain_text_and_in_jupyterlab_highlighted_html(monkeypatch: pytest.MonkeyPatch) -> None:
    block = code_of("servers/patterns/tool_errors.py", "tool_errors")
    assert repr(block).startswith(f"# servers/patterns/tool_errors.py, lines {block.first_line}-{block.last_line}")
    assert "\x1b" not in repr(block)
    monkeypatch.setenv("LAB_HEADLESS", "1")
    assert block._repr_html_() is None
    monkeypatch.setenv("LAB_HEADLESS", "0")
    monkeypatch.setattr(config, "_in_notebook_frontend", lambda: True)
    html = block._repr_html_()
    assert html is not None and "<span" in html and "tool_errors" in html


def _show_code_calls(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``show_code(file, "name", ...)`` call in a notebook's code cells, in order.

    The file is a string literal or a name the notebook assigned a string literal to earlier
    (``AGENT = "servers/runtime_agent.py"``); anything else fails the test, so no call goes unchecked.
    """
    calls: list[tuple[str, list[str]]] = []
    strings: dict[str, str] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:  # cell magics
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                strings.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "show_code":
                first, *rest = node.args
                file = first.value if isinstance(first, ast.Constant) else strings[first.id]  # type: ignore[attr-defined]
                names = [a.value for a in rest if isinstance(a, ast.Constant)]
                assert len(names) == len(rest), f"show_code with a computed name in {path.name}: {source[:80]}"
                calls.append((file, names))
    return calls


@pytest.mark.parametrize("path", sorted((config.REPO_ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_block_a_notebook_shows_exists_and_is_short(path: Path) -> None:
    """Fails in a second, not after a notebook run, when a lesson names code that was renamed or grew too long."""
    for file, names in _show_code_calls(path):
        for name in names:
            code_of(file, name)
