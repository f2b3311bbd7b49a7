"""Notebook 07's retrieval worker: checks the internal records in its background, and writes what it finds to Memory.

The supervisor delegates with ``InvokeAgentRuntime`` (a new session: a new microVM); this agent answers
``accepted`` at once and works in the background, telling the Runtime so through ``/ping``: the work is an
``add_async_task`` / ``complete_async_task`` pair (notebook 04's second way), so ``/ping`` answers ``HealthyBusy``
until the last check is done and the session is not ended at its idle timeout meanwhile. Each check
(:data:`patterns.internal_records.CHECKS`) is an SQL query over the internal records, paced at
:data:`CHECK_MINUTES` lesson minutes (an analyst's query is not instant); each finding becomes a ``finding`` step
in Memory at once (:mod:`patterns.investigation_log`), with a sentence that long-term memory extracts as a fact.
Then ``retrieval_done``, the background task completes, ``/ping`` turns ``Healthy``, and the Runtime ends the idle
session: nothing waits in a process.

Started twice for one investigation (a supervisor that delegated again after a crash), it does not repeat
itself: it reads the investigation from Memory first and answers ``already done``, and each finding is written
with a client token, so a repeated check adds nothing.

``POST /invocations`` with ``{"action": "investigate", "investigation_id", "company"[, "memory_id"]}`` (memory and
team from ``LAB_MEMORY_ID`` and ``LAB_INVESTIGATION_ACTOR`` otherwise); anything else is a 400 that says why.
AWS counterpart: the same code on AgentCore Runtime; the internal database would be RDS, Aurora or Athena
reached through the runtime's network configuration (see :mod:`patterns.internal_records`).
Run: ``python servers/retrieval_agent.py --port 8080``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from starlette.exceptions import HTTPException

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from patterns import internal_records
from patterns.investigation_log import InvestigationRef, memory_client, reconstruct, record
from patterns.lesson_calendar import MINUTE

#: Lesson minutes one check of the internal records takes (four checks: three lesson hours, within the day).
CHECK_MINUTES = 45
WORKER = "retrieval"

settings = config.load()
app = BedrockAgentCoreApp()
app.logger.setLevel(logging.INFO)


def investigation_from(payload: Any) -> tuple[InvestigationRef, str]:
    """The investigation and company a request names, or a 400 that says what is missing."""
    if not isinstance(payload, dict):
        raise HTTPException(400, f"the payload must be a JSON object, got {type(payload).__name__}")
    if payload.get("action") != "investigate":
        raise HTTPException(400, f"unknown action {payload.get('action')!r}: send 'action': 'investigate'")
    company = payload.get("company")
    if not isinstance(company, str) or not company.strip():
        raise HTTPException(400, "'company' must name the company to investigate")
    try:
        ref = InvestigationRef.from_environment(payload.get("investigation_id"), payload.get("memory_id"))
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    return ref, company.strip()


def check_records(ref: InvestigationRef, company: str, done: set[str], task_id: int) -> None:
    """The background work: every check, paced, each finding to Memory as soon as it is found; then done."""
    client = memory_client(settings.region)
    found, clean = [], []
    try:
        records = internal_records.open_records()
        for check in internal_records.CHECKS:
            time.sleep(settings.scaled(CHECK_MINUTES * MINUTE))
            finding = internal_records.run_check(records, check, company)
            if finding is None:
                clean.append(check.name)
                continue
            found.append(check.name)
            if check.name not in done:
                record(client, ref, "finding", finding, by=WORKER, once_as=f"finding-{check.name}",
                       text=f"In investigation {ref.investigation_id}, the internal records show: {finding['summary']}")
        record(client, ref, "retrieval_done", {"company": company, "findings": found, "clean": clean}, by=WORKER,
               once_as="retrieval-done",
               text=f"The internal records of {company} were checked for {len(internal_records.CHECKS)} fraud "
                    f"patterns in investigation {ref.investigation_id}: {len(found)} found.")
        app.logger.info("%s: %d findings, clean: %s", ref.investigation_id, len(found), ", ".join(clean) or "none")
    except Exception:  # noqa: BLE001 - logged; Memory shows the investigation without retrieval_done
        app.logger.exception("%s: the check of the internal records failed", ref.investigation_id)
    finally:
        app.complete_async_task(task_id)  # /ping turns Healthy: the Runtime may end this session now


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """Accept an investigation at once and check the records in the background (``/ping`` busy meanwhile)."""
    ref, company = investigation_from(payload)
    state = reconstruct(memory_client(settings.region), ref)
    if state is None:
        raise HTTPException(400, f"no investigation {ref.investigation_id} in memory {ref.memory_id} for "
                                 f"{ref.actor_id}: the supervisor opens it before delegating")
    answer = {"worker": WORKER, "investigation_id": ref.investigation_id, "session_id": context.session_id}
    if state.retrieval_done is not None:
        return {**answer, "status": "already done", "findings": len(state.findings)}
    task_id = app.add_async_task("check_records", {"investigation_id": ref.investigation_id})  # HealthyBusy from now
    done = {str(finding.get("check")) for finding in state.findings}
    threading.Thread(target=check_records, args=(ref, company, done, task_id), daemon=True,
                     name=f"retrieval-{ref.investigation_id}").start()
    return {**answer, "status": "accepted", "checks": [check.name for check in internal_records.CHECKS],
            "lesson_hours": len(internal_records.CHECKS) * CHECK_MINUTES / 60}


if __name__ == "__main__":
    args = parse_args(description="Notebook 07's retrieval worker: internal records checked in the background",
                      default_port=8080)
    run_app(app, args.host, args.port)
