"""Who may call the emulator: loopback hosts only, no cross-site origin, a signed-looking AWS client.

The emulator can start processes (a runtime's session), so a web page the user happens to visit must not reach
it: by DNS rebinding (its own domain name pointed at 127.0.0.1: the browser then sends that name as ``Host``), by a
cross-site request (the browser sends its ``Origin``), or by a "simple" request that needs no CORS preflight (it
cannot carry an ``Authorization`` header). Driven in-process through Starlette's test client, headers as sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from emulator_kit import ROLE, SIGNED, artifact, write_agent
from lab_helpers.emulator.api import ALLOWED_HOSTS_VARIABLE, create_app

LOOPBACK = "http://127.0.0.1:8787"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return write_agent(tmp_path / "code")


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv(ALLOWED_HOSTS_VARIABLE, raising=False)
    with TestClient(create_app(tmp_path / "memory.db"), base_url=LOOPBACK) as client:
        yield client


def _runtime_body(code_dir: Path) -> dict[str, Any]:
    return {"agentRuntimeName": "rebound", "agentRuntimeArtifact": artifact(code_dir), "roleArn": ROLE}


def _runtimes(client: TestClient) -> list[Any]:
    return client.post("/runtimes/", headers=SIGNED).json()["agentRuntimes"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8787", "127.0.0.1.evil.example", "localhost.evil:80",
                                  "10.0.0.5:8787", "[::2]:8787", "0.0.0.0:8787", ""])
def test_a_foreign_host_gets_421_everywhere_and_changes_nothing(emulator: TestClient, code_dir: Path,
                                                                 host: str) -> None:
    for method, path, body in (("GET", "/health", None), ("GET", "/local/runtime-sessions", None),
                               ("POST", "/memories/create", {"name": "rebound", "eventExpiryDuration": 7}),
                               ("PUT", "/runtimes/", _runtime_body(code_dir))):
        answer = emulator.request(method, path, json=body, headers={**SIGNED, "host": host})
        assert answer.status_code == 421, (path, answer.text)
        assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        assert ALLOWED_HOSTS_VARIABLE in answer.json()["message"] and answer.headers["x-amzn-RequestId"]
    assert _runtimes(emulator) == []
    assert emulator.post("/memories/", json={}, headers=SIGNED).json()["memories"] == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8787", "localhost", "LOCALHOST:1234", "[::1]:8787"])
def test_loopback_hosts_are_answered(emulator: TestClient, host: str) -> None:
    assert emulator.get("/health", headers={"host": host}).json()["status"] == "ok"
    assert emulator.post("/runtimes/", headers={**SIGNED, "host": host}).status_code == 200


def test_more_hosts_can_be_allowed_for_a_container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_HOSTS_VARIABLE, "agentcore, Emulator.Internal:8787")
    with TestClient(create_app(tmp_path / "memory.db"), base_url=LOOPBACK) as client:
        for host in ("agentcore:8787", "emulator.internal", "127.0.0.1:8787"):
            assert client.get("/health", headers={"host": host}).status_code == 200, host
        assert client.get("/health", headers={"host": "other:8787"}).status_code == 421
    with TestClient(create_app(tmp_path / "other.db", allowed_hosts=frozenset({"*"})), base_url=LOOPBACK) as client:
        assert client.get("/health", headers={"host": "anything.example"}).status_code == 200
    # the emulator's own address (where session processes call it back) is always allowed
    app = create_app(tmp_path / "third.db", endpoint="http://agentcore-emulator:8787", allowed_hosts=frozenset())
    with TestClient(app, base_url=LOOPBACK) as client:
        assert client.get("/health", headers={"host": "agentcore-emulator:8787"}).status_code == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example",
                                    "http://evil.example:8787", "file://", "chrome-extension://abc"])
def test_a_cross_site_origin_gets_403(emulator: TestClient, code_dir: Path, origin: str) -> None:
    for method, path, body in (("GET", "/health", None), ("PUT", "/runtimes/", _runtime_body(code_dir)),
                               ("OPTIONS", "/runtimes/", None)):
        answer = emulator.request(method, path, json=body, headers={**SIGNED, "origin": origin,
                                                                    "access-control-request-method": "PUT"})
        assert answer.status_code == 403 and answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        assert "access-control-allow-origin" not in answer.headers
    assert _runtimes(emulator) == []


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8888", "http://localhost:8888", "http://[::1]:8888"])
def test_a_loopback_origin_is_answered(emulator: TestClient, origin: str) -> None:
    assert emulator.get("/health", headers={"origin": origin}).status_code == 200
    assert emulator.post("/runtimes/", headers={**SIGNED, "origin": origin}).status_code == 200


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwYXNz", "AWS4-HMAC-SHA256 garbage",
                                           "AWS4-HMAC-SHA256 Credential=a/2025/us-east-1/x/aws4_request, "
                                           "SignedHeaders=host, Signature=zz", "Bearer token-on-a-memory-route"])
def test_the_aws_api_needs_a_sigv4_shaped_authorization(emulator: TestClient, code_dir: Path,
                                                       authorization: str | None) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    for method, path, body in (("POST", "/memories/create", {"name": "unsigned", "eventExpiryDuration": 7}),
                               ("PUT", "/runtimes/", _runtime_body(code_dir)), ("POST", "/runtimes/", None),
                               ("OPTIONS", "/runtimes/", None), ("GET", "/no/such/route", None)):
        answer = emulator.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        assert "Missing Authentication Token" in answer.json()["message"] and answer.headers["x-amzn-RequestId"]
    assert _runtimes(emulator) == []


def test_the_local_routes_need_no_signature(emulator: TestClient) -> None:
    assert emulator.get("/health").json()["server"] == "agentcore-local"
    assert emulator.get("/local/runtime-sessions").json()["sessions"] == []
    missing = emulator.get("/local/no-such-route")
    assert missing.status_code == 404 and missing.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    wrong = emulator.post("/health")
    assert wrong.status_code == 405 and wrong.headers["x-amzn-RequestId"]


def test_an_invocation_also_takes_an_oauth_bearer_token(emulator: TestClient, code_dir: Path) -> None:
    created = emulator.put("/runtimes/", json=_runtime_body(code_dir), headers=SIGNED).json()
    path = f"/runtimes/{created['agentRuntimeArn'].replace('/', '%2F').replace(':', '%3A')}/invocations"
    short = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "short"}
    by_token = emulator.post(path, content=b"{}", headers={**short, "authorization": "Bearer eyJhbGciOi.x.y"})
    assert by_token.status_code == 400 and by_token.headers["x-amzn-ErrorType"] == "ValidationException"
    unsigned = emulator.post(path, content=b"{}", headers=short)
    assert unsigned.status_code == 403 and unsigned.headers["x-amzn-ErrorType"] == "AccessDeniedException"
