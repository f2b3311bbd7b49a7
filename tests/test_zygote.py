"""The zygote runs a script as ``python script.py args`` would, and never lets a child outlive its owner."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from lab_helpers import zygote
from lab_helpers.waiting import eventually

SCRIPT = textwrap.dedent("""
    import atexit, json, os, sys, time
    atexit.register(lambda: print("atexit ran", flush=True))
    print(json.dumps({"name": __name__, "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
                      "flavour": os.environ.get("FLAVOUR"), "home": os.environ.get("HOME")}), flush=True)
    mode = sys.argv[1]
    if mode == "raise":
        raise ValueError("a bad start")
    if mode == "sleep":
        time.sleep(600)
    sys.exit(int(mode))
""")


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    path = tmp_path / "scripts" / "tiny_server.py"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return path


def run(script: Path, mode: str, log: Path) -> zygote.ForkedProcess:
    return zygote.spawn([sys.executable, str(script), mode], {"FLAVOUR": "lemon"}, script.parent.parent, log)


def test_a_child_runs_the_script_as_main_with_its_own_arguments_environment_and_directory(script: Path, tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = run(script, "3", log)
    assert child.wait(60) == 3
    first, *rest = log.read_text().splitlines()
    assert json.loads(first) == {"name": "__main__", "argv": [str(script), "3"], "cwd": str(tmp_path),
                                 "path0": str(script.parent), "flavour": "lemon", "home": None}
    assert rest == ["atexit ran"], "the script's exit handlers run, as at a normal interpreter exit"


def test_an_exception_is_logged_and_exits_1_and_signals_give_negative_codes_as_from_python(script: Path, tmp_path: Path) -> None:
    failing = run(script, "raise", tmp_path / "raise.log")
    assert failing.wait(60) == 1
    assert "ValueError: a bad start" in (tmp_path / "raise.log").read_text()
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
        log = tmp_path / f"sleep-{sig.name}.log"
        sleeper = run(script, "sleep", log)
        eventually(lambda: log.exists() and log.read_text(), timeout=60, what="the script to start")
        assert sleeper.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            sleeper.wait(0.01)
        sleeper.send_signal(sig)
        assert sleeper.wait(60) == -sig
        assert not psutil.pid_exists(sleeper.pid) or psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE


def test_children_end_with_their_owner_even_when_it_is_killed(script: Path, tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from lab_helpers import zygote
            child = zygote.spawn([sys.executable, {str(script)!r}, "sleep"], {{}}, {str(tmp_path)!r}, {str(tmp_path / "orphan.log")!r})
            print(child.pid, flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(owner.stdout.readline()))
        assert child.is_running()
        owner.kill()  # no atexit hook runs: only the parent-death signals can clean up
        eventually(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=60,
                   what="the orphaned child to end")
    finally:
        owner.kill()
        owner.wait()
