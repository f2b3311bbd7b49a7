"""lab_helpers.runtime_packages: Linux arm64 wheels for an AWS-mode zip, offline.

No test reaches a package index: the cache tests give ``wheels`` a stand-in downloader, and the tests of the real
pip download point pip at a directory of small wheels made here (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``, no pip
configuration file), so they run pip itself, with deploy's exact flags, without a network.
"""

from __future__ import annotations

import ast
import os
import sys
import zipfile
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lab_helpers import config, runtime_packages

REPO = config.REPO_ROOT


def make_wheel(directory: Path, name: str, version: str = "1.0", tag: str = "py3-none-any",
               files: dict[str, bytes] | None = None) -> Path:
    """A small real wheel: ``<name>/__init__.py`` (or ``files``) and the dist-info pip reads."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-{tag}.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in (files or {f"{name}/__init__.py": b"VERSION = '" + version.encode() + b"'\n"}).items():
            wheel.writestr(member, data)
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def requirement_pins(path: Path) -> dict[str, Requirement]:
    lines = [line.split(" #")[0].strip() for line in path.read_text().splitlines()]
    parsed = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(requirement.name): requirement for requirement in parsed}


# -- servers/requirements.txt ----------------------------------------------------------------------
def test_runtime_requirements_have_the_versions_of_requirements_txt() -> None:
    runtime = requirement_pins(runtime_packages.RUNTIME_REQUIREMENTS)
    everything = requirement_pins(REPO / "requirements.txt")
    assert runtime, "servers/requirements.txt lists no package"
    for name, requirement in runtime.items():
        assert name in everything, f"{name} is in servers/requirements.txt but not in requirements.txt"
        assert str(requirement.specifier).startswith("=="), f"{name} must be pinned exactly in servers/requirements.txt"
        assert requirement.specifier == everything[name].specifier, (
            f"{name}: servers/requirements.txt says {requirement.specifier}, requirements.txt "
            f"{everything[name].specifier}: keep them in step")


#: Imports that need a package of their own besides the imported one's: uvicorn's httptools protocol.
EXTRA_NEEDS = {"uvicorn.protocols.http.httptools_impl": "httptools"}


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside ``try: ... except ImportError`` or ``if TYPE_CHECKING:`` is not needed to run."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                isinstance(handler.type, ast.Name) and handler.type.id in ("ImportError", "ModuleNotFoundError")
                for handler in node.handlers):
            return True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _module_file(module: str) -> Path | None:
    """The repository file of a ``lab_helpers`` or ``patterns`` module (None for anything else)."""
    parts = module.split(".")
    if parts[0] == "lab_helpers":
        base = REPO.joinpath(*parts)
    elif parts[0] == "patterns":
        base = REPO.joinpath("servers", *parts)
    else:
        return None
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_distributions() -> dict[frozenset[str], set[str]]:
    """The distributions the servers need at run time, each with the files importing it.

    Keys are the distributions that provide an imported module (any one will do: ``fastmcp`` is in both fastmcp
    and fastmcp-slim). Follows the servers' imports into the ``lab_helpers`` and ``patterns`` modules they use
    (those ship in the zip too).
    """
    providers = metadata.packages_distributions()
    needed: dict[frozenset[str], set[str]] = {}
    todo, seen = sorted(REPO.joinpath("servers").glob("*.py")), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            if _optional(node, parents):
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in ("lab_helpers", "patterns"):
                    parts = module.split(".")
                    todo += [f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i])))]
                    continue
                if REPO.joinpath("servers", f"{top}.py").exists():  # a sibling script (task_worker imports native_tasks)
                    todo.append(REPO / "servers" / f"{top}.py")
                    continue
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                assert top in providers, f"{path.relative_to(REPO)} imports {top}, which no installed package provides"
                for names in (providers[top], [EXTRA_NEEDS[module]] if module in EXTRA_NEEDS else []):
                    if names:
                        key = frozenset(canonicalize_name(name) for name in names)
                        needed.setdefault(key, set()).add(str(path.relative_to(REPO)))
    return needed


def test_runtime_requirements_list_what_the_servers_import() -> None:
    """Every package the deployed code imports is in the zip, and nothing it does not import is downloaded."""
    needed = imported_distributions()
    listed = set(requirement_pins(runtime_packages.RUNTIME_REQUIREMENTS))
    missing = {" or ".join(sorted(names)): sorted(files) for names, files in needed.items() if not names & listed}
    assert not missing, f"add to servers/requirements.txt (imported at run time by): {missing}"
    unused = listed - set().union(*needed)
    assert not unused, f"servers/ does not import these: {sorted(unused)}"
    assert {"numpy", "mcp", "bedrock-agentcore", "httptools"} <= listed  # the test can see through lab_helpers


# -- the cache -------------------------------------------------------------------------------------
class FakeDownloader:
    """Writes one small wheel per requirement line into the destination, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, Path | None]] = []

    def __call__(self, requirements: Path, constraints: Path | None, destination: Path) -> None:
        self.calls.append((requirements, constraints))
        for name, requirement in requirement_pins(requirements).items():
            make_wheel(destination, name.replace("-", "_"), str(requirement.specifier).removeprefix("=="))


