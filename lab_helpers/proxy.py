"""A loopback TCP proxy whose connections can be cut on demand: a network drop you can trigger.

Notebook 01 needs a *real* dropped connection, with the server still alive, to
show that a long call held open on one connection is lost when that connection
goes (a laptop lid closing, Wi-Fi switching, a proxy timing out), and that a
resumable stream survives the same cut. The client talks to the proxy; the
proxy relays bytes to the server; :meth:`DropProxy.drop_connections` resets
every connection open at that moment (the client sees ``ECONNRESET``), while
new connections keep working.

It runs on plain threads, independent of any event loop, so it works the same
in a notebook cell, in pytest and in a benchmark. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

_BUFFER = 65536


class DropProxy:
    """Relays ``127.0.0.1:<port>`` to ``target_host:target_port`` until told to drop connections."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", host: str = "127.0.0.1") -> None:
        if not 0 < target_port < 65536:
            raise ValueError(f"target_port must be between 1 and 65535, got {target_port}")
        self.target = (target_host, target_port)
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        # open connection pairs -> how many of their two directions have finished
        self._pairs: dict[tuple[socket.socket, socket.socket], int] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.connections_accepted = 0
        self.connections_dropped = 0
        threading.Thread(target=self._accept_loop, name=f"drop-proxy-{self.port}", daemon=True).start()

    def url(self, path: str = "/mcp") -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def drop_connections(self) -> int:
        """Reset every connection open right now; return how many were cut."""
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        self.connections_dropped += len(pairs)
        return len(pairs)

    def close(self) -> None:
        """Stop accepting and drop everything still open."""
        self._closed = True
        try:
            self._listener.close()
        finally:
            self.drop_connections()

    def __enter__(self) -> DropProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- relaying ------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:  # listener closed
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)  # server down: the client sees a refused/reset connection, as it would directly
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs[pair] = 0
                self.connections_accepted += 1
            for source, sink in (pair, pair[::-1]):
                threading.Thread(target=self._pump, args=(source, sink, pair), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while data := source.recv(_BUFFER):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # orderly end in one direction: pass it on
        except OSError:
            pass
        # The other direction may still be talking (half-close): the second pump
        # to finish forgets the pair and closes both sockets.
        with self._lock:
            if pair not in self._pairs:  # dropped: drop_connections() closed them
                return
            self._pairs[pair] += 1
            last = self._pairs[pair] == 2
            if last:
                del self._pairs[pair]
        if last:
            for sock in pair:
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the peer gets a reset (ECONNRESET) as on a real network failure."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
