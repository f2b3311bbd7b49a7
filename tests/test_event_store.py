from __future__ import annotations

import asyncio

import pytest
from mcp.server.streamable_http import EventMessage
from mcp.types import JSONRPCNotification

from lab_helpers.event_store import InMemoryEventStore


def _note(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progress": n})


def _replay(store: InMemoryEventStore, last_id: str) -> tuple[str | None, list[tuple[str | None, int]]]:
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    stream = asyncio.run(store.replay_events_after(last_id, send))
    return stream, [(event.event_id, event.message.params["progress"]) for event in sent]  # type: ignore[union-attr]


def test_replays_only_later_events_of_the_same_stream() -> None:
    store = InMemoryEventStore()

    async def fill() -> list[str]:
        ids = [await store.store_event("a", None)]  # a priming event carries no message
        for n in range(1, 4):
            ids.append(await store.store_event("a", _note(n)))
            await store.store_event("b", _note(100 + n))
        return ids

    ids = asyncio.run(fill())
    assert ids == sorted(ids, key=int)
    stream, replayed = _replay(store, ids[1])  # the client saw progress 1
    assert stream == "a"
    assert [progress for _, progress in replayed] == [2, 3]
    assert [event_id for event_id, _ in replayed] == ids[2:]


def test_unknown_or_evicted_ids_cannot_be_resumed() -> None:
    store = InMemoryEventStore(max_events_per_stream=2, max_streams=1)

    async def fill() -> list[str]:
        return [await store.store_event("a", _note(n)) for n in range(4)] + [await store.store_event("b", _note(9))]

    ids = asyncio.run(fill())
    assert _replay(store, "999") == (None, [])
    assert _replay(store, ids[0]) == (None, [])  # evicted by the per-stream bound
    assert _replay(store, ids[3]) == (None, [])  # stream "a" evicted by the stream bound
    assert store.event_count() == 1


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InMemoryEventStore(max_events_per_stream=0)
