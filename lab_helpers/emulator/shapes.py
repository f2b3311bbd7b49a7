"""Every request the emulator answers, checked against botocore's service models in one place.

AWS validates a request against its operation's input shape before it touches anything: types, required members,
enum values, lengths, numeric ranges and patterns, and answers a ``ValidationException`` that quotes the failed
constraint (``1 validation error detected: Value '101' at 'maxResults' failed to satisfy constraint: Member must
have value less than or equal to 100``). The emulator does the same, driven by the very models boto3 uses
(``bedrock-agentcore`` 2024-02-28 and ``bedrock-agentcore-control`` 2023-06-05), so a request that botocore would
send is judged by the same rules whatever client sent it, and nothing malformed reaches the store or starts a
process. :func:`check_input` is the one entry point; the handlers in :mod:`lab_helpers.emulator.api` receive only
what it returns: the modelled members, validated, with unknown members dropped (AWS ignores them).

:func:`output_problems` does the reverse for the tests: what in a response the output shape does not allow.

Conventions, as AWS's validation layer has them: patterns match the whole value; lengths count characters; a
list member's path is ``name.N.member`` (1-based); several failures are reported together. Where the model has no
bound, an ``integer`` must fit in 32 bits and a ``long`` in 64, and a timestamp (epoch seconds) lies between 1970
and the year 10000. Document members (free JSON) are not looked into here: the HTTP layer bounds their nesting
depth and size for every body.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

SERVICES = ("bedrock-agentcore", "bedrock-agentcore-control")
INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
#: Epoch seconds from 1970 to the year 10000 (AWS's timestamps are within it).
TIMESTAMP_RANGE = (0.0, 253402300800.0)
#: How much of an offending value an error message quotes.
QUOTE_CHARS = 80
#: How many failures one error message lists (AWS lists a handful, then stops).
MAX_ERRORS = 10


class ShapeError(Exception):
    """The request does not fit the operation's input shape: ``errors`` are (path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        count = len(errors)
        detail = "; ".join(message for _, message in errors)
        super().__init__(f"{count} validation error{'s' if count > 1 else ''} detected: {detail}")


@lru_cache(maxsize=None)
def service(name: str) -> ServiceModel:
    """botocore's model of one of the two services (loaded once)."""
    return botocore.session.get_session().get_service_model(name)


def operation(service_name: str, name: str) -> OperationModel:
    return service(service_name).operation_model(name)


def _quote(value: Any, sensitive: bool) -> str:
    """``Value 'x' at`` as AWS words it: no value for sensitive members or structures, a short one otherwise."""
    if value is None:
        return "Value null at"
    if sensitive or isinstance(value, (dict, list)):
        return "Value at"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if len(text) > QUOTE_CHARS:
        text = text[:QUOTE_CHARS] + "..."
    return f"Value '{text}' at"


# -- the validator: each shape compiled once into a function ---------------------------------------------
Check = Callable[[Any, str, list], Any]
"""check(value, path, errors) -> the value to keep (errors appended to ``errors``)."""


def _fail(errors: list[tuple[str, str]], path: str, value: Any, shape: Shape, constraint: str) -> None:
    if len(errors) < MAX_ERRORS:
        errors.append((path, f"{_quote(value, bool(shape.metadata.get('sensitive')))} '{path}' failed to satisfy "
                             f"constraint: {constraint}"))


