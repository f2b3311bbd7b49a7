"""Benchmark: what one server start costs, forked from the zygote and as a fresh interpreter.

The test suite and the emulator (one process per Runtime session) start hundreds of server processes, and a
fresh interpreter spends most of a start importing fastmcp, Strands, boto3 and NumPy. ``ServerProcess`` forks
Python scripts from :mod:`lab_helpers.zygote` instead. This script starts each server in ``--servers`` ``--starts``
times both ways, one at a time, and prints the median wall time until it answers its health check and the median
CPU seconds the server process used by then, with the ratio. The zygote's own import (paid once per process that
starts servers) is printed too, so the break-even number of starts can be read off.

The floor is the fresh interpreter, measured in the same run on the same machine, alternating with the zygote
starts so that load from elsewhere falls on both alike. Target: a forked start costs at most a fifth of a fresh
one's CPU. Usage: python bench/server_starts.py [--servers context_messaging.py,native_tasks.py,...] [--starts N]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import psutil

from lab_helpers import config, zygote
from lab_helpers.processes import ServerProcess

#: Servers of different weight: plain MCP, fastmcp with the tasks extension, a Strands agent app.
DEFAULT_SERVERS = ("context_messaging.py", "native_tasks.py", "agent_app.py")
#: The target: a forked start's CPU as a share of a fresh interpreter's.
TARGET_SHARE = 0.2


class FreshServer(ServerProcess):
    """A server started as a fresh ``python script.py`` (the floor), not forked from the zygote."""

    def _forks_from_zygote(self) -> bool:
        return False


def measure(kind: type[ServerProcess], script: str, settings: config.Settings) -> tuple[float, float]:
    """Start ``script`` once; (wall seconds until it answers, CPU seconds it used by then)."""
    server = kind(script, settings=settings, ready_path="/ping" if script == "agent_app.py" else "/health")
    began = time.perf_counter()
    server.start()
    wall = time.perf_counter() - began
    times = psutil.Process(server.pid).cpu_times()
    server.stop()
    return wall, times.user + times.system


def zygote_import_cpu() -> float:
    """The CPU seconds a zygote spends importing :data:`lab_helpers.zygote.PRELOAD`, in a process of its own."""
    code = (f"import time\nfor name in {zygote.PRELOAD!r}:\n    try: __import__(name)\n    except Exception: pass\n"
            "print(time.process_time())")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="comma-separated scripts in servers/")
    parser.add_argument("--starts", type=int, default=5, help="starts of each server, each way (median taken)")
    args = parser.parse_args()
    with TemporaryDirectory(prefix="bench-starts-") as state:
        settings = dataclasses.replace(config.load(), state_dir=Path(state))
        print(f"{'server':<22} {'fresh wall':>10} {'forked wall':>11} {'fresh CPU':>10} {'forked CPU':>10} {'CPU share':>9}")
        worst = 0.0
        for script in args.servers.split(","):
            figures: dict[str, list[tuple[float, float]]] = {"fresh": [], "forked": []}
            for _ in range(args.starts):
                figures["fresh"].append(measure(FreshServer, script, settings))
                figures["forked"].append(measure(ServerProcess, script, settings))
            (fresh_wall, forked_wall), (fresh_cpu, forked_cpu) = (
                [statistics.median(f[i] for f in figures[k]) for k in ("fresh", "forked")] for i in (0, 1))
            share = forked_cpu / fresh_cpu if fresh_cpu else float("nan")
            worst = max(worst, share)
            print(f"{script:<22} {fresh_wall:>9.2f}s {forked_wall:>10.2f}s {fresh_cpu:>9.2f}s {forked_cpu:>9.2f}s "
                  f"{share:>8.0%}")
        print(f"the zygote's imports, once per process that starts servers: {zygote_import_cpu():.2f} CPU-s")
        print(f"target: a forked start uses at most {TARGET_SHARE:.0%} of a fresh start's CPU: "
              f"{'met' if worst <= TARGET_SHARE else 'NOT met'} (worst {worst:.0%})")


if __name__ == "__main__":
    main()
