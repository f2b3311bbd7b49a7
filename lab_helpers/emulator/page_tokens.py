"""Page tokens of the emulator's list operations: opaque to callers, checked when they come back.

AWS's ``nextToken`` is opaque; here it is base64 JSON of an offset (most lists) or of a keyset position
(ListEvents, so that pages neither repeat nor skip an event while events are added). A token this service did
not issue (garbage, a forged number) is a ValidationException, never a 500.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from lab_helpers.emulator.errors import Invalid


def encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except Exception as exc:  # noqa: BLE001 - any garbage token is the caller's mistake
        raise Invalid("nextToken is not a token this service issued", "CannotParse") from exc


#: The largest offset a forged page token may name (SQLite's integers are 64-bit; no list here is that long).
MAX_OFFSET = 2**31


def offset_token(token: str | None) -> int:
    if token is None:
        return 0
    value = decode_token(token)
    if type(value) is not int or not 0 <= value <= MAX_OFFSET:  # not a bool, a list, a float or a huge number
        raise Invalid("nextToken is not a token this service issued", "CannotParse")
    return value


def position_token(token: str) -> tuple[float, int]:
    """The (eventTimestamp, seq) a ListEvents page token stands for; anything else a forged token."""
    value = decode_token(token)
    if (isinstance(value, list) and len(value) == 2 and type(value[0]) in (int, float)
            and 0 <= value[0] < 253402300800 and type(value[1]) is int and 0 <= value[1] < 2**63):
        return float(value[0]), value[1]
    raise Invalid("nextToken is not a token this service issued", "CannotParse")
