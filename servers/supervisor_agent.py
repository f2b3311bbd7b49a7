"""Notebook 07's supervisor: a Strands agent that opens an investigation, delegates it, and reports from Memory.

"Investigate TechCorp": the agent calls ``open_investigation`` (a new investigation id, its plan recorded in
Memory as the ``opened`` step), then ``delegate`` twice, to the retrieval worker and to the compliance worker,
and answers at once with the plan and the investigation id. It never waits for the work, which takes days.
"What did we find in inv-...?", any day later, in any new session: ``investigation_status`` rebuilds the
investigation from Memory alone (:func:`patterns.investigation_log.reconstruct`) and recalls the long-term
records the findings became (notebook 06's strategies); the agent answers with the report and its evidence, or
with where things stand, and records that the user was told (``outcome_told``). That is how the supervisor
learns the outcome: the compliance worker files its report into the investigation's Memory, and whichever
supervisor session the user reaches next reads it there. No process of the supervisor lives in between.

Delegation is ``InvokeAgentRuntime`` on the worker's runtime (its ARN in ``LAB_RETRIEVAL_ARN`` /
``LAB_COMPLIANCE_ARN``, set at deploy time by :func:`deploy_team`) with a **new session id** each time: a new
microVM for every piece of work. The worker answers ``accepted`` at once, and the supervisor records ``delegated``
with the worker's session. The call runs in the supervisor's background (a thread, tracked with
``add_async_task`` so ``/ping`` says ``HealthyBusy`` and the Runtime keeps the session until the worker has
accepted): a worker's first invocation includes starting its microVM, and the user's answer does not wait for
that. Should a session end before a worker accepted, the investigation shows no ``delegated`` step for it, and
asking for the status delegates again (the workers look in Memory first, so a second delegation repeats nothing).

The model: ``LAB_MODEL`` (:func:`lab_helpers.models.load_model`); offline by default, a deterministic stand-in
(:class:`SupervisorOfflineModel`) that plans with these tools; Bedrock or a local LLM follows the system prompt.
``POST /invocations`` with ``{"prompt"[, "memory_id"]}`` -> ``{"answer", "investigation_id", "tools", ...}``.
AWS counterpart: the same code on AgentCore Runtime; the runtime's role also needs
``bedrock-agentcore:InvokeAgentRuntime`` on the workers' runtimes.
Run: ``python servers/supervisor_agent.py --port 8080``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from starlette.exceptions import HTTPException
from strands import Agent, tool
from strands.types.content import Messages

from lab_helpers import config
from lab_helpers.http_serving import parse_args, run_app
from lab_helpers.models import OFFLINE_LABEL, OfflineModel, Turn, describe_model, load_model, tool_call_for, tool_payload
from patterns.investigation_log import (ACTOR_VARIABLE, DEFAULT_ACTOR, MEMORY_VARIABLE, Investigation,
                                        InvestigationRef, check_investigation_id, find_investigation_id,
                                        investigation_ids, invoke_agent, memory_client, new_investigation_id,
                                        new_runtime_session_id, reconstruct, recall, record)
from patterns.lesson_calendar import MAX_LIFETIME

WORKERS = {"retrieval": "LAB_RETRIEVAL_ARN", "compliance": "LAB_COMPLIANCE_ARN"}
PLAN = [
    "the retrieval worker checks the internal records (accounts, transactions) for known fraud patterns; its "
    "findings reach Memory within the day",
    "the compliance worker asks the bank for the company's records; the bank takes about three days, then calls "
    "the compliance worker back",
    "the compliance worker reviews the bank's records against the findings and files the compliance report, once",
]
SYSTEM_PROMPT = (
    "You supervise fraud investigations that take days. To start one, call open_investigation with the company, "
    "then delegate it to the 'retrieval' worker and to the 'compliance' worker, then answer at once with the plan "
    "and the investigation id: never wait for the work. When the user asks what was found or where an "
    "investigation stands, call investigation_status and answer with the report and its evidence, or where it "
    "stands, from what it returns."
)

settings = config.load()
app = BedrockAgentCoreApp()
app.logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class Team:
    """Who the supervisor works with: the memory, the investigating team (actor) and the workers' runtimes."""

    memory_id: str
    actor_id: str
    workers: dict[str, str]  # worker name -> runtime ARN

    @classmethod
    def from_environment(cls, memory_id: str | None = None) -> Team:
        memory = memory_id or os.environ.get(MEMORY_VARIABLE, "").strip()
        if not memory:
            raise ValueError(f"no memory id: send 'memory_id' or deploy with {MEMORY_VARIABLE} in the environment")
        return cls(memory, os.environ.get(ACTOR_VARIABLE, "").strip() or DEFAULT_ACTOR,
                   {name: os.environ.get(variable, "").strip() for name, variable in WORKERS.items()})

    def ref(self, investigation_id: str) -> InvestigationRef:
        return InvestigationRef(self.memory_id, self.actor_id, check_investigation_id(investigation_id))


