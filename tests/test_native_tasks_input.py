"""servers/native_tasks.py's interactive_training over real HTTP: a task that asks mid-run (input_required).

The answer decides what the run does (stop keeps the best model, continue N trains N more), an unanswered
question ends the run at its deadline saying so, bad answers are refused with clear errors, and with Redis a
paused task (and its deadline) survives a SIGKILL of the server. Both backends where both apply.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp_tasks import ToolTask, call_tool_task
from lab_helpers.mcp_client import answer_task, task_by_id  # tasks/update and tasks/get by id
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from native_tasks_kit import native_tasks_server, run
from lab_helpers import config
from lab_helpers.processes import ServerProcess
from lab_helpers.training import load_artifact, make_dataset, seed_for
from lab_helpers.waiting import eventually_async

#: The run's question names the best epoch and the epoch it paused at.
QUESTION = re.compile(r"best (0\.\d+) at epoch (\d+), now epoch (\d+)/(\d+)")
#: An answer well inside the deadline at the test time scale (600 s at scale 1 is 12 real s at 0.02).
SLOW_DEADLINE = 600


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, module_settings: config.Settings,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with native_tasks_server(request.param, module_settings, tmp_path_factory.mktemp("redis")) as process:
        yield process


def accept(**content: Any) -> dict[str, Any]:
    return {"action": "accept", "content": content}


async def park(client: Client, model_name: str, **arguments: Any) -> tuple[ToolTask, str, str]:
    """Start interactive_training and wait for its question: the task, the question's key and its message."""
    task = await call_tool_task(client, "interactive_training",
                                {"model_name": model_name, "epochs": 40, "answer_seconds": SLOW_DEADLINE, **arguments})
    asking = await task.wait(state="input_required", timeout=30)
    [(key, question)] = asking.input_requests.items()
    return task, key, question["params"]["message"]


def best_of(message: str) -> tuple[float, int, int]:
    """(best val accuracy, its epoch, the epoch the run paused at) as the question told the user."""
    match = QUESTION.search(message)
    assert match, message
    return float(match.group(1)), int(match.group(2)), int(match.group(3))


def scores_of_artifact(path: str, model_name: str) -> float:
    _, _, X_val, y_val = make_dataset(seed_for(model_name))
    return load_artifact(path).accuracy(X_val, y_val)


def test_the_answer_decides_stop_keeps_the_best_model_continue_trains_on(server: ServerProcess) -> None:
    async def body(client: Client) -> tuple[Any, ...]:
        stopping, stop_key, question = await park(client, "plateau")
        going, go_key, same_question = await park(client, "plateau")
        assert (await task_by_id(client, stopping.task_id)).status == "input_required"  # a plain poll sees it too
        await answer_task(client, stopping.task_id, {stop_key: accept(decision="stop")})
        await answer_task(client, going.task_id, {go_key: accept(decision="continue", extra_epochs=5)})
        return question, same_question, (await stopping.result()).data, (await going.result()).data

    question, same_question, stopped, continued = run(server, body)
    best, best_epoch, paused = best_of(question)
    assert question.split(" Without")[0] == same_question.split(" Without")[0]  # deterministic: same run, same pause
    assert "Stop early and keep the best model, or continue for N more epochs?" in question and paused > best_epoch
    # stop: the model as it was at its best epoch, saved; the run went no further than the pause
    assert (stopped["epochs"], stopped["epochs_run"], stopped["questions"]) == (best_epoch, paused, 1)
    assert stopped["val_accuracy"] == pytest.approx(best, abs=5e-4)
    assert scores_of_artifact(stopped["artifact_path"], "plateau") == pytest.approx(stopped["val_accuracy"])
    assert stopped["decisions"] == ["stop: the user chose to keep the best model"]
    # continue 5: five more epochs from where it paused (no second plateau in them for this model)
    assert (continued["epochs"], continued["epochs_run"], continued["questions"]) == (paused + 5, paused + 5, 1)
    assert continued["decisions"] == ["continue for 5 more epochs"]
    assert scores_of_artifact(continued["artifact_path"], "plateau") == pytest.approx(continued["val_accuracy"])


def test_an_unanswered_question_ends_the_run_at_its_deadline_saying_why(server: ServerProcess) -> None:
    async def body(client: Client) -> tuple[str, Any]:
        task, _key, question = await park(client, "unanswered", answer_seconds=1)  # 1 s at scale 1: the 1 s floor

        async def ended() -> Any:
            status = await task.status()
            return status if status.status not in ("input_required", "working") else None

        return question, await eventually_async(ended, timeout=30, what="the deadline to answer for the user")

    question, final = run(server, body)
    _, best_epoch, paused = best_of(question)
    result = final.result["structuredContent"]
    assert final.status == "completed" and (result["epochs"], result["epochs_run"]) == (best_epoch, paused)
    assert result["decisions"] == ["stop: no answer before the deadline, so the run stopped early and kept the "
                                   "best model"]


