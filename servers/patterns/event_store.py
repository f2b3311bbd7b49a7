"""An in-memory event store, so a dropped SSE stream can be resumed with ``Last-Event-ID``.

mcp 2.x defines the :class:`~mcp.server.streamable_http.EventStore` interface but ships
no implementation. With a store configured, every message the server sends on a
stream gets an event id; a client whose connection drops reconnects with a GET
carrying the last id it saw, and the server replays everything after it.

Replay also tails. mcp 2.1.1 replays the stored events, then stores and sends a
fresh priming event, and only then registers the resumed stream for live
messages; a message the tool sends inside that window is stored but never sent,
and the priming id the client records moves past it, so it is lost for good (the
SDK's own comment calls it "the replay->live-tail ordering window"). With progress
every 20 ms that lost one event in two resumptions. So :meth:`replay_events_after`
keeps forwarding the stream's new events itself until the request's response has
gone out (or the client drops again): while it runs, the transport has not
registered the stream, so nothing is sent twice.

Memory is bounded: each stream keeps its newest ``max_events_per_stream`` events and
only the newest ``max_streams`` streams are kept. That is plenty for a lesson and
keeps a long-lived server from growing without limit; a production server would
keep events in Redis or similar so that any replica can replay them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCError, JSONRPCMessage, JSONRPCResponse


class InMemoryEventStore(EventStore):
    """Keeps recent events per stream in process memory; lost when the server restarts."""

    def __init__(self, max_events_per_stream: int = 10_000, max_streams: int = 1_000) -> None:
        if max_events_per_stream < 1 or max_streams < 1:
            raise ValueError("max_events_per_stream and max_streams must be at least 1")
        self._max_events = max_events_per_stream
        self._max_streams = max_streams
        self._counter = itertools.count(1)
        # stream id -> events in order, as (event id, message or None for a priming event)
        self._streams: OrderedDict[StreamId, deque[tuple[EventId, JSONRPCMessage | None]]] = OrderedDict()
        self._stream_of: dict[EventId, StreamId] = {}
        self._stored: asyncio.Event | None = None  # set (and replaced) whenever an event is stored

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Give the message an id (increasing, so ids order events) and remember it with its stream."""
        event_id = str(next(self._counter))
        events = self._events_of(stream_id)
        if len(events) == self._max_events:  # the stream's oldest event makes room
            old_id, _ = events.popleft()
            self._stream_of.pop(old_id, None)
        events.append((event_id, message))
        self._stream_of[event_id] = stream_id
        if self._stored is not None:  # wake the replays waiting for new events (see replay_events_after)
            self._stored.set()
            self._stored = None
        return event_id

    def _events_of(self, stream_id: StreamId) -> deque[tuple[EventId, JSONRPCMessage | None]]:
        """The events of ``stream_id``; a new stream evicts the oldest streams beyond ``max_streams``."""
        events = self._streams.get(stream_id)
        if events is None:
            events = self._streams[stream_id] = deque()
            while len(self._streams) > self._max_streams:
                _, dropped = self._streams.popitem(last=False)
                for old_id, _ in dropped:
                    self._stream_of.pop(old_id, None)
        return events

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send every event of the same stream after ``last_event_id``, then tail it until the response is sent.

        Returns None for an id this store does not know (never issued, or already
        evicted): the transport then tells the client the stream cannot be resumed.
        """
        stream_id = self._stream_of.get(last_event_id)
        if stream_id is None:
            return None
        sent = int(last_event_id)
        while True:
            pending = [(i, m) for i, m in self._streams.get(stream_id, ()) if int(i) > sent]
            if not pending:
                if stream_id not in self._streams:  # evicted while we waited
                    return stream_id
                # No await between the check above and this wait, so no event can slip past.
                waiter = self._stored or asyncio.Event()
                self._stored = waiter
                await waiter.wait()
                continue
            for event_id, message in pending:
                sent = int(event_id)
                if message is None:  # a priming event has no content to send
                    continue
                await send_callback(EventMessage(message, event_id))
                if isinstance(message, (JSONRPCResponse, JSONRPCError)):
                    return stream_id  # the call is answered: nothing more will come on this stream

    def event_count(self) -> int:
        """How many events are held now (for tests and the lesson's curiosity)."""
        return sum(len(events) for events in self._streams.values())
