"""What the emulator's shape, hostile-input and security tests share: a private emulator, a tiny agent, raw calls.

Not a test module: ``tests/test_emulator_shapes.py``, ``test_emulator_hostile.py`` and ``test_emulator_security.py``
import it. The tiny agent is a standard-library HTTP server (``/ping``, ``/invocations``) that starts in a blink,
so a test can make the emulator start real session processes without waiting for Strands to import.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from lab_helpers import config
from lab_helpers.agentcore import EMULATOR_SCRIPT
from lab_helpers.emulator.api import LOCAL_AUTHORIZATION
from lab_helpers.processes import ServerProcess, free_port

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/agentcore-local"
#: Headers of a plain-HTTP caller that the emulator takes for a signed AWS client.
SIGNED = {"Authorization": LOCAL_AUTHORIZATION}

TINY_AGENT = textwrap.dedent('''
    """A minimal runtime agent: /ping says Healthy, /invocations echoes; a payload of "fail" is a 500."""
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
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if data == b'"fail"':
                self._reply(500, {"error": "asked to fail"})
            else:
                self._reply(200, {"pid": os.getpid(), "bytes": len(data)})

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Agent).serve_forever()
''')


def write_agent(directory: Path) -> Path:
    """The tiny agent as ``agent.py`` in ``directory`` (a runtime's code directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "agent.py").write_text(TINY_AGENT)
    return directory


def start_emulator(tmp: Path) -> ServerProcess:
    """A private emulator on a free port, its database and logs under ``tmp``, runtimes on CI's clock."""
    settings = config.load(time_scale=0.02, logs_dir=tmp / "logs", emulator_port=free_port())
    return ServerProcess(EMULATOR_SCRIPT, "--db", str(tmp / "memory.db"), port=settings.emulator_port,
                         settings=settings, name="agentcore-local").start()


def clients(url: str) -> tuple[Any, Any]:
    """(control, data) boto3 clients on the emulator: signed with dummy keys, no retries (an error is an error)."""
    made = [boto3.client(name, endpoint_url=url, region_name=REGION, aws_access_key_id="local-emulator",
                         aws_secret_access_key="local-emulator",
                         config=Config(retries={"max_attempts": 1, "mode": "standard"}))
            for name in ("bedrock-agentcore-control", "bedrock-agentcore")]
    return made[0], made[1]


def artifact(directory: Path, entry_point: str = "agent.py") -> dict[str, Any]:
    return {"codeConfiguration": {"code": {"s3": {"bucket": "agentcore-local", "prefix": str(directory)}},
                                  "runtime": "PYTHON_3_11", "entryPoint": [entry_point]}}
