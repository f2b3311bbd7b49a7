"""lab_helpers.deploy: deploying to AgentCore Runtime, against moto (control plane, S3, IAM, STS) and Stubber.

The local emulator's Runtime part is not used here: these tests pin the requests ``deploy`` makes in each mode,
its idempotency, what ``destroy`` deletes, and how ``invoke`` encodes and decodes. Observed on moto 5.2.5:

* Create/Get/List/Update/DeleteAgentRuntime are implemented; a runtime is READY on its first GetAgentRuntime,
  but after UpdateAgentRuntime it stays UPDATING for ever (moto knows only CREATING -> READY), so update tests
  use ``wait=False``.
* moto's runtime ARNs look like ``...:agent/<uuid>:<version>`` (AWS: ``...:runtime/<id>``) and change with every
  version; ListAgentRuntimes never paginates (pagination is tested with Stubber).
* InvokeAgentRuntime is not implemented (the data plane has only the Memory event operations): Stubber, and a
  ``before-send`` hook where the signed request itself matters.

AWS mode builds the zip's Linux arm64 packages with pip: here a stand-in downloader writes one small wheel per
requirement into a cache of the test's own (``downloads``, used by every test), so no test reaches a package index.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lab_helpers import config, deploy, runtime_packages

mock_aws = pytest.importorskip("moto").mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
BUCKET = f"agentcore-longrun-lab-{ACCOUNT}-{REGION}"
ARN = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/lab_agent-abcdefghij"
SESSION = "lab-session-0123456789abcdef0123456789abcdef"


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, one region, no endpoint redirection, no profile or config file from this machine."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def make_wheel(directory: Path, name: str, version: str, files: dict[str, bytes] | None = None) -> None:
    """A small wheel as pip downloads one: the package's files and its ``.dist-info``."""
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for member, data in (files or {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode()}).items():
            wheel.writestr(member, data)
        wheel.writestr(f"{name}-{version}.dist-info/METADATA",
                       f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


class Downloads:
    """Stands in for pip's download: one wheel per ``name==version`` line of the requirements; records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, Path | None]] = []

    def __call__(self, requirements: Path, constraints: Path | None, destination: Path) -> None:
        self.calls.append((requirements, constraints))
        for line in requirements.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, version = line.split("#")[0].strip().split("==")
                make_wheel(destination, name.split("[")[0].replace("-", "_"), version)


@pytest.fixture(autouse=True)
def downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Downloads:
    """Every AWS-mode deploy downloads its packages through this stand-in, into a cache of the test's own."""
    fake = Downloads()
    monkeypatch.setattr(runtime_packages, "download_wheels", fake)
    monkeypatch.setattr(runtime_packages, "CACHE_DIR", tmp_path / "package-cache")
    return fake


@pytest.fixture
def local(tmp_path: Path) -> config.Settings:
    return config.load(env={}, state_dir=tmp_path / "state")


@pytest.fixture
def aws(tmp_path: Path) -> config.Settings:
    return config.load(env={"LAB_MODE": "aws"}, state_dir=tmp_path / "state")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small code directory: an entry point, a module beside it, and bytecode that must not ship."""
    directory = tmp_path / "agent"
    (directory / "__pycache__").mkdir(parents=True)
    (directory / "app.py").write_text("import helper\n")
    (directory / "helper.py").write_text("VALUE = 1\n")
    (directory / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"\0")
    return directory


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every (service, operation) the helper calls, in order, through plain boto3 clients (moto intercepts them)."""
    seen: list[tuple[str, str]] = []

    def record(model: Any, **_: Any) -> None:
        seen.append((model.service_model.service_name, model.name))

    def client(service: str, settings: config.Settings, **_: Any) -> Any:
        made = boto3.client(service, region_name=settings.region)
        made.meta.events.register("before-call", record)
        return made

    monkeypatch.setattr(deploy, "_client", client)
    return seen


def stubbed(monkeypatch: pytest.MonkeyPatch, service: str) -> Stubber:
    """A Stubber whose client is the one every helper call gets (for what moto lacks or cannot show)."""
    client = boto3.client(service, region_name=REGION)
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(deploy, "_client", lambda name, settings, **_: client)
    return stubber


def control() -> Any:
    return boto3.client("bedrock-agentcore-control", region_name=REGION)


def state(settings: config.Settings) -> dict[str, Any]:
    return json.loads((settings.state_dir / deploy.STATE_FILE).read_text())


def operations(seen: list[tuple[str, str]]) -> list[str]:
    return [operation for _, operation in seen]


# -- local mode ------------------------------------------------------------------------------------
def test_local_mode_names_the_source_directory_and_calls_no_s3_or_iam(
    moto: None, calls: list[tuple[str, str]], local: config.Settings, source: Path
) -> None:
    headers = ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Actor-Id"]
    deployment = deploy.deploy("lab_tasks", source, "app.py", protocol="MCP", environment={"LAB_TIME_SCALE": "0.02"},
                                idle_timeout=120, max_lifetime=3600, request_headers=headers, settings=local)

    assert (deployment.name, deployment.mode, deployment.created, deployment.status) == (
        "lab_tasks", "local", True, "READY")
    assert deployment.time_scale == 0.02, "an explicit LAB_TIME_SCALE wins over the settings' time_scale"
    assert {service for service, _ in calls} == {"bedrock-agentcore-control"}
    got = control().get_agent_runtime(agentRuntimeId=deployment.runtime_id)
    assert got["agentRuntimeArtifact"] == {"codeConfiguration": {
        "code": {"s3": {"bucket": "agentcore-local", "prefix": str(source.resolve())}},
        "runtime": "PYTHON_3_11", "entryPoint": ["app.py"]}}
    assert got["roleArn"] == "arn:aws:iam::123456789012:role/agentcore-local"
    assert got["protocolConfiguration"] == {"serverProtocol": "MCP"}
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 120, "maxLifetime": 3600}
    assert got["environmentVariables"] == {"LAB_TIME_SCALE": "0.02"}  # no LAB_HOST: 127.0.0.1 is right locally
    assert got["requestHeaderConfiguration"] == {"requestHeaderAllowlist": headers}
    assert state(local) == {"local:us-east-1": {"runtimes": {"lab_tasks": {
        "runtime_id": deployment.runtime_id, "arn": deployment.arn, "created": True}}}}


