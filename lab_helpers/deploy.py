"""Deploy agents and MCP servers to AgentCore Runtime, and call them: the same code in both modes.

:func:`deploy` makes a runtime from a directory of Python code and an entry point, :func:`wait_ready`
waits until it serves, :func:`invoke` calls it, :func:`stop_sessions` ends its live sessions, :func:`destroy`
removes what :func:`deploy` created.
All of it goes through boto3's ``bedrock-agentcore-control`` and ``bedrock-agentcore`` clients with
exactly AWS's API; only the artifact (where the code is) and the role differ between the modes.

**Local mode** (``LAB_MODE=local``): the clients reach the local emulator through
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE(_CONTROL)``, set by :func:`lab_helpers.agentcore.use_agentcore`
(call it first). No S3, no IAM: the artifact names the source directory on this machine, and the
emulator runs ``python <prefix>/<entryPoint[0]> --host 127.0.0.1 --port <port>`` per runtime session::

    agentRuntimeArtifact={"codeConfiguration": {
        "code": {"s3": {"bucket": "agentcore-local", "prefix": "/abs/path/to/source_dir"}},
        "runtime": "PYTHON_3_11", "entryPoint": ["agent_app.py"]}}
    roleArn="arn:aws:iam::123456789012:role/agentcore-local"

Time, locally: ``deploy`` puts the caller's ``time_scale`` in the runtime's ``environmentVariables`` as
``LAB_TIME_SCALE`` (unless ``environment`` sets it), and the emulator runs that runtime's lifecycle rules (idle
timeout, maximum lifetime) on that clock, and its code at that pace, whatever scale the emulator itself was
started with. So a notebook at ``time_scale=0.1`` sees AWS's 60-second idle timeout last 6 s, and epochs of 0.1 s
(:attr:`Deployment.time_scale`). In AWS mode nothing is scaled: the Runtime's clock is AWS's, and the code runs
at its default pace (time scale 1). The sessions of every local runtime deployed by this process are stopped
when the process exits (a kernel shut down after a failing cell leaves none running in a shared emulator).

**AWS mode** (``LAB_MODE=aws``), direct code deployment: the source directory is zipped (its files at the
zip root, so the entry point is too; plus this repository's ``lab_helpers`` and ``patterns`` packages, so
their imports work; plus the third-party packages, built for Linux arm64, and the ``requirements.txt`` they were
built from, see below), uploaded to ``s3://agentcore-longrun-lab-<account>-<region>/
runtimes/<name>/<sha256>.zip`` (bucket created or reused), and run with the execution role
``AgentCoreLongrunLabRuntimeRole`` (created or reused; policy in :func:`role_policy`)::

    agentRuntimeArtifact={"codeConfiguration": {
        "code": {"s3": {"bucket": "agentcore-longrun-lab-<account>-<region>", "prefix": "runtimes/<name>/<sha>.zip"}},
        "runtime": "PYTHON_3_11", "entryPoint": ["agent_app.py"]}}
    roleArn="arn:aws:iam::<account>:role/AgentCoreLongrunLabRuntimeRole"

Limits of the AWS form, kept simple on purpose:

* AgentCore runs the zip as it is: it does not install ``requirements.txt``. So ``deploy`` puts the third-party
  packages in the zip itself, as AWS's starter toolkit does (:mod:`lab_helpers.runtime_packages`): pip downloads
  the Linux arm64 wheels of the source's own ``requirements.txt`` (else ``servers/requirements.txt``, what the
  servers import at run time) with the repository's ``requirements.txt`` as constraints, binary wheels only;
  they are cached under ``build/cache/runtime-packages/`` by the hash of the requirements (the first deploy
  takes a minute, later ones none) and unpacked at the zip's root. A package without an aarch64 wheel stops the
  deploy, before any AWS call, with its name. ``packages_dir`` overrides all of it: a directory of packages
  built some other way (``pip install --target``), put in the zip as it is.
* The entry point is started without arguments on AWS, and must listen on ``0.0.0.0`` (port 8080 with
  ``/invocations`` and ``/ping`` for HTTP agents, 8000 with ``/mcp`` for MCP servers). The workbench's
  servers take their address from ``--host`` and default to 127.0.0.1, so ``deploy`` passes
  ``LAB_HOST=0.0.0.0`` in ``environmentVariables``: **an entry point must bind** ``os.environ["LAB_HOST"]``
  **when no** ``--host`` **is given**, or the runtime never becomes reachable.

Every deploy is idempotent: a runtime with the same name is reused (and updated when its configuration
differs), and the zip's key is its content hash, so unchanged code uploads nothing and updates nothing.
What this helper created is recorded in ``<state_dir>/runtime-deployments.json`` (per mode and region);
:func:`destroy` deletes exactly that, and never a runtime, bucket or role that was there before.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import re
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from botocore.exceptions import ClientError

from lab_helpers import config, runtime_packages
from lab_helpers.emulator.runtime_sessions import LOCAL_BUCKET  # the emulator's marker for "a local directory"
from lab_helpers.emulator.runtime_sessions import TIME_SCALE_VARIABLE
from lab_helpers.timeline import runtime_report

Protocol = Literal["HTTP", "MCP"]

#: AWS's rule for ``agentRuntimeName``: a letter, then letters, digits, '_' (48 at most; no '-').
NAME_PATTERN = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")
#: botocore's bounds for ``idleRuntimeSessionTimeout`` and ``maxLifetime`` (seconds).
MIN_TIMEOUT, MAX_TIMEOUT = 60, 1_209_600
#: AWS rejects shorter runtime session ids (botocore checks it too, with a less helpful message).
MIN_SESSION_ID = 33

LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/agentcore-local"
ROLE_NAME = "AgentCoreLongrunLabRuntimeRole"
ROLE_POLICY_NAME = "AgentCoreLongrunLabRuntimePolicy"
PYTHON_RUNTIME = "PYTHON_3_11"
STATE_FILE = "runtime-deployments.json"

#: The fields of a runtime's configuration that deploy() sets, compared to decide whether to update.
CONFIG_KEYS = ("agentRuntimeArtifact", "roleArn", "networkConfiguration", "protocolConfiguration",
               "lifecycleConfiguration", "environmentVariables", "requestHeaderConfiguration")
#: Never zipped, besides bytecode and anything hidden (.venv, .git, .ipynb_checkpoints): nothing the code runs.
SKIPPED_PARTS = {"__pycache__", "venv", "node_modules"}
#: The largest deployment zip direct code deployment takes (the starter toolkit refuses larger ones too).
MAX_ZIP_BYTES = 250 * 1024 * 1024


class DeploymentError(RuntimeError):
    """AgentCore could not create or update a runtime; the message carries AWS's ``failureReason``."""


