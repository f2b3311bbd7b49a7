"""The progress panel updates *live* in a real Jupyter kernel while a cell awaits a tool call.

A frontend draws widget state from the kernel's ``comm_msg`` messages as they
arrive, so "live" means: the bar's updates leave the kernel one by one while the
cell is still running, not in a burst when it ends. This test runs a real kernel
(the workbench's own), executes a cell that awaits ``train_model`` at top level,
and reads the kernel's messages with their send times.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

EPOCHS = 10
EPOCH_SECONDS = 0.1  # at time scale 0.1: one epoch per 100 ms


@pytest.fixture
def kernel(tmp_path: Path):
    manager, client = start_new_kernel(kernel_name="agentcore-longrun-lab", cwd=str(tmp_path))
    try:
        yield client
    finally:
        client.execute("from lab_helpers import processes; processes.stop_all()")
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _run(client, code: str, timeout: float = 60) -> list[dict]:
    """Execute ``code`` and return every iopub message of that execution, in order."""
    msg_id = client.execute(code)
    messages = []
    while True:
        message = client.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "error":
            raise AssertionError("\n".join(message["content"]["traceback"]))
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return messages


def test_bar_updates_leave_the_kernel_while_the_cell_awaits(kernel, tmp_path: Path) -> None:
    _run(kernel, textwrap.dedent(f"""
        from lab_helpers import config, processes
        from lab_helpers.mcp_client import open_session
        from lab_helpers.widgets import ProgressPanel
        cfg = config.load(env={{}}, time_scale={EPOCH_SECONDS}, artifacts_dir={str(tmp_path / "a")!r},
                          logs_dir={str(tmp_path / "l")!r})
        server = processes.start("context_messaging.py", settings=cfg)
    """))
    messages = _run(kernel, textwrap.dedent(f"""
        panel = ProgressPanel("live", headless=False)
        display(panel)
        async with open_session(server.url) as session:
            result = await session.call_tool("train_model", {{"model_name": "live", "epochs": {EPOCHS}}},
                                             progress_callback=panel)
        assert not result.is_error
    """))

    def sent(message: dict) -> float:
        date = message["header"]["date"]
        return (date if isinstance(date, datetime) else datetime.fromisoformat(date)).timestamp()

    updates = [
        (sent(message), message["content"]["data"]["state"]["value"])
        for message in messages
        if message["msg_type"] == "comm_msg" and "value" in message["content"]["data"].get("state", {})
        and isinstance(message["content"]["data"]["state"]["value"], (int, float))
    ]
    assert any(message["msg_type"] == "display_data" for message in messages), "the panel was displayed"
    values = [value for _, value in updates]
    assert values == sorted(values) and values[-1] == EPOCHS, values
    assert len(set(values)) == EPOCHS, "one bar update per epoch"
    spread = updates[-1][0] - updates[0][0]
    assert spread >= 0.6 * (EPOCHS - 1) * EPOCH_SECONDS, f"updates arrived in a burst ({spread:.3f} s), not live"
