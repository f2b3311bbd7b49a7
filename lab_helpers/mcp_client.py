"""Open an MCP client session the way the lessons need it, in one line.

The notebooks use the standard client pieces (``streamable_http_client`` plus
``ClientSession``, which agree with the server on MCP protocol version 2025-11-25
when the session opens, as Strands' MCPClient does) and only need to vary two
things: the *idle* read timeout of the HTTP stream, which is what kills a silent
long call, and the callbacks that see the server's notifications.
:class:`NotificationCounter` counts what actually arrived, so a lesson can assert
"zero progress notifications" instead of claiming it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any
from contextlib import asynccontextmanager

import anyio
import httpx2

# mcp validates structured tool results with jsonschema, which it imports on the first
# call; that import builds grammars and takes 1-3 s. Paying it here, at import, keeps a
# lesson's "this call returned in well under a second" true for the first call too.
import jsonschema  # noqa: F401
from mcp import ClientSession
from mcp.client.session import IncomingMessage, LoggingFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.types import LoggingMessageNotification, ProgressNotification

#: The mcp SDK's own defaults (30 s per HTTP operation, 5 minutes of silence on a stream), written out here
#: because the SDK keeps them in a private module.
DEFAULT_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 300.0


class _SessionAlreadyClosed(logging.Filter):
    """Hide the SDK's traceback for a message that arrives after its session was closed.

    When a call is abandoned (a request deadline) and the session closes while the
    server is still working, the server's late answer finds the client's read
    stream closed; mcp 2.1.1 logs that as "Error parsing SSE message" with a
    BrokenResourceError traceback. Nothing is wrong and nothing can be delivered,
    so in a lesson the red traceback would only mislead. Other errors still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, (anyio.BrokenResourceError, anyio.ClosedResourceError))


logging.getLogger("mcp.client.streamable_http").addFilter(_SessionAlreadyClosed())


class NotificationCounter:
    """A ``message_handler`` that counts every server notification by kind.

    ``ClientSession`` passes every notification (and transport errors) to its
    ``message_handler``, whether or not a progress callback was registered, so
    this sees what really came over the wire.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.errors: list[Exception] = []
        self._lock = threading.Lock()

    async def __call__(self, message: IncomingMessage) -> None:
        with self._lock:
            if isinstance(message, Exception):
                self.errors.append(message)
            elif isinstance(message, ProgressNotification):
                self.counts["progress"] += 1
            elif isinstance(message, LoggingMessageNotification):
                self.counts["log"] += 1
            else:
                self.counts[type(message).__name__] += 1

    @property
    def progress(self) -> int:
        return self.counts["progress"]

    @property
    def logs(self) -> int:
        return self.counts["log"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every HTTP client here shares (httpx's defaults, made once per process).

    A new client builds its own by default, which parses the CA bundle: about 25 ms of CPU, spent on every
    session opened even over plain http://, where it is never used. Polling loops open many.
    """
    return httpx2.create_ssl_context()

