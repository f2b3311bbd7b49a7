"""The third-party packages of an AWS-mode deployment zip: Linux arm64 wheels, downloaded once per requirements.

AgentCore Runtime's direct code deployment runs the zip as it is, on Linux arm64 (aarch64) with CPython 3.11: it
installs nothing from ``requirements.txt``. So the packages the code imports must be in the zip, built for that
platform, whatever machine deploys. :func:`wheels` downloads them with pip's platform download (binary wheels
only, so nothing is compiled for the wrong machine)::

    python -m pip download --only-binary=:all: --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64
        --python-version 3.11 --implementation cp -r <requirements> -c requirements.txt -d <cache>/<key>

and keeps them under ``build/cache/runtime-packages/<key>``, ``<key>`` being the hash of the requirements, the
constraints and those flags: a second deploy reuses them without asking pip, a changed pin downloads anew.
:func:`wheel_entries` unpacks them to the zip's root, where ``pip install --target`` would put them (the wheels'
``*.data/purelib`` and ``platlib`` too; their scripts, headers and data files are not importable and stay out).
This is what AWS's own bedrock-agentcore-starter-toolkit does for direct code deployment (``uv pip install
--target --python-platform aarch64-manylinux2014 --only-binary :all:``, cached by the hash of the requirements,
dependencies at the zip's root, the code over them).

Which requirements: the deployed directory's own ``requirements.txt`` when it has one, else
``servers/requirements.txt``, the packages the servers and the ``lab_helpers`` and ``patterns`` modules they import
need at run time (a zip carries both packages). The repository's ``requirements.txt`` (the whole workbench,
JupyterLab included) is passed as constraints, so what those packages pull in has the versions tested here.
Both manylinux tags are needed: NumPy 2.3 and later publish aarch64 wheels for glibc 2.28 only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from lab_helpers import config
from lab_helpers.waiting import WaitTimeout, eventually

#: AgentCore Runtime's platform (``PYTHON_3_11`` on Graviton) in pip's terms.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
PYTHON_VERSION = "3.11"
IMPLEMENTATION = "cp"
#: What the servers (and the lab_helpers and patterns modules they import) need at run time.
RUNTIME_REQUIREMENTS = config.REPO_ROOT / "servers" / "requirements.txt"
#: The workbench's exact pins: the versions of everything the runtime requirements pull in.
CONSTRAINTS = config.REPO_ROOT / "requirements.txt"
#: Downloaded wheels, one directory per cache key (tests point this at a temporary directory).
CACHE_DIR = config.REPO_ROOT / "build" / "cache" / "runtime-packages"
#: Longest a download may take before it is stopped (seconds); pip itself retries slow connections.
DOWNLOAD_TIMEOUT = 1800.0

#: ``download(requirements, constraints, destination)`` fills ``destination`` with wheels or raises PackagingError.
Downloader = Callable[[Path, Path | None, Path], None]
#: A file for the zip: a function reading its bytes, and its POSIX permissions.
Entry = tuple[Callable[[], bytes], int]


class PackagingError(RuntimeError):
    """The packages could not be built for AgentCore Runtime; the message says what failed and what to do."""


def requirements_for(source: Path) -> Path:
    """The requirements of the code in ``source``: its own ``requirements.txt``, else the servers' runtime ones."""
    own = Path(source) / "requirements.txt"
    return own if own.is_file() else RUNTIME_REQUIREMENTS


def _shown(path: Path) -> str:
    """``path`` as people read it: relative to the repository when it is inside."""
    try:
        return str(Path(path).resolve().relative_to(config.REPO_ROOT))
    except ValueError:
        return str(path)


def pip_arguments(requirements: Path, constraints: Path | None, destination: Path) -> list[str]:
    """pip's arguments (after ``python -m pip``) for the Linux arm64 wheels of ``requirements``."""
    arguments = ["download", "--only-binary=:all:"]
    for platform in PLATFORMS:
        arguments += ["--platform", platform]
    arguments += ["--python-version", PYTHON_VERSION, "--implementation", IMPLEMENTATION,
                  "-r", str(requirements)]
    if constraints is not None:
        arguments += ["-c", str(constraints)]
    return [*arguments, "-d", str(destination), "--progress-bar", "off", "--no-input", "--disable-pip-version-check"]


def cache_key(requirements: Path, constraints: Path | None) -> str:
    """The hash of what decides the wheels: both files' contents and the target platform (not their paths)."""
    digest = hashlib.sha256()
    for part in (requirements.read_bytes(), constraints.read_bytes() if constraints else b"",
                 " ".join([*PLATFORMS, PYTHON_VERSION, IMPLEMENTATION, "only-binary"]).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:24]


def _requirement_lines(requirements: Path) -> list[str]:
    return [line for line in (raw.split(" #")[0].strip() for raw in requirements.read_text().splitlines())
            if line and not line.startswith("#")]