def delegate_in_background(team: Team, ref: InvestigationRef, worker: str, payload: dict[str, Any]) -> str:
    """InvokeAgentRuntime on ``worker`` in a new session, from a thread ``/ping`` reports; returns the session id.

    When the worker has accepted, the ``delegated`` step goes to Memory with the worker's session and answer.
    """
    session_id = new_runtime_session_id()
    task_id = app.add_async_task(f"delegate_{worker}", {"investigation_id": ref.investigation_id})

    def run() -> None:
        try:
            answer = invoke_agent(team.workers[worker], payload, session_id, settings.region)
            status = answer.get("status") if isinstance(answer, dict) else str(answer)
            record(memory_client(settings.region), ref, "delegated",
                   {"worker": worker, "session_id": session_id, "status": status}, by="supervisor")
            app.logger.info("%s: %s %s", ref.investigation_id, worker, status)
        except Exception:  # noqa: BLE001 - logged; Memory shows no delegation, the next status check delegates again
            app.logger.exception("%s: delegating to %s failed", ref.investigation_id, worker)
        finally:
            app.complete_async_task(task_id)

    threading.Thread(target=run, daemon=True, name=f"delegate-{worker}-{ref.investigation_id}").start()
    return session_id


def build_tools(team: Team) -> list[Any]:
    """The supervisor's three tools, bound to its team."""

    @tool
    def open_investigation(company: str) -> dict[str, Any]:
        """Open a new investigation of `company`: its id, and the plan, recorded in Memory."""
        company = company.strip()
        if not company:
            raise ValueError("name the company to investigate")
        ref = team.ref(new_investigation_id(company))
        record(memory_client(settings.region), ref, "opened", {"company": company, "plan": PLAN}, by="supervisor",
               text=f"Investigation {ref.investigation_id} of {company} was opened.")
        return {"investigation_id": ref.investigation_id, "company": company, "plan": PLAN}

    @tool
    def delegate(investigation_id: str, worker: str) -> dict[str, Any]:
        """Hand the investigation to a worker ('retrieval' or 'compliance'); returns at once, the work takes days."""
        if worker not in WORKERS:
            raise ValueError(f"worker must be one of {', '.join(WORKERS)}, got {worker!r}")
        if not team.workers.get(worker):
            raise ValueError(f"no runtime for the {worker} worker: deploy with {WORKERS[worker]} set")
        ref = team.ref(investigation_id)
        state = reconstruct(memory_client(settings.region), ref)
        if state is None:
            raise ValueError(f"no investigation {investigation_id}: open one first")
        payload: dict[str, Any] = {"investigation_id": investigation_id, "company": state.company,
                                   "memory_id": team.memory_id}
        if worker == "retrieval":
            payload["action"] = "investigate"
        else:  # the bank calls this runtime back when the records are ready
            payload.update(action="request", callback_arn=team.workers["compliance"])
        session_id = delegate_in_background(team, ref, worker, payload)
        return {"investigation_id": investigation_id, "worker": worker, "status": "delegating",
                "worker_session_id": session_id}

    @tool
    def investigation_status(investigation_id: str = "") -> dict[str, Any]:
        """Where an investigation stands, from Memory: its steps, findings, the bank request, the report.

        Without an id: the team's latest investigation.
        """
        client = memory_client(settings.region)
        if not investigation_id:
            known = investigation_ids(client, team.memory_id, team.actor_id)
            if not known:
                return {"status": "none", "message": "no investigation has been opened yet"}
            investigation_id = known[0]
        ref = team.ref(investigation_id)
        state = reconstruct(client, ref)
        if state is None:
            raise ValueError(f"Memory holds no investigation {investigation_id}")
        redelegated = [worker for worker in WORKERS if _delegation_lost(state, worker)]
        for worker in redelegated:  # a session that ended before the worker accepted: delegate again
            delegate(investigation_id, worker)
        recalled = recall(client, ref, f"{state.company} {investigation_id} findings report")
        if state.report is not None:
            record(client, ref, "outcome_told", {"report_event_id": state.report["event_id"]}, by="supervisor",
                   once_as="outcome-told")
        return {**state.summary(), "report": state.report and state.report.get("text"),
                "recommendation": state.report and state.report.get("recommendation"),
                "findings": [f.get("summary") for f in state.findings],
                "bank_request": state.bank_request and state.bank_request.get("request_id"),
                "redelegated": redelegated, "recalled": recalled}

    return [open_investigation, delegate, investigation_status]