def test_local_mode_defaults_are_aws_defaults(moto: None, calls: list[tuple[str, str]], local: config.Settings,
                                              source: Path) -> None:
    deployment = deploy.deploy("lab_agent", source, "app.py", settings=local)
    got = control().get_agent_runtime(agentRuntimeId=deployment.runtime_id)
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800}
    assert got["protocolConfiguration"] == {"serverProtocol": "HTTP"}
    assert got["environmentVariables"] == {"LAB_TIME_SCALE": "1.0"}  # the settings' clock, for the emulator
    assert "requestHeaderConfiguration" not in got and deployment.time_scale == 1.0


def test_local_mode_runs_the_runtime_at_the_callers_time_scale_and_a_new_scale_updates_it(
    moto: None, calls: list[tuple[str, str]], local: config.Settings, source: Path
) -> None:
    """The notebook's time_scale, not the emulator's, sets the runtime's clock; changing it is a change to deploy."""
    tenth = replace(local, time_scale=0.1)
    first = deploy.deploy("lab_agent", source, "app.py", environment={"LAB_MODEL": "offline"}, settings=tenth)
    got = control().get_agent_runtime(agentRuntimeId=first.runtime_id)
    assert got["environmentVariables"] == {"LAB_MODEL": "offline", "LAB_TIME_SCALE": "0.1"}
    assert first.time_scale == 0.1

    again = deploy.deploy("lab_agent", source, "app.py", environment={"LAB_MODEL": "offline"}, settings=tenth)
    assert (again.updated, again.time_scale) == (False, 0.1)
    faster = deploy.deploy("lab_agent", source, "app.py", environment={"LAB_MODEL": "offline"},
                           settings=replace(local, time_scale=0.02), wait=False)
    assert (faster.updated, faster.time_scale) == (True, 0.02)
    got = control().get_agent_runtime(agentRuntimeId=first.runtime_id)
    assert got["environmentVariables"]["LAB_TIME_SCALE"] == "0.02"