def explain_pip_failure(output: str, returncode: int, requirements: Path, command: list[str]) -> str:
    """What went wrong in a failed ``pip download``, and what to do about it, from pip's output."""
    missing = re.findall(r"No matching distribution found for (\S+)", output)
    if missing:
        return (f"no binary wheel of {', '.join(missing)} for Linux arm64 (platforms {', '.join(PLATFORMS)}, "
                f"CPython {PYTHON_VERSION}) on the package index. AgentCore Runtime runs on arm64 and deploy "
                f"installs binary wheels only: pin a version that publishes a manylinux aarch64 wheel in "
                f"{requirements} (and requirements.txt), or build the packages yourself and pass packages_dir")
    tail = "\n".join(output.strip().splitlines()[-15:])
    if "ResolutionImpossible" in output or "conflict" in output.lower():
        return (f"pip cannot satisfy {requirements} together with the workbench's pins ({CONSTRAINTS.name}, "
                f"used as constraints): make the two agree.\npip said:\n{tail}")
    return (f"pip download of the Linux arm64 packages failed (exit code {returncode}); check the network and "
            f"the package index pip is configured with, then deploy again, or pass packages_dir.\n"
            f"command: {' '.join(command)}\npip said:\n{tail}")


def download_wheels(requirements: Path, constraints: Path | None, destination: Path) -> None:
    """Run pip's platform download of ``requirements`` into ``destination``, showing pip's latest line meanwhile.

    Raises :class:`PackagingError` with pip's reason, said plainly, when pip fails or takes too long.
    """
    destination.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", *pip_arguments(requirements, constraints, destination)]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def progress() -> str:
            log.seek(0)
            lines = log.read().splitlines()
            collecting = [line.removeprefix("Collecting ").split(" (from")[0] for line in lines
                          if line.startswith("Collecting ")]
            return f"{len(collecting)} packages so far, now {collecting[-1][:60]}" if collecting else "starting pip"

        try:
            eventually(lambda: process.poll() is not None, timeout=DOWNLOAD_TIMEOUT, every=0.2,
                       what=f"the Linux arm64 packages of {_shown(requirements)} (pip download)", show=progress)
        except WaitTimeout:
            process.kill()
            process.wait()
            raise PackagingError(f"pip download of the Linux arm64 packages took more than {DOWNLOAD_TIMEOUT:g} s "
                                 f"and was stopped; command: {' '.join(command)}") from None
        log.seek(0)
        output = log.read()
    if process.returncode != 0:
        raise PackagingError(explain_pip_failure(output, process.returncode, requirements, command))


def wheels(requirements: Path, constraints: Path | None = None, *, download: Downloader | None = None,
           cache_dir: Path | None = None) -> Path | None:
    """The directory of Linux arm64 wheels for ``requirements``: downloaded on first use, reused after.

    ``constraints`` defaults to the repository's ``requirements.txt``; ``download`` to :func:`download_wheels`
    (tests give another); ``cache_dir`` to :data:`CACHE_DIR`. Returns None when ``requirements`` lists nothing.
    A download lands in a temporary directory renamed into place when complete, so an interrupted one is never
    taken for a cached one.
    """
    requirements = Path(requirements)
    if not requirements.is_file():
        raise PackagingError(f"requirements file {requirements} not found")
    if not _requirement_lines(requirements):
        return None
    constraints = CONSTRAINTS if constraints is None else constraints
    constraints = constraints if constraints.is_file() else None
    cache_dir = Path(cache_dir or CACHE_DIR)
    target = cache_dir / cache_key(requirements, constraints)
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".partial-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        (download or download_wheels)(requirements, constraints, partial)
        others = sorted(path.name for path in partial.iterdir() if path.suffix != ".whl") if partial.is_dir() else []
        if others:
            raise PackagingError(f"pip downloaded files that are not wheels ({', '.join(others)}): AgentCore needs "
                                 "binary wheels for Linux arm64; pin versions that publish them")
        if not partial.is_dir() or not any(partial.iterdir()):
            raise PackagingError(f"pip downloaded no wheel for {requirements}")
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():  # another deploy finished the same download first: use that one
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def wheel_entries(wheels_dir: Path, stack: ExitStack) -> dict[str, Entry]:
    """Every importable file of every wheel in ``wheels_dir``, by its path at the zip's root.

    The wheels stay open on ``stack`` until the zip is written. A wheel's ``<name>.data/purelib/`` and
    ``platlib/`` go to the root as pip installs them; its scripts, headers and data do not; bytecode never.
    Executables (native libraries) keep their execute permission, everything else is world-readable.
    """
    entries: dict[str, Entry] = {}
    for wheel in sorted(Path(wheels_dir).glob("*.whl")):
        try:
            archive = stack.enter_context(zipfile.ZipFile(wheel))
        except zipfile.BadZipFile as error:
            raise PackagingError(f"{wheel} is not a wheel ({error}): delete {wheel.parent} and deploy again") from None
        for info in archive.infolist():
            if info.is_dir():
                continue
            path = PurePosixPath(info.filename)
            if path.is_absolute() or ".." in path.parts:
                raise PackagingError(f"{wheel.name} holds a file outside its root ({info.filename}): not packaged")
            if path.parts[0].endswith(".data"):
                if len(path.parts) < 3 or path.parts[1] not in ("purelib", "platlib"):
                    continue
                path = PurePosixPath(*path.parts[2:])
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
            entries[path.as_posix()] = (lambda archive=archive, info=info: archive.read(info), mode)
    return entries