@dataclass(frozen=True)
class Deployment:
    """One deployed runtime, as :func:`deploy` left it."""

    name: str
    arn: str
    runtime_id: str
    version: str
    mode: config.Mode
    created: bool  # True only when this call created the runtime; False: an existing one was reused
    updated: bool = False  # True: an existing runtime got the new configuration
    status: str = "CREATING"
    protocol: Protocol = "HTTP"
    #: The runtime's clock: each of its durations (idle timeout, maximum lifetime, a training epoch) lasts this
    #: many times its length in real seconds; locally the deploying settings' time_scale, on AWS always 1.
    time_scale: float = 1.0


# -- clients -----------------------------------------------------------------------------------------
def _client(service: str, settings: config.Settings, **client_config: Any) -> Any:
    """A boto3 client for ``service`` in the settings' region (the one seam tests replace).

    In local mode a missing endpoint variable would send the request to real AWS with the emulator's
    fake role and bucket, so it is refused with the fix instead.
    """
    import boto3
    from botocore.config import Config

    if settings.mode == "local" and service.startswith("bedrock-agentcore"):
        variable = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
        if not os.environ.get(variable):
            raise RuntimeError(
                f"local mode needs the AgentCore emulator, but {variable} is not set: "
                "call lab_helpers.agentcore.use_agentcore() first (or set LAB_MODE=aws)"
            )
    return boto3.client(service, region_name=settings.region, config=Config(**client_config) if client_config else None)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# -- validation --------------------------------------------------------------------------------------