def test_stop_sessions_stops_nothing_in_aws_mode(monkeypatch: pytest.MonkeyPatch, aws: config.Settings) -> None:
    """AWS has no API listing a runtime's sessions: nothing is called, nothing is stopped."""
    monkeypatch.setattr(deploy, "_client", lambda *a, **k: pytest.fail("no request in AWS mode"))
    found = deploy.Deployment("lab_agent", ARN, "lab_agent-abcdefghij", "1", "aws", created=True)
    assert deploy.stop_sessions(found, settings=aws) == []


def test_local_mode_without_the_emulator_says_what_to_call(local: config.Settings, source: Path) -> None:
    with pytest.raises(RuntimeError, match=r"use_agentcore\(\)"):
        deploy.deploy("lab_agent", source, "app.py", settings=local)


def test_an_existing_runtime_is_found_on_a_later_page(monkeypatch: pytest.MonkeyPatch, local: config.Settings,
                                                     source: Path) -> None:
    stubber = stubbed(monkeypatch, "bedrock-agentcore-control")
    other = {"agentRuntimeArn": ARN.replace("lab_agent", "other"), "agentRuntimeId": "other-abcdefghij",
             "agentRuntimeVersion": "1", "agentRuntimeName": "other", "description": "x",
             "lastUpdatedAt": "2026-01-01T00:00:00Z", "status": "READY"}
    mine = {**other, "agentRuntimeArn": ARN, "agentRuntimeId": "lab_agent-abcdefghij", "agentRuntimeName": "lab_agent"}
    stubber.add_response("list_agent_runtimes", {"agentRuntimes": [other], "nextToken": "page2"}, {})
    stubber.add_response("list_agent_runtimes", {"agentRuntimes": [mine]}, {"nextToken": "page2"})
    same = {
        "agentRuntimeArn": ARN, "agentRuntimeName": "lab_agent", "agentRuntimeId": "lab_agent-abcdefghij",
        "agentRuntimeVersion": "3", "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z",
        "roleArn": deploy.LOCAL_ROLE_ARN, "status": "READY", "networkConfiguration": {"networkMode": "PUBLIC"},
        "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800},
        "protocolConfiguration": {"serverProtocol": "HTTP"},
        "agentRuntimeArtifact": {"codeConfiguration": {
            "code": {"s3": {"bucket": "agentcore-local", "prefix": str(source.resolve())}},
            "runtime": "PYTHON_3_11", "entryPoint": ["app.py"]}},
        "environmentVariables": {"LAB_TIME_SCALE": "1.0"},
    }
    stubber.add_response("get_agent_runtime", same, {"agentRuntimeId": "lab_agent-abcdefghij"})

    deployment = deploy.deploy("lab_agent", source, "app.py", settings=local)

    stubber.assert_no_pending_responses()  # no create, no update: the configuration already matches
    assert (deployment.created, deployment.updated, deployment.version) == (False, False, "3")
    assert state(local)["local:us-east-1"]["runtimes"]["lab_agent"]["created"] is False


