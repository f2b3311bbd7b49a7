"""Benchmark: AgentCore Runtime in the local emulator: session cold start, and what the emulator adds to a call.

Starts a private emulator (``lab_helpers.agentcore.use_agentcore`` on a free port, a temporary database, time scale
0.02) on 127.0.0.1, deploys ``servers/runtime_agent.py`` with ``lab_helpers.deploy.deploy`` (idle timeout 3600
seconds at time scale 1 = 72 s, so no session ends during the run) and calls it with ``{"action": "status"}``, which the
agent answers at once. It prints:

* **cold start**: the time of the first ``lab_helpers.deploy.invoke`` for a new ``runtimeSessionId`` (the emulator
  starts a new process for it and waits for its ``/ping``), over N sessions, next to the second call on the same
  session (warm) and to starting the same script directly with ``ServerProcess(..., ready_path="/ping")`` (the
  floor: a Python process importing the SDK, no emulator), the two alternating. The emulator's own view (its
  ``starting`` transition to the session's first ping) is printed too. Every session is then stopped with
  StopRuntimeSession (timed), so processes do not pile up; both start-ups poll readiness every 50 ms, so they are
  that coarse;
* **warm invocations** on one live session, the four ways interleaved in one loop (so drift on a shared machine
  hits all alike), each after a few warm-up calls:

  - ``direct``: httpx (one keep-alive client) POST to the session process's ``/invocations`` with the session
    header, the port found from the pid the emulator reports in ``GET /local/runtime-sessions`` (the agent's answer
    carries its pid, checked against it): the floor;
  - ``emulator, httpx``: the same POST to the emulator's InvokeAgentRuntime path, unsigned (the emulator does not
    check signatures): the emulator's proxy hop alone;
  - ``emulator, boto3``: ``invoke_agent_runtime`` on one reused boto3 client: what an application pays;
  - ``deploy.invoke``: ``lab_helpers.deploy.invoke``, which builds a new boto3 client on every call (one
    attempt, no retries, custom headers hook), as the notebooks call it;

  with p50/p90/p99 in ms and the ratios to ``direct``.

Note: the emulator pings every session every 2 s at time scale 1, but at most 5 times a second (0.2 s at CI's time
scale 0.02); that background load is the same for every way of calling it.

Figures only; nothing here passes or fails. Every process started (emulator, session processes, the direct
baseline) is stopped at the end, also on error, and checked gone.
Usage: python bench/runtime.py [--quick] [--sessions N] [--calls M]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import psutil
from botocore.config import Config

from lab_helpers import agentcore, config, deploy, processes
from lab_helpers.emulator.api import LOCAL_AUTHORIZATION
from lab_helpers.processes import ServerProcess

REPO = Path(__file__).resolve().parent.parent
AGENT = "runtime_agent.py"
RUNTIME_NAME = "bench_agent"
TIME_SCALE = 0.02
IDLE_TIMEOUT = 3600  # seconds at time scale 1: 72 s at 0.02, longer than any idle stretch here
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
PAYLOAD = {"action": "status"}
WARM_UP = 10
DEFAULTS = {"sessions": 5, "calls": 200}
QUICK = {"sessions": 2, "calls": 50}


def _rank(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted samples."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered), "p90": _rank(ordered, 0.90), "p99": _rank(ordered, 0.99),
            "min": ordered[0], "max": ordered[-1]}


def _row(label: str, samples: list[float], extra: str = "") -> None:
    s = _stats(samples)
    print(f"  {label:<34}{s['p50'] * 1e3:9.2f}{s['p90'] * 1e3:9.2f}{s['p99'] * 1e3:9.2f}"
          f"{s['min'] * 1e3:9.2f}{s['max'] * 1e3:9.2f}   {extra}")


def _header(first: str) -> None:
    print(f"  {first:<34}{'p50':>9}{'p90':>9}{'p99':>9}{'min':>9}{'max':>9}   (ms)")


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    answer = call()
    return time.perf_counter() - began, answer


def _check(answer: Any, session_id: str, how: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or answer.get("session_id") != session_id or "pid" not in answer:
        raise RuntimeError(f"{how}: unexpected answer for session {session_id}: {answer!r}")
    return answer


def _listening_port(pid: int) -> int:
    """The TCP port the process ``pid`` listens on (the session process's uvicorn)."""
    ports = {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    if len(ports) != 1:
        raise RuntimeError(f"expected one listening port for pid {pid}, found {sorted(ports)}")
    return ports.pop()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sessions(endpoint: str) -> dict[str, Any]:
    return httpx.get(endpoint + "/local/runtime-sessions", timeout=10).json()


def cold_starts(arn: str, endpoint: str, settings: config.Settings, count: int, data_client: Any,
                seen_pids: set[int]) -> None:
    first, second, stops, emulator_view, direct = [], [], [], [], []
    for _ in range(count):  # an emulator session, then the floor: alternating, so load drift hits both alike
        session_id = deploy.new_session_id()
        elapsed, answer = _timed(lambda: deploy.invoke(arn, PAYLOAD, session_id, settings=settings))
        pid = _check(answer, session_id, "cold invoke")["pid"]
        seen_pids.add(pid)
        first.append(elapsed)
        elapsed, answer = _timed(lambda: deploy.invoke(arn, PAYLOAD, session_id, settings=settings))
        if _check(answer, session_id, "second invoke")["pid"] != pid:
            raise RuntimeError(f"session {session_id} answered from another process the second time")
        second.append(elapsed)
        elapsed, _ = _timed(lambda: data_client.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_id))
        stops.append(elapsed)
        if _alive(pid):
            raise RuntimeError(f"session process {pid} still runs after StopRuntimeSession")
        # The emulator's view: its "starting" transition to the session's first ping answer.
        marks = [t for t in _sessions(endpoint)["transitions"] if t["sessionId"] == session_id]
        started = next(t["at"] for t in marks if t["state"] == "starting")
        pinged = next((t["at"] for t in marks if t["state"] not in ("starting", "ended")), None)
        if pinged is not None:
            emulator_view.append(pinged - started)
        # The floor: the same script started directly, no emulator in between.
        process = ServerProcess(AGENT, settings=settings, ready_path="/ping", name="bench-direct-cold")
        try:
            elapsed, _ = _timed(process.start)
            seen_pids.add(process.pid)
        finally:
            process.stop()
        direct.append(elapsed)
    left = _sessions(endpoint)["sessions"]
    if left:
        raise RuntimeError(f"sessions still live after StopRuntimeSession: {left}")

    print(f"\ncold start of a runtime session ({count} sessions, each then stopped)")
    _header("")
    _row("first invoke, new session", first, "deploy.invoke, emulator starts the process")
    _row("  emulator: start to first ping", emulator_view, "inside the emulator")
    _row("second invoke, same session", second, "deploy.invoke, warm")
    _row("ServerProcess start, direct", direct, "same script, no emulator: the floor")
    _row("StopRuntimeSession", stops, "boto3, waits for the process to exit")
    cold, floor = statistics.median(first), statistics.median(direct)
    print(f"  cold / direct start (p50)          {cold / floor:9.2f} x   "
          f"(cold - warm p50: {(cold - statistics.median(second)) * 1e3:.0f} ms of process start-up)")


def warm_calls(arn: str, endpoint: str, settings: config.Settings, calls: int, data_client: Any,
               seen_pids: set[int]) -> None:
    session_id = deploy.new_session_id()
    pid = _check(deploy.invoke(arn, PAYLOAD, session_id, settings=settings), session_id, "first invoke")["pid"]
    seen_pids.add(pid)
    live = [s for s in _sessions(endpoint)["sessions"] if s["sessionId"] == session_id]
    if not live or live[0]["pid"] != pid:
        raise RuntimeError(f"emulator reports {live} for session {session_id}, the agent says pid {pid}")
    port = _listening_port(pid)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               SESSION_HEADER: session_id}
    body = b'{"action": "status"}'
    invoke_url = f"{endpoint}/runtimes/{quote(arn, safe='')}/invocations?qualifier=DEFAULT"

    with httpx.Client(timeout=30) as http:
        def direct() -> Any:
            reply = http.post(f"http://{settings.host}:{port}/invocations", content=body, headers=headers)
            reply.raise_for_status()
            return reply.json()

        def via_httpx() -> Any:  # unsigned: the emulator takes any SigV4-shaped or Bearer Authorization header
            reply = http.post(invoke_url, content=body, headers={**headers, "Authorization": LOCAL_AUTHORIZATION})
            reply.raise_for_status()
            return reply.json()

        def via_boto3() -> Any:
            reply = data_client.invoke_agent_runtime(
                agentRuntimeArn=arn, runtimeSessionId=session_id, payload=body, qualifier="DEFAULT",
                contentType="application/json", accept="application/json, text/event-stream")
            return json.loads(reply["response"].read())

        def via_helper() -> Any:
            return deploy.invoke(arn, PAYLOAD, session_id, settings=settings)

        ways: dict[str, Callable[[], Any]] = {
            "direct (httpx -> agent)": direct,
            "emulator, httpx (unsigned)": via_httpx,
            "emulator, boto3 (reused client)": via_boto3,
            "deploy.invoke (new client/call)": via_helper,
        }
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for name, call in ways.items():
            for _ in range(WARM_UP):
                if _check(call(), session_id, name)["pid"] != pid:
                    raise RuntimeError(f"{name} reached another process than pid {pid}")
        order = list(ways)
        began = time.perf_counter()
        for number in range(calls):
            shift = number % len(order)  # rotate, so no way always goes first
            for name in order[shift:] + order[:shift]:
                elapsed, answer = _timed(ways[name])
                if answer.get("pid") != pid:
                    raise RuntimeError(f"{name} answered from pid {answer.get('pid')}, not {pid}")
                samples[name].append(elapsed)
        seconds = time.perf_counter() - began
    report = [s for s in _sessions(endpoint)["sessions"] if s["sessionId"] == session_id][0]
    data_client.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_id)

    print(f"\nwarm invocation, one live session (pid {pid}, port {port}), {calls} calls per way, interleaved "
          f"({seconds:.1f} s)")
    _header("")
    floor = _stats(samples["direct (httpx -> agent)"])
    for name, values in samples.items():
        s = _stats(values)
        ratio = "" if name.startswith("direct") else (f"x{s['p50'] / floor['p50']:5.2f} p50  "
                                                       f"x{s['p99'] / floor['p99']:5.2f} p99 vs direct")
        _row(name, values, ratio)
    emu, boto, helper = (_stats(samples[n]) for n in list(ways)[1:])
    print(f"  emulator hop alone (httpx p50 - direct p50)   {(emu['p50'] - floor['p50']) * 1e3:7.2f} ms")
    print(f"  boto3 on top of it (boto3 p50 - httpx p50)    {(boto['p50'] - emu['p50']) * 1e3:7.2f} ms")
    print(f"  a new client per call (helper - boto3 p50)    {(helper['p50'] - boto['p50']) * 1e3:7.2f} ms")
    print(f"  emulator counted {report['invocations']} invocations on the session "
          f"(ping {report['ping']}; direct calls bypass it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller run: {QUICK['sessions']} sessions, {QUICK['calls']} calls per way")
    parser.add_argument("--sessions", type=int, help=f"cold-started sessions (1-20; default {DEFAULTS['sessions']})")
    parser.add_argument("--calls", type=int, help=f"warm calls per way (10-2000; default {DEFAULTS['calls']})")
    args = parser.parse_args()
    base = QUICK if args.quick else DEFAULTS
    sessions = args.sessions if args.sessions is not None else base["sessions"]
    calls = args.calls if args.calls is not None else base["calls"]
    if not 1 <= sessions <= 20:
        parser.error(f"--sessions must be between 1 and 20, got {sessions}")
    if not 10 <= calls <= 2000:
        parser.error(f"--calls must be between 10 and 2000, got {calls}")

    began = time.perf_counter()
    seen_pids: set[int] = set()
    with TemporaryDirectory(prefix="bench-runtime-") as scratch:
        tmp = Path(scratch)
        settings = config.load(mode="local", time_scale=TIME_SCALE, state_dir=tmp / "state", logs_dir=tmp / "logs",
                               artifacts_dir=tmp / "artifacts", emulator_port=processes.free_port(),
                               emulator_db=tmp / "memory.db")
        try:
            target = agentcore.use_agentcore(settings)
            if target.process is None:
                raise RuntimeError(f"expected a private emulator on port {settings.emulator_port}, found one running")
            seen_pids.add(target.process.pid)
            endpoint = str(target.endpoint)
            try:
                deployment = deploy.deploy(RUNTIME_NAME, REPO / "servers", AGENT, settings=settings,
                                            idle_timeout=IDLE_TIMEOUT)
                data_client = boto3.client("bedrock-agentcore", region_name=settings.region,
                                           config=Config(read_timeout=60, retries={"total_max_attempts": 1}))
                print(f"bench/runtime.py: emulator {endpoint} (time scale {TIME_SCALE}), runtime "
                      f"{deployment.runtime_id} running servers/{AGENT}, payload {PAYLOAD}; "
                      f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
                      f"{os.getloadavg()[0]:.2f}")
                cold_starts(deployment.arn, endpoint, settings, sessions, data_client, seen_pids)
                warm_calls(deployment.arn, endpoint, settings, calls, data_client, seen_pids)
            finally:
                deploy.destroy(settings)
        finally:
            processes.stop_all()
    left = sorted(pid for pid in seen_pids if _alive(pid))
    if left:
        raise SystemExit(f"processes still running after the benchmark: {left}")
    print(f"\nevery process stopped ({len(seen_pids)} started: emulator, sessions, direct baselines); "
          f"run took {time.perf_counter() - began:.1f} s, load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
