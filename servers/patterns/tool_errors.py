"""How a tool turns the caller's mistake into an MCP tool error, so nothing is lost and the message is clear.

An exception that escapes a tool is reported to the client, but as an internal failure with a generic message
(or none). A caller's mistake deserves better: an unknown task id, 0 epochs or a missing header should come back
as a *tool error* (``is_error`` on the result) whose text says what was wrong, which a person or a model can act
on. Every server here does it the same way::

    with tool_errors(ValueError, TaskError):
        validate_request(model_name, epochs, max_epochs=settings.max_epochs)
        task = tasks.submit(...)

Only the listed exception types are turned into tool errors; anything else is a bug and stays one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError


@contextmanager
def tool_errors(*mistakes: type[Exception], error: type[Exception] = ToolError) -> Iterator[None]:
    """Inside the block, any of ``mistakes`` is re-raised as ``error`` (a tool error) with the same message.

    ``error`` is mcp's ``ToolError`` by default; a fastmcp server passes fastmcp's own ``ToolError``.
    """
    try:
        yield
    except mistakes as mistake:
        raise error(str(mistake)) from mistake