def _delegation_lost(state: Investigation, worker: str) -> bool:
    """No sign of ``worker`` in Memory (no ``delegated`` step, none of its own steps) a session's lifetime later.

    The delegating session was ended before the worker accepted: by now any session of that day has reached its
    maximum lifetime, so nothing is on its way.
    """
    own = {"retrieval": ("finding", "retrieval_done"), "compliance": ("bank_requested", "bank_delivered")}[worker]
    if worker in state.delegations or any(entry.kind in own for entry in state.entries):
        return False
    return time.time() - state.opened_at > settings.scaled(MAX_LIFETIME)


# -- the offline stand-in ----------------------------------------------------------------------------------
_INVESTIGATE = re.compile(r"\b(?i:investigat\w*)\s+(?i:the\s+)?(?i:company\s+)?([A-Z][\w&.-]*(?:\s+[A-Z][\w&.-]*)*)")
_STATUS = re.compile(r"\b(?:what did (?:we|you) find|find(?:ing)?s|status|stand|report|outcome|where are we"
                     r"|what happened|news|progress)\b", re.IGNORECASE)


def _tool_results(messages: Messages, name: str) -> list[dict[str, Any]]:
    """What every successful call of tool ``name`` in this conversation returned, oldest first."""
    found = []
    for message in messages:
        for block in message.get("content", []):
            result = block.get("toolResult")
            if result and result.get("status") != "error" and tool_call_for(result["toolUseId"], messages)[0] == name:
                payload = tool_payload(result)
                if isinstance(payload, dict):
                    found.append(payload)
    return found


class SupervisorOfflineModel(OfflineModel):
    """The offline stand-in (no AI), taught the supervisor's two skills: start an investigation, report on one.

    "Investigate <Company>": ``open_investigation``, ``delegate`` to each worker, then the plan. A question about
    findings, status or the report: ``investigation_status`` (the id in the question, else the latest), then the
    answer in words. One tool call per turn, as a model makes them; the same conversation gives the same turns.
    """

    def respond(self, messages: Messages, tool_names: list[str], background_selectable: Any = ()) -> Turn:
        last = messages[-1] if messages else {}
        results = [block["toolResult"] for block in last.get("content", []) if "toolResult" in block]
        if last.get("role") != "user":
            return Turn(OFFLINE_LABEL + "Tell me which company to investigate, or ask what we found.")
        if results:
            return self._next(messages, results[-1])
        said = " ".join(block["text"] for block in last["content"] if "text" in block)
        wanted = _INVESTIGATE.search(said)
        if wanted and not _STATUS.search(said):
            return Turn(f"{OFFLINE_LABEL}Opening an investigation of {wanted.group(1)}.", "open_investigation",
                        {"company": wanted.group(1)})
        if _STATUS.search(said) or find_investigation_id(said):
            investigation_id = find_investigation_id(said) or ""
            return Turn(f"{OFFLINE_LABEL}Reading the investigation from Memory.", "investigation_status",
                        {"investigation_id": investigation_id})
        return Turn(OFFLINE_LABEL + "I can start an investigation (\"Investigate TechCorp\") or tell you what we "
                    "found (\"What did we find in inv-...?\"). For a real model, set LAB_MODEL.")

    def _next(self, messages: Messages, result: dict[str, Any]) -> Turn:
        name, asked = tool_call_for(result.get("toolUseId", ""), messages)
        payload = tool_payload(result)
        if result.get("status") == "error" or not isinstance(payload, dict):
            return Turn(f"{OFFLINE_LABEL}{name} failed: {payload}")
        if name == "open_investigation":
            return Turn(f"{OFFLINE_LABEL}Delegating to the retrieval worker.", "delegate",
                        {"investigation_id": payload["investigation_id"], "worker": "retrieval"})
        if name == "delegate" and asked.get("worker") == "retrieval":
            return Turn(f"{OFFLINE_LABEL}Delegating to the compliance worker.", "delegate",
                        {"investigation_id": payload["investigation_id"], "worker": "compliance"})
        if name == "delegate":
            opened = _tool_results(messages, "open_investigation")[-1]
            steps = "\n".join(f"{number}. {step}" for number, step in enumerate(opened["plan"], start=1))
            return Turn(f"{OFFLINE_LABEL}Opened investigation {opened['investigation_id']} of {opened['company']}. "
                        f"The plan:\n{steps}\nBoth workers have it; I do not wait for them. Ask me \"What did we "
                        f"find in {opened['investigation_id']}?\" any time: the answer comes from Memory.")
        return Turn(OFFLINE_LABEL + _status_words(payload))


