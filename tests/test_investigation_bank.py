"""servers/bank_service.py: bad requests, one request per investigation, deliveries by InvokeAgentRuntime in a new
session each (a duplicate on purpose, a retry after a failure, a 4xx taken as final), and a restart that keeps the
queue. The callback runtime is a tiny standard-library agent (it starts in a blink), not the compliance worker."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import LOCAL_HTTP, local_agentcore
from investigations_kit import start_bank
from lab_helpers import deploy
from lab_helpers.processes import ServerProcess
from lab_helpers.waiting import eventually

#: The callback runtime: answers a delivery with its session and pid; "Flaky Ltd" fails (500) the first delivery of
#: each request, "Rejected Inc" is refused (400).
CALLBACK_AGENT = textwrap.dedent('''
    import argparse, json, os, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Agent(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, doc):
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._reply(200, {"status": "Healthy", "time_of_last_update": int(time.time())})

        def do_POST(self):
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            marker = os.path.join(os.environ["MARKER_DIR"], payload["delivery_id"])
            if payload["company"] == "Rejected Inc":
                return self._reply(400, {"error": "unknown investigation"})
            if payload["company"] == "Flaky Ltd" and not os.path.exists(marker):
                open(marker, "w").close()
                return self._reply(500, {"error": "crashed mid-review"})
            self._reply(200, {"status": "filed", "records": len(payload["records"]), "pid": os.getpid(),
                              "session": self.headers.get("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id")})

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Agent).serve_forever()
''')


@dataclass
class BankLab:
    bank: ServerProcess
    arn: str

    def post(self, body: Any, **headers: str) -> httpx.Response:
        return LOCAL_HTTP.post(f"{self.bank.base_url}/requests", json=body, headers=headers)

    def get(self, request_id: str) -> dict[str, Any]:
        return LOCAL_HTTP.get(f"{self.bank.base_url}/requests/{request_id}").json()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BankLab]:
    tmp = tmp_path_factory.mktemp("bank")
    code, markers = tmp / "agent", tmp / "markers"
    code.mkdir()
    markers.mkdir()
    (code / "agent.py").write_text(CALLBACK_AGENT)
    with local_agentcore(tmp / "emulator") as local:
        runtime = deploy.deploy("bank_callback", code, "agent.py", settings=local.settings,
                                environment={"MARKER_DIR": str(markers)})
        bank = start_bank(local.settings, tmp, delay_days=30)
        try:
            yield BankLab(bank, runtime.arn)
        finally:
            bank.stop()


def request(lab: BankLab, investigation: str, company: str = "TechCorp", delay_days: float = 0.02) -> dict[str, Any]:
    return {"investigation_id": f"inv-{investigation}-0123456789ab", "company": company, "callback_arn": lab.arn,
            "delay_days": delay_days}


def delivered(lab: BankLab, request_id: str, count: int = 1) -> dict[str, Any]:
    """The request once ``count`` of its deliveries have ended (delivered, failed or rejected)."""
    return eventually(lambda: (r := lab.get(request_id)) and sum(d["ended_at"] is not None for d in r["deliveries"])
                      >= count and r, 60, 0.05, what=f"{count} deliveries of {request_id}",
                      show=lambda: str([(d["status"], d["attempts"]) for d in lab.get(request_id)["deliveries"]]))


@pytest.mark.parametrize(("body", "reason"), [
    ("not json", "the body must be JSON"),
    ([1, 2], "the body must be a JSON object"),
    ({"investigation_id": "techcorp"}, "investigation_id must look like"),
    ({"investigation_id": "inv-a-0123456789ab", "company": " "}, "'company' must name the company"),
    ({"investigation_id": "inv-a-0123456789ab", "company": "A", "callback_arn": "arn:aws:s3:::bucket"},
     "'callback_arn' must be the ARN of the AgentCore runtime"),
])
def test_a_bad_request_is_a_400_with_the_reason(lab: BankLab, body: Any, reason: str) -> None:
    sent = LOCAL_HTTP.post(f"{lab.bank.base_url}/requests", content=body) if isinstance(body, str) else lab.post(body)
    assert sent.status_code == 400 and reason in sent.json()["error"], sent.text


def test_a_bad_delay_unknown_requests_and_foreign_callers_are_refused(lab: BankLab) -> None:
    assert "'delay_days' must be a number" in lab.post({**request(lab, "delay"), "delay_days": -1}).json()["error"]
    assert LOCAL_HTTP.get(f"{lab.bank.base_url}/requests/req-nothing").status_code == 404
    assert LOCAL_HTTP.post(f"{lab.bank.base_url}/requests/req-nothing/redeliver").status_code == 404
    assert lab.post(request(lab, "host"), Host="bank.example.com").status_code == 421
    assert lab.post(request(lab, "origin"), Origin="https://evil.example").status_code == 403
    queued = {r["investigation_id"] for r in LOCAL_HTTP.get(f"{lab.bank.base_url}/requests").json()["requests"]}
    assert not queued & {request(lab, name)["investigation_id"] for name in ("delay", "host", "origin")}


def test_one_request_per_investigation_delivered_then_redelivered_in_new_sessions(lab: BankLab) -> None:
    first = lab.post(request(lab, "twice"))
    again = lab.post(request(lab, "twice"))
    assert (first.status_code, again.status_code) == (202, 200)
    request_id = first.json()["request_id"]
    assert again.json()["request_id"] == request_id and len(again.json()["deliveries"]) == 1
    done = delivered(lab, request_id)
    assert done["status"] == "delivered" and done["deliveries"][0]["answer"]["records"] == 2
    assert LOCAL_HTTP.post(f"{lab.bank.base_url}/requests/{request_id}/redeliver").status_code == 202
    both = delivered(lab, request_id, 2)["deliveries"]
    assert [d["reason"] for d in both] == ["due", "redeliver"] and all(d["status"] == "delivered" for d in both)
    sessions = [d["answer"]["session"] for d in both]
    assert sessions == [d["sessions"][0] for d in both] and len(set(sessions)) == 2, "each delivery a new session"


def test_a_failed_delivery_is_retried_in_a_new_session_and_a_4xx_is_final(lab: BankLab) -> None:
    flaky = lab.post(request(lab, "flaky", "Flaky Ltd")).json()["request_id"]
    refused = lab.post(request(lab, "refused", "Rejected Inc")).json()["request_id"]
    retried = delivered(lab, flaky)["deliveries"][0]
    assert retried["status"] == "delivered" and retried["attempts"] == 2 and len(set(retried["sessions"])) == 2
    assert retried["answer"]["session"] == retried["sessions"][1]
    rejected = delivered(lab, refused)["deliveries"][0]
    assert rejected["status"] == "rejected" and rejected["attempts"] == 1 and "(400)" in rejected["error"]


def test_a_restarted_bank_still_delivers_what_it_owes(lab: BankLab) -> None:
    request_id = lab.post(request(lab, "restart", delay_days=0.5)).json()["request_id"]  # due in 6 s
    lab.bank.restart()
    assert lab.get(request_id)["status"] == "pending"
    assert delivered(lab, request_id)["status"] == "delivered"
