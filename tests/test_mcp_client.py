"""lab_helpers.mcp_client: argument checks, error unwrapping, the teardown-noise filter."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest

from lab_helpers.mcp_client import _SessionAlreadyClosed, _single_error, open_session


@pytest.mark.parametrize("idle_timeout", [0, -1, float("nan")])
def test_idle_timeout_must_be_positive(idle_timeout: float) -> None:
    async def scenario() -> None:
        async with open_session("http://127.0.0.1:9/mcp", idle_timeout=idle_timeout):
            pass

    with pytest.raises(ValueError, match="idle_timeout must be positive seconds"):
        asyncio.run(scenario())


def test_a_dead_server_is_a_connection_error_not_a_hang() -> None:
    async def scenario() -> None:
        async with open_session("http://127.0.0.1:9/mcp"):  # nothing listens on port 9
            pass

    with pytest.raises(Exception) as raised:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    assert not isinstance(raised.value, (asyncio.TimeoutError, BaseExceptionGroup)), repr(raised.value)


def test_single_error_finds_the_one_real_error_in_nested_groups() -> None:
    error = ValueError("the real one")
    group = BaseExceptionGroup("outer", [ExceptionGroup("inner", [error]), asyncio.CancelledError()])
    assert _single_error(group) is error
    assert _single_error(ExceptionGroup("two", [ValueError(), KeyError()])) is None


def _record(error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("mcp.client.streamable_http", logging.ERROR, __file__, 1, "Error parsing SSE message",
                             None, exc_info)


def test_only_the_closed_session_noise_is_hidden() -> None:
    hide = _SessionAlreadyClosed()
    assert not hide.filter(_record(anyio.BrokenResourceError()))
    assert not hide.filter(_record(anyio.ClosedResourceError()))
    assert hide.filter(_record(ValueError("a real parse error")))
    assert hide.filter(_record(None))
