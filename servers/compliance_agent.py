"""Notebook 07's compliance worker: asks the bank, goes quiet for days, and files the report exactly once.

Two invocations, days apart, each in a session of its own, and no process in between:

* ``{"action": "request", "investigation_id", "company", "callback_arn"}`` (from the supervisor): ask the bank
  (``LAB_BANK_URL``) for the company's records with a callback, this runtime's ARN and the investigation id, record
  ``bank_requested`` in Memory, answer ``accepted``. Nothing runs in the background: ``/ping`` says ``Healthy``
  and the Runtime ends the session at its idle timeout. Asked again, it finds the request in Memory and does
  not ask twice (the bank also keeps one request per investigation).
* ``{"action": "delivery", "investigation_id", "request_id", "delivery_id", "records"}`` (from the bank, days
  later, through ``InvokeAgentRuntime`` with a new session id: a new microVM that knows nothing): rebuild the
  investigation from Memory alone (:func:`patterns.investigation_log.reconstruct`), record the delivery, review the
  records against the findings in :data:`REVIEW_STEPS` (each paced at ``LAB_REVIEW_STEP_MINUTES`` lesson minutes, 10
  by default, and recorded as a ``review_step``) and file the report (:func:`file_report`).

Exactly once, whatever happens: a delivery that finds a report in Memory files nothing (``already filed``); the
report's CreateEvent carries a client token derived from the investigation id, so two deliveries filing at the
same moment write one event; and Memory is checked once more right before filing. A session killed mid-review
(kill -9) has filed nothing; its delivery failed from the bank's side, the bank delivers again to a new session,
which starts the review over and files once. Killed after filing and before answering: the retry finds the report.

The delivery is handled *inside* the invocation (some lesson minutes; far inside the session's lifetime) on
purpose: the bank learns from the answer whether the records were dealt with, and retries when not. Answering
``accepted`` first and reviewing in the background would make a crash mid-review invisible to the bank.

A delivery for an investigation Memory does not hold is refused with 400 (the bank does not retry a 4xx).
AWS counterpart: the same code on AgentCore Runtime; the bank's call is an EventBridge Scheduler schedule or a
webhook into a Lambda function that calls InvokeAgentRuntime (see ``servers/bank_service.py``), and
``LAB_BANK_URL`` must be reachable from the runtime (a public HTTPS endpoint, or a VPC network configuration).
Run: ``python servers/compliance_agent.py --port 8080``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx
from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from starlette.exceptions import HTTPException

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from patterns.investigation_log import Investigation, InvestigationRef, memory_client, reconstruct, record
from patterns.lesson_calendar import MINUTE

WORKER = "compliance"
ACTIONS = ("request", "delivery")
BANK_VARIABLE = "LAB_BANK_URL"
#: What a review does, one paced step each (lesson minutes per step: LAB_REVIEW_STEP_MINUTES, default 10).
REVIEW_STEPS = ("match the bank's records with the findings", "check the beneficial owners",
                "weigh the evidence", "draft the report")

settings = config.load()
app = BedrockAgentCoreApp()
app.logger.setLevel(logging.INFO)


def review_step_seconds() -> float:
    """Real seconds one review step takes: ``LAB_REVIEW_STEP_MINUTES`` lesson minutes on this runtime's clock."""
    raw = os.environ.get("LAB_REVIEW_STEP_MINUTES", "10")
    try:
        minutes = float(raw)
    except ValueError:
        raise RuntimeError(f"LAB_REVIEW_STEP_MINUTES must be a number of lesson minutes, got {raw!r}") from None
    return settings.scaled(minutes * MINUTE)


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(400, f"'{name}' must be a non-empty string")
    return value.strip()


def investigation(payload: dict[str, Any]) -> tuple[InvestigationRef, Investigation]:
    """The investigation a request names, rebuilt from Memory; a 400 when it is malformed or unknown."""
    try:
        ref = InvestigationRef.from_environment(payload.get("investigation_id"), payload.get("memory_id"))
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    state = reconstruct(memory_client(settings.region), ref)
    if state is None:
        raise HTTPException(400, f"unknown investigation {ref.investigation_id}: memory {ref.memory_id} holds no step "
                                 f"of it for {ref.actor_id}")
    return ref, state