def _validate(name: str, source: Path, entry_point: str, protocol: str, environment: dict[str, str],
              idle_timeout: int, max_lifetime: int, request_headers: list[str] | None) -> None:
    """Refuse bad input before any AWS call, with a message that says what to change."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"runtime name must be a letter, then letters, digits or '_' (48 at most; no '-'), "
                         f"got {name!r}")
    if not source.is_dir():
        raise ValueError(f"source must be a directory with the code to deploy, got {str(source)!r}")
    entry = Path(entry_point)
    if not entry_point or entry.is_absolute() or ".." in entry.parts:
        raise ValueError(f"entry_point must be a path relative to the source directory, got {entry_point!r}")
    if not (source / entry).is_file():
        raise ValueError(f"entry point {entry_point!r} not found in {source}")
    if protocol not in ("HTTP", "MCP"):
        raise ValueError(f"protocol must be 'HTTP' (an agent) or 'MCP' (an MCP server), got {protocol!r}")
    for label, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime)):
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
            raise ValueError(f"{label} must be whole seconds between {MIN_TIMEOUT} and {MAX_TIMEOUT}, got {value!r}")
    if idle_timeout > max_lifetime:
        raise ValueError(f"idle_timeout ({idle_timeout} s) cannot be longer than max_lifetime ({max_lifetime} s)")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items()):
        raise ValueError("environment must map strings to strings")
    if len(environment) > 49:  # AWS allows 50 variables; deploy() may add LAB_HOST or LAB_TIME_SCALE
        raise ValueError(f"environment can have at most 49 variables, got {len(environment)}")
    if request_headers is not None and not (1 <= len(request_headers) <= 20):
        raise ValueError(f"request_headers must list 1 to 20 header names, got {len(request_headers)}")


# -- the AWS-mode artifact: zip, bucket, role --------------------------------------------------------
def _files(root: Path) -> list[Path]:
    """The files under ``root`` worth shipping: no hidden directories, caches or bytecode."""
    return sorted(
        path for path in root.rglob("*")
        if path.is_file() and path.suffix != ".pyc"
        and not any(part.startswith(".") or part in SKIPPED_PARTS for part in path.relative_to(root).parts)
    )


def _file_entries(root: Path, prefix: str = "") -> dict[str, runtime_packages.Entry]:
    """The files under ``root`` as zip entries named ``prefix`` + their path under ``root``, world-readable."""
    return {prefix + path.relative_to(root).as_posix(): (path.read_bytes, 0o644) for path in _files(root)}


def build_zip(source: Path, packages_dir: Path | None = None, wheels_dir: Path | None = None,
              requirements: Path | None = None) -> bytes:
    """The deployment package: the packages, then ``lab_helpers/``, ``patterns/``, ``requirements.txt``, the source.

    The packages are ``wheels_dir``'s wheels unpacked at the root (:mod:`lab_helpers.runtime_packages`) or
    ``packages_dir``'s files as they are. ``requirements`` (default: the source's own ``requirements.txt``, else
    ``servers/requirements.txt``) goes in as ``requirements.txt``, to say what the packages were built from.
    Later entries win a name clash (the source over everything). Order, timestamps and permissions are fixed, so
    the same files give the same bytes and the same content-hash key: an unchanged deploy changes nothing.
    """
    requirements = runtime_packages.requirements_for(source) if requirements is None else Path(requirements)
    entries: dict[str, runtime_packages.Entry] = {}
    buffer = io.BytesIO()
    with ExitStack() as stack:
        if wheels_dir is not None:
            entries.update(runtime_packages.wheel_entries(wheels_dir, stack))
        if packages_dir is not None:
            entries.update(_file_entries(packages_dir))
        entries.update(_file_entries(config.REPO_ROOT / "lab_helpers", "lab_helpers/"))
        entries.update(_file_entries(config.REPO_ROOT / "servers" / "patterns", "patterns/"))
        if requirements.is_file():
            entries["requirements.txt"] = (requirements.read_bytes, 0o644)
        entries.update(_file_entries(source))
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(entries):
                read, mode = entries[name]
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = mode << 16  # AgentCore uses POSIX permissions: all world-readable
                info.compress_type = zipfile.ZIP_DEFLATED
                # The fastest level: the packages are 150 MB unzipped; level 6 would take 2.5 times as long for
                # a zip only 8% smaller.
                archive.writestr(info, read(), compresslevel=1)
    return buffer.getvalue()


def _package(source: Path, packages_dir: Path | None) -> bytes:
    """The AWS-mode zip of ``source``, its third-party packages built for Linux arm64 unless ``packages_dir`` is given.

    Raises :class:`DeploymentError` when the packages cannot be built or the zip is larger than AgentCore takes.
    """
    requirements = runtime_packages.requirements_for(source)
    try:
        wheels_dir = None if packages_dir is not None else runtime_packages.wheels(requirements)
    except runtime_packages.PackagingError as error:
        raise DeploymentError(f"cannot build the Linux arm64 packages of {requirements}: {error}") from None
    package = build_zip(source, packages_dir, wheels_dir, requirements)
    if len(package) > MAX_ZIP_BYTES:
        raise DeploymentError(
            f"the deployment zip is {len(package) / 2**20:.0f} MB, more than AgentCore's direct code deployment takes "
            f"({MAX_ZIP_BYTES // 2**20} MB): list fewer packages in {requirements}")
    return package


def role_policy(partition: str, region: str, account: str) -> dict[str, Any]:
    """The execution role's inline policy: what the lessons' agents and servers call, nothing more.

    Logs for the runtime's own log group; Bedrock model calls (foundation models and this account's inference
    profiles) for the agent; AgentCore Memory event operations for the persistent-tasks server and the agent's
    session manager; InvokeAgentRuntime on this account's runtimes, for notebook 07's supervisor, which delegates
    to its workers' runtimes. No S3, ECR or IAM: direct code deploy reads the zip with the deployer's credentials.
    """
    memory = f"arn:{partition}:bedrock-agentcore:{region}:{account}:memory/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RuntimeLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": f"arn:{partition}:logs:{region}:{account}:log-group:/aws/bedrock-agentcore/runtimes/*"},
            {"Sid": "FindLogGroups", "Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
             "Resource": f"arn:{partition}:logs:{region}:{account}:log-group:*"},
            {"Sid": "InvokeModels", "Effect": "Allow",
             "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
             "Resource": [f"arn:{partition}:bedrock:*::foundation-model/*",
                          f"arn:{partition}:bedrock:*:{account}:inference-profile/*"]},
            {"Sid": "MemoryEvents", "Effect": "Allow",
             "Action": ["bedrock-agentcore:CreateEvent", "bedrock-agentcore:GetEvent", "bedrock-agentcore:ListEvents",
                        "bedrock-agentcore:DeleteEvent", "bedrock-agentcore:ListSessions",
                        "bedrock-agentcore:RetrieveMemoryRecords"],
             "Resource": memory},
            {"Sid": "InvokeOtherAgents", "Effect": "Allow", "Action": ["bedrock-agentcore:InvokeAgentRuntime"],
             "Resource": [f"arn:{partition}:bedrock-agentcore:{region}:{account}:runtime/*"]},
        ],
    }


def _trust_policy(partition: str, region: str, account: str) -> dict[str, Any]:
    """Only AgentCore, acting for this account and region, may assume the role (AWS's confused-deputy guard)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "bedrock-agentcore.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:bedrock-agentcore:{region}:{account}:*"},
            },
        }],
    }