def test_wheels_are_downloaded_once_per_requirements(tmp_path: Path) -> None:
    requirements, constraints = tmp_path / "requirements.txt", tmp_path / "constraints.txt"
    requirements.write_text("# a comment\nfakepkg==1.0\n")
    constraints.write_text("fakepkg==1.0\n")
    download = FakeDownloader()

    first = runtime_packages.wheels(requirements, constraints, download=download, cache_dir=tmp_path / "cache")
    again = runtime_packages.wheels(requirements, constraints, download=download, cache_dir=tmp_path / "cache")

    assert first == again and first is not None and first.parent == tmp_path / "cache"
    assert [wheel.name for wheel in first.iterdir()] == ["fakepkg-1.0-py3-none-any.whl"]
    assert download.calls == [(requirements, constraints)], "the second call must reuse the cache"
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".partial")]

    moved = tmp_path / "elsewhere" / "requirements.txt"  # the key is the content, not the path
    moved.parent.mkdir()
    moved.write_bytes(requirements.read_bytes())
    assert runtime_packages.wheels(moved, constraints, download=download, cache_dir=tmp_path / "cache") == first
    assert len(download.calls) == 1

    requirements.write_text("fakepkg==2.0\n")  # a new pin: new wheels
    assert runtime_packages.wheels(requirements, constraints, download=download, cache_dir=tmp_path / "cache") != first
    constraints.write_text("fakepkg==2.0\nother==1\n")  # new constraints: new wheels too
    runtime_packages.wheels(requirements, constraints, download=download, cache_dir=tmp_path / "cache")
    assert len(download.calls) == 3