@asynccontextmanager
async def open_session(
    url: str,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    logging_callback: LoggingFnT | None = None,
    message_handler: NotificationCounter | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized ``ClientSession`` on ``url``; closed (and its HTTP client too) on exit.

    ``idle_timeout`` is the longest silence tolerated on a response stream: the
    HTTP read timeout. A long call on which the server says nothing for longer
    fails, which is the problem notebook 01 starts from.
    """
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout!r}")
    timeout = httpx2.Timeout(DEFAULT_TIMEOUT, read=idle_timeout)
    try:
        async with httpx2.AsyncClient(timeout=timeout, headers=dict(headers or {}), follow_redirects=True,
                                      verify=tls_context()) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(
                    read, write, logging_callback=logging_callback, message_handler=message_handler
                ) as session:
                    await session.initialize()
                    yield session
    except BaseExceptionGroup as group:
        # The transport's task groups wrap whatever the caller's block raised; hand
        # back the one real error (an MCPError, say) so `except MCPError` works.
        leaf = _single_error(group)
        if leaf is None:
            raise
        raise leaf from None


def _single_error(group: BaseExceptionGroup) -> BaseException | None:
    """The only non-cancellation exception inside ``group`` (however nested), else None."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        elif not isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            leaves.append(error)
    return leaves[0] if len(leaves) == 1 else None


async def task_by_id(client: Any, task_id: str) -> Any:
    """``tasks/get`` for any task id, from any connection: a fastmcp ``Client`` after a restart, say.

    fastmcp offers ``status()`` only on the ``ToolTask`` handle that started the task; a client that
    kept just the id (notebook 05's restart test) sends the request itself. Raises ``MCPError`` for
    an id the server does not know. Import ``fastmcp_tasks`` before the client connects (``call_tool_task``
    comes from it): the import is what makes fastmcp's ``Client`` declare the tasks extension, and a client
    that did not declare it is refused ``tasks/get`` (error -32021). It is not imported here because it costs
    1.5 s, which the lessons without tasks need not pay.
    """
    from fastmcp_tasks.client_models import ClientGetTaskResult, GetTaskRequest, GetTaskRequestParams

    request = GetTaskRequest(params=GetTaskRequestParams(task_id=task_id))
    return await client.session.send_request(request, ClientGetTaskResult)


async def answer_task(client: Any, task_id: str, answers: Mapping[str, Any]) -> None:
    """``tasks/update``: answer the questions of an ``input_required`` task, keyed as ``tasks/get`` listed them.

    Each answer is an elicitation result, e.g. ``{"action": "accept", "content": {"decision": "stop"}}``. fastmcp's
    ``ToolTask.result()`` answers through the client's elicitation handler by itself; a lesson that wants to see
    (and time) the answer sends it with this. Raises ``MCPError`` when the server refuses it (notebook 08's server
    says why: not waiting, unknown question, malformed answer). Import ``fastmcp_tasks`` first, as for
    :func:`task_by_id`.
    """
    from fastmcp_tasks.client_models import UpdateTaskRequest, UpdateTaskRequestParams
    from mcp_types import Result

    request = UpdateTaskRequest(params=UpdateTaskRequestParams(task_id=task_id, input_responses=dict(answers)))
    await client.session.send_request(request, Result)


class RequestCounter:
    """Counts the JSON-RPC requests a client sends, by method, as they leave over HTTP.

    Pass :meth:`http_client_factory` to fastmcp's ``StreamableHttpTransport(url, httpx_client_factory=...)``
    (or use :func:`counting_client`): every POST's body is read for its ``method``. Notebook 08 counts the
    ``tasks/get`` polls of one training against the one ``watch_task`` call that pushes the same statuses.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def _on_request(self, request: httpx2.Request) -> None:
        if request.method != "POST":
            return
        try:
            message = json.loads(request.content)
        except (ValueError, httpx2.RequestNotRead):
            return
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict) and "method" in item and "id" in item:  # a request, not a notification
                method = item["method"]
                if method == "tools/call":
                    method = f"tools/call {item.get('params', {}).get('name')}"
                self.counts[method] += 1

    def http_client_factory(
        self, *, headers: Mapping[str, str] | None = None, auth: httpx2.Auth | None = None,
        timeout: httpx2.Timeout | None = None, **_: Any,
    ) -> httpx2.AsyncClient:
        """An HTTP client with the SDK's defaults (30 s, 5 minutes of stream silence) that counts its requests."""
        return httpx2.AsyncClient(
            headers=dict(headers or {}), auth=auth, follow_redirects=True,
            timeout=timeout or httpx2.Timeout(DEFAULT_TIMEOUT, read=DEFAULT_IDLE_TIMEOUT),
            event_hooks={"request": [self._on_request]}, verify=tls_context(),
        )


def counting_client(url: str, counter: RequestCounter) -> Any:
    """A fastmcp ``Client`` for ``url`` whose requests ``counter`` counts."""
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    return Client(StreamableHttpTransport(url, httpx_client_factory=counter.http_client_factory))