class _Compiler:
    """Turns botocore shapes into check functions, once per shape name (recursive shapes included)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], Check] = {}

    def compile(self, shape: Shape, service_name: str) -> Check:
        key = (service_name, shape.name)
        if key in self.cache:
            return self.cache[key]
        slot: list[Check] = []
        self.cache[key] = lambda value, path, errors: slot[0](value, path, errors)  # until built (recursion)
        built = self._build(shape, service_name)
        slot.append(built)
        self.cache[key] = built
        return built

    def _build(self, shape: Shape, service_name: str) -> Check:
        kind = shape.type_name
        if kind == "structure" and getattr(shape, "is_document_type", False):
            return lambda value, path, errors: value  # free JSON: bounded by the HTTP layer
        if kind == "structure":
            return self._structure(shape, service_name)
        if kind == "list":
            return self._list(shape, service_name)
        if kind == "map":
            return self._map(shape, service_name)
        if kind == "string":
            return self._string(shape)
        if kind in ("integer", "long"):
            return self._integer(shape)
        if kind in ("double", "float"):
            return self._number(shape)
        if kind == "boolean":
            def boolean(value: Any, path: str, errors: list) -> Any:
                if not isinstance(value, bool):
                    _fail(errors, path, value, shape, "Member must be a boolean")
                return value
            return boolean
        if kind == "timestamp":
            return self._timestamp(shape)
        if kind == "blob":
            def blob(value: Any, path: str, errors: list) -> Any:
                if not isinstance(value, (str, bytes)):
                    _fail(errors, path, value, shape, "Member must be a blob (base64 text)")
                return value
            return blob
        raise TypeError(f"shape {shape.name} of type {kind} is not supported")

    def _structure(self, shape: Shape, service_name: str) -> Check:
        members = {name: (self.compile(member, service_name), member)
                   for name, member in shape.members.items()}  # type: ignore[attr-defined]
        required = list(shape.required_members)  # type: ignore[attr-defined]
        union = bool(getattr(shape, "is_tagged_union", False))

        def structure(value: Any, path: str, errors: list) -> Any:
            if not isinstance(value, dict):
                _fail(errors, path, value, shape, "Member must be a structure (a JSON object)")
                return value
            kept: dict[str, Any] = {}
            for name, item in value.items():
                if item is None or name not in members:
                    continue  # null is absent; unknown members are ignored, as AWS does
                check, _ = members[name]
                kept[name] = check(item, f"{path}.{name}" if path else name, errors)
            for name in required:
                if name not in kept:
                    _fail(errors, f"{path}.{name}" if path else name, None, members[name][1],
                          "Member must not be null")
            if union and len(kept) != 1:
                _fail(errors, path or shape.name, value, shape,
                      f"Member must set exactly one of: {', '.join(members)}")
            return kept
        return structure

    def _list(self, shape: Shape, service_name: str) -> Check:
        member = self.compile(shape.member, service_name)  # type: ignore[attr-defined]
        low, high = shape.metadata.get("min"), shape.metadata.get("max")

        def listing(value: Any, path: str, errors: list) -> Any:
            if not isinstance(value, list):
                _fail(errors, path, value, shape, "Member must be a list")
                return value
            _length(errors, path, value, shape, len(value), low, high)
            return [member(item, f"{path}.{i}.member", errors) for i, item in enumerate(value, 1)]
        return listing

    def _map(self, shape: Shape, service_name: str) -> Check:
        key_check = self.compile(shape.key, service_name)  # type: ignore[attr-defined]
        value_check = self.compile(shape.value, service_name)  # type: ignore[attr-defined]
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        value_shape = shape.value  # type: ignore[attr-defined]

        def mapping(value: Any, path: str, errors: list) -> Any:
            if not isinstance(value, dict):
                _fail(errors, path, value, shape, "Member must be a map (a JSON object)")
                return value
            _length(errors, path, value, shape, len(value), low, high)
            kept = {}
            for key, item in value.items():
                key_check(key, f"{path}.key", errors)
                if item is None:
                    _fail(errors, f"{path}.{key}", None, value_shape, "Map value must not be null")
                    continue
                kept[key] = value_check(item, f"{path}.{key}", errors)
            return kept
        return mapping

    def _string(self, shape: Shape) -> Check:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        pattern = shape.metadata.get("pattern")
        compiled = _regex(pattern) if pattern else None
        enum = frozenset(getattr(shape, "enum", None) or ())

        def string(value: Any, path: str, errors: list) -> Any:
            if not isinstance(value, str):
                _fail(errors, path, value, shape, "Member must be a string")
                return value
            if enum and value not in enum:
                _fail(errors, path, value, shape, f"Member must satisfy enum value set: [{', '.join(sorted(enum))}]")
                return value
            if not _length(errors, path, value, shape, len(value), low, high):
                return value  # a pattern is only tried on a value of allowed length (no backtracking on megabytes)
            if compiled is not None and compiled.fullmatch(value) is None:
                _fail(errors, path, value, shape, f"Member must satisfy regular expression pattern: {pattern}")
            return value
        return string

    def _integer(self, shape: Shape) -> Check:
        floor, ceiling = INT_RANGE[shape.type_name]
        low = shape.metadata.get("min", floor)
        high = shape.metadata.get("max", ceiling)

        def integer(value: Any, path: str, errors: list) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                _fail(errors, path, value, shape, "Member must be an integer")
            elif value < low:
                _fail(errors, path, value, shape, f"Member must have value greater than or equal to {low}")
            elif value > high:
                _fail(errors, path, value, shape, f"Member must have value less than or equal to {high}")
            return value
        return integer

    def _number(self, shape: Shape) -> Check:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")

        def number(value: Any, path: str, errors: list) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                _fail(errors, path, value, shape, "Member must be a number")
            elif low is not None and value < low:
                _fail(errors, path, value, shape, f"Member must have value greater than or equal to {low}")
            elif high is not None and value > high:
                _fail(errors, path, value, shape, f"Member must have value less than or equal to {high}")
            return value
        return number

    def _timestamp(self, shape: Shape) -> Check:
        low, high = TIMESTAMP_RANGE

        def timestamp(value: Any, path: str, errors: list) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                _fail(errors, path, value, shape, "Member must be a timestamp in epoch seconds (a number)")
            elif not low <= value < high:
                _fail(errors, path, value, shape, "Member must be a timestamp between 1970 and the year 10000")
            return value
        return timestamp


def _regex(pattern: str) -> re.Pattern[str] | None:
    """The model's pattern for Python, or None for the few in Java-only syntax (``\\p{...}``): not checked then."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _finite(value: int | float) -> bool:
    """A number a float can hold exactly enough: no NaN or infinity, no integer beyond a float's range."""
    if isinstance(value, int):
        return abs(value) < 2**1023
    return math.isfinite(value)


