"""What the tests of notebook 05's task server share: the server on either backend, and a client round with it.

Not a test module: ``tests/test_native_tasks.py``, ``test_native_tasks_input.py`` and ``test_native_tasks_push.py``
import it. Each keeps its own module-scoped fixtures (a server starts once per module and backend).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from lab_helpers import config
from lab_helpers.processes import ServerProcess
from lab_helpers.redis_server import INSTALL_HINT, redis_available, start_redis


@contextmanager
def native_tasks_server(backend: str, settings: config.Settings, redis_dir: Path) -> Iterator[ServerProcess]:
    """``servers/native_tasks.py`` on ``backend`` ("memory", or "redis": a private Redis with its data in
    ``redis_dir``); a test needing Redis is skipped, saying how to get one, where none can be started."""
    if backend == "memory":
        with ServerProcess("native_tasks.py", "--backend", "memory://", settings=settings) as process:
            yield process
        return
    if not redis_available():
        pytest.skip(f"no redis-server here ({INSTALL_HINT}): the durable backend is untested")
    redis = start_redis(redis_dir, settings)
    try:
        with ServerProcess("native_tasks.py", "--backend", redis.redis_url, settings=settings) as process:
            yield process
    finally:
        redis.stop()


def run(server: ServerProcess, body: Callable[[Client], Awaitable[Any]]) -> Any:
    """``body(client)`` on a fresh fastmcp client of ``server``, in an event loop of its own."""

    async def main() -> Any:
        async with Client(server.url) as client:
            return await body(client)

    return asyncio.run(main())
