"""Benchmark: notebook 07's investigations, N at once, each the whole flow through the local emulator's Runtime.

Starts a private emulator (``lab_helpers.agentcore.use_agentcore`` on a free port, a temporary database and state
directory, the offline model, the ``rules`` extractor), creates a memory with notebook 06's strategies, starts the
bank (``servers/bank_service.py``) and deploys the team (``servers/supervisor_agent.py``'s ``TEAM`` with its
``team_environment``), as notebook 07 and ``tests/investigations_kit.py`` do. Then it runs investigations of
TechCorp (the company whose records hold the planted patterns, so every one has findings and evidence), each the
whole flow, driven by one thread per investigation:

1. the user asks a new supervisor session "Investigate TechCorp"; the supervisor opens the investigation in Memory
   and delegates to the retrieval and compliance workers (new sessions), answering at once;
2. the compliance worker asks the bank and goes quiet; ``--delay-days`` lesson days later the bank delivers with
   ``InvokeAgentRuntime`` in a brand-new session, which reviews and files the report;
3. for a share of the investigations (``--duplicates``), the bench asks the bank for a second delivery as soon as
   the first is being sent, so two sessions review at once and race to file; for another share (``--kills``) it
   kills the delivery's session (kill -9) once its first review step is in Memory: the bank delivers again to a
   new session. Both are chosen with a seeded RNG (``--seed``), independently, so some investigations get both;
4. once the bank is done, the user returns to a new supervisor session ("What did we find in inv-...?") and must
   get the report's text: that is when the investigation counts as completed.

First a single investigation alone (no duplicate, no kill): the floor, in the same run under the same conditions.
Then N at once (``--investigations``, default 100), all asked together. It prints:

* investigations completed per minute (N over the time from the first question to the last report told), next to
  what N would do if each took as long as the one alone (the floor's rate times N), and latencies (ask -> answer,
  ask -> report filed, ask -> user told) for the floor and the N;
* Memory events per investigation (mean/max; plain, duplicated, killed);
* peak live runtime sessions, sampled from the emulator's ``GET /local/runtime-sessions`` every 0.2 s (and the
  exact peak from its transitions); how each agent's sessions ended (idle timeout, maximum lifetime, crash), how
  long idle sessions were seen alive past their idle timeout (how late the emulator's lifecycle checks came), how
  long a session start took and whether starts overlapped (what bounds the throughput), and how many delegations
  the supervisor recorded before its own session ended;
* the targets, each met / NOT met: **none lost** (every investigation's user was told its report), **none doubled**
  (exactly one ``report_filed`` event per investigation, with duplicates and kills), **no session alive while its
  agent waits** (from the emulator's session transitions: the compliance session that asked the bank ended, by
  its idle timeout, before the bank's delivery session started, and no other compliance session of that
  investigation lived in between; the same is printed for every session of the investigation, as information).

Time scale: the bench runs at ``time_scale`` 0 (no pacing), which the lesson calendar
(``servers/patterns/lesson_calendar.py``) turns into its floor clock, the same as CI's: a lesson day lasts 12 real
seconds, a session's idle timeout 0.125 s and its maximum lifetime 4 s (AWS's 900 s and 8 h on that clock). Zero
itself is not meaningful for the lesson: sessions need a lifetime to live in, and the bank's days must outlast
them, or there is no waiting to measure. So the bank's delay (``--delay-days``, default 1 lesson day: 12 s) is the
floor under every investigation's duration, and the throughput figure is read against the single investigation.
One review step of the compliance worker lasts ``--review-minutes`` lesson minutes (default 30: 0.25 s), so a kill
after the first step lands mid-review.

The machine is small (2 cores, shared): every runtime session is a process (forked from the zygote), and 100
investigations start about 600 of them. Figures only; "NOT met" does not fail the run, an error does (exit 1).
Every process started (emulator, bank, sessions) is stopped at the end, also on Ctrl-C or failure, and checked gone.
Usage: python bench/investigations.py [--investigations N] [--duplicates F] [--kills F] [--seed S]
                                      [--delay-days D] [--review-minutes M] [--timeout T]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import boto3
import httpx
import psutil

from lab_helpers import agentcore, config, deploy, processes
from lab_helpers.processes import SERVERS_DIR, ServerProcess
from lab_helpers.waiting import WaitTimeout, eventually

sys.path.insert(0, str(SERVERS_DIR))  # the lesson's modules: the team, the memory's strategies, the patterns
import memory_for_days  # noqa: E402
import supervisor_agent  # noqa: E402
from patterns import investigation_log as log  # noqa: E402
from patterns.internal_records import SUSPECT  # noqa: E402
from patterns.lesson_calendar import DAY, IDLE_TIMEOUT, MAX_LIFETIME, lesson_clock  # noqa: E402

TIME_SCALE = 0.0
CLOCK = lesson_clock(TIME_SCALE)  # the floor clock: a lesson day of 12 s (see the docstring)
#: How often the watcher samples the emulator's sessions and the bank's requests (real seconds); the emulator
#: applies its lifecycle rules every 0.2 s, so sampling faster would see nothing new.
SAMPLE_SECONDS = 0.2
#: How often a driver looks for the first review step of a session it is to kill (Memory reads; few drivers).
KILL_POLL_SECONDS = 0.05
#: How often the run prints where the investigations stand.
PROGRESS_SECONDS = 5.0
FINAL = ("delivered", "failed", "rejected")
DEFAULTS = {"investigations": 100, "duplicates": 0.1, "kills": 0.1, "seed": 7, "delay_days": 1.0,
            "review_minutes": 30.0}


@dataclass
class Trial:
    """One investigation as the bench drove it: what was chosen for it, when each step happened, what came back."""

    number: int
    duplicate: bool
    kill: bool
    asked_at: float = 0.0
    answered_at: float | None = None
    investigation_id: str | None = None
    supervisor_sessions: list[str] = field(default_factory=list)
    request_id: str | None = None
    killed: str | None = None  # "mid-review", or why the kill did not land
    redelivered: bool = False
    reported_at: float | None = None
    told_at: float | None = None
    told_report: bool = False
    final: log.Investigation | None = None
    error: str | None = None

    @property
    def kind(self) -> str:
        return "+".join(k for k, on in (("duplicate", self.duplicate), ("killed", self.kill)) if on) or "plain"


class Watcher:
    """One thread that samples the emulator's live sessions and the bank's requests; drivers read its snapshots."""

    def __init__(self, endpoint: str, bank_url: str) -> None:
        self.endpoint, self.bank_url = endpoint, bank_url
        self.samples: list[tuple[float, int]] = []
        self.pids: set[int] = set()
        self.last_seen: dict[str, dict[str, Any]] = {}  # session id -> the emulator's latest view of it
        self.idle_over: dict[str, float] = {}  # session id -> most seconds seen idle beyond its idle timeout
        self.requests: dict[str, dict[str, Any]] = {}  # investigation id -> the bank's view of its request
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-watcher")

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    live = http.get(self.endpoint + "/local/runtime-sessions").json()["sessions"]
                    self.samples.append((time.time(), len(live)))
                    self.pids.update(s["pid"] for s in live)
                    self.last_seen.update((s["sessionId"], s) for s in live)
                    for s in live:  # an idle session still alive past its idle timeout: the check came late
                        if not s["inFlight"] and s["ping"] == "Healthy":
                            over = s["idleSeconds"] - s["idleTimeoutSeconds"]
                            self.idle_over[s["sessionId"]] = max(over, self.idle_over.get(s["sessionId"], over))
                    requests = http.get(self.bank_url + "/requests").json()["requests"]
                    self.requests = {r["investigation_id"]: r for r in requests}
                except httpx.HTTPError as error:  # a slow answer under load: the next sample will do
                    self.error = f"{type(error).__name__}: {error}"
                self._stop.wait(SAMPLE_SECONDS)

    def request(self, investigation_id: str) -> dict[str, Any] | None:
        return self.requests.get(investigation_id)


@dataclass
class Team:
    """What the drivers need: the settings, the deployed runtimes, the memory, the bank, the watcher."""

    settings: config.Settings
    endpoint: str
    runtimes: dict[str, deploy.Deployment]
    memory_id: str
    bank_url: str
    watcher: Watcher
    http: httpx.Client
    data: Any  # a bedrock-agentcore client (thread-safe once made)

    def state(self, investigation_id: str) -> log.Investigation | None:
        return log.reconstruct(self.data, log.InvestigationRef(self.memory_id, log.DEFAULT_ACTOR, investigation_id))

    def ask(self, trial: Trial, prompt: str) -> dict[str, Any]:
        """One user turn to a new supervisor session, as the notebook asks it (``deploy.invoke``)."""
        session_id = deploy.new_session_id()
        trial.supervisor_sessions.append(session_id)
        answer = deploy.invoke(self.runtimes["supervisor"].arn, {"prompt": prompt}, session_id,
                               settings=self.settings)
        if not isinstance(answer, dict) or "answer" not in answer:
            raise RuntimeError(f"the supervisor answered {answer!r}")
        return answer


def drive(team: Team, trial: Trial, deadline: float) -> None:
    """One investigation, the whole flow (the module's docstring); failures end up in ``trial.error``."""
    def left() -> float:
        return max(1.0, deadline - time.time())

    try:
        trial.asked_at = time.time()
        opened = team.ask(trial, f"Investigate {SUSPECT}")
        trial.answered_at = time.time()
        investigation = trial.investigation_id = opened.get("investigation_id")
        if not investigation or opened.get("tools") != ["open_investigation", "delegate", "delegate"]:
            raise RuntimeError(f"the supervisor did not open and delegate: {opened}")
        request = eventually(lambda: team.watcher.request(investigation), left(), SAMPLE_SECONDS,
                             what=f"{investigation}'s bank request")
        trial.request_id = request["request_id"]
        if trial.kill or trial.duplicate:  # both act when the bank starts its delivery
            due = eventually(lambda: _due_sent(team.watcher.request(investigation)), left(), 0.05,
                             what=f"{investigation}'s delivery to start")
            if trial.kill:
                trial.killed = kill_mid_review(team, investigation, due["sessions"][0], left())
            if trial.duplicate:
                reply = team.http.post(f"{team.bank_url}/requests/{trial.request_id}/redeliver")
                if reply.status_code != 202:
                    raise RuntimeError(f"the bank refused the redelivery: {reply.status_code} {reply.text[:200]}")
                trial.redelivered = True
        expected = 1 + trial.redelivered
        eventually(lambda: _deliveries_done(team.watcher.request(investigation), expected), left(), SAMPLE_SECONDS,
                   what=f"{investigation}'s deliveries to end")
        filed = team.state(investigation)
        if filed is None or filed.report is None:
            raise RuntimeError(f"the bank is done with {investigation} but Memory holds no report")
        trial.reported_at = filed.report["at"]
        told = team.ask(trial, f"What did we find in {investigation}?")
        trial.told_at = time.time()
        trial.told_report = filed.report["text"] in told["answer"]
        trial.final = team.state(investigation)
    except (Exception, WaitTimeout) as error:  # noqa: BLE001 - counted as lost, with the reason
        trial.error = f"{type(error).__name__}: {error}"[:300]


def _due_sent(request: dict[str, Any] | None) -> dict[str, Any] | None:
    """The bank's scheduled delivery once its first attempt has a session (it is being sent, or was)."""
    due = next((d for d in (request or {}).get("deliveries", []) if d["reason"] == "due"), None)
    return due if due and due["sessions"] else None


def _deliveries_done(request: dict[str, Any] | None, expected: int) -> bool:
    deliveries = (request or {}).get("deliveries", [])
    return len(deliveries) >= expected and all(d["status"] in FINAL for d in deliveries)


def kill_mid_review(team: Team, investigation: str, session_id: str, timeout: float) -> str:
    """kill -9 the delivery's session once its first review step is in Memory; says whether it landed mid-review."""
    def first_step() -> str | None:
        state = team.state(investigation)
        if state is not None and state.report is not None:
            return "missed: the report was filed first"
        if state is not None and any(s.get("session_id") == session_id for s in state.review_steps):
            return "now"
        return None

    when = eventually(first_step, timeout, KILL_POLL_SECONDS, what=f"a review step of {investigation}")
    if when != "now":
        return when
    live = httpx.get(team.endpoint + "/local/runtime-sessions", timeout=30).json()["sessions"]
    pid = next((s["pid"] for s in live if s["sessionId"] == session_id), None)
    if pid is None:
        return "missed: the session had ended"
    os.kill(pid, signal.SIGKILL)  # the microVM dies: nothing saved, nothing cleaned up
    return "mid-review"


# -- the run ----------------------------------------------------------------------------------------------------
def run(team: Team, trials: list[Trial], timeout: float, label: str) -> float:
    """Drive ``trials`` at once, one thread each; print a progress line every few seconds; the wall time."""
    began = time.time()
    threads = [threading.Thread(target=drive, args=(team, trial, began + timeout), daemon=True,
                                name=f"investigation-{trial.number}") for trial in trials]
    for thread in threads:
        thread.start()
    for thread in threads:  # a progress line every few seconds while any runs
        while thread.is_alive():
            thread.join(PROGRESS_SECONDS)
            if thread.is_alive():
                print(f"  [{time.time() - began:5.0f} s] {label}: {_progress(team, trials)}", flush=True)
    return time.time() - began


def _progress(team: Team, trials: list[Trial]) -> str:
    stages = {"asking": 0, "bank requested": 0, "delivering": 0, "told": 0, "failed": 0}
    for trial in trials:
        request = team.watcher.request(trial.investigation_id or "")
        if trial.error:
            stages["failed"] += 1
        elif trial.told_at:
            stages["told"] += 1
        elif request and any(d["sessions"] for d in request["deliveries"]):
            stages["delivering"] += 1
        elif request:
            stages["bank requested"] += 1
        else:
            stages["asking"] += 1
    live = team.watcher.samples[-1][1] if team.watcher.samples else 0
    return ", ".join(f"{name} {count}" for name, count in stages.items()) + f"; live sessions {live}"


def session_lives(transitions: list[dict[str, Any]]) -> dict[str, tuple[float, float, str]]:
    """Each session's (first start, last end, why it ended) from the emulator's transitions; end is inf if live."""
    lives: dict[str, tuple[float, float, str]] = {}
    for t in transitions:
        start, end, why = lives.get(t["sessionId"], (t["at"], float("inf"), ""))
        if t["state"] == "ended":
            end, why = t["at"], t["detail"]
        lives[t["sessionId"]] = (min(start, t["at"]), end, why)
    return lives


def waiting_check(trial: Trial, lives: dict[str, tuple[float, float, str]], request: dict[str, Any]
                  ) -> dict[str, Any] | None:
    """How the investigation waited for the bank, from the session transitions (None if it cannot be read).

    The wait runs from the ``bank_requested`` event (written by the compliance session that asked) to the start of
    the bank's first delivery session. The compliance agent waits without a session when the session that asked
    ended by its idle timeout before the delivery started and no other compliance session of the investigation
    lived in between (``ok``). ``lingered``: how long the asking session lived on after asking.
    """
    state = trial.final
    if state is None or state.bank_request is None:
        return None
    deliveries = [s for d in request["deliveries"] for s in d["sessions"]]
    first = min((lives[s][0] for s in deliveries if s in lives), default=None)
    asker = state.bank_request.get("session_id")
    if first is None or asker not in lives:
        return None
    asked_at = state.bank_request["at"]
    _, ended, why = lives[asker]
    compliance = {e.data["session_id"] for e in state.entries  # delegated again after a crash: another asker
                  if e.kind == "delegated" and e.data.get("worker") == "compliance"} - {asker}
    between = [s for s in compliance if s in lives and lives[s][0] < first and lives[s][1] > asked_at]
    everyone = ({e.data["session_id"] for e in state.entries if e.kind == "delegated"} | {asker}
                | set(trial.supervisor_sessions))
    at_delivery = [s for s in everyone if s in lives and lives[s][0] < first < lives[s][1]]
    return {"ok": ended < first and why == "idle timeout" and not between, "lingered": ended - asked_at,
            "between": between,
            "why": why, "wait": first - asked_at, "alive at delivery": at_delivery}


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return (f"p50 {statistics.median(ordered):7.2f}  p90 {ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]:7.2f}"
            f"  max {ordered[-1]:7.2f}")


def report(team: Team, floor: Trial, trials: list[Trial], transitions: list[dict[str, Any]],
           args: argparse.Namespace) -> None:
    """The figures and the targets (the module's docstring)."""
    done = [t for t in trials if t.told_at and t.told_report and t.final is not None]
    lives = session_lives(transitions)
    report_throughput(floor, trials, done)
    report_memory(floor, done)
    report_sessions(team, trials, done, transitions, lives)
    report_targets(team, trials, done, lives, args)


def report_throughput(floor: Trial, trials: list[Trial], done: list[Trial]) -> None:
    n = len(trials)
    floor_span = (floor.told_at or float("nan")) - floor.asked_at
    span = (max(t.told_at for t in done) - min(t.asked_at for t in trials)) if done else float("nan")
    rate, ideal = (len(done) / span * 60 if done else 0.0), n * 60 / floor_span
    print(f"\n{'':<34}{'floor (1 alone)':>18}{f'{n} at once':>18}")
    print(f"{'investigations completed':<34}{int(floor.told_report):>18}{len(done):>18}")
    print(f"{'first question to last told (s)':<34}{floor_span:>18.1f}{span:>18.1f}")
    print(f"{'completed per minute':<34}{60 / floor_span:>18.1f}{rate:>18.1f}")
    print(f"{'  vs N x the floor rate':<34}{'':>18}{rate / ideal:>17.0%}   "
          f"(were each as fast as the one alone: {ideal:.0f}/min)")
    print("\nlatency per investigation (s)")
    for label, pick in (("ask -> supervisor answered", lambda t: t.answered_at),
                        ("ask -> report filed", lambda t: t.reported_at),
                        ("ask -> user told the report", lambda t: t.told_at)):
        values = [pick(t) - t.asked_at for t in trials if pick(t)]
        alone = pick(floor) - floor.asked_at if pick(floor) else float("nan")
        print(f"  {label:<30} floor {alone:6.2f}   {n} at once: {_stats(values)}")


def report_memory(floor: Trial, done: list[Trial]) -> None:
    print("\nMemory events per investigation (its steps, as reconstruct reads them)")
    print(f"  {'kind':<20}{'count':>6}{'mean':>8}{'max':>6}{'review steps (mean)':>23}")
    groups: dict[str, list[Trial]] = {}
    for trial in done:
        groups.setdefault(trial.kind, []).append(trial)
    for kind, group in [("floor (plain)", [floor] if floor.final else []), ("all", done), *sorted(groups.items())]:
        events = [len(t.final.entries) for t in group if t.final]
        steps = [len(t.final.review_steps) for t in group if t.final]
        if events:
            print(f"  {kind:<20}{len(group):>6}{statistics.mean(events):>8.1f}{max(events):>6}"
                  f"{statistics.mean(steps):>23.1f}")


def report_sessions(team: Team, trials: list[Trial], done: list[Trial], transitions: list[dict[str, Any]],
                    lives: dict[str, tuple[float, float, str]]) -> None:
    """Peak live sessions, how each agent's sessions ended, and how fast the emulator started them."""
    began = min(t.asked_at for t in trials)
    ours = {s: life for s, life in lives.items() if life[0] >= began}  # the floor's sessions left out
    live = [count for at, count in team.watcher.samples if at >= began]
    running = exact = 0
    for _, change in sorted([(start, 1) for start, _, _ in ours.values()]
                            + [(end, -1) for _, end, _ in ours.values() if end < float("inf")]):
        running += change
        exact = max(exact, running)
    print(f"\nruntime sessions of the {len(trials)}: peak live {max(live, default=0)} (sampled every "
          f"{SAMPLE_SECONDS} s, {len(live)} samples; {exact} from the emulator's transitions)")
    runtime_of = {t["sessionId"]: t["runtimeId"] for t in transitions}
    reasons = ("idle timeout", "max lifetime reached", "crashed")
    print(f"  {'agent':<12}{'started':>9}" + "".join(f"{why:>22}" for why in reasons) + f"{'other/live':>12}")
    for name, deployment in team.runtimes.items():
        ends = [why.split(" (")[0] for s, (_, _, why) in ours.items() if runtime_of[s] == deployment.runtime_id]
        print(f"  {name:<12}{len(ends):>9}" + "".join(f"{ends.count(why):>22}" for why in reasons)
              + f"{sum(1 for why in ends if why not in reasons):>12}")
    oldest = [s for s, (_, _, why) in ours.items() if why.startswith("max lifetime")]
    if oldest:
        seen = team.watcher.last_seen
        last = Counter("in an invocation" if seen[s]["inFlight"] else f"/ping {seen[s]['ping']}"
                       for s in oldest if s in seen)
        print("  those ended at their maximum lifetime, as last sampled: "
              + ", ".join(f"{what} {count}" for what, count in sorted(last.items())))
    late = [over for s, over in team.watcher.idle_over.items() if s in ours]
    print(f"  idle sessions seen alive past their idle timeout ({CLOCK * IDLE_TIMEOUT:.3f} s; the emulator checks "
          f"each every {SAMPLE_SECONDS} s at best): {sum(1 for over in late if over > 0)} of {len(late)} seen idle, "
          f"by {_stats(late)} s")
    answered: dict[str, float] = {}  # session id -> its first state after "starting" (a /ping answer, or its end)
    for t in transitions:
        if t["state"] != "starting" and t["sessionId"] in ours:
            answered.setdefault(t["sessionId"], t["at"])
    starts = sorted((ours[s][0], at) for s, at in answered.items())
    overlapping = sum(1 for (_, end), (start, _) in zip(starts, starts[1:]) if start < end)
    busy = sum(end - start for start, end in starts)
    span = max(t.told_at or time.time() for t in trials) - began
    print(f"  session starts ('starting' to the first /ping answer): {_stats([e - s for s, e in starts])} s; "
          f"{overlapping} of {len(starts)} overlapped another"
          + (" (the emulator starts one session at a time)" if starts and not overlapping else "")
          + f"; starting took {busy / span:.0%} of the run: {len(starts) / busy:.1f} starts/s at most")
    delegated = sum(1 for t in done for e in t.final.entries if e.kind == "delegated")  # type: ignore[union-attr]
    print(f"  delegations the supervisor recorded ('delegated', once the worker accepted): {delegated} of "
          f"{2 * len(done)}" + ("" if delegated == 2 * len(done) else
                                "; the others: the supervisor's session ended before its worker accepted"))


def report_targets(team: Team, trials: list[Trial], done: list[Trial], lives: dict[str, tuple[float, float, str]],
                   args: argparse.Namespace) -> None:
    """The faults injected, how the investigations waited for the bank, and the three targets."""
    kills = [t for t in trials if t.kill]
    landed = sum(1 for t in kills if t.killed == "mid-review")
    missed = sorted({str(t.killed or t.error) for t in kills if t.killed != "mid-review"})
    print(f"\nfaults (seed {args.seed}): {sum(t.redelivered for t in trials)} duplicate deliveries sent "
          f"({sum(t.duplicate for t in trials)} chosen); {landed} delivery sessions killed mid-review "
          f"({len(kills)} chosen{'; not: ' + '; '.join(missed) if missed else ''})")
    waits = {t.number: waiting_check(t, lives, team.watcher.requests[t.investigation_id])
             for t in done if t.investigation_id in team.watcher.requests}
    measured = {k: w for k, w in waits.items() if w is not None}
    ended_by = Counter(w["why"].split(" (")[0] or "still alive" for w in measured.values())
    print(f"waiting for the bank ({args.delay_days:g} lesson day(s) = {CLOCK * DAY * args.delay_days:g} s): from the "
          f"request to the delivery session's start {_stats([w['wait'] for w in measured.values()])} s")
    lingered = [w["lingered"] for w in measured.values()]
    print(f"  the compliance session that asked lived on after asking {_stats(lingered)}"
          f" s (idle timeout {CLOCK * IDLE_TIMEOUT:.3f} s; /ping's whole-second time_of_last_update adds up to 1 s); "
          f"ended by: " + ", ".join(f"{why} {count}" for why, count in sorted(ended_by.items())))
    print(f"  investigations with a session of any of their agents alive when the bank delivered: "
          f"{sum(1 for w in measured.values() if w['alive at delivery'])} of {len(measured)}")

    lost = [t for t in trials if t not in done]
    doubled = [t for t in trials if t.final and len(t.final.reports) != 1]
    awake = [w for w in measured.values() if not w["ok"]]
    print("\ntargets")
    for label, failures, detail in (
            ("none lost: every investigation's user got its report", len(lost),
             "; ".join(sorted({t.error or ("no report in the answer" if t.told_at else "not told")
                               for t in lost}))[:400]),
            ("none doubled: one report per investigation", len(doubled),
             ", ".join(f"{t.investigation_id}: {len(t.final.reports)}" for t in doubled if t.final)[:400]),
            ("no compliance session alive while it waits for the bank", len(awake) + len(done) - len(measured),
             f"{len(measured)} of {len(done)} completed measured; fail = the asking session not ended by its idle "
             f"timeout before the delivery ({sum(1 for w in awake if not w['between'])}) or another compliance "
             f"session alive in the wait ({sum(1 for w in awake if w['between'])})")):
        print(f"  {label:<58} {'met' if not failures else 'NOT met':<8} ({failures} of {len(trials)} fail; "
              f"{detail or '-'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--investigations", type=int, default=DEFAULTS["investigations"],
                        help=f"investigations at once (1-500; default {DEFAULTS['investigations']})")
    parser.add_argument("--duplicates", type=float, default=DEFAULTS["duplicates"],
                        help=f"share with a duplicate delivery (0-1; default {DEFAULTS['duplicates']})")
    parser.add_argument("--kills", type=float, default=DEFAULTS["kills"],
                        help=f"share whose delivery session is killed mid-review (0-1; default {DEFAULTS['kills']})")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the choice of faults")
    parser.add_argument("--delay-days", type=float, default=DEFAULTS["delay_days"],
                        help=f"lesson days the bank takes (0.5-3; a day is 12 s; default {DEFAULTS['delay_days']:g})")
    parser.add_argument("--review-minutes", type=float, default=DEFAULTS["review_minutes"],
                        help=f"lesson minutes per review step (1-60; default {DEFAULTS['review_minutes']:g})")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds an investigation may take before it counts as lost (default: the bank's "
                             "delay plus 5 minutes)")
    args = parser.parse_args()
    for option, low, high in (("investigations", 1, 500), ("duplicates", 0, 1), ("kills", 0, 1),
                              ("delay_days", 0.5, 3), ("review_minutes", 1, 60)):
        if not low <= getattr(args, option) <= high:
            parser.error(f"--{option.replace('_', '-')} must be between {low} and {high}")
    timeout = args.timeout or CLOCK * DAY * args.delay_days + 300
    rng = random.Random(args.seed)
    trials = [Trial(number, rng.random() < args.duplicates, rng.random() < args.kills)
              for number in range(1, args.investigations + 1)]

    began = time.perf_counter()
    pids: set[int] = set()
    with TemporaryDirectory(prefix="bench-investigations-") as scratch:
        tmp = Path(scratch)
        settings = config.load(mode="local", time_scale=TIME_SCALE, model="offline", emulator_extractor="rules",
                               state_dir=tmp / "state", logs_dir=tmp / "logs", artifacts_dir=tmp / "artifacts",
                               emulator_port=processes.free_port(), emulator_db=tmp / "memory.db")
        try:
            target = agentcore.use_agentcore(settings)
            if target.process is None:
                raise RuntimeError(f"expected a private emulator on port {settings.emulator_port}, found one running")
            pids.add(target.process.pid)
            endpoint = str(target.endpoint)
            try:
                team = set_up(settings, endpoint, tmp, args, pids)
                with team.watcher, team.http:
                    print(f"bench/investigations.py: emulator {endpoint}, time scale {TIME_SCALE:g} -> lesson clock "
                          f"{CLOCK * DAY:g} s a day (idle timeout {CLOCK * IDLE_TIMEOUT:.3f} s, lifetime "
                          f"{CLOCK * MAX_LIFETIME:g} s), bank delay {args.delay_days:g} day(s) = "
                          f"{CLOCK * DAY * args.delay_days:g} s, review step {args.review_minutes:g} lesson min; "
                          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
                    floor = Trial(0, False, False)
                    print("the floor: one investigation alone", flush=True)
                    floor_seconds = run(team, [floor], timeout, "floor")
                    if floor.error or not floor.told_report:
                        raise RuntimeError(f"the single investigation failed: {floor.error or 'no report told'}")
                    print(f"  done in {floor_seconds:.1f} s; now {len(trials)} at once "
                          f"({sum(t.duplicate for t in trials)} with a duplicate delivery, "
                          f"{sum(t.kill for t in trials)} with a kill)", flush=True)
                    run(team, trials, timeout, f"{len(trials)} at once")
                transitions = httpx.get(endpoint + "/local/runtime-sessions", timeout=60).json()["transitions"]
                pids |= team.watcher.pids
                report(team, floor, trials, transitions, args)
            finally:
                deploy.destroy(settings)
        finally:
            processes.stop_all()
    left = sorted(pid for pid in pids if _alive(pid))
    if left:
        raise SystemExit(f"processes still running after the benchmark: {left}")
    print(f"\nevery process stopped ({len(pids)} seen: emulator, bank, sessions); run took "
          f"{time.perf_counter() - began:.0f} s, load average now {os.getloadavg()[0]:.2f}")


def set_up(settings: config.Settings, endpoint: str, tmp: Path, args: argparse.Namespace, pids: set[int]) -> Team:
    """The memory (notebook 06's strategies), the bank on the lesson clock, the team deployed on it."""
    control = boto3.client("bedrock-agentcore-control", region_name=settings.region)
    memory_id = control.create_memory(name="bench_investigations", eventExpiryDuration=30,
                                      memoryStrategies=memory_for_days.STRATEGIES)["memory"]["id"]
    eventually(lambda: control.get_memory(memoryId=memory_id)["memory"]["status"] == "ACTIVE", 30,
               what="the memory ACTIVE")
    bank = ServerProcess("bank_service.py", "--db", str(tmp / "bank.sqlite"), "--delay-days", str(args.delay_days),
                         settings=dataclasses.replace(settings, time_scale=CLOCK), ready_path="/health",
                         name="bank").start()
    pids.add(bank.pid)
    made: dict[str, deploy.Deployment] = {}
    for name, script in supervisor_agent.TEAM.items():
        environment = supervisor_agent.team_environment(
            name, memory_id=memory_id, clock=CLOCK, mode="local", bank_url=bank.base_url,
            worker_arns={worker: made[worker].arn for worker in made})
        if name == "compliance":
            environment["LAB_REVIEW_STEP_MINUTES"] = repr(args.review_minutes)
        made[name] = deploy.deploy(f"bench07_{name}", SERVERS_DIR, script, settings=settings, environment=environment)
    return Team(settings, endpoint, made, memory_id, bank.base_url, Watcher(endpoint, bank.base_url),
                httpx.Client(timeout=30), log.memory_client(settings.region))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the finally blocks have stopped the emulator, the bank and every session
        raise SystemExit("interrupted: every process the benchmark started was stopped") from None
