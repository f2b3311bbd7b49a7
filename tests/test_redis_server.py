"""lab_helpers.redis_server: Debian's redis-server started like every server here, durable across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_helpers import config
from lab_helpers.redis_server import RedisServer, redis_available, start_redis

needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (apt-get install "
                                 "redis-server; CI installs it)")


@needs_redis
def test_it_binds_loopback_and_keeps_data_across_a_restart(settings: config.Settings, tmp_path: Path) -> None:
    import redis

    server = start_redis(tmp_path / "data", settings)
    try:
        assert server.redis_url == f"redis://127.0.0.1:{server.port}/0"
        assert "--bind 127.0.0.1" in " ".join(server.command())
        client = redis.Redis.from_url(server.redis_url)
        client.set("lesson", "05")
        client.close()
        server.stop()  # SIGTERM: redis writes its append-only file and exits
        server.start()
        client = redis.Redis.from_url(server.redis_url)
        assert client.get("lesson") == b"05"
        client.close()
    finally:
        server.stop()
    assert not server.is_running


def test_a_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("lab_helpers.redis_server.shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install redis-server"):
        RedisServer(tmp_path)
