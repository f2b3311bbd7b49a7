from __future__ import annotations

import asyncio

import pytest
from mcp.server.streamable_http import EventMessage
from mcp.types import JSONRPCNotification, JSONRPCResponse

from patterns.event_store import InMemoryEventStore


def _note(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progress": n})


def _answer() -> JSONRPCResponse:
    return JSONRPCResponse(jsonrpc="2.0", id=1, result={"done": True})


def _label(event: EventMessage) -> object:
    message = event.message
    return message.params["progress"] if isinstance(message, JSONRPCNotification) else "response"


async def _replay(store: InMemoryEventStore, last_id: str, timeout: float = 1.0) -> tuple[str | None, list[object]]:
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    stream = await asyncio.wait_for(store.replay_events_after(last_id, send), timeout)
    return stream, [_label(event) for event in sent]


def test_replays_only_later_events_of_the_same_stream_up_to_the_response() -> None:
    async def scenario() -> tuple[list[str], tuple[str | None, list[object]]]:
        store = InMemoryEventStore()
        ids = [await store.store_event("a", None)]  # a priming event carries no message
        for n in range(1, 4):
            ids.append(await store.store_event("a", _note(n)))
            await store.store_event("b", _note(100 + n))
        ids.append(await store.store_event("a", _answer()))
        return ids, await _replay(store, ids[1])  # the client saw progress 1

    ids, (stream, replayed) = asyncio.run(scenario())
    assert ids == sorted(ids, key=int)
    assert stream == "a"
    assert replayed == [2, 3, "response"]


def test_replay_keeps_forwarding_until_the_response_so_nothing_falls_between() -> None:
    """Events stored after the replay started still reach the client, exactly once, in order."""

    async def scenario() -> list[object]:
        store = InMemoryEventStore()
        first = await store.store_event("a", _note(1))
        await store.store_event("a", _note(2))
        replay = asyncio.create_task(_replay(store, first))
        for n in range(3, 6):  # the tool goes on reporting while the client resumes
            await asyncio.sleep(0.01)
            await store.store_event("a", _note(n))
            await store.store_event("b", _note(100 + n))
        await asyncio.sleep(0.01)
        assert not replay.done(), "the call is not answered yet"
        await store.store_event("a", _answer())
        stream, sent = await replay
        assert stream == "a"
        return sent

    assert asyncio.run(scenario()) == [2, 3, 4, 5, "response"]


def test_unknown_or_evicted_ids_cannot_be_resumed() -> None:
    async def scenario() -> None:
        store = InMemoryEventStore(max_events_per_stream=2, max_streams=1)
        ids = [await store.store_event("a", _note(n)) for n in range(4)]
        await store.store_event("b", _note(9))
        assert await _replay(store, "999") == (None, [])
        assert await _replay(store, ids[0]) == (None, [])  # evicted by the per-stream bound
        assert await _replay(store, ids[3]) == (None, [])  # stream "a" evicted by the stream bound
        assert store.event_count() == 1

    asyncio.run(scenario())


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InMemoryEventStore(max_events_per_stream=0)