def test_a_failed_download_leaves_nothing_cached(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fakepkg==1.0\n")

    def half_then_fail(requirements: Path, constraints: Path | None, destination: Path) -> None:
        make_wheel(destination, "fakepkg")
        raise runtime_packages.PackagingError("the network went away")

    with pytest.raises(runtime_packages.PackagingError, match="network went away"):
        runtime_packages.wheels(requirements, None, download=half_then_fail, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == [], "neither a cache entry nor a partial download may remain"
    download = FakeDownloader()
    assert runtime_packages.wheels(requirements, None, download=download, cache_dir=tmp_path / "cache")
    assert len(download.calls) == 1


def test_source_distributions_and_empty_downloads_are_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fakepkg==1.0\n")

    def sdist(requirements: Path, constraints: Path | None, destination: Path) -> None:
        destination.mkdir(parents=True)
        (destination / "fakepkg-1.0.tar.gz").write_bytes(b"")

    with pytest.raises(runtime_packages.PackagingError, match=r"not wheels \(fakepkg-1.0.tar.gz\)"):
        runtime_packages.wheels(requirements, None, download=sdist, cache_dir=tmp_path / "cache")
    with pytest.raises(runtime_packages.PackagingError, match="no wheel"):
        runtime_packages.wheels(requirements, None, download=lambda r, c, d: d.mkdir(), cache_dir=tmp_path / "cache")


def test_requirements_without_packages_need_no_download(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing from outside the standard library\n\n")
    assert runtime_packages.wheels(requirements, download=lambda *a: pytest.fail("no download"),
                                   cache_dir=tmp_path / "cache") is None
    with pytest.raises(runtime_packages.PackagingError, match="not found"):
        runtime_packages.wheels(tmp_path / "missing.txt", cache_dir=tmp_path / "cache")


def test_the_requirements_of_a_source_are_its_own_or_the_servers(tmp_path: Path) -> None:
    assert runtime_packages.requirements_for(tmp_path) == runtime_packages.RUNTIME_REQUIREMENTS
    (tmp_path / "requirements.txt").write_text("fakepkg==1.0\n")
    assert runtime_packages.requirements_for(tmp_path) == tmp_path / "requirements.txt"
    assert runtime_packages.requirements_for(REPO / "servers") == runtime_packages.RUNTIME_REQUIREMENTS


# -- unpacking -------------------------------------------------------------------------------------
def test_wheels_unpack_where_pip_would_install_them(tmp_path: Path) -> None:
    make_wheel(tmp_path, "native", tag="cp311-cp311-manylinux2014_aarch64", files={
        "native/__init__.py": b"",
        "native/_core.cpython-311-aarch64-linux-gnu.so": b"\x7fELF",
        "native/__pycache__/__init__.cpython-311.pyc": b"\0",
        "native-1.0.data/purelib/native_extra.py": b"EXTRA = 1\n",
        "native-1.0.data/platlib/native_lib.so": b"\x7fELF",
        "native-1.0.data/scripts/native-tool": b"#!python\n",
        "native-1.0.data/headers/native.h": b"",
    })
    with zipfile.ZipFile(tmp_path / "native-1.0-cp311-cp311-manylinux2014_aarch64.whl", "a") as wheel:
        executable = zipfile.ZipInfo("native/_core.cpython-311-aarch64-linux-gnu.so.exe-bit")
        executable.external_attr = 0o100755 << 16
        wheel.writestr(executable, b"\x7fELF")

    with ExitStack() as stack:
        entries = runtime_packages.wheel_entries(tmp_path, stack)
        files = {name: (read(), mode) for name, (read, mode) in entries.items()}

    assert sorted(files) == [
        "native-1.0.dist-info/METADATA", "native-1.0.dist-info/RECORD", "native-1.0.dist-info/WHEEL",
        "native/__init__.py", "native/_core.cpython-311-aarch64-linux-gnu.so",
        "native/_core.cpython-311-aarch64-linux-gnu.so.exe-bit", "native_extra.py", "native_lib.so"]
    assert files["native_extra.py"] == (b"EXTRA = 1\n", 0o644)
    assert files["native/_core.cpython-311-aarch64-linux-gnu.so.exe-bit"][1] == 0o755


def test_a_wheel_reaching_outside_its_root_is_refused(tmp_path: Path) -> None:
    make_wheel(tmp_path, "evil", files={"../../etc/evil.py": b""})
    with ExitStack() as stack, pytest.raises(runtime_packages.PackagingError, match="outside its root"):
        runtime_packages.wheel_entries(tmp_path, stack)


# -- pip itself, offline ---------------------------------------------------------------------------
@pytest.fixture
def local_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """pip sees only the wheels in the returned directory: no index, no configuration file of this machine."""
    links = tmp_path / "links"
    links.mkdir()
    for variable in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def test_pip_downloads_the_arm64_wheel_the_constraints_pin(local_index: Path, tmp_path: Path) -> None:
    for version in ("1.0", "2.0"):
        make_wheel(local_index, "fakepkg", version, tag="cp311-cp311-manylinux2014_aarch64")
    make_wheel(local_index, "fakepkg", "3.0", tag="cp311-cp311-manylinux2014_x86_64")  # not for AgentCore
    make_wheel(local_index, "newlibc", "1.0", tag="cp311-cp311-manylinux_2_28_aarch64")  # like NumPy 2.3+
    requirements, constraints = tmp_path / "requirements.txt", tmp_path / "constraints.txt"
    requirements.write_text("fakepkg\nnewlibc==1.0\n")
    constraints.write_text("fakepkg==1.0\n")

    found = runtime_packages.wheels(requirements, constraints, cache_dir=tmp_path / "cache")

    assert found is not None
    assert sorted(wheel.name for wheel in found.iterdir()) == [
        "fakepkg-1.0-cp311-cp311-manylinux2014_aarch64.whl", "newlibc-1.0-cp311-cp311-manylinux_2_28_aarch64.whl"]


def test_a_package_without_an_arm64_wheel_is_named_with_what_to_do(local_index: Path, tmp_path: Path) -> None:
    make_wheel(local_index, "x86only", tag="cp311-cp311-manylinux2014_x86_64")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("x86only==1.0\n")

    with pytest.raises(runtime_packages.PackagingError) as failure:
        runtime_packages.wheels(requirements, None, cache_dir=tmp_path / "cache")

    message = str(failure.value)
    assert "no binary wheel of x86only==1.0 for Linux arm64" in message
    assert str(requirements) in message and "packages_dir" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_other_pip_failures_say_what_pip_said() -> None:
    command = ["python", "-m", "pip", "download"]
    conflict = runtime_packages.explain_pip_failure(
        "ERROR: Cannot install a==1 because these package versions have conflicting dependencies.\n"
        "ERROR: ResolutionImpossible: for help visit ...", 1, Path("req.txt"), command)
    assert "together with the workbench's pins" in conflict and "ResolutionImpossible" in conflict
    network = runtime_packages.explain_pip_failure("WARNING: Retrying ...\nERROR: HTTPSConnectionPool: timed out",
                                                   2, Path("req.txt"), command)
    assert "exit code 2" in network and "timed out" in network and "python -m pip download" in network