def _ensure_bucket(s3: Any, bucket: str, region: str, state: dict[str, Any]) -> None:
    """Reuse the bucket when this account has it, else create it (and remember that we did)."""
    try:
        s3.head_bucket(Bucket=bucket)
        state.setdefault("bucket", {"name": bucket, "created": False})
        return
    except ClientError as error:
        if _error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
            raise RuntimeError(f"S3 bucket {bucket} exists but is not usable by this account: {error}") from error
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **extra)
    state["bucket"] = {"name": bucket, "created": True}


def _ensure_role(iam: Any, partition: str, region: str, account: str, state: dict[str, Any]) -> tuple[str, bool]:
    """The execution role's ARN, and whether it was created just now (IAM needs a moment before AgentCore sees it)."""
    try:
        arn = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
        state.setdefault("role", {"name": ROLE_NAME, "arn": arn, "created": False})
        return arn, False
    except ClientError as error:
        if _error_code(error) != "NoSuchEntity":
            raise
    arn = iam.create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_trust_policy(partition, region, account)),
        Description="Execution role for agentcore-longrun-lab runtimes (created by lab_helpers.deploy)",
    )["Role"]["Arn"]
    state["role"] = {"name": ROLE_NAME, "arn": arn, "created": True}
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName=ROLE_POLICY_NAME,
                        PolicyDocument=json.dumps(role_policy(partition, region, account)))
    return arn, True


def _aws_artifact(name: str, source: Path, entry_point: str, packages_dir: Path | None,
                  settings: config.Settings, state: dict[str, Any],
                  save: Callable[[], None]) -> tuple[dict[str, Any], str, bool]:
    """Zip and upload the code, make sure the role exists: the artifact, the role ARN, whether the role is new.

    The zip is built first: a package that cannot be built for Linux arm64 stops the deploy before any AWS call.
    """
    package = _package(source, packages_dir)
    identity = _client("sts", settings).get_caller_identity()
    account, partition = identity["Account"], identity["Arn"].split(":")[1]
    bucket = f"agentcore-longrun-lab-{account}-{settings.region}"
    s3 = _client("s3", settings)
    _ensure_bucket(s3, bucket, settings.region, state)
    save()
    key = f"runtimes/{name}/{hashlib.sha256(package).hexdigest()[:20]}.zip"
    try:
        s3.head_object(Bucket=bucket, Key=key)  # same content already uploaded
    except ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=package)
        state.setdefault("objects", [])
        if key not in state["objects"]:
            state["objects"].append(key)
        save()
    role_arn, role_is_new = _ensure_role(_client("iam", settings), partition, settings.region, account, state)
    save()
    artifact = {"codeConfiguration": {"code": {"s3": {"bucket": bucket, "prefix": key}},
                                      "runtime": PYTHON_RUNTIME, "entryPoint": [entry_point]}}
    return artifact, role_arn, role_is_new


