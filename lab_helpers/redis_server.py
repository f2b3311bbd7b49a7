"""A Redis server for the lessons, started and stopped like every other server here.

Notebook 05's protocol-native tasks keep their state in a Docket backend. In memory
(``memory://``) it dies with the server process; in Redis it survives a restart of the
MCP server. :func:`start_redis` runs Debian's ``redis-server`` on 127.0.0.1 and a free
port, with an append-only file in a data directory, as a :class:`ServerProcess` (so it
is stopped with the notebook's other servers, and dies with the kernel).

Where ``redis-server`` is not installed, :func:`redis_available` says so and the lesson
falls back to the in-memory backend (``apt-get install redis-server`` adds it; CI
installs it, see the Makefile).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lab_helpers import config
from lab_helpers.processes import ServerProcess


def redis_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which("redis-server")


def redis_available() -> bool:
    return redis_binary() is not None


class RedisServer(ServerProcess):
    """``redis-server`` on ``settings.host`` and a free port, persisting to ``data_dir`` (append-only file)."""

    def __init__(self, data_dir: Path, *, settings: config.Settings | None = None, port: int | None = None) -> None:
        binary = redis_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed: apt-get install redis-server (Debian/Ubuntu)")
        super().__init__(binary, settings=settings, port=port, ready_path=None, name="redis")
        self.binary = binary  # not self.script: that is resolved, and redis-server is a link whose name matters
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
