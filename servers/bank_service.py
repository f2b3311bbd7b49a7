"""Notebook 07's bank: the slow external system, which takes days to answer and then calls back.

The compliance worker asks for a company's records; the bank says "202, request id" and, ``--delay-days`` lesson
days later, delivers them the way a system outside AWS reaches an agent: ``InvokeAgentRuntime`` on the runtime the
request named, with a **new session id** (a new microVM, which knows nothing but what Memory holds). No process
waits those days: not the agent's session (ended at its idle timeout) and not a request held open.

* ``POST /requests`` ``{"investigation_id", "company", "callback_arn"[, "delay_days"]}`` -> 202 ``{"request_id",
  "delay_days", "due_at", ...}`` (``delay_days``: the bank's ``--delay-days`` unless the request says); the same
  investigation again -> 200 with the request it already has (one request per
  investigation: the bank is idempotent too). A malformed request -> 400 with the reason.
* ``GET /requests`` (all, newest first), ``GET /requests/{id}`` (one, with its deliveries) -> 200, or 404.
* ``POST /requests/{id}/redeliver`` -> 202: one more delivery of the same records, now (a knob to show that a
  duplicate delivery files nothing more); 404 for an unknown request.
* ``GET /health`` -> ``{"server": "bank", ...}``.

Delivery: a due delivery is sent with a fresh session id. An answer (``filed``, ``already filed``) ends it
``delivered``; a failure (the session's process died mid-review, the runtime did not answer) is tried again,
:data:`RETRY_MINUTES` lesson minutes later and then twice as long each time, :data:`MAX_ATTEMPTS` times in all,
each time in a new session: that is what makes a worker killed mid-filing recoverable. A ``4xx`` answer (an
unknown investigation, a malformed payload) is final: ``rejected``, not retried. The queue is a SQLite file
(``--db``), so a bank that restarts delivers what it owed; a delivery it was sending when it stopped is sent
again (at least once: the worker files exactly once anyway).

The records themselves come from the generated world of :mod:`patterns.internal_records`
(:func:`~patterns.internal_records.bank_records`): who owns the accounts the company paid abroad.

Time: ``LAB_TIME_SCALE`` is the lesson clock (:mod:`patterns.lesson_calendar`): start the bank with the same clock
as the runtimes, so its days are theirs. Security: it listens on 127.0.0.1 and, like the emulator, answers only
loopback ``Host`` names (421 otherwise: no DNS rebinding) and refuses a browser ``Origin`` from elsewhere (403).

AWS counterparts: the request is an API call to the bank's system (API Gateway, or the bank's own API); the
delayed call back is an EventBridge Scheduler one-time schedule (``at(...)``) or the bank's webhook, whose target is
a Lambda function (or an EventBridge API destination in front of one) that calls ``InvokeAgentRuntime`` with a new
``runtimeSessionId``; retries are the schedule's ``RetryPolicy`` and its dead-letter queue (SQS), or the webhook
sender's retries; this SQLite queue is what EventBridge and SQS keep for you. Run:
``python servers/bank_service.py --port 8090 [--db PATH] [--delay-days 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from patterns import internal_records
from patterns.investigation_log import check_investigation_id, invoke_agent, new_runtime_session_id
from patterns.lesson_calendar import DAY, MINUTE

log = logging.getLogger("bank")

#: Lesson minutes before the first retry of a failed delivery (then twice as long each time), and the attempts.
RETRY_MINUTES = 15.0
MAX_ATTEMPTS = 5
#: How often the delivery loop looks for due deliveries, in real seconds.
TICK_SECONDS = 0.05
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
RUNTIME_ARN = re.compile(r"arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:\d{12}:runtime/[a-zA-Z][a-zA-Z0-9_]{0,99}-"
                         r"[a-zA-Z0-9]{10}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, investigation_id TEXT NOT NULL UNIQUE, company TEXT NOT NULL, callback_arn TEXT NOT NULL,
    delay_days REAL NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, request_id TEXT NOT NULL REFERENCES requests(id), reason TEXT NOT NULL,
    due_at REAL NOT NULL, status TEXT NOT NULL,      -- pending, sending, delivered, failed, rejected
    attempts INTEGER NOT NULL DEFAULT 0, sessions TEXT NOT NULL DEFAULT '[]', answer TEXT, error TEXT,
    created_at REAL NOT NULL, ended_at REAL);
"""