# -- state file ------------------------------------------------------------------------------------
def _state_path(settings: config.Settings) -> Path:
    return Path(settings.state_dir) / STATE_FILE


def _load_state(settings: config.Settings) -> dict[str, Any]:
    path = _state_path(settings)
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_state(settings: config.Settings, everything: dict[str, Any]) -> None:
    """Write atomically, so a kernel killed mid-write never loses the record of what to clean up."""
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(everything, indent=2, sort_keys=True))
    os.replace(temporary, path)


def _scope(settings: config.Settings) -> str:
    """Runtimes live per endpoint: the emulator's and each AWS region's are different worlds."""
    return f"{settings.mode}:{settings.region}"


# -- runtimes --------------------------------------------------------------------------------------
def _summaries(control: Any) -> Iterator[dict[str, Any]]:
    """Every runtime summary, following ListAgentRuntimes' ``nextToken`` across pages.

    A token seen before means the service is not paging (it ignores the token): stop with an error rather than
    loop forever over the same page.
    """
    token, seen = None, set()
    while True:
        page = control.list_agent_runtimes(**({"nextToken": token} if token else {}))
        yield from page.get("agentRuntimes", [])
        token = page.get("nextToken")
        if not token:
            return
        if token in seen:
            raise DeploymentError(f"ListAgentRuntimes returned the nextToken {token!r} twice: it does not page")
        seen.add(token)


def _find_runtime(control: Any, name: str) -> dict[str, Any] | None:
    """The summary of the runtime called ``name`` (names are unique per account and region)."""
    return next((summary for summary in _summaries(control) if summary.get("agentRuntimeName") == name), None)


def _contains(have: Any, want: Any) -> bool:
    """True when ``have`` holds everything in ``want``: AWS may add defaults to what we sent."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(key), value) for key, value in want.items())
    return have == want


def _differs(desired: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the runtime ``current`` (GetAgentRuntime) needs an update to become ``desired``.

    Environment variables compare exactly (one we dropped must go); anything we no longer set at all
    (no variables, no header allow-list) must be absent.
    """
    for key in CONFIG_KEYS:
        if key not in desired:
            if current.get(key):
                return True
        elif key == "environmentVariables":
            if current.get(key) != desired[key]:
                return True
        elif not _contains(current.get(key), desired[key]):
            return True
    return False


def _create(control: Any, request: dict[str, Any], role_is_new: bool) -> dict[str, Any]:
    """CreateAgentRuntime, retrying while a role made seconds ago is not yet visible to AgentCore."""
    attempts = 10 if role_is_new else 1
    for attempt in range(attempts):
        try:
            return control.create_agent_runtime(**request)
        except ClientError as error:
            retry = _error_code(error) == "ValidationException" and "role" in str(error).lower()
            if not retry or attempt == attempts - 1:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


