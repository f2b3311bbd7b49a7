"""AgentCore Memory for the lessons: make sure the endpoint is there, and get the lessons' memory.

One call, :func:`use_agentcore`, prepares this kernel for the persistence lessons:

* ``LAB_MODE=local`` (the default): make sure the local emulator
  (``python -m lab_helpers.emulator``) is running, reusing one that
  already answers on ``LAB_EMULATOR_PORT``, and point boto3 at it through
  ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` and ``..._CONTROL``, with dummy
  credentials and a region. The variables are set in ``os.environ``, so every
  server the kernel launches afterwards inherits them.
* ``LAB_MODE=aws``: nothing is changed; boto3 talks to the real service with
  the credentials it finds.

:func:`get_or_create_memory` then gives the lessons' memory id, the same code
in both modes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.exceptions import ClientError

from lab_helpers import config
from lab_helpers.processes import ServerProcess

#: The memory every lesson uses (AWS memory names: a letter, then letters, digits, '_'; 48 at most).
LESSON_MEMORY_NAME = "agentcore_longrun_lab"

#: The emulator's entry point, started as a script by :class:`ServerProcess`.
EMULATOR_SCRIPT = config.REPO_ROOT / "lab_helpers" / "emulator" / "__main__.py"

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL")


@dataclass(frozen=True)
class AgentCoreTarget:
    """Where the lessons' AgentCore calls go."""

    mode: config.Mode
    endpoint: str | None  # None: the real AWS endpoints
    data: str  # where the data lives, for people
    process: ServerProcess | None = None  # the emulator this kernel started, if it started one

    def __str__(self) -> str:
        if self.endpoint is None:
            return f"AgentCore: the real AWS service ({self.data})"
        how = "started by this kernel" if self.process else "already running, reused"
        return f"AgentCore: local emulator at {self.endpoint} ({how}); data in {self.data}"


def emulator_health(url: str) -> dict[str, Any] | None:
    """The JSON of GET {url}/health, or None when nothing answers there (or not with JSON).

    A client with TLS verification off: it asks plain http://, and a default ``httpx.get`` would parse the CA
    bundle on every call (this is polled while an emulator starts)."""
    try:
        with httpx.Client(verify=False, timeout=1.0) as client:
            response = client.get(url + "/health")
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def use_agentcore(settings: config.Settings | None = None) -> AgentCoreTarget:
    """Point this kernel (and the servers it starts) at AgentCore: the local emulator, or AWS in aws mode."""
    settings = settings or config.load()
    if settings.mode == "aws":
        return AgentCoreTarget("aws", None, f"region {settings.region}")
    endpoint = f"http://{settings.host}:{settings.emulator_port}"
    health = emulator_health(endpoint)
    process = None
    if health is None:
        process = ServerProcess(
            EMULATOR_SCRIPT, "--db", str(settings.emulator_db), port=settings.emulator_port, settings=settings,
            name="agentcore-local",
        ).start()
        health = emulator_health(endpoint) or {}
    elif health.get("server") != "agentcore-local":
        raise RuntimeError(
            f"port {settings.emulator_port} answers, but not as the AgentCore emulator ({health!r}); "
            "set LAB_EMULATOR_PORT to a free port"
        )
    for variable in ENDPOINT_VARIABLES:
        os.environ[variable] = endpoint
    # Any credentials sign a local request; never let boto3 look further (no instance metadata here).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local-emulator")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local-emulator")
    os.environ["AWS_REGION"] = settings.region
    os.environ["AWS_DEFAULT_REGION"] = settings.region  # botocore 1.44 reads only this one
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    return AgentCoreTarget("local", endpoint, str(health.get("db", settings.emulator_db)), process)


def get_or_create_memory(
    settings: config.Settings | None = None, name: str = LESSON_MEMORY_NAME, *, wait_seconds: float = 300
) -> str:
    """The id of the ACTIVE memory called ``name``, creating it if there is none (idempotent).

    Same code for the emulator and for AWS. Polls every second rather than the
    SDK's default ten, so a fresh local memory is ready at once.
    """
    from bedrock_agentcore.memory import MemoryClient

    settings = settings or config.load()
    client = MemoryClient(region_name=settings.region)
    deadline = time.monotonic() + wait_seconds
    while True:
        existing = [m for m in client.list_memories() if str(m.get("id", "")).startswith(name + "-")]
        active = [m for m in existing if m.get("status") == "ACTIVE"]
        if active:
            return str(active[0]["id"])
        if not existing:
            try:
                created = client.create_memory_and_wait(
                    name=name, strategies=[], description="agentcore-longrun-lab lessons",
                    poll_interval=1, max_wait=int(wait_seconds),
                )
                return str(created.get("id") or created["memoryId"])
            except ClientError as error:  # created meanwhile by another kernel: look again
                if "already exists" not in str(error):
                    raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"memory {name!r} did not become ACTIVE within {wait_seconds:g} s: {existing!r}")
        time.sleep(1)