# -- AWS mode --------------------------------------------------------------------------------------
def test_aws_mode_uploads_a_zip_makes_a_role_and_records_both(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path
) -> None:
    deployment = deploy.deploy("lab_agent", source, "app.py", environment={"LAB_MODEL": "bedrock"}, settings=aws)

    assert (deployment.mode, deployment.created, deployment.status) == ("aws", True, "READY")
    got = control().get_agent_runtime(agentRuntimeId=deployment.runtime_id)
    code = got["agentRuntimeArtifact"]["codeConfiguration"]
    assert code["code"]["s3"]["bucket"] == BUCKET
    key = code["code"]["s3"]["prefix"]
    assert key.startswith("runtimes/lab_agent/") and key.endswith(".zip")
    assert (code["runtime"], code["entryPoint"]) == ("PYTHON_3_11", ["app.py"])
    assert got["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{deploy.ROLE_NAME}"
    assert got["environmentVariables"] == {"LAB_MODEL": "bedrock", "LAB_HOST": "0.0.0.0"}  # AWS's clock: unscaled
    assert deployment.time_scale == 1.0

    package = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    names = zipfile.ZipFile(io.BytesIO(package)).namelist()
    expected = {"app.py", "helper.py", "lab_helpers/__init__.py", "lab_helpers/deploy.py", "patterns/task_registry.py",
                "requirements.txt"}
    assert expected <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]

    iam = boto3.client("iam", region_name=REGION)
    trust = iam.get_role(RoleName=deploy.ROLE_NAME)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "bedrock-agentcore.amazonaws.com"}
    policy = iam.get_role_policy(RoleName=deploy.ROLE_NAME, PolicyName=deploy.ROLE_POLICY_NAME)["PolicyDocument"]
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert {"logs:PutLogEvents", "bedrock:InvokeModel", "bedrock-agentcore:CreateEvent",
            "bedrock-agentcore:ListEvents", "bedrock-agentcore:InvokeAgentRuntime"} <= actions
    assert not [action for action in actions if action.endswith("*") or action.startswith(("iam:", "s3:"))]

    assert state(aws)["aws:us-east-1"] == {
        "bucket": {"name": BUCKET, "created": True},
        "objects": [key],
        "role": {"name": deploy.ROLE_NAME, "arn": got["roleArn"], "created": True},
        "runtimes": {"lab_agent": {"runtime_id": deployment.runtime_id, "arn": deployment.arn, "created": True}},
    }
    assert "CreateAgentRuntime" in operations(calls)


def test_the_zip_is_the_same_for_the_same_files(source: Path, tmp_path: Path) -> None:
    """Same bytes for the same files: the content-hash key is what makes an unchanged deploy a no-op."""
    first = deploy.build_zip(source)
    assert deploy.build_zip(source) == first
    (source / "helper.py").write_text("VALUE = 2\n")
    assert deploy.build_zip(source) != first

    packages = tmp_path / "packages"
    (packages / "somepkg").mkdir(parents=True)
    (packages / "somepkg" / "__init__.py").write_text("")
    (packages / "helper.py").write_text("shadowed\n")
    archive = zipfile.ZipFile(io.BytesIO(deploy.build_zip(source, packages)))
    assert "somepkg/__init__.py" in archive.namelist()
    assert archive.read("helper.py") == b"VALUE = 2\n"  # the source wins a name clash


def uploaded(aws: config.Settings) -> list[tuple[str, zipfile.ZipFile]]:
    """Every zip deploy uploaded, by key, as the recorded state lists them."""
    s3 = boto3.client("s3", region_name=REGION)
    return [(key, zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())))
            for key in state(aws)["aws:us-east-1"]["objects"]]


