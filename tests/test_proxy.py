"""DropProxy relays real TCP traffic and cuts it on demand."""

from __future__ import annotations

import socket
import threading

import pytest

from lab_helpers.proxy import DropProxy
from lab_helpers.waiting import eventually


@pytest.fixture
def echo_port() -> int:
    """A tiny echo server: answers every chunk with the same bytes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return

            def echo(conn: socket.socket = conn) -> None:
                with conn:
                    while data := conn.recv(1024):
                        conn.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_relays_and_forgets_closed_connections(echo_port: int) -> None:
    with DropProxy(echo_port) as proxy:
        assert proxy.url("/mcp") == f"http://127.0.0.1:{proxy.port}/mcp"
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            client.sendall(b"progress 1/3")
            assert client.recv(1024) == b"progress 1/3"
            assert proxy.open_connections == 1
        eventually(lambda: proxy.open_connections == 0, timeout=10, every=0.01, what="the closed connection forgotten")
        assert proxy.connections_accepted == 1 and proxy.connections_dropped == 0


def test_drop_resets_open_connections_and_new_ones_still_work(echo_port: int) -> None:
    with DropProxy(echo_port) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port))
        client.sendall(b"hello")
        assert client.recv(1024) == b"hello"
        assert proxy.drop_connections() == 1
        with pytest.raises(OSError):  # ECONNRESET, or EOF then a failed send
            if client.recv(1024) == b"":
                raise ConnectionResetError("stream ended")
        client.close()
        with socket.create_connection(("127.0.0.1", proxy.port)) as again:
            again.sendall(b"back")
            assert again.recv(1024) == b"back"
        assert proxy.connections_dropped == 1


def test_a_dead_target_looks_like_a_dead_server(echo_port: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    dead_port = listener.getsockname()[1]
    listener.close()
    with DropProxy(dead_port) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as client:
        with pytest.raises(OSError):
            if client.recv(1024) == b"":
                raise ConnectionResetError("closed")


def test_rejects_a_bad_target_port() -> None:
    with pytest.raises(ValueError, match="target_port must be between 1 and 65535"):
        DropProxy(0)
