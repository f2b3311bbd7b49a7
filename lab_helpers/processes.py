"""Start the scripts in ``servers/`` as real processes, and never leave one behind.

A lesson about restarts and crashes needs servers that can really be stopped,
killed and restarted, so each server runs as its own process on 127.0.0.1 and a
free port. :class:`ServerProcess` waits until the server answers its health
check, and when the process dies during start-up it raises with the tail of the
server's log, which is where the reason is.

Cleanup, in three layers, and only ever of processes started here:

* ``with ServerProcess(...)`` (or ``stop()``) stops the process when you are done;
* an ``atexit`` hook stops every process still running when the kernel or
  interpreter exits normally, including after a failing notebook cell;
* on Linux the child also gets ``PR_SET_PDEATHSIG``: if the kernel itself is
  killed, the kernel's servers receive SIGTERM instead of living on as orphans.

A Python script starts as a fork of a process that has already imported the servers' libraries
(:mod:`lab_helpers.zygote`): a start then costs tens of milliseconds of CPU instead of a second or two of imports.

A server's log is a file, so it is written without colours: a Jupyter kernel sets ``FORCE_COLOR`` for the
programs it runs, which would fill the log with terminal escape codes. :meth:`ServerProcess.log_lines` picks
the lines that matter out of the log, as plain text, for a notebook to show.
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from lab_helpers import config, zygote

#: Where the server scripts live.
SERVERS_DIR = config.REPO_ROOT / "servers"

#: Variables that make programs colour their output even when it is not a terminal (ipykernel sets them so
#: that tools print in colour in a notebook); a server's log is a file and must stay plain text.
FORCE_COLOUR_VARIABLES = ("FORCE_COLOR", "CLICOLOR_FORCE", "CLICOLOR", "PY_COLORS")

#: Terminal escape sequences (colours, styles, hyperlinks) that may still reach a log from a library.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

#: The line ``start`` writes to the log before each launch ("--- 12:00:00 starting: ..."); a run's lines follow it.
_START_LINE = re.compile(r"^--- \d\d:\d\d:\d\d starting: ")

_running: set[ServerProcess] = set()
_running_lock = threading.Lock()


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


#: Where :func:`free_port` looks: below Linux's ephemeral range (32768-60999), which outgoing connections draw from.
PORT_RANGE = (20000, 32767)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody uses right now, for a server about to start on it.

    A random one below the ephemeral range: a port the OS hands out for ``bind(0)`` also serves outgoing
    connections, so in the moment between this answer and the server's own bind, any client on the machine (the
    test suite opens thousands) could take it, and the server fails with "address already in use".
    """
    low, high = PORT_RANGE
    for port in random.sample(range(low, high + 1), 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # that range is crowded: let the OS pick
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: How long a server may take to answer ``/health`` before its start counts as failed. A fastmcp server imports
#: about 2.5 CPU-s of modules: seconds on an idle machine, but over 30 s was seen on 2 cores running several test
#: workers, notebook kernels and a browser at once. A server that exits fails at once, whatever this says.
READY_TIMEOUT = 90.0


class ServerProcess:
    """One server script running as a subprocess on ``host`` and a free port.

    >>> with ServerProcess("context_messaging.py") as server:
    ...     print(server.url)            # http://127.0.0.1:<port>/mcp
    """

    def __init__(
        self,
        script: str | Path,
        *args: str,
        port: int | None = None,
        settings: config.Settings | None = None,
        env: Mapping[str, str] | None = None,
        ready_path: str | None = "/health",
        mcp_path: str = "/mcp",
        ready_timeout: float = READY_TIMEOUT,
        name: str | None = None,
    ) -> None:
        path = Path(script)
        if not path.is_absolute() and not path.exists():
            path = SERVERS_DIR / path
        if not path.is_file():
            known = ", ".join(sorted(p.name for p in SERVERS_DIR.glob("*.py"))) or "none"
            raise FileNotFoundError(f"no server script {str(script)!r}; scripts in {SERVERS_DIR}: {known}")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        if ready_timeout <= 0:
            raise ValueError(f"ready_timeout must be positive, got {ready_timeout}")
        self.script = path.resolve()
        self.args = tuple(args)
        self.settings = settings or config.load()
        self.host = self.settings.host
        self.port = port or free_port(self.host)
        self.name = name or self.script.stem
        self.ready_path = ready_path
        self.mcp_path = mcp_path
        self.ready_timeout = ready_timeout
        self.extra_env = dict(env or {})
        self.log_path = self.settings.logs_dir / f"{self.name}-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | zygote.ForkedProcess | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The MCP endpoint, for ``streamable_http_client``, ``mcp.Client`` or Strands' ``MCPClient``."""
        return self.base_url + self.mcp_path

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> ServerProcess:
        """Launch the script and wait until ``GET ready_path`` answers; raise with the log tail if not."""
        if self.is_running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(command[1:])}\n".encode())
        if self._forks_from_zygote():
            self._proc = zygote.spawn(command, self.environment(), config.REPO_ROOT, self.log_path)
        else:
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.environment(),
                    cwd=config.REPO_ROOT,
                    preexec_fn=zygote.die_with_parent if sys.platform.startswith("linux") else None,
                )
        with _running_lock:
            _running.add(self)
        try:
            self._wait_until_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _forks_from_zygote(self) -> bool:
        """A Python script (not a subclass's own command) on Linux starts as a fork of the zygote: see :mod:`lab_helpers.zygote`."""
        return type(self).command is ServerProcess.command and sys.platform.startswith("linux")

    def environment(self) -> dict[str, str]:
        """The server's environment: this process's, the settings, ``env``; unbuffered and without colours."""
        inherited = {key: value for key, value in os.environ.items() if key not in FORCE_COLOUR_VARIABLES}
        return {**inherited, **self.settings.as_env(), "NO_COLOR": "1", **self.extra_env, "PYTHONUNBUFFERED": "1"}

    def command(self) -> list[str]:
        """The command line that starts the server (a subclass may run something other than a Python script)."""
        return [sys.executable, str(self.script), "--host", self.host, "--port", str(self.port), *self.args]

    def _answers(self) -> bool:
        """Is the server up: its port accepts connections and ``GET ready_path`` (if any) answers below 500.

        Asked every 50 ms while a server starts, so it is the cheapest check there is: a plain socket first, then
        the standard library's HTTP client. ``httpx.get`` built a TLS context (the CA bundle parsed) on every call:
        about half a core for each starting server, taken from the servers it waited for.
        """
        try:
            socket.create_connection((self.host, self.port), timeout=1.0).close()
        except OSError:
            return False
        if self.ready_path is None:
            return True
        connection = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
        try:
            connection.request("GET", self.ready_path)
            return connection.getresponse().status < 500
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._proc.poll() if self._proc else None
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} before answering on port {self.port}.\n"
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.name} did not answer {self.base_url}{self.ready_path or ''} within {self.ready_timeout:g} s.\n"
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Ask the server to shut down (SIGTERM); SIGKILL it if it has not exited within ``timeout``."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL the server: a crash, with no chance to clean up or save anything."""
        return self._end(signal.SIGKILL, 5.0)

    def restart(self) -> ServerProcess:
        """Stop the server if it runs, then start the same script again on the same port and URL."""
        self.stop()
        return self.start()

    def _end(self, sig: signal.Signals, timeout: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with _running_lock:
            _running.discard(self)
        return proc.returncode

    # -- logs --------------------------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self, pattern: str, *, all_runs: bool = False) -> list[str]:
        """The log lines matching the regular expression ``pattern``, as plain text (escape codes removed).

        Only the lines of the latest start (the log of a restarted server keeps its earlier runs above),
        unless ``all_runs``. For a notebook that shows the one line a lesson is about.
        """
        lines = self.log_text().splitlines()
        if not all_runs:
            starts = [index for index, line in enumerate(lines) if _START_LINE.match(line)]
            lines = lines[starts[-1] + 1:] if starts else lines
        plain = (_ESCAPES.sub("", line).rstrip() for line in lines)
        return [line for line in plain if re.search(pattern, line)]

    # -- context manager and display -----------------------------------------------------------
    def __enter__(self) -> ServerProcess:
        return self if self.is_running else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running, pid {self.pid}" if self.is_running else f"stopped, exit code {self.returncode}"
        return f"<ServerProcess {self.name} {self.url} ({state})>"


def running() -> list[ServerProcess]:
    """The servers started by this process that are still running."""
    with _running_lock:
        return [server for server in _running if server.is_running]


def stop_all() -> None:
    """Stop every server this process started (the last cell of every notebook calls it)."""
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop()


atexit.register(stop_all)


def start(script: str | Path, *args: str, **kwargs: object) -> ServerProcess:
    """Shorthand for ``ServerProcess(script, *args, **kwargs).start()``."""
    return ServerProcess(script, *args, **kwargs).start()  # type: ignore[arg-type]


__all__: Sequence[str] = ["ServerProcess", "ServerStartError", "free_port", "running", "start", "stop_all"]