def test_aws_mode_zips_the_code_the_helpers_and_arm64_packages_built_once(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path, downloads: Downloads,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No hand work: the servers' runtime requirements are downloaded for arm64, cached, unpacked at the zip's root."""
    deploy.deploy("lab_agent", source, "app.py", settings=aws)

    assert downloads.calls == [(runtime_packages.RUNTIME_REQUIREMENTS, config.REPO_ROOT / "requirements.txt")]
    [(key, archive)] = uploaded(aws)
    names = archive.namelist()
    pinned = [line.split("#")[0].strip() for line in runtime_packages.RUNTIME_REQUIREMENTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    packages = [line.split("[")[0].split("==")[0].replace("-", "_") for line in pinned]
    assert {"app.py", "helper.py", "lab_helpers/deploy.py", "lab_helpers/runtime_packages.py",
            "patterns/task_registry.py", "requirements.txt"} <= set(names)
    assert {f"{name}/__init__.py" for name in packages} <= set(names), "each package at the zip's root"
    assert {f"{name}-{line.split('==')[1]}.dist-info/METADATA" for name, line in zip(packages, pinned)} <= set(names)
    assert archive.read("requirements.txt") == runtime_packages.RUNTIME_REQUIREMENTS.read_bytes()
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert {(info.date_time, info.external_attr >> 16) for info in archive.infolist()} == {((2020, 1, 1, 0, 0, 0),
                                                                                            0o644)}

    again = deploy.deploy("lab_agent", source, "app.py", settings=aws, wait=False)
    assert len(downloads.calls) == 1, "the second deploy reuses the cached wheels"
    assert (again.updated, [k for k, _ in uploaded(aws)]) == (False, [key])

    monkeypatch.setattr(runtime_packages, "CACHE_DIR", tmp_path / "another-cache")  # the same wheels, anew
    deploy.deploy("lab_agent", source, "app.py", settings=aws, wait=False)
    assert len(downloads.calls) == 2
    assert [k for k, _ in uploaded(aws)] == [key], "same inputs, same bytes, same content-hash key"


def test_a_source_with_its_own_requirements_gets_their_packages(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path, downloads: Downloads
) -> None:
    (source / "requirements.txt").write_text("tiny-pkg==0.1\n")
    deploy.deploy("lab_agent", source, "app.py", settings=aws)

    assert downloads.calls == [(source / "requirements.txt", config.REPO_ROOT / "requirements.txt")]
    [(_, archive)] = uploaded(aws)
    assert {"tiny_pkg/__init__.py", "tiny_pkg-0.1.dist-info/METADATA", "app.py"} <= set(archive.namelist())
    assert "numpy/__init__.py" not in archive.namelist()
    assert archive.read("requirements.txt") == b"tiny-pkg==0.1\n"


def test_packages_dir_overrides_the_download(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path, downloads: Downloads,
    tmp_path: Path
) -> None:
    packages = tmp_path / "built-by-hand"
    (packages / "handmade").mkdir(parents=True)
    (packages / "handmade" / "__init__.py").write_text("")
    deploy.deploy("lab_agent", source, "app.py", settings=aws, packages_dir=packages)

    assert downloads.calls == []
    [(_, archive)] = uploaded(aws)
    assert "handmade/__init__.py" in archive.namelist() and "numpy/__init__.py" not in archive.namelist()


def test_packages_that_cannot_be_built_stop_the_deploy_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, str]], aws: config.Settings, source: Path
) -> None:
    def no_arm64_wheel(requirements: Path, constraints: Path | None, destination: Path) -> None:
        raise runtime_packages.PackagingError(runtime_packages.explain_pip_failure(
            "ERROR: No matching distribution found for x86only==1.0", 1, requirements, ["pip"]))

    monkeypatch.setattr(runtime_packages, "download_wheels", no_arm64_wheel)
    with pytest.raises(deploy.DeploymentError,
                       match=r"Linux arm64 packages of .*requirements.txt: no binary wheel of x86only==1.0 "
                             r"for Linux arm64.*packages_dir"):
        deploy.deploy("lab_agent", source, "app.py", settings=aws)
    assert calls == [], "no bucket, role or runtime for code that cannot run"
    assert not (aws.state_dir / deploy.STATE_FILE).exists() or "bucket" not in state(aws).get("aws:us-east-1", {})


def test_a_zip_too_large_for_agentcore_is_refused_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, str]], aws: config.Settings, source: Path
) -> None:
    monkeypatch.setattr(deploy, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(deploy.DeploymentError, match=r"more than AgentCore's direct code deployment takes"):
        deploy.deploy("lab_agent", source, "app.py", settings=aws)
    assert calls == []


def test_deploying_twice_creates_nothing_and_a_change_updates(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path
) -> None:
    first = deploy.deploy("lab_agent", source, "app.py", settings=aws)
    calls.clear()

    again = deploy.deploy("lab_agent", source, "app.py", settings=aws)

    assert (again.runtime_id, again.created, again.updated, again.version) == (first.runtime_id, False, False, "1")
    made = [op for op in operations(calls) if op.startswith(("Create", "Put", "Update"))]
    assert made == [], f"a repeated deploy must create nothing, called {made}"

    changed = deploy.deploy("lab_agent", source, "app.py", idle_timeout=300, settings=aws, wait=False)
    assert (changed.runtime_id, changed.created, changed.updated, changed.version) == (
        first.runtime_id, False, True, "2")
    got = control().get_agent_runtime(agentRuntimeId=first.runtime_id)
    assert got["lifecycleConfiguration"]["idleRuntimeSessionTimeout"] == 300

    calls.clear()
    (source / "helper.py").write_text("VALUE = 2\n")  # new code: a new zip, a new key, an update
    deploy.deploy("lab_agent", source, "app.py", idle_timeout=300, settings=aws, wait=False)
    assert ("PutObject" in operations(calls)) and ("UpdateAgentRuntime" in operations(calls))
    assert len(state(aws)["aws:us-east-1"]["objects"]) == 2
    assert state(aws)["aws:us-east-1"]["runtimes"]["lab_agent"]["created"] is True  # still ours to destroy


def test_destroy_deletes_what_it_created_and_spares_what_it_found(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path
) -> None:
    before = control().create_agent_runtime(
        agentRuntimeName="shared_agent", roleArn=f"arn:aws:iam::{ACCOUNT}:role/someone-else",
        agentRuntimeArtifact={"codeConfiguration": {"code": {"s3": {"bucket": "their-bucket", "prefix": "a.zip"}},
                                                    "runtime": "PYTHON_3_12", "entryPoint": ["main.py"]}},
        networkConfiguration={"networkMode": "PUBLIC"},
    )
    reused = deploy.deploy("shared_agent", source, "app.py", settings=aws, wait=False)
    ours = deploy.deploy("lab_agent", source, "app.py", settings=aws)
    assert (reused.runtime_id, reused.created, reused.updated) == (before["agentRuntimeId"], False, True)

    deleted = deploy.destroy(aws)

    remaining = {r["agentRuntimeName"]: r["agentRuntimeId"] for r in control().list_agent_runtimes()["agentRuntimes"]}
    assert remaining == {"shared_agent": before["agentRuntimeId"]}
    assert f"runtime lab_agent ({ours.runtime_id})" in deleted
    assert f"bucket {BUCKET}" in deleted and f"role {deploy.ROLE_NAME}" in deleted
    assert not [b for b in boto3.client("s3").list_buckets()["Buckets"] if b["Name"] == BUCKET]
    assert deploy.ROLE_NAME not in [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]
    assert state(aws) == {}
    assert deploy.destroy(aws) == []  # nothing left to do


def test_destroy_keeps_a_bucket_and_role_that_were_there_before(
    moto: None, calls: list[tuple[str, str]], aws: config.Settings, source: Path
) -> None:
    s3, iam = boto3.client("s3", region_name=REGION), boto3.client("iam", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="someone-elses.txt", Body=b"keep me")
    iam.create_role(RoleName=deploy.ROLE_NAME, AssumeRolePolicyDocument=json.dumps(deploy._trust_policy(
        "aws", REGION, ACCOUNT)))

    deployment = deploy.deploy("lab_agent", source, "app.py", settings=aws)
    recorded = state(aws)["aws:us-east-1"]
    assert (recorded["bucket"]["created"], recorded["role"]["created"]) == (False, False)
    assert "CreateBucket" not in operations(calls) and "CreateRole" not in operations(calls)

    deleted = deploy.destroy(aws)

    assert deleted == [f"runtime lab_agent ({deployment.runtime_id})", f"s3://{BUCKET}/{recorded['objects'][0]}"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["someone-elses.txt"]
    assert iam.get_role(RoleName=deploy.ROLE_NAME)["Role"]["RoleName"] == deploy.ROLE_NAME
    assert state(aws) == {}


def test_destroy_in_local_mode_touches_only_runtimes(moto: None, calls: list[tuple[str, str]],
                                                     local: config.Settings, source: Path) -> None:
    ours = deploy.deploy("lab_agent", source, "app.py", settings=local)
    calls.clear()
    assert deploy.destroy(local) == [f"runtime lab_agent ({ours.runtime_id})"]
    assert calls == [("bedrock-agentcore-control", "DeleteAgentRuntime")]


def test_destroy_keeps_the_other_mode_and_region(moto: None, calls: list[tuple[str, str]], local: config.Settings,
                                                source: Path) -> None:
    deploy.deploy("lab_agent", source, "app.py", settings=local)
    elsewhere = config.load(env={"AWS_REGION": "eu-west-1"}, state_dir=local.state_dir)
    assert deploy.destroy(elsewhere) == []
    assert list(state(local)) == ["local:us-east-1"]


# -- wait_ready ----------------------------------------------------------------------------------------
def runtime_reply(status: str, **extra: Any) -> dict[str, Any]:
    return {"agentRuntimeArn": ARN, "agentRuntimeName": "lab_agent", "agentRuntimeId": "lab_agent-abcdefghij",
            "agentRuntimeVersion": "1", "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z",
            "roleArn": deploy.LOCAL_ROLE_ARN, "status": status, "lifecycleConfiguration": {}, **extra}


@pytest.mark.parametrize("status", ["CREATE_FAILED", "UPDATE_FAILED"])
def test_wait_ready_raises_with_the_failure_reason(monkeypatch: pytest.MonkeyPatch, local: config.Settings,
                                                   status: str) -> None:
    stubber = stubbed(monkeypatch, "bedrock-agentcore-control")
    wanted = {"agentRuntimeId": "lab_agent-abcdefghij"}
    stubber.add_response("get_agent_runtime", runtime_reply("CREATING"), wanted)
    stubber.add_response("get_agent_runtime", runtime_reply(status, failureReason="app.py exited with code 1"),
                         wanted)
    with pytest.raises(deploy.DeploymentError, match=rf"{status}: app.py exited with code 1"):
        deploy.wait_ready(ARN, timeout=5, settings=local)  # the ARN's id is what GetAgentRuntime gets
    stubber.assert_no_pending_responses()


def test_wait_ready_times_out(monkeypatch: pytest.MonkeyPatch, local: config.Settings) -> None:
    stubber = stubbed(monkeypatch, "bedrock-agentcore-control")
    stubber.add_response("get_agent_runtime", runtime_reply("CREATING"))
    with pytest.raises(TimeoutError, match="still CREATING"):
        deploy.wait_ready("lab_agent-abcdefghij", timeout=0, settings=local)


def test_wait_ready_finds_a_runtime_by_an_arn_of_another_form(moto: None, calls: list[tuple[str, str]],
                                                              local: config.Settings, source: Path) -> None:
    deployment = deploy.deploy("lab_agent", source, "app.py", settings=local, wait=False)
    assert ":runtime/" not in deployment.arn  # moto's form
    assert deploy.wait_ready(deployment.arn, settings=local)["agentRuntimeId"] == deployment.runtime_id


# -- invoke --------------------------------------------------------------------------------------------
def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


@pytest.mark.parametrize("payload, sent", [
    ({"prompt": "train", "actor_id": "user-1"}, b'{"prompt": "train", "actor_id": "user-1"}'),
    ('{"prompt": "h\u00e9"}', '{"prompt": "h\u00e9"}'.encode()),
    (b"\x00raw", b"\x00raw"),
])
def test_invoke_encodes_the_payload_and_decodes_json(monkeypatch: pytest.MonkeyPatch, local: config.Settings,
                                                     payload: Any, sent: bytes) -> None:
    stubber = stubbed(monkeypatch, "bedrock-agentcore")
    stubber.add_response(
        "invoke_agent_runtime",
        {"contentType": "application/json", "response": body(b'{"result": "ok"}')},
        {"agentRuntimeArn": ARN, "runtimeSessionId": SESSION, "payload": sent, "qualifier": "DEFAULT",
         "contentType": "application/json", "accept": "application/json, text/event-stream"},
    )
    assert deploy.invoke(ARN, payload, SESSION, settings=local) == {"result": "ok"}
    stubber.assert_no_pending_responses()


def test_invoke_returns_the_data_of_an_event_stream(monkeypatch: pytest.MonkeyPatch, local: config.Settings) -> None:
    stream = (b'event: message\ndata: {"progress": 1}\n\n'
              b'data: {"jsonrpc": "2.0",\ndata:  "id": 1}\n\n'
              b": a comment\n\ndata: plain text\n\n")
    stubber = stubbed(monkeypatch, "bedrock-agentcore")
    stubber.add_response("invoke_agent_runtime", {"contentType": "text/event-stream", "response": body(stream)})
    assert deploy.invoke(ARN, {}, SESSION, settings=local) == [
        {"progress": 1}, {"jsonrpc": "2.0", "id": 1}, "plain text"]


def test_invoke_returns_other_answers_as_text(monkeypatch: pytest.MonkeyPatch, local: config.Settings) -> None:
    stubber = stubbed(monkeypatch, "bedrock-agentcore")
    stubber.add_response("invoke_agent_runtime", {"contentType": "text/plain", "response": body(b"done")})
    assert deploy.invoke(ARN, {}, SESSION, settings=local) == "done"


def test_invoke_sends_extra_headers_signed(monkeypatch: pytest.MonkeyPatch, local: config.Settings) -> None:
    """The headers travel on the real, signed request (Stubber answers before signing, so send is intercepted)."""
    client = boto3.client("bedrock-agentcore", region_name=REGION)
    sent: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        raw = urllib3.HTTPResponse(body=io.BytesIO(b'{"ok": true}'), headers={"Content-Type": "application/json"},
                                   status=200, preload_content=False)
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, raw)

    client.meta.events.register("before-send.bedrock-agentcore.InvokeAgentRuntime", answer)
    monkeypatch.setattr(deploy, "_client", lambda service, settings, **_: client)
    actor = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Actor-Id"

    assert deploy.invoke(ARN, {"q": 1}, SESSION, settings=local, headers={actor: "user-1"}) == {"ok": True}

    headers = sent[0].headers  # a prepared request: header values are bytes
    assert headers[actor] == b"user-1"
    assert headers["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] == SESSION.encode()
    assert actor.lower() in headers["Authorization"].decode().split("SignedHeaders=")[1]
    assert sent[0].body == b'{"q": 1}'


def test_invoke_checks_the_session_id_first(monkeypatch: pytest.MonkeyPatch, local: config.Settings) -> None:
    monkeypatch.setattr(deploy, "_client", lambda *a, **k: pytest.fail("no request for a bad session id"))
    with pytest.raises(ValueError, match=r"at least 33 characters.*got 7.*new_session_id"):
        deploy.invoke(ARN, {}, "short-1", settings=local)


def test_new_session_ids_are_long_enough_and_fresh() -> None:
    ids = {deploy.new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) >= 33 and i[0].isalnum() and set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
               for i in ids)


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"name": "lab-agent"}, "runtime name must be a letter"),
    ({"name": "1agent"}, "runtime name must be a letter"),
    ({"name": "a" * 49}, "48 at most"),
    ({"entry_point": "missing.py"}, "entry point 'missing.py' not found"),
    ({"entry_point": "../app.py"}, "relative to the source directory"),
    ({"protocol": "A2A"}, "protocol must be 'HTTP'"),
    ({"idle_timeout": 59}, "idle_timeout must be whole seconds between 60 and"),
    ({"max_lifetime": 2_000_000}, "max_lifetime must be whole seconds"),
    ({"idle_timeout": 7200, "max_lifetime": 3600}, "cannot be longer than max_lifetime"),
    ({"idle_timeout": 90.5}, "idle_timeout must be whole seconds"),
    ({"environment": {"A": 1}}, "strings to strings"),
    ({"request_headers": []}, "1 to 20 header names"),
])
def test_bad_input_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch, local: config.Settings,
                                                 source: Path, change: dict[str, Any], message: str) -> None:
    monkeypatch.setattr(deploy, "_client", lambda *a, **k: pytest.fail("no request for bad input"))
    arguments: dict[str, Any] = {"name": "lab_agent", "source": source, "entry_point": "app.py", **change}
    with pytest.raises(ValueError, match=message):
        deploy.deploy(**arguments, settings=local)


def test_a_source_that_is_not_a_directory_is_refused(local: config.Settings, source: Path) -> None:
    with pytest.raises(ValueError, match="source must be a directory"):
        deploy.deploy("lab_agent", source / "app.py", "app.py", settings=local)
