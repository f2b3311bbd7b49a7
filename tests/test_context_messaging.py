"""servers/context_messaging.py over real HTTP on 127.0.0.1: progress, heartbeats, timeouts, drops, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import mcp
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from conftest import TEST_TIME_SCALE
from lab_helpers import config
from lab_helpers.mcp_client import NotificationCounter, open_session
from lab_helpers.proxy import DropProxy
from lab_helpers.processes import ServerProcess
from lab_helpers.widgets import ProgressPanel

EPOCH = TEST_TIME_SCALE  # real seconds per epoch at the test time scale


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> config.Settings:
    root = tmp_path_factory.mktemp("context")
    return config.load(env={}, time_scale=TEST_TIME_SCALE, artifacts_dir=root / "artifacts", logs_dir=root / "logs")


@pytest.fixture(scope="module")
def server(module_settings: config.Settings) -> Iterator[ServerProcess]:
    with ServerProcess("context_messaging.py", settings=module_settings) as process:
        yield process


@pytest.fixture(scope="module")
def resumable(module_settings: config.Settings) -> Iterator[ServerProcess]:
    with ServerProcess("context_messaging.py", "--resumable", settings=module_settings, name="resumable") as process:
        yield process


async def _call(url: str, tool: str, arguments: dict, **session_options):
    async with open_session(url, **session_options) as session:
        return await session.call_tool(tool, arguments)


def test_lists_its_tools(server: ServerProcess) -> None:
    async def names() -> list[str]:
        async with open_session(server.url) as session:
            return sorted(tool.name for tool in (await session.list_tools()).tools)

    assert asyncio.run(names()) == ["server_info", "train_model", "train_model_with_heartbeat"]


def test_progress_every_epoch_and_real_scores(server: ServerProcess, module_settings: config.Settings) -> None:
    panel = ProgressPanel("test", headless=True)

    async def train() -> mcp.types.CallToolResult:
        async with open_session(server.url) as session:
            return await session.call_tool("train_model", {"model_name": "t1", "epochs": 12}, progress_callback=panel)

    result = asyncio.run(train())
    assert not result.is_error, result.content
    scores = result.structured_content
    assert [event[0] for event in panel.progress_events] == list(range(1, 13))
    assert all(total == 12 for _, total, _ in panel.progress_events)
    assert len(scores["history"]) == 12
    assert scores["val_accuracy"] == scores["history"][-1]["val_accuracy"]
    assert f"val acc {scores['val_accuracy']:.3f}" in panel.progress_events[-1][2]
    artifact = Path(scores["artifact_path"])
    assert artifact.is_file() and artifact.parent == module_settings.artifacts_dir


def test_a_client_without_progress_callback_gets_no_progress(server: ServerProcess) -> None:
    counter = NotificationCounter()
    result = asyncio.run(_call(server.url, "train_model", {"model_name": "t2", "epochs": 5}, message_handler=counter))
    assert not result.is_error
    assert counter.progress == 0 and counter.errors == []


def test_heartbeats_flow_without_progress_and_stop_with_the_work(server: ServerProcess) -> None:
    counter = NotificationCounter()

    async def scenario() -> tuple[mcp.types.CallToolResult, int, int]:
        async with open_session(server.url, message_handler=counter) as session:
            result = await session.call_tool(
                "train_model_with_heartbeat", {"model_name": "t3", "epochs": 40, "heartbeat_seconds": 5.0}
            )
            at_end = counter.logs
            await asyncio.sleep(5 * 5.0 * TEST_TIME_SCALE)  # five more heartbeat intervals on the same session
            return result, at_end, counter.logs

    result, at_end, later = asyncio.run(scenario())
    assert not result.is_error, result.content
    assert counter.progress == 0
    assert at_end >= 3 and at_end == result.structured_content["heartbeats_sent"]
    assert later == at_end, "a heartbeat outlived its call"


def test_heartbeat_stops_when_the_training_fails(server: ServerProcess) -> None:
    counter = NotificationCounter()

    async def scenario() -> tuple[mcp.types.CallToolResult, int, int]:
        async with open_session(server.url, message_handler=counter) as session:
            result = await session.call_tool(
                "train_model_with_heartbeat",
                {"model_name": "t4", "epochs": 50, "heartbeat_seconds": 0.5, "learning_rate": 1e5},
            )
            at_end = counter.logs
            await asyncio.sleep(5 * 0.5 * TEST_TIME_SCALE)
            return result, at_end, counter.logs

    result, at_end, later = asyncio.run(scenario())
    assert result.is_error and "diverged" in result.content[0].text
    assert later == at_end


def test_a_silent_call_dies_of_the_idle_timeout_but_progress_and_heartbeats_keep_it(server: ServerProcess) -> None:
    idle = 0.5
    epochs = int(3 * idle / EPOCH)
    with pytest.raises(MCPError) as raised:
        asyncio.run(_call(server.url, "train_model", {"model_name": "t5", "epochs": epochs}, idle_timeout=idle))
    assert raised.value.code == CONNECTION_CLOSED

    async def with_progress() -> mcp.types.CallToolResult:
        async def ignore(progress: float, total: float | None, message: str | None) -> None:
            pass

        async with open_session(server.url, idle_timeout=idle) as session:
            return await session.call_tool("train_model", {"model_name": "t5", "epochs": epochs}, progress_callback=ignore)

    assert not asyncio.run(with_progress()).is_error
    heartbeat = {"model_name": "t5", "epochs": epochs, "heartbeat_seconds": idle / 4 / TEST_TIME_SCALE}
    assert not asyncio.run(_call(server.url, "train_model_with_heartbeat", heartbeat, idle_timeout=idle)).is_error


def test_a_request_deadline_is_a_timeout_error(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with open_session(server.url) as session:
            await session.call_tool("train_model", {"model_name": "t6", "epochs": 50}, read_timeout_seconds=0.3)

    with pytest.raises(MCPError) as raised:
        asyncio.run(scenario())
    assert raised.value.code == REQUEST_TIMEOUT


def _through_a_drop(port: int, epochs: int = 30, drop_at: int = 10) -> tuple[object, list[float], int]:
    """Call train_model through a proxy that resets every connection at epoch ``drop_at``."""
    received: list[float] = []

    async def scenario(proxy: DropProxy) -> object:
        async def progress(value: float, total: float | None, message: str | None) -> None:
            received.append(value)
            if value == drop_at:
                proxy.drop_connections()

        async with open_session(proxy.url()) as session:
            try:
                return await session.call_tool(
                    "train_model", {"model_name": "drop", "epochs": epochs}, progress_callback=progress
                )
            except MCPError as error:
                return error

    with DropProxy(port) as proxy:
        outcome = asyncio.run(scenario(proxy))
        return outcome, received, proxy.connections_dropped


def test_a_dropped_connection_loses_the_call(server: ServerProcess) -> None:
    outcome, received, dropped = _through_a_drop(server.port)
    assert dropped >= 1
    assert isinstance(outcome, MCPError) and outcome.code == CONNECTION_CLOSED
    assert received == list(range(1, 11))


@pytest.mark.parametrize("attempt", range(5))  # the SDK's replay window lost an event in half the runs: repeat
def test_a_resumable_stream_replays_every_missed_event(resumable: ServerProcess, attempt: int) -> None:
    outcome, received, dropped = _through_a_drop(resumable.port)
    assert dropped >= 1
    assert isinstance(outcome, mcp.types.CallToolResult) and not outcome.is_error
    assert received == list(range(1, 31)), "no progress event lost or repeated"


WHOLE_EPOCHS = "epochs must be a whole number (a JSON integer such as 10)"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("train_model", {"model_name": "x", "epochs": 0}, "epochs must be between 1 and"),
        ("train_model", {"model_name": "x", "epochs": -5}, "epochs must be between 1 and"),
        ("train_model", {"model_name": "x", "epochs": 10**9}, "epochs must be between 1 and 1000"),
        ("train_model", {"model_name": "", "epochs": 3}, "model_name must be"),
        ("train_model", {"model_name": "../etc/passwd", "epochs": 3}, "model_name must be"),
        ("train_model", {"model_name": "x", "epochs": "many"}, "epochs"),
        # JSON types as the input schema declares them: pydantic's lax mode alone would take true as 1, "10" as 10.
        ("train_model", {"model_name": "x", "epochs": True}, f"train_model: {WHOLE_EPOCHS}, got true"),
        ("train_model", {"model_name": "x", "epochs": "10"}, f'{WHOLE_EPOCHS}, got "10"'),
        ("train_model", {"model_name": "x", "epochs": 10.5}, f"{WHOLE_EPOCHS}, got 10.5"),
        ("train_model", {"model_name": "x", "learning_rate": "0.1"}, 'learning_rate must be a number (such as 0.3 '
                                                                      'or 1), got "0.1"'),
        ("train_model_with_heartbeat", {"model_name": "x", "heartbeat_seconds": True}, "heartbeat_seconds must be a "
                                                                                        "number"),
        ("train_model", {"epochs": 3}, "model_name"),
        ("train_model", {"model_name": "x", "epoch": 3}, "unknown argument(s) epoch; it accepts: epochs,"),
        ("train_model_with_heartbeat", {"model_name": "x", "heartbeat_seconds": 0}, "heartbeat_seconds must be"),
        ("train_model_with_heartbeat", {"model_name": "x", "heartbeat_seconds": 1e9}, "heartbeat_seconds must be"),
        ("no_such_tool", {}, "Unknown tool: no_such_tool"),
    ],
)
def test_bad_input_gets_a_clear_tool_error(server: ServerProcess, tool: str, arguments: dict, message: str) -> None:
    result = asyncio.run(_call(server.url, tool, arguments))
    assert result.is_error
    assert message in result.content[0].text


def test_an_integer_is_a_number_a_learning_rate_of_1_is_accepted(server: ServerProcess) -> None:
    arguments = {"model_name": "whole-rate", "epochs": 1, "learning_rate": 1}
    result = asyncio.run(_call(server.url, "train_model", arguments))
    assert not result.is_error, result.content[0].text
    assert result.structured_content["learning_rate"] == 1.0 and result.structured_content["epochs"] == 1


def test_polling_across_the_keep_alive_boundary_never_breaks_the_client(server: ServerProcess) -> None:
    """The modern client's pool drops idle connections after ~5 s; the server must keep them longer (75 s keep-alive).

    Otherwise the server may close a connection just as the client reuses it, and that call fails.
    """

    async def poll() -> list[int]:
        pids = []
        async with mcp.Client(server.url) as client:
            for pause in (4.9, 5.0, 5.1):
                pids.append((await client.call_tool("server_info", {})).structured_content["pid"])
                await asyncio.sleep(pause)
            pids.append((await client.call_tool("server_info", {})).structured_content["pid"])
        return pids

    assert asyncio.run(poll()) == [server.pid] * 4


def test_strands_mcp_client_drives_the_same_panel(server: ServerProcess) -> None:
    from strands.tools.mcp import MCPClient

    panel = ProgressPanel("strands", headless=True)
    with MCPClient(url=server.url, progress_callback=panel) as client:
        result = client.call_tool_sync("call-1", "train_model", {"model_name": "strands", "epochs": 6})
    assert result["status"] == "success", result
    assert [event[0] for event in panel.progress_events] == list(range(1, 7))
