"""Start server scripts by forking a process that has already imported their libraries.

Why: a server script spends most of its start importing (a fastmcp server about 1.5 CPU-s, a Strands agent about
1 s), and the workbench starts hundreds of them: the test suite, and the emulator, which starts one process per
Runtime session, as AWS starts one microVM. A *zygote* imports those libraries once; each start is then a
``fork()`` of it (tens of milliseconds), which runs the script as ``python script.py ...`` would: its own
``__main__``, arguments, environment, working directory and log file. What stays the same is what a test or
lesson sees: a real process, with its own pid, that can be stopped, killed with SIGKILL and restarted.

:class:`Zygote` is the owner's side (one per process that starts servers, started on first use); run as a script
(``python lab_helpers/zygote.py FD``) this file is the zygote itself. It imports nothing of ``lab_helpers``, so a
server imports the workbench's own modules afresh, reading its own environment. Messages are lines of JSON on a
socket pair: the owner sends ``{"id", "argv", "env", "cwd", "log"}``; the zygote answers ``{"id", "pid"}`` (or
``{"id", "error"}``) and, when a child ends, ``{"exited": pid, "code": c}`` (``-N`` for signal N, as
``subprocess.Popen.returncode`` says it). A child gets SIGTERM if the zygote dies, and the zygote if its owner
dies, so nothing outlives the owner.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

#: What the zygote imports before its first fork: the libraries of the scripts in ``servers/`` that are slow to
#: import. A name that fails to import is skipped (the child imports it itself, as a plain start would).
PRELOAD = (
    "numpy", "psutil", "httpx", "starlette.applications", "uvicorn", "boto3", "botocore.session",
    "mcp.server.mcpserver", "mcp.client.streamable_http", "fastmcp", "fastmcp_tasks", "docket", "redis",
    "strands", "strands.tools.mcp", "bedrock_agentcore", "bedrock_agentcore.memory",
    "bedrock_agentcore.memory.integrations.strands.session_manager",
)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (a no-op where prctl is missing)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ForkedProcess:
    """A process the zygote forked: the part of ``subprocess.Popen`` that :class:`~lab_helpers.processes.ServerProcess` uses."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self._zygote = zygote
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self._zygote.exit_code(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._zygote.wait_for_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # it ended a moment ago; its exit notice is on its way
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The owner's side: start the zygote on first use, ask it for children, learn how they ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = threading.Condition()
        self._exits: dict[int, int] = {}
        self._replies: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._pids: set[int] = set()
        self._socket: socket.socket | None = None
        self._alive = False

    def _ensure_running(self) -> socket.socket:
        if self._socket is not None and self._alive:
            return self._socket
        started = threading.Event()
        # The zygote is started and watched by a thread of its own, which lives as long as it: Linux sends the
        # parent-death signal when the *thread* that forked a child ends, and the caller's thread may be short-lived.
        threading.Thread(target=self._run, args=(started,), name="zygote", daemon=True).start()
        started.wait()
        if self._socket is None:
            raise OSError("could not start the zygote")
        return self._socket

    def _run(self, started: threading.Event) -> None:
        """Start the zygote, then collect its answers and exit notices until it ends."""
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(theirs.fileno())], pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError:
            ours.close()
            started.set()
            return
        finally:
            theirs.close()
        self._socket, self._alive = ours, True
        started.set()
        with ours.makefile("rb") as lines:
            for line in lines:
                message = json.loads(line)
                with self._ended:
                    if "exited" in message:
                        self._exits[message["exited"]] = message["code"]
                    else:
                        self._replies[message["id"]] = message
                    self._ended.notify_all()
        process.wait()
        with self._ended:  # its children got SIGTERM as it ended (see die_with_parent in _run_child)
            self._alive = False
            for pid in self._pids:
                self._exits.setdefault(pid, -signal.SIGTERM)
            self._replies[-1] = {"error": f"the zygote ended (exit code {process.returncode})"}
            self._ended.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | Path, log: str | Path) -> ForkedProcess:
        """Run ``argv`` (``[python, script, *args]``) as a fork of the zygote, its output appended to ``log``."""
        with self._lock:
            sock = self._ensure_running()
            self._next_id += 1
            request_id = self._next_id
            request = {"id": request_id, "argv": list(argv), "env": env, "cwd": str(cwd), "log": str(log)}
            sock.sendall(json.dumps(request).encode() + b"\n")
        with self._ended:
            self._ended.wait_for(lambda: request_id in self._replies or -1 in self._replies, timeout=120)
            reply = self._replies.pop(request_id, None) or self._replies.get(-1) or {"error": "no answer in 120 s"}
        if "pid" not in reply:
            raise OSError(f"could not start {argv[1]}: {reply['error']}")
        with self._ended:
            self._pids.add(reply["pid"])
        return ForkedProcess(self, reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        with self._ended:
            return self._exits.get(pid)

    def wait_for_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._ended:
            self._ended.wait_for(lambda: pid in self._exits, timeout=timeout)
            return self._exits.get(pid)


_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def spawn(argv: list[str], env: dict[str, str], cwd: str | Path, log: str | Path) -> ForkedProcess:
    """Start ``argv`` from this process's zygote (started on first use; see the module's docstring)."""
    global _zygote
    with _zygote_lock:
        if _zygote is None:
            _zygote = Zygote()
    return _zygote.spawn(argv, env, cwd, log)


# -- the zygote itself ------------------------------------------------------------------------------------------
def _run_child(request: dict[str, Any], owner: socket.socket, wakeup: tuple[int, int]) -> None:
    """In the forked child: become ``python script args...`` and never return."""
    code = 1
    try:
        die_with_parent()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, as in a fresh interpreter
        owner.close()
        for fd in wakeup:
            os.close(fd)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        script, *args = request["argv"][1:]
        sys.argv = [script, *args]
        sys.path[0] = str(Path(script).resolve().parent)
        import runpy

        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as leaving:
            code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
            if not isinstance(leaving.code, (int, type(None))):
                print(leaving.code, file=sys.stderr)
        except BaseException as error:  # noqa: BLE001 - report it as the interpreter would
            import traceback

            traceback.print_exc()
            code = 1
            if isinstance(error, KeyboardInterrupt):  # Python ends by SIGINT then, and its parent sees -2
                sys.stderr.flush()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
        import atexit

        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _serve(fd: int) -> None:
    """The zygote's loop: fork a child per request, tell the owner each child's pid and, later, its exit code."""
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - the child will import it (and report the error) itself
            pass
    owner = socket.socket(fileno=fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wakeup pipe
    # Ctrl-C, or Jupyter stopping a kernel, signals the whole process group: the children take it as they would
    # have taken it without a zygote; the zygote itself ends when its owner does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    buffer = b""

    def send(message: dict[str, Any]) -> None:
        owner.sendall(json.dumps(message).encode() + b"\n")

    while True:
        readable, _, _ = select.select([owner, wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
        while True:  # reap every child that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            send({"exited": pid, "code": os.waitstatus_to_exitcode(status)})
        if owner in readable:
            data = owner.recv(65536)
            if not data:
                return  # the owner is gone: the children get SIGTERM as this process ends
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                try:
                    pid = os.fork()
                except OSError as error:
                    send({"id": request["id"], "error": str(error)})
                    continue
                if pid == 0:
                    _run_child(request, owner, (wake_read, wake_write))
                send({"id": request["id"], "pid": pid})


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
