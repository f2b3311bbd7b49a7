"""Show the code a lesson teaches, straight from the tested file it lives in.

A notebook that copies code into markdown drifts from the code that runs; ``show_code`` reads the named
function, class, method (``"TaskManager.submit"``) or top-level assignment from a file in this repository, with
its decorators, at the moment the lesson needs it. So the code on the page is always the code the tests run,
and a renamed or deleted name fails the notebook loudly instead of showing something stale.

In JupyterLab the block is syntax-highlighted; headless (``LAB_HEADLESS=1``, CI) it is plain text.
"""

from __future__ import annotations

import ast
import html
from dataclasses import dataclass
from pathlib import Path

from lab_helpers import config

#: A block longer than this is too long to read in a lesson: split the function instead of showing it whole.
MAX_LINES = 45


@dataclass(frozen=True)
class ShownCode:
    """A named block of a repository file: what a notebook cell displays."""

    path: str
    name: str
    first_line: int
    last_line: int
    source: str

    @property
    def caption(self) -> str:
        return f"{self.path}, lines {self.first_line}-{self.last_line} ({self.name})"

    def __repr__(self) -> str:
        return f"# {self.caption}\n{self.source}"

    def _repr_html_(self) -> str | None:
        if config.load().headless:
            return None
        from pygments import highlight  # JupyterLab depends on pygments; import it only to draw
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        body = highlight(self.source, PythonLexer(), HtmlFormatter(noclasses=True, nowrap=False))
        return (f'<div style="font-size: 0.85em; color: #555; margin-bottom: 2px">{html.escape(self.caption)}</div>'
                f"{body}")


def _find(tree: ast.Module, name: str) -> ast.stmt | None:
    """The top-level (or, for ``"Class.method"``, class-level) definition or assignment called ``name``."""
    scope: list[ast.stmt] = tree.body
    *outer, last = name.split(".")
    for part in outer:
        found = next((n for n in scope if isinstance(n, ast.ClassDef) and n.name == part), None)
        if found is None:
            return None
        scope = found.body
    for node in scope:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == last:
            return node
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == last for t in targets):
                return node
    return None


def _nested(tree: ast.Module, name: str) -> ast.stmt | None:
    """A function defined inside another one (``"build_server.model_training"``): tools declared in a factory."""
    outer, _, inner = name.rpartition(".")
    parent = _find(tree, outer) if outer else None
    if not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    for node in ast.walk(parent):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == inner:
            return node
    return None


def code_of(path: str | Path, name: str, *, max_lines: int = MAX_LINES) -> ShownCode:
    """The source of ``name`` in ``path`` (relative to the repository root), with its decorators.

    Raises ``LookupError`` when the file has no such name, and ``ValueError`` when the block is longer than
    ``max_lines``: both mean the lesson no longer matches the code and must be brought up to date.
    """
    relative = Path(path)
    file = config.REPO_ROOT / relative
    if not file.is_file():
        raise LookupError(f"show_code: no file {relative.as_posix()} in the repository")
    text = file.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(relative))
    node = _find(tree, name) or _nested(tree, name)
    if node is None:
        raise LookupError(f"show_code: {relative.as_posix()} defines no {name!r}; the lesson names code that is gone")
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    last = node.end_lineno or node.lineno
    lines = text.splitlines()[first - 1:last]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    source = "\n".join(line[indent:] for line in lines)
    if len(lines) > max_lines:
        raise ValueError(f"show_code: {name} in {relative.as_posix()} is {len(lines)} lines, more than {max_lines} "
                         "a reader takes in at once; split it and show the parts")
    return ShownCode(relative.as_posix(), name, first, last, source)


def show_code(path: str | Path, *names: str, max_lines: int = MAX_LINES) -> None:
    """Display each named block of ``path`` in turn (highlighted in JupyterLab, plain text headless).

    Every name is looked up before anything is shown, so a stale name fails the cell without showing half of it.
    """
    if not names:
        raise TypeError("show_code needs the name of at least one function, class or assignment")
    blocks = [code_of(path, name, max_lines=max_lines) for name in names]
    from IPython.display import display

    for block in blocks:
        display(block)