class BankError(Exception):
    """A request the bank refuses: the HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Bank:
    """The request queue (SQLite) and the delivery loop."""

    def __init__(self, db_path: Path, delay_days: float, settings: config.Settings) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(db_path, isolation_level=None)  # used from the event loop's thread only
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)
        self.delay_days = delay_days
        self.settings = settings
        # A delivery being sent when the bank stopped may or may not have arrived: send it again (at least once).
        self.db.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'sending'")
        self._tasks: set[asyncio.Task[None]] = set()

    def real(self, lesson_seconds: float) -> float:
        return self.settings.scaled(lesson_seconds)

    # -- requests --------------------------------------------------------------------------------
    def submit(self, body: Any) -> tuple[dict[str, Any], bool]:
        """Queue a records request (one per investigation): the request, and whether it is new."""
        if not isinstance(body, dict):
            raise BankError(400, "the body must be a JSON object with investigation_id, company and callback_arn")
        try:
            investigation_id = check_investigation_id(body.get("investigation_id"))
        except ValueError as error:
            raise BankError(400, str(error)) from None
        company, callback = body.get("company"), body.get("callback_arn")
        if not isinstance(company, str) or not company.strip():
            raise BankError(400, "'company' must name the company whose records are requested")
        if not isinstance(callback, str) or not RUNTIME_ARN.fullmatch(callback):
            raise BankError(400, "'callback_arn' must be the ARN of the AgentCore runtime to deliver to "
                                 f"(arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>), got {callback!r}")
        delay = body.get("delay_days", self.delay_days)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 365:
            raise BankError(400, f"'delay_days' must be a number of lesson days from 0 to 365, got {delay!r}")
        row = self.db.execute("SELECT id FROM requests WHERE investigation_id = ?", (investigation_id,)).fetchone()
        if row is not None:
            return self.describe(row["id"]), False
        now = time.time()
        request_id = f"req-{uuid.uuid4().hex[:12]}"
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT INTO requests VALUES (?,?,?,?,?,?)",
                            (request_id, investigation_id, company.strip(), callback, delay, now))
            self._schedule(request_id, "due", now + self.real(delay * DAY))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        log.info("request %s for %s (%s): delivery in %g lesson days", request_id, company, investigation_id, delay)
        return self.describe(request_id), True

    def redeliver(self, request_id: str) -> dict[str, Any]:
        """One more delivery of a request's records, due now (a duplicate, on purpose)."""
        self.describe(request_id)  # 404 when unknown
        self._schedule(request_id, "redeliver", time.time())
        return self.describe(request_id)

    def _schedule(self, request_id: str, reason: str, due_at: float) -> None:
        self.db.execute("INSERT INTO deliveries (id, request_id, reason, due_at, status, created_at)"
                        " VALUES (?,?,?,?,?,?)", (f"dlv-{uuid.uuid4().hex[:12]}", request_id, reason, due_at,
                                                  "pending", time.time()))

    def describe(self, request_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is None:
            raise BankError(404, f"no request {request_id!r} at this bank")
        deliveries = [{**dict(d), "sessions": json.loads(d["sessions"]),
                       "answer": json.loads(d["answer"]) if d["answer"] else None}
                      for d in self.db.execute("SELECT * FROM deliveries WHERE request_id = ? ORDER BY created_at",
                                               (request_id,))]
        first = min((d["due_at"] for d in deliveries if d["reason"] == "due"), default=None)
        return {"request_id": row["id"], "investigation_id": row["investigation_id"], "company": row["company"],
                "callback_arn": row["callback_arn"], "delay_days": row["delay_days"], "created_at": row["created_at"],
                "due_at": first, "status": _status(deliveries), "deliveries": deliveries}

    def all_requests(self) -> list[dict[str, Any]]:
        return [self.describe(row["id"]) for row in
                self.db.execute("SELECT id FROM requests ORDER BY created_at DESC, id")]

    # -- deliveries -----------------------------------------------------------------------------
    async def deliver_forever(self) -> None:
        """Send every due delivery, each in a thread of its own (an invocation may take lesson minutes)."""
        while True:
            now = time.time()
            due = self.db.execute("SELECT d.id, r.investigation_id, r.company, r.callback_arn, d.request_id,"
                                  " d.attempts FROM deliveries d JOIN requests r ON r.id = d.request_id"
                                  " WHERE d.status = 'pending' AND d.due_at <= ? ORDER BY d.due_at", (now,)).fetchall()
            for row in due:
                self.db.execute("UPDATE deliveries SET status = 'sending' WHERE id = ?", (row["id"],))
                task = asyncio.get_running_loop().create_task(self._deliver(dict(row)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(TICK_SECONDS)

    async def _deliver(self, row: dict[str, Any]) -> None:
        session_id = new_runtime_session_id()  # a new session: the microVM that handles the delivery starts empty
        sessions = json.loads(self.db.execute("SELECT sessions FROM deliveries WHERE id = ?",
                                              (row["id"],)).fetchone()[0])
        self.db.execute("UPDATE deliveries SET attempts = attempts + 1, sessions = ? WHERE id = ?",
                        (json.dumps([*sessions, session_id]), row["id"]))
        payload = {"action": "delivery", "investigation_id": row["investigation_id"], "request_id": row["request_id"],
                   "delivery_id": row["id"], "company": row["company"]}
        try:
            answer = await asyncio.to_thread(_invoke, row["callback_arn"], payload, row["company"], session_id)
        except Exception as error:  # noqa: BLE001 - every failure is recorded and, unless final, retried
            reason = f"{type(error).__name__}: {error}"[:1000]
            attempts = row["attempts"] + 1
            if re.search(r"\((4\d\d)\) from runtime|ValidationException|ResourceNotFoundException", reason):
                self._end(row["id"], "rejected", None, reason)
            elif attempts >= MAX_ATTEMPTS:
                self._end(row["id"], "failed", None, reason)
            else:
                wait = self.real(RETRY_MINUTES * MINUTE * 2 ** (attempts - 1))
                self.db.execute("UPDATE deliveries SET status = 'pending', due_at = ?, error = ? WHERE id = ?",
                                (time.time() + wait, reason, row["id"]))
                log.info("delivery %s failed (attempt %d), again in %.2f s: %s", row["id"], attempts, wait, reason)
            return
        self._end(row["id"], "delivered", answer, None)

    def _end(self, delivery_id: str, status: str, answer: Any, error: str | None) -> None:
        self.db.execute("UPDATE deliveries SET status = ?, answer = ?, error = ?, ended_at = ? WHERE id = ?",
                        (status, json.dumps(answer) if answer is not None else None, error, time.time(), delivery_id))
        log.info("delivery %s %s%s", delivery_id, status, f": {error}" if error else "")


def _invoke(arn: str, payload: dict[str, Any], company: str, session_id: str) -> Any:
    """InvokeAgentRuntime with the records (what a Lambda function behind the schedule or webhook does)."""
    with contextlib.closing(internal_records.open_records()) as world:
        records = internal_records.bank_records(world, company)
    return invoke_agent(arn, {**payload, "records": records}, session_id)


def _status(deliveries: list[dict[str, Any]]) -> str:
    """A request's status from its deliveries: the scheduled delivery's, or pending."""
    scheduled = next((d for d in deliveries if d["reason"] == "due"), None)
    return scheduled["status"] if scheduled else "pending"


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LoopbackOnly:
    """Answer loopback ``Host`` names only (421), and no browser ``Origin`` from elsewhere (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            host = request.headers.get("host", "")
            origin = request.headers.get("origin")
            refusal = None
            if _host_name(host) not in LOOPBACK_HOSTS:
                refusal = (421, f"Host {host[:100]!r} is not this bank's: it answers loopback hosts only")
            elif origin is not None and (origin == "null" or _host_name(urlsplit(origin).netloc) not in LOOPBACK_HOSTS):
                refusal = (403, f"Origin {origin[:100]!r} may not call the bank")
            if refusal is not None:
                await JSONResponse({"error": refusal[1]}, status_code=refusal[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(db_path: Path, delay_days: float, settings: config.Settings | None = None) -> Starlette:
    """The bank as an ASGI app: its routes, its queue in ``db_path``, its delivery loop while it serves."""
    settings = settings or config.load()
    bank = Bank(db_path, delay_days, settings)

    def answer(status: int, doc: Any) -> Response:
        return JSONResponse(doc, status_code=status)

    async def submit(request: Request) -> Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return answer(400, {"error": "the body must be JSON: {investigation_id, company, callback_arn}"})
        try:
            made, new = bank.submit(body)
        except BankError as error:
            return answer(error.status, {"error": error.reason})
        return answer(202 if new else 200, made)

    async def one(request: Request) -> Response:
        try:
            return answer(200, bank.describe(request.path_params["request_id"]))
        except BankError as error:
            return answer(error.status, {"error": error.reason})

    async def redeliver(request: Request) -> Response:
        try:
            return answer(202, bank.redeliver(request.path_params["request_id"]))
        except BankError as error:
            return answer(error.status, {"error": error.reason})

    async def listing(request: Request) -> Response:
        return answer(200, {"requests": bank.all_requests()})

    async def health(request: Request) -> Response:
        count = bank.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        return answer(200, {"server": "bank", "requests": count, "delay_days": bank.delay_days,
                            "time_scale": settings.time_scale, "db": str(db_path)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop().create_task(bank.deliver_forever(), name="bank-deliveries")
        try:
            yield
        finally:
            loop.cancel()

    app = Starlette(routes=[
        Route("/health", health), Route("/requests", submit, methods=["POST"]),
        Route("/requests", listing, methods=["GET"]), Route("/requests/{request_id}", one, methods=["GET"]),
        Route("/requests/{request_id}/redeliver", redeliver, methods=["POST"]),
    ], lifespan=lifespan)
    app.state.bank = bank
    return LoopbackOnly(app)  # type: ignore[return-value]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None,
                        help="the queue's SQLite file (default: <LAB_STATE_DIR>/bank/queue.sqlite)")
    parser.add_argument("--delay-days", type=float, default=3.0,
                        help="lesson days between a request and its delivery (default 3)")


if __name__ == "__main__":
    args = parse_args(description="Notebook 07's bank: records delivered days later, by InvokeAgentRuntime",
                      default_port=8090, extra=_options)
    if args.delay_days < 0:
        raise SystemExit(f"--delay-days must be 0 or more, got {args.delay_days}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bank %(message)s")
    cfg = config.load()
    run_app(build_app(args.db or Path(cfg.state_dir) / "bank" / "queue.sqlite", args.delay_days, cfg), args.host,
            args.port)
