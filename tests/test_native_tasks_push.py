"""servers/native_tasks.py's watch_task over real HTTP: a task's status pushed instead of polled.

The same task watched both ways (one watch call against a tasks/get per poll, counted as they leave the client),
every epoch pushed in order, a question pushed as input_required, an unknown id refused, and a dropped
connection: the client polls until it can watch again, and nothing that matters is missed. Both backends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp_tasks import call_tool_task
from lab_helpers.mcp_client import RequestCounter, answer_task, counting_client, task_by_id
from patterns.task_watch import follow_task, watch

from native_tasks_kit import native_tasks_server
from lab_helpers import config
from lab_helpers.processes import ServerProcess
from lab_helpers.proxy import DropProxy

EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+): train acc")


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, module_settings: config.Settings,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with native_tasks_server(request.param, module_settings, tmp_path_factory.mktemp("redis")) as process:
        yield process


def epochs_in(lines: list[tuple[str, str | None]]) -> list[int]:
    return [int(m.group(1)) for status, message in lines if (m := EPOCH_LINE.match(message or ""))]


def test_the_same_task_pushed_and_polled_with_the_requests_each_needs(server: ServerProcess) -> None:
    epochs = 20

    async def main() -> tuple[Any, ...]:
        pushing, polling = RequestCounter(), RequestCounter()
        async with counting_client(server.url, pushing) as watcher, counting_client(server.url, polling) as poller:
            task = await call_tool_task(poller, "model_training", {"model_name": "watched", "epochs": epochs})
            pushed: list[tuple[str, str | None]] = []
            watching = asyncio.create_task(watch(watcher, task.task_id, lambda *status: pushed.append(status)))
            polled = []
            while not polled or polled[-1].status == "working":  # what fastmcp's task.wait() does, in the open
                polled.append(await task.status())
                await asyncio.sleep(polled[-1].poll_interval_ms / 1000)
            return pushed, await watching, polled, pushing.counts, polling.counts

    pushed, watched, polled, push_requests, poll_requests = asyncio.run(main())
    first = epochs_in(pushed)[0]  # where the run was when the watch began
    assert epochs_in(pushed) == list(range(first, epochs + 1)), pushed  # from then on every epoch, once, in order
    assert pushed[-1] == ("completed", None) and watched["status"] == "completed"
    assert watched["result"] == polled[-1].result  # both ways end on the same result
    assert push_requests["tools/call watch_task"] == 1 and push_requests["tasks/get"] == 0
    assert poll_requests["tasks/get"] == len(polled) >= 2
    assert set(epochs_in([(p.status, p.status_message) for p in polled])) <= set(range(1, epochs + 1))


def test_a_question_is_pushed_and_the_watch_goes_on_after_the_answer(server: ServerProcess) -> None:
    async def main() -> tuple[Any, ...]:
        async with Client(server.url) as client:
            task = await call_tool_task(client, "interactive_training",
                                        {"model_name": "plateau", "epochs": 40, "answer_seconds": 600})
            pushed: list[tuple[str, str | None]] = []
            asking = await watch(client, task.task_id, lambda *status: pushed.append(status))
            [key] = asking["inputRequests"]
            await answer_task(client, task.task_id, {key: {"action": "accept", "content": {"decision": "stop"}}})
            after: list[tuple[str, str | None]] = []
            return pushed, asking, await watch(client, task.task_id, lambda *status: after.append(status)), after

    pushed, asking, final, after = asyncio.run(main())
    assert asking["status"] == "input_required" and pushed[-1] == ("input_required", None)
    paused = epochs_in(pushed)[-1]
    assert epochs_in(pushed) == list(range(epochs_in(pushed)[0], paused + 1))
    assert final["status"] == "completed" and after[-1] == ("completed", None)
    # "stop" trains no further epoch. The last epoch before the pause may reach the watcher only in Docket's
    # state, not as its own progress event (a progress write and the pause can land in one read), hence the +1.
    assert paused <= final["result"]["structuredContent"]["epochs_run"] <= paused + 1
    assert not [epoch for epoch in epochs_in(after) if epoch > final["result"]["structuredContent"]["epochs_run"]]


def test_watching_an_unknown_task_is_a_clear_tool_error(server: ServerProcess) -> None:
    async def main() -> None:
        async with Client(server.url) as client:
            await watch(client, "no-such-task", lambda *status: None)

    with pytest.raises(ToolError, match="^Task no-such-task not found$"):
        asyncio.run(main())


def test_a_dropped_watch_falls_back_to_polling_and_misses_nothing_that_matters(server: ServerProcess) -> None:
    epochs = 30

    async def main(proxy: DropProxy) -> tuple[Any, ...]:
        async with Client(proxy.url()) as client:
            task = await call_tool_task(client, "model_training", {"model_name": "dropped", "epochs": epochs})
            seen: list[tuple[str, str | None]] = []
            drops: list[int] = []

            def on_status(status: str, message: str | None) -> None:
                seen.append((status, message))
                if len(epochs_in(seen)) == 3 and not drops:
                    drops.append(proxy.drop_connections())  # the network drops mid-watch

            final = await follow_task(client, task.task_id, on_status, poll_seconds=0.05,
                                      dropped=lambda: drops.append(-1))
            return seen, drops, final, await task_by_id(client, task.task_id)

    with DropProxy(server.port) as proxy:
        seen, drops, final, polled = asyncio.run(main(proxy))
    assert drops[0] >= 1 and -1 in drops, drops  # connections were cut, and the watch knew it
    seen_epochs = epochs_in(seen)
    assert seen_epochs == sorted(seen_epochs) and seen_epochs[-1] == epochs  # went on after the drop, to the end
    assert final["status"] == "completed" and seen[-1] == ("completed", None)
    assert final["result"] == polled.result and final["result"]["structuredContent"]["epochs"] == epochs
