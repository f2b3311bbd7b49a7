"""Notebook 00's guide to the code: every lesson and plumbing module is linked, and every link opens a file."""

from __future__ import annotations

import re

import nbformat

from lab_helpers.config import REPO_ROOT


def test_notebook_00_maps_every_file_and_its_links_resolve() -> None:
    """The map a newcomer reads first names every lesson and plumbing module, and every link in it opens a file."""
    path = REPO_ROOT / "notebooks" / "00_setup.ipynb"
    prose = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown")
    targets = {target for target in re.findall(r"\]\(([^)\s]+)\)", prose) if not target.startswith(("http", "#"))}
    broken = sorted(target for target in targets if not (path.parent / target).exists())
    assert not broken, f"links in {path.name} that open nothing: {broken}"

    linked = {(path.parent / target).resolve() for target in targets}
    modules = [file for folder in ("servers", "servers/patterns", "lab_helpers", "lab_helpers/emulator")
               for file in sorted((REPO_ROOT / folder).glob("*.py")) if file.name not in ("__init__.py", "__main__.py")]
    missing = [file.relative_to(REPO_ROOT).as_posix() for file in modules if file.resolve() not in linked]
    assert not missing, f"{path.name}'s guide to the code does not link {missing}"