def _status_words(status: dict[str, Any]) -> str:
    """An ``investigation_status`` answer in words: the report and its evidence, or where things stand."""
    if status.get("status") == "none":
        return "No investigation has been opened yet."
    head = f"Investigation {status['investigation']} of {status['company']}: {status['stage']}."
    evidence = "\n".join(f"- {finding}" for finding in status.get("findings") or []) or "- none yet"
    if status.get("report"):
        text = f"{head}\n{status['report']}\nEvidence from the internal records:\n{evidence}"
    else:
        waiting = f" Bank request {status['bank_request']} is pending." if status.get("bank_request") else ""
        text = f"{head}{waiting}\nFindings so far:\n{evidence}"
    if status.get("recalled"):
        text += "\nLong-term memory recalls:\n" + "\n".join(f"- {line}" for line in status["recalled"][:5])
    if status.get("redelegated"):
        text += f"\n(Delegated again to: {', '.join(status['redelegated'])}: Memory showed no sign of them.)"
    return text


# -- the app -----------------------------------------------------------------------------------------------
def build_agent(team: Team) -> Agent:
    """A Strands agent with the supervisor's tools, built afresh for each invocation (nothing kept in the process)."""
    model = SupervisorOfflineModel() if settings.model == "offline" else load_model(settings)
    return Agent(model=model, tools=build_tools(team), system_prompt=SYSTEM_PROMPT, callback_handler=None)


@app.entrypoint
def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """One user turn: ``{"prompt"[, "memory_id"]}`` -> the answer, the investigation it is about, the tools used."""
    if not isinstance(payload, dict):
        raise HTTPException(400, f"the payload must be a JSON object with 'prompt', got {type(payload).__name__}")
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise HTTPException(400, "the invocation needs 'prompt': what the user says, e.g. \"Investigate TechCorp\"")
    try:
        team = Team.from_environment(payload.get("memory_id"))
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    agent = build_agent(team)
    answer = str(agent(prompt)).strip()
    used = [block["toolUse"]["name"] for message in agent.messages for block in message.get("content", [])
            if "toolUse" in block]
    mentioned = find_investigation_id(answer) or find_investigation_id(prompt)
    return {"answer": answer, "investigation_id": mentioned, "tools": used, "model": describe_model(agent.model),
            "session_id": context.session_id}


# -- deploying the team (what a notebook does) ------------------------------------------------------------
#: The team's runtimes, in the order to deploy them (the workers' ARNs go into the supervisor's environment).
TEAM = {"retrieval": "retrieval_agent.py", "compliance": "compliance_agent.py", "supervisor": "supervisor_agent.py"}


def team_environment(name: str, *, memory_id: str, clock: float, mode: str, bank_url: str = "",
                     worker_arns: dict[str, str] | None = None, actor_id: str = DEFAULT_ACTOR) -> dict[str, str]:
    """The ``environment`` to deploy runtime ``name`` of :data:`TEAM` with (``lab_helpers.deploy.deploy``).

    Every runtime: the memory and the team's actor, and locally the lesson clock ``clock``
    (:func:`patterns.lesson_calendar.lesson_clock`) as its ``LAB_TIME_SCALE``; AWS's lifecycle defaults stay (900 s
    idle, 28800 s lifetime). The compliance worker: the bank's URL (on AWS one the runtime can reach). The
    supervisor: the workers' ARNs (``worker_arns``, by name). In AWS mode nothing is scaled, and the internal
    records are generated under ``/tmp`` of each microVM.
    """
    if name not in TEAM:
        raise ValueError(f"name must be one of {', '.join(TEAM)}, got {name!r}")
    environment = {MEMORY_VARIABLE: memory_id, ACTOR_VARIABLE: actor_id}
    if mode == "local":
        environment["LAB_TIME_SCALE"] = repr(clock)
    else:
        environment["LAB_INTERNAL_DB"] = "/tmp/internal-records.sqlite"
    if name == "compliance":
        if not bank_url:
            raise ValueError("the compliance worker needs bank_url")
        environment["LAB_BANK_URL"] = bank_url
    if name == "supervisor":
        missing = [worker for worker in WORKERS if not (worker_arns or {}).get(worker)]
        if missing:
            raise ValueError(f"the supervisor needs worker_arns for {', '.join(missing)}: deploy the workers first")
        environment.update({WORKERS[worker]: arn for worker, arn in (worker_arns or {}).items() if worker in WORKERS})
    return environment


if __name__ == "__main__":
    args = parse_args(description="Notebook 07's supervisor: delegates investigations, reports from Memory",
                      default_port=8080)
    run_app(app, args.host, args.port)
