"""lab_helpers.asgi: the command line, and the keep-alive timer fix."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
import uvicorn
from uvicorn.server import ServerState

from lab_helpers.http_serving import _HttpProtocol, parse_args


def test_defaults_bind_loopback_on_the_runtime_port() -> None:
    args = parse_args([], resumable=True)
    assert (args.host, args.port, args.resumable) == ("127.0.0.1", 8000, False)
    assert parse_args(["--port", "9001", "--resumable"], resumable=True).resumable


def test_only_mcp_servers_take_resumable_and_a_server_adds_its_own_options() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--resumable"])  # an agent app keeps no event store
    args = parse_args(["--backend", "redis://x"], extra=lambda parser: parser.add_argument("--backend"))
    assert args.backend == "redis://x"


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_a_bad_port_is_refused(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--port", port])
    assert f"--port must be between 1 and 65535, got {port}" in capsys.readouterr().err


@pytest.mark.parametrize("error", [None, ConnectionResetError("reset by peer")])
def test_a_lost_connection_releases_its_keep_alive_timer(error: Exception | None) -> None:
    """uvicorn 0.54 keeps the timer (and the connection's objects) for 75 s after a reset; ours does not."""

    async def scenario() -> None:
        async def app(scope, receive, send) -> None:  # never called
            raise AssertionError

        config = uvicorn.Config(app, http=_HttpProtocol, timeout_keep_alive=75)
        protocol = _HttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = mock.Mock(spec=asyncio.Transport)
        transport.get_extra_info.return_value = None
        protocol.connection_made(transport)
        protocol.timeout_keep_alive_task = asyncio.get_running_loop().call_later(75, lambda: None)
        timer = protocol.timeout_keep_alive_task
        protocol.connection_lost(error)
        assert protocol.timeout_keep_alive_task is None and timer.cancelled()

    asyncio.run(scenario())