def _length(errors: list, path: str, value: Any, shape: Shape, size: int, low: int | None, high: int | None) -> bool:
    """Is ``size`` within [low, high]? (A failure is recorded.)"""
    if low is not None and size < low:
        _fail(errors, path, value, shape, f"Member must have length greater than or equal to {low}")
        return False
    if high is not None and size > high:
        _fail(errors, path, value, shape, f"Member must have length less than or equal to {high}")
        return False
    return True


_COMPILER = _Compiler()


@dataclass(frozen=True)
class Members:
    """Where each input member of an operation travels: the URI, the query string, a header or the JSON body."""

    uri: dict[str, str]  # member -> path parameter name
    query: dict[str, str]  # member -> query parameter name
    header: dict[str, str]  # member -> header name
    body: frozenset[str]  # members of the JSON body
    payload: str | None  # a member that IS the body (a blob), if any


@lru_cache(maxsize=None)
def members_of(service_name: str, name: str) -> Members:
    shape = operation(service_name, name).input_shape
    uri, query, header, body = {}, {}, {}, set()
    payload = shape.serialization.get("payload") if shape is not None else None
    for member_name, member in (shape.members.items() if shape is not None else ()):
        where = member.serialization.get("location")
        wire = member.serialization.get("name", member_name)
        if where == "uri":
            uri[member_name] = wire
        elif where == "querystring":
            query[member_name] = wire
        elif where == "header":
            header[member_name] = wire
        elif member_name != payload:
            body.add(member_name)
    return Members(uri, query, header, frozenset(body), payload)


@lru_cache(maxsize=None)
def _input_check(service_name: str, name: str) -> Check:
    return _COMPILER.compile(operation(service_name, name).input_shape, service_name)