def deploy(
    name: str,
    source: Path | str,
    entry_point: str,
    *,
    protocol: Protocol = "HTTP",
    environment: dict[str, str] | None = None,
    idle_timeout: int = 900,
    max_lifetime: int = 28800,
    request_headers: list[str] | None = None,
    settings: config.Settings | None = None,
    wait: bool = True,
    packages_dir: Path | str | None = None,
) -> Deployment:
    """Create the runtime ``name`` running ``source/entry_point``, or reuse (and update) the one that exists.

    ``idle_timeout`` and ``max_lifetime`` (seconds) become the runtime's lifecycle configuration: how long an
    idle session lives and how long any session may live (AWS's defaults, 900 and 28800). ``request_headers``
    are the headers AgentCore forwards to the code (e.g. ``X-Amzn-Bedrock-AgentCore-Runtime-Custom-Actor-Id``).
    AWS mode builds the zip's third-party packages for Linux arm64 itself (see the module's docstring);
    ``packages_dir`` overrides that with a directory of packages you built, put in the zip as it is.
    With ``wait`` the call returns once the runtime is READY. Locally the runtime runs at ``settings.time_scale``
    (``LAB_TIME_SCALE`` in its environment, see the module's docstring) and its sessions are stopped when this
    process exits.
    """
    settings = settings or config.load()
    source = Path(source)
    environment = dict(environment or {})
    _validate(name, source, entry_point, protocol, environment, idle_timeout, max_lifetime, request_headers)
    if packages_dir is not None and not Path(packages_dir).is_dir():
        raise ValueError(f"packages_dir must be a directory of installed packages, got {str(packages_dir)!r}")

    everything = _load_state(settings)
    state = everything.setdefault(_scope(settings), {})
    state.setdefault("runtimes", {})

    def save() -> None:
        _save_state(settings, everything)

    role_is_new = False
    if settings.mode == "aws":
        environment["LAB_HOST"] = "0.0.0.0"  # AgentCore reaches the code from outside its microVM
        artifact, role_arn, role_is_new = _aws_artifact(
            name, source, entry_point, Path(packages_dir) if packages_dir else None, settings, state, save)
    else:
        artifact = {"codeConfiguration": {"code": {"s3": {"bucket": LOCAL_BUCKET, "prefix": str(source.resolve())}},
                                          "runtime": PYTHON_RUNTIME, "entryPoint": [entry_point]}}
        role_arn = LOCAL_ROLE_ARN
        environment.setdefault(TIME_SCALE_VARIABLE, repr(settings.time_scale))  # the emulator's clock for it

    desired: dict[str, Any] = {
        "agentRuntimeArtifact": artifact,
        "roleArn": role_arn,
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "protocolConfiguration": {"serverProtocol": protocol},
        "lifecycleConfiguration": {"idleRuntimeSessionTimeout": idle_timeout, "maxLifetime": max_lifetime},
    }
    if environment:
        desired["environmentVariables"] = environment
    if request_headers:
        desired["requestHeaderConfiguration"] = {"requestHeaderAllowlist": list(request_headers)}

    control = _client("bedrock-agentcore-control", settings)
    existing = _find_runtime(control, name)
    if existing is not None and existing.get("status") in ("DELETING", "DELETE_FAILED"):
        raise DeploymentError(f"runtime {name} ({existing['agentRuntimeId']}) is {existing['status']}; "
                              "deploy again once it is gone")
    updated = False
    previous = state["runtimes"].get(name, {})
    if existing is None:
        reply = _create(control, {"agentRuntimeName": name, "description": "agentcore-longrun-lab", **desired},
                        role_is_new)
        owned = True
    else:
        runtime_id = existing["agentRuntimeId"]
        # Ours only if an earlier deploy() created this very runtime; one found here otherwise is someone else's.
        owned = bool(previous.get("created")) and previous.get("runtime_id") == runtime_id
        current = control.get_agent_runtime(agentRuntimeId=runtime_id)
        if _differs(desired, current):
            reply = control.update_agent_runtime(agentRuntimeId=runtime_id, description="agentcore-longrun-lab",
                                                 **desired)
            updated = True
        else:
            reply = current
    deployment = Deployment(
        name=name, arn=reply["agentRuntimeArn"], runtime_id=reply["agentRuntimeId"],
        version=str(reply["agentRuntimeVersion"]), mode=settings.mode, created=existing is None, updated=updated,
        status=str(reply.get("status", "CREATING")), protocol=protocol,
        time_scale=float(environment[TIME_SCALE_VARIABLE]) if settings.mode == "local" else 1.0,
    )
    state["runtimes"][name] = {"runtime_id": deployment.runtime_id, "arn": deployment.arn, "created": owned}
    save()
    emulator = os.environ.get("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE")
    if settings.mode == "local" and emulator:
        _stop_at_exit[deployment.arn] = (deployment.runtime_id, emulator)
    if wait and deployment.status != "READY":
        ready = wait_ready(deployment.runtime_id, settings=settings)
        deployment = replace(deployment, status=ready["status"], version=str(ready["agentRuntimeVersion"]),
                             arn=ready["agentRuntimeArn"])
    return deployment


def _runtime_id(control: Any, runtime_id_or_arn: str) -> str:
    """The runtime id inside an ARN (``...:runtime/<id>``), or looked up by ARN when the ARN has another form."""
    if not runtime_id_or_arn.startswith("arn:"):
        return runtime_id_or_arn
    match = re.search(r":runtime/([a-zA-Z][a-zA-Z0-9_]{0,99}-[a-zA-Z0-9]{10})$", runtime_id_or_arn)
    if match:
        return match.group(1)
    # Another form (moto's: ...:agent/<uuid>:<version>): ask which runtime has it.
    for summary in _summaries(control):
        if summary.get("agentRuntimeArn") == runtime_id_or_arn:
            return str(summary["agentRuntimeId"])
    raise ValueError(f"no runtime has the ARN {runtime_id_or_arn}")


