"""lab_helpers.processes: real processes, started, stopped, killed, restarted, never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from conftest import LOCAL_HTTP
from lab_helpers import config, processes
from lab_helpers.processes import ServerProcess, ServerStartError
from lab_helpers.waiting import eventually

TINY_SERVER = textwrap.dedent(
    """
    from lab_helpers import config
    from lab_helpers.asgi import LabMCPServer, serve
    server = LabMCPServer("tiny", config.load())

    @server.tool()
    def hello(name: str) -> str:
        '''Say hello.'''
        return f"hello {name}"

    serve(server)
    """
)


@pytest.fixture
def tiny_script(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_server.py"
    path.write_text(TINY_SERVER)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists" until reaped; read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    return eventually(lambda: not _pid_alive(pid), timeout, what=f"process {pid} to end")


def test_starts_on_loopback_and_a_free_port_and_answers(tiny_script: Path, settings: config.Settings) -> None:
    with ServerProcess(tiny_script, settings=settings) as server:
        assert server.is_running
        assert server.url == f"http://127.0.0.1:{server.port}/mcp"
        health = LOCAL_HTTP.get(server.base_url + "/health").json()
        assert (health["status"], health["server"], health["pid"]) == ("ok", "tiny", server.pid)
        assert server in processes.running()
        assert "starting" in server.log_text()
    assert not server.is_running
    assert server not in processes.running()


def test_stop_kill_and_restart(tiny_script: Path, settings: config.Settings) -> None:
    server = processes.start(tiny_script, settings=settings)
    try:
        first_pid, port = server.pid, server.port
        assert server.kill() == -signal.SIGKILL
        assert not server.is_running and _wait_dead(first_pid)
        with pytest.raises(httpx.ConnectError):
            LOCAL_HTTP.get(server.base_url + "/health")
        server.restart()
        assert server.is_running and server.port == port and server.pid != first_pid
        assert LOCAL_HTTP.get(server.base_url + "/health").status_code == 200
        # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal it caught
        assert server.stop() in (0, -signal.SIGTERM)
        assert server.stop() in (0, -signal.SIGTERM)  # stopping twice is harmless and signals nothing
    finally:
        server.kill()


def test_the_log_is_plain_text_and_log_lines_picks_this_runs_lines(
    tiny_script: Path, settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Jupyter kernel forces colour on the programs it starts; the server's rich log handler must not obey.
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("CLICOLOR_FORCE", "1")
    with ServerProcess(tiny_script, settings=settings) as server:
        assert "FORCE_COLOR" not in server.environment() and server.environment()["NO_COLOR"] == "1"
        serving = eventually(lambda: server.log_lines("tiny serving on"), 10, what="the 'serving on' log line")
        assert "\x1b" not in server.log_text()
        server.restart()
        eventually(lambda: server.log_lines("tiny serving on"), 10, what="the line of the second run")
        assert len(server.log_lines("tiny serving on", all_runs=True)) == 2
        assert len(server.log_lines("tiny serving on")) == 1 and server.log_lines("no such line") == []
    assert "\x1b" not in serving[0]
    with open(server.log_path, "a") as log:  # a library that writes escape codes anyway: they are stripped
        log.write("\x1b[33mWARNING\x1b[0m \x1b]8;id=1;file:///x.py\x1b\\x.py\x1b]8;;\x1b\\ coloured line\n")
    assert server.log_lines("coloured line") == ["WARNING x.py coloured line"]


def test_a_server_that_crashes_at_start_reports_its_log(tmp_path: Path, settings: config.Settings) -> None:
    script = tmp_path / "broken.py"
    script.write_text("print('loading the model...')\nraise SystemExit('config file missing: model.yaml')\n")
    with pytest.raises(ServerStartError) as raised:
        ServerProcess(script, settings=settings).start()
    message = str(raised.value)
    assert "broken exited with code 1" in message
    assert "loading the model..." in message and "config file missing: model.yaml" in message


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path: Path, settings: config.Settings) -> None:
    script = tmp_path / "silent.py"
    script.write_text("import time\nprint('thinking', flush=True)\ntime.sleep(60)\n")
    server = ServerProcess(script, settings=settings, ready_timeout=1.0)
    with pytest.raises(ServerStartError, match=r"did not answer .*/health within 1 s"):
        server.start()
    assert not server.is_running
    assert _wait_dead(server.pid)


def test_bad_arguments_get_clear_errors(settings: config.Settings) -> None:
    with pytest.raises(FileNotFoundError, match=r"no server script 'nope\.py'; scripts in .*context_messaging\.py"):
        ServerProcess("nope.py", settings=settings)
    with pytest.raises(ValueError, match="port must be between 1 and 65535"):
        ServerProcess("context_messaging.py", port=70000, settings=settings)
    with pytest.raises(ValueError, match="ready_timeout must be positive"):
        ServerProcess("context_messaging.py", ready_timeout=0, settings=settings)


def test_starting_twice_is_refused(tiny_script: Path, settings: config.Settings) -> None:
    with ServerProcess(tiny_script, settings=settings) as server:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()


def _spawn_parent(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )


PARENT = textwrap.dedent(
    """
    import sys, time
    from lab_helpers import config
    from lab_helpers.processes import ServerProcess
    settings = config.load(logs_dir={logs!r})
    server = ServerProcess({script!r}, settings=settings).start()
    print(server.pid, flush=True)
    {then}
    """
)


@pytest.mark.parametrize(
    "then",
    [
        "raise RuntimeError('a failing cell')",  # interpreter exits on an error: atexit stops the server
        "time.sleep(60)",  # the parent is SIGKILLed below: the child's death signal stops the server
    ],
)
def test_no_orphans_when_the_parent_fails_or_is_killed(tiny_script: Path, tmp_path: Path, then: str) -> None:
    parent = _spawn_parent(PARENT.format(logs=str(tmp_path / "logs"), script=str(tiny_script), then=then), tmp_path)
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        assert line.strip().isdigit(), parent.stderr.read()  # type: ignore[union-attr]
        child = int(line)
        if "sleep" in then:
            parent.kill()
        parent.wait(10)
        assert _wait_dead(child), f"server pid {child} outlived its parent"
    finally:
        parent.kill()