def _from_text(shape: Shape, text: str) -> Any:
    """A query or header value as the member's type (AWS parses them; text that is no number stays text and fails)."""
    if shape.type_name in ("integer", "long") and re.fullmatch(r"-?[0-9]{1,20}", text):
        return int(text)
    if shape.type_name == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def check_input(service_name: str, name: str, *, path: dict[str, str], query: dict[str, str],
                headers: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The operation's input, validated against its shape: every member from where the model says it travels.

    ``path`` holds the decoded path parameters, ``query`` the query string (last value wins), ``headers`` any
    case-insensitive mapping and ``body`` the parsed JSON body. Returns the members (unknown ones dropped), or
    raises :class:`ShapeError`. A payload member (InvokeAgentRuntime's raw body) is not checked here: it is bytes.
    """
    where = members_of(service_name, name)
    shape = operation(service_name, name).input_shape
    given: dict[str, Any] = {member: value for member, value in body.items() if member in where.body}
    for member, wire in where.uri.items():
        if wire in path:
            given[member] = path[wire]
    for member, wire in where.query.items():
        if wire in query:
            given[member] = _from_text(shape.members[member], query[wire])
    for member, wire in where.header.items():
        value = headers.get(wire)
        if value is not None:
            given[member] = _from_text(shape.members[member], value)
    if where.payload is not None:
        given[where.payload] = b""  # stands for the raw body, which is checked by size only
    errors: list[tuple[str, str]] = []
    checked = _input_check(service_name, name)(given, "", errors)
    if errors:
        raise ShapeError(errors)
    if where.payload is not None:
        checked.pop(where.payload, None)
    return checked


# -- responses, for the tests -------------------------------------------------------------------------------
def output_problems(shape: Shape | None, value: Any, path: str = "") -> list[str]:
    """What in ``value`` (a parsed rest-json response body) the output ``shape`` does not allow.

    Members, required ones, types, enum values, lengths, ranges, patterns and timestamps (epoch seconds, as
    rest-json sends them); unknown members are problems too (botocore would silently drop them). Members that the
    model places in headers or the status code are not in the body, so they are skipped here.
    """
    if shape is None:
        return [] if value in (None, {}) else [f"{path or 'body'}: the operation has no output, got {value!r}"]
    problems: list[str] = []
    _output(shape, value, path, problems)
    return problems


def _output(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    where = path or "body"
    kind = shape.type_name
    if kind == "structure" and getattr(shape, "is_document_type", False):
        return
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        body_members = {name: member for name, member in shape.members.items()  # type: ignore[attr-defined]
                        if member.serialization.get("location") is None}
        for name in value:
            if name not in body_members:
                problems.append(f"{where}: unknown member {name!r}")
        for name in shape.required_members:  # type: ignore[attr-defined]
            if name in body_members and value.get(name) is None:
                problems.append(f"{where}: required member {name!r} missing")
        if getattr(shape, "is_tagged_union", False) and len([k for k in value if k in body_members]) != 1:
            problems.append(f"{where}: a union must set exactly one member, got {sorted(value)}")
        for name, item in value.items():
            if name in body_members and item is not None:
                _output(body_members[name], item, f"{path}.{name}" if path else name, problems)
        return
    if kind in ("list", "map"):
        expected = list if kind == "list" else dict
        if not isinstance(value, expected):
            problems.append(f"{where}: expected a {kind}, got {type(value).__name__}")
            return
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            problems.append(f"{where}: {len(value)} entries, outside [{low}, {high}]")
        if kind == "list":
            for i, item in enumerate(value):
                _output(shape.member, item, f"{where}[{i}]", problems)  # type: ignore[attr-defined]
        else:
            for key, item in value.items():
                _output(shape.key, key, f"{where} key", problems)  # type: ignore[attr-defined]
                _output(shape.value, item, f"{where}[{key!r}]", problems)  # type: ignore[attr-defined]
        return
    errors: list[tuple[str, str]] = []
    _COMPILER._build(shape, "")(value, where, errors)  # a scalar: built afresh, nothing to share
    problems.extend(message for _, message in errors)


__all__ = ["ShapeError", "check_input", "members_of", "operation", "output_problems", "service", "SERVICES"]