def wait_ready(
    runtime_id_or_arn: str, timeout: float = 600.0, settings: config.Settings | None = None
) -> dict[str, Any]:
    """Poll GetAgentRuntime until the runtime is READY and return it.

    A local runtime is ready in moments (polled every 0.2 s); AWS takes a minute or more (polled every 2 s).
    CREATE_FAILED or UPDATE_FAILED raises :class:`DeploymentError` with AWS's ``failureReason``; a runtime
    still not ready after ``timeout`` seconds raises :class:`TimeoutError`.
    """
    settings = settings or config.load()
    control = _client("bedrock-agentcore-control", settings)
    runtime_id = _runtime_id(control, runtime_id_or_arn)
    interval = 0.2 if settings.mode == "local" else 2.0
    deadline = time.monotonic() + timeout
    while True:
        runtime = control.get_agent_runtime(agentRuntimeId=runtime_id)
        runtime.pop("ResponseMetadata", None)
        status = runtime.get("status")
        if status == "READY":
            return runtime
        if status in ("CREATE_FAILED", "UPDATE_FAILED", "DELETING", "DELETE_FAILED"):
            reason = runtime.get("failureReason") or "no failureReason given"
            raise DeploymentError(f"runtime {runtime_id} is {status}: {reason}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"runtime {runtime_id} still {status} after {timeout:g} s")
        time.sleep(interval)


# -- calling a runtime -------------------------------------------------------------------------------
def mcp_url(arn: str, settings: config.Settings | None = None) -> str:
    """The URL an MCP client uses for an MCP runtime: ``<data endpoint>/runtimes/<url-encoded ARN>/invocations``.

    Requests to it need ``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` (33 characters or more); on AWS
    also an OAuth bearer token from the runtime's inbound authorizer.
    """
    settings = config.load() if settings is None else settings
    endpoint = _client("bedrock-agentcore", settings).meta.endpoint_url.rstrip("/")
    return f"{endpoint}/runtimes/{quote(arn, safe='')}/invocations?qualifier=DEFAULT"


def new_session_id() -> str:
    """A fresh runtime session id: AWS wants 33 characters or more, and one id means one isolated session."""
    return f"lab-session-{uuid.uuid4().hex}"


def _server_sent_events(text: str) -> list[Any]:
    """The ``data:`` payloads of an event stream, one per event (multi-line data joined), JSON-decoded when JSON."""
    events: list[Any] = []
    for block in re.split(r"\r?\n\r?\n", text):
        lines = [line[5:].removeprefix(" ") for line in block.splitlines() if line.startswith("data:")]
        if not lines:
            continue
        data = "\n".join(lines)
        try:
            events.append(json.loads(data))
        except ValueError:
            events.append(data)
    return events


def invoke(
    arn: str,
    payload: dict[str, Any] | bytes | str,
    session_id: str,
    *,
    settings: config.Settings | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any] | list[Any] | str:
    """Call the runtime ``arn`` in session ``session_id`` and return its whole answer.

    A dict payload is sent as JSON, a str as UTF-8, bytes as they are (all as ``application/json``, the
    runtime contract's type). The answer is decoded by its content type: JSON gives the decoded value,
    ``text/event-stream`` the list of its ``data:`` payloads (each JSON-decoded when it is JSON), anything
    else the text. ``headers`` are added to the signed request, e.g. the ``X-Amzn-Bedrock-AgentCore-Runtime-
    Custom-*`` headers the runtime allow-lists; they travel through a botocore ``before-sign`` hook because
    the API has no parameter for them.
    """
    if not isinstance(session_id, str) or len(session_id) < MIN_SESSION_ID:
        raise ValueError(f"session_id must be at least {MIN_SESSION_ID} characters (AWS's minimum), "
                         f"got {len(session_id) if isinstance(session_id, str) else session_id!r}: "
                         "use runtime.new_session_id()")
    if isinstance(payload, dict):
        body = json.dumps(payload).encode()
    elif isinstance(payload, str):
        body = payload.encode()
    elif isinstance(payload, (bytes, bytearray)):
        body = bytes(payload)
    else:
        raise ValueError(f"payload must be a dict, str or bytes, got {type(payload).__name__}")
    settings = settings or config.load()
    # One attempt: a retried invocation would run the agent twice. A long read timeout: a synchronous
    # request may take up to AgentCore's 15 minutes.
    client = _client("bedrock-agentcore", settings, read_timeout=900, retries={"total_max_attempts": 1})
    if headers:
        extra = dict(headers)

        def add_headers(request: Any, **_: Any) -> None:
            for key, value in extra.items():
                request.headers[key] = value

        client.meta.events.register_first("before-sign.bedrock-agentcore.InvokeAgentRuntime", add_headers)
    reply = client.invoke_agent_runtime(
        agentRuntimeArn=arn, runtimeSessionId=session_id, payload=body, qualifier="DEFAULT",
        contentType="application/json", accept="application/json, text/event-stream",
    )
    raw = reply["response"].read()
    content_type = str(reply.get("contentType", "")).lower()
    text = raw.decode("utf-8", errors="replace")
    if "text/event-stream" in content_type:
        return _server_sent_events(text)
    if "json" in content_type:
        return json.loads(text) if text.strip() else {}
    return text


# -- cleaning up -----------------------------------------------------------------------------------
#: Local runtimes deployed by this process: ARN -> (runtime id, the emulator's endpoint). Their sessions end with it.
_stop_at_exit: dict[str, tuple[str, str]] = {}


def _stop_live_sessions(arn: str, runtime_id: str, endpoint: str, region: str) -> list[str]:
    """StopRuntimeSession for every session the emulator at ``endpoint`` runs for the runtime; their ids."""
    import boto3

    live = [s["sessionId"] for s in runtime_report(endpoint)["sessions"] if s["runtimeId"] == runtime_id]
    if not live:
        return []
    client = boto3.client("bedrock-agentcore", region_name=region, endpoint_url=endpoint)
    stopped = []
    for session_id in live:
        try:
            client.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_id)
            stopped.append(session_id)
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":  # it ended meanwhile: nothing to stop
                raise
    return stopped