def test_bad_answers_are_refused_with_clear_errors(server: ServerProcess) -> None:
    async def refused(client: Client, task_id: str, answers: dict[str, Any]) -> str:
        with pytest.raises(MCPError) as error:
            await answer_task(client, task_id, answers)
        assert error.value.error.code == INVALID_PARAMS
        return error.value.error.message

    async def body(client: Client) -> dict[str, str]:
        task, key, _ = await park(client, "refusing")
        messages = {
            "unknown task": await refused(client, "no-such-task", {key: accept(decision="stop")}),
            "unknown question": await refused(client, task.task_id, {"plateau": accept(decision="stop")}),
            "no answer": await refused(client, task.task_id, {}),
            "bad action": await refused(client, task.task_id, {key: {"action": "yes"}}),
            "bad decision": await refused(client, task.task_id, {key: accept(decision="maybe")}),
            "bad epochs": await refused(client, task.task_id, {key: accept(decision="continue", extra_epochs=0)}),
            "text epochs": await refused(client, task.task_id, {key: accept(decision="continue", extra_epochs="9")}),
            "extra field": await refused(client, task.task_id, {key: accept(decision="stop", why="bored")}),
        }
        assert (await task.status()).status == "input_required"  # none of that touched the question
        await answer_task(client, task.task_id, {key: accept(decision="stop")})
        messages["twice"] = await refused(client, task.task_id, {key: accept(decision="stop")})
        await task.result()
        messages["ended"] = await refused(client, task.task_id, {key: accept(decision="stop")})
        plain = await call_tool_task(client, "model_training", {"model_name": "never-asks", "epochs": 300})
        messages["never asked"] = await refused(client, plain.task_id, {key: accept(decision="stop")})
        await plain.cancel()
        cancelled, cancelled_key, _ = await park(client, "cancelled-while-asking")
        await cancelled.cancel()
        messages["cancelled"] = await refused(client, cancelled.task_id, {cancelled_key: accept(decision="stop")})
        return messages

    messages = run(server, body)
    assert messages["unknown task"] == "Task no-such-task not found"
    for case in ("unknown question", "no answer"):
        assert re.search(r"waits for answers to \['.+'\]; got (\['plateau'\]|none)", messages[case]), messages[case]
    for case, detail in {"bad action": "action", "bad decision": "'maybe' is not one of ['stop', 'continue']",
                         "bad epochs": "0 is less than the minimum of 1", "text epochs": "'9' is not of type 'integer'",
                         "extra field": "Additional properties are not allowed ('why' was unexpected)"}.items():
        assert "is malformed" in messages[case] and detail in messages[case], messages[case]
    for case, status in {"twice": "working|completed", "ended": "completed", "never asked": "working",
                         "cancelled": "cancelled"}.items():
        assert re.search(rf"is not waiting for input: it is ({status}) ", messages[case]), messages[case]


@pytest.mark.parametrize("server", ["redis"], indirect=True)  # in memory a restart forgets every task (test_native_tasks)
def test_redis_a_paused_task_and_its_deadline_survive_a_server_kill(server: ServerProcess) -> None:

    async def pause(client: Client) -> tuple[str, str, str, str, str]:
        answered, key, question = await park(client, "paused-across-kill", answer_seconds=1800)  # 36 real s
        expiring, _, expiring_question = await park(client, "expires-while-down", answer_seconds=50)  # 1 real s
        return answered.task_id, key, question, expiring.task_id, expiring_question

    task_id, key, question, expiring_id, expiring_question = run(server, pause)
    server.kill()  # SIGKILL while both wait for input: nothing runs, everything is in Redis
    server.start()

    async def resume(client: Client) -> tuple[Any, Any, Any]:
        still = await task_by_id(client, task_id)
        await answer_task(client, task_id, {key: accept(decision="continue", extra_epochs=5)})

        async def both_ended() -> tuple[Any, Any] | None:
            answers = await task_by_id(client, task_id), await task_by_id(client, expiring_id)
            return answers if all(a.status not in ("working", "input_required") for a in answers) else None

        return still, *await eventually_async(both_ended, timeout=30, what="both paused tasks to end")

    still, answered, expired = run(server, resume)
    assert still.status == "input_required" and list(still.input_requests) == [key]
    assert still.input_requests[key]["params"]["message"] == question  # the same question, read back from Redis
    _, _, paused = best_of(question)
    result = answered.result["structuredContent"]
    assert answered.status == "completed" and result["epochs_run"] == paused + 5
    assert result["decisions"] == ["continue for 5 more epochs"]
    _, best_epoch, _ = best_of(expiring_question)
    late = expired.result["structuredContent"]
    assert expired.status == "completed" and late["epochs"] == best_epoch
    assert late["decisions"][0].startswith("stop: no answer before the deadline")


def test_a_poll_racing_an_answer_never_sees_an_empty_completed_task(server: ServerProcess) -> None:
    """tasks/get reads which run is current, then whether that run still asks: an answer landing between the two
    reads (the user's or the deadline's) once made a poll report ``completed`` with an empty result."""

    async def answer_while_polling(client: Client, task: ToolTask, key: str) -> list[Any]:
        completions: list[Any] = []

        async def poll() -> None:  # back to back, so some poll straddles the answer's switch to the next run
            while (status := await task_by_id(client, task.task_id)).status != "completed":
                pass
            completions.append(status.result)

        pollers = [asyncio.create_task(poll()) for _ in range(3)]
        await asyncio.sleep(0)
        await answer_task(client, task.task_id, {key: accept(decision="stop")})
        await asyncio.gather(*pollers)
        return completions

    async def body(client: Client) -> list[Any]:
        parked = await asyncio.gather(*(park(client, f"raced-{n}", patience=1) for n in range(8)))
        seen = await asyncio.gather(*(answer_while_polling(client, task, key) for task, key, _ in parked))
        return [result for results in seen for result in results]

    completions = run(server, body)
    assert len(completions) == 24
    assert all(result.get("structuredContent", {}).get("decisions") == ["stop: the user chose to keep the best model"]
               for result in completions), [result for result in completions if "structuredContent" not in result]