def request_records(payload: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    """Ask the bank for the records (once per investigation), record it, answer at once; then nothing runs."""
    company, callback = _text(payload, "company"), _text(payload, "callback_arn")
    ref, state = investigation(payload)
    answer = {"worker": WORKER, "investigation_id": ref.investigation_id, "session_id": session_id}
    if state.bank_request is not None:
        return {**answer, "status": "already requested", "request_id": state.bank_request["request_id"]}
    bank = os.environ.get(BANK_VARIABLE, "").strip()
    if not bank:
        raise HTTPException(500, f"this runtime has no {BANK_VARIABLE}: deploy it with the bank's URL")
    try:
        reply = httpx.post(bank.rstrip("/") + "/requests", timeout=10.0, json={
            "investigation_id": ref.investigation_id, "company": company, "callback_arn": callback})
    except httpx.HTTPError as error:
        raise HTTPException(502, f"the bank at {bank} did not answer: {error}") from None
    if reply.status_code not in (200, 202):
        raise HTTPException(502, f"the bank refused the request ({reply.status_code}): {reply.text[:500]}")
    request = reply.json()
    record(memory_client(settings.region), ref, "bank_requested",
           {"request_id": request["request_id"], "company": company, "due_in_days": request.get("delay_days"),
            "session_id": session_id},
           by=WORKER, once_as="bank-request")
    return {**answer, "status": "accepted", "request_id": request["request_id"],
            "due_in_days": request.get("delay_days")}


def review(state: Investigation, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The compliance review: which findings the bank's records confirm, who owns the money, what to do."""
    flagged = {str(value) for finding in state.findings for row in finding.get("evidence", [])
               for key, value in row.items() if key in ("account", "counterparty")}
    confirmed = [r for r in records if r.get("account") in flagged or r.get("holder") in flagged]
    insiders = [r for r in records if r.get("owner_directs") == state.company]
    lines = [f"{r['holder']} ({r['country']}) received {r['received']:,.0f} USD from {state.company} in "
             f"{r['payments']} payments; its beneficial owner is {r['owner']}"
             + (f", a director of {state.company}" if r in insiders else "") for r in confirmed]
    suspicious = bool(confirmed) and (bool(insiders) or len(state.findings) >= 2)
    recommendation = "file a Suspicious Activity Report" if suspicious else "close: nothing suspicious confirmed"
    text = (f"Compliance report for {state.company} (investigation {state.investigation_id}): "
            f"{len(state.findings)} findings in the internal records; the bank's records confirm {len(confirmed)} "
            f"of the accounts they name. " + "; ".join(lines) + (". " if lines else "")
            + f"Recommendation: {recommendation}.")
    return {"company": state.company, "findings": [f.get("check") for f in state.findings],
            "confirmed": confirmed, "insiders": [r["owner"] for r in insiders],
            "recommendation": recommendation, "text": text}


def file_report(ref: InvestigationRef, report: dict[str, Any], delivery_id: str) -> dict[str, Any]:
    """File the report exactly once: the last look in Memory, then CreateEvent with the investigation's token."""
    client = memory_client(settings.region)
    latest = reconstruct(client, ref)
    if latest is not None and latest.report is not None:  # another delivery filed it while this one reviewed
        return {"status": "already filed", "report_event_id": latest.report["event_id"]}
    event = record(client, ref, "report_filed", {**report, "delivery_id": delivery_id}, by=WORKER,
                   once_as="report", text=report["text"])
    return {"status": "filed", "report_event_id": event["eventId"], "recommendation": report["recommendation"]}


def handle_delivery(payload: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    """Records from the bank, in a brand-new session: resume from Memory, review, file once."""
    request_id, delivery_id = _text(payload, "request_id"), _text(payload, "delivery_id")
    records = payload.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise HTTPException(400, "'records' must be a list of the bank's records (objects)")
    ref, state = investigation(payload)
    answer = {"worker": WORKER, "investigation_id": ref.investigation_id, "session_id": session_id,
              "resumed_from_memory": {"stage": state.stage, "events": len(state.entries)}}
    client = memory_client(settings.region)
    record(client, ref, "bank_delivered", {"request_id": request_id, "delivery_id": delivery_id,
                                           "records": len(records), "session_id": session_id},
           by=WORKER, once_as=f"delivered-{delivery_id}")
    if state.report is not None:
        return {**answer, "status": "already filed", "report_event_id": state.report["event_id"]}
    pause = review_step_seconds()
    for number, step in enumerate(REVIEW_STEPS, start=1):
        time.sleep(pause)
        record(client, ref, "review_step", {"step": number, "of": len(REVIEW_STEPS), "what": step,
                                            "delivery_id": delivery_id, "session_id": session_id}, by=WORKER)
    report = review(state, records)
    return {**answer, **file_report(ref, report, delivery_id)}


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """``request`` (from the supervisor) or ``delivery`` (from the bank); anything else is a 400."""
    if not isinstance(payload, dict):
        raise HTTPException(400, f"the payload must be a JSON object, got {type(payload).__name__}")
    action = payload.get("action")
    if action == "request":
        return request_records(payload, context.session_id)
    if action == "delivery":
        return handle_delivery(payload, context.session_id)
    raise HTTPException(400, f"unknown action {action!r}; send 'action' as one of: {', '.join(ACTIONS)}")


if __name__ == "__main__":
    args = parse_args(description="Notebook 07's compliance worker: bank records in, one report out",
                      default_port=8080)
    run_app(app, args.host, args.port)