def stop_sessions(deployment: Deployment, settings: config.Settings | None = None) -> list[str]:
    """Stop every live session of ``deployment`` and return their ids (local mode; AWS mode stops none).

    A run interrupted before its clean-up leaves its sessions running, busy with work nobody waits for; the next
    run calls this first, so that it starts with none. Only the emulator can list a runtime's sessions: AWS has no
    such API, so in AWS mode this returns ``[]`` and the Runtime ends those sessions at their idle timeout.
    """
    settings = settings or config.load()
    if settings.mode != "local":
        return []
    endpoint = _client("bedrock-agentcore", settings).meta.endpoint_url
    return _stop_live_sessions(deployment.arn, deployment.runtime_id, endpoint, settings.region)


@atexit.register
def _stop_sessions_at_exit() -> None:
    """On exit, stop the sessions of the local runtimes this process deployed (the runtimes themselves stay)."""
    for arn, (runtime_id, endpoint) in list(_stop_at_exit.items()):
        try:
            _stop_live_sessions(arn, runtime_id, endpoint, config.load().region)
        except Exception:  # noqa: BLE001 - the emulator may be gone already (it ended them then); never fail an exit
            pass


def destroy(settings: config.Settings | None = None) -> list[str]:
    """Delete what :func:`deploy` created in this mode and region, and forget what it only reused.

    Runtimes first, then (AWS mode) the uploaded zips, the bucket and the role, each only if this helper
    created it. A bucket with other objects in it, or a role someone attached more policies to, is left
    in place and stays recorded. Returns what was deleted, for people.
    """
    settings = settings or config.load()
    everything = _load_state(settings)
    state = everything.get(_scope(settings))
    if not state:
        return []
    deleted: list[str] = []

    def save() -> None:
        _save_state(settings, everything)

    runtimes: dict[str, Any] = state.get("runtimes", {})
    if runtimes:
        control = _client("bedrock-agentcore-control", settings)
        for name in list(runtimes):
            entry = runtimes[name]
            if entry.get("created"):
                try:
                    control.delete_agent_runtime(agentRuntimeId=entry["runtime_id"])
                    deleted.append(f"runtime {name} ({entry['runtime_id']})")
                except ClientError as error:
                    if _error_code(error) != "ResourceNotFoundException":
                        raise
            del runtimes[name]
            save()

    bucket = state.get("bucket")
    if bucket:
        s3 = _client("s3", settings)
        for key in list(state.get("objects", [])):
            s3.delete_object(Bucket=bucket["name"], Key=key)
            deleted.append(f"s3://{bucket['name']}/{key}")
            state["objects"].remove(key)
            save()
        keep = False
        if bucket.get("created"):
            try:
                s3.delete_bucket(Bucket=bucket["name"])
                deleted.append(f"bucket {bucket['name']}")
            except ClientError as error:
                keep = _error_code(error) == "BucketNotEmpty"  # holds objects we did not put there: leave it
                if not keep and _error_code(error) not in ("NoSuchBucket", "404"):
                    raise
        if not keep:
            state.pop("bucket")
            save()

    role = state.get("role")
    if role:
        keep = False
        if role.get("created"):
            iam = _client("iam", settings)
            try:
                iam.delete_role_policy(RoleName=role["name"], PolicyName=ROLE_POLICY_NAME)
            except ClientError as error:
                if _error_code(error) != "NoSuchEntity":
                    raise
            try:
                iam.delete_role(RoleName=role["name"])
                deleted.append(f"role {role['name']}")
            except ClientError as error:
                keep = _error_code(error) == "DeleteConflict"  # someone attached more to it: leave it
                if not keep and _error_code(error) != "NoSuchEntity":
                    raise
        if not keep:
            state.pop("role")
            save()

    if not any(state.get(key) for key in ("runtimes", "objects", "bucket", "role")):
        everything.pop(_scope(settings), None)
        save()
    return deleted
