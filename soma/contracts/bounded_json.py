"""JSON from users, parsed with a size and a nesting-depth limit.

`json.loads` recurses once per nesting level: `[` x 50,000 then `]` x 50,000 (100 KB) ends in a
`RecursionError` that no `except ValueError` catches. `loads_bounded` measures the nesting
first, iteratively (string contents skipped), and refuses too large or too deep text with a
one-line `JsonLimitExceeded` naming the field; only then does `json.loads` run, on text whose
depth is known to be small. Invalid JSON within the limits stays a `ValueError`, as from `json.loads`.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from soma.errors import EventValidationError

MAX_DEPTH = 64  # nesting levels of arrays and objects together
MAX_BYTES = 1_000_000  # UTF-8 bytes of the text (the platform's record size limit)

# A JSON string, escapes included: removed before counting, so brackets inside strings do not count.
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonLimitExceeded(EventValidationError):
    """User JSON is larger or more deeply nested than the platform parses; the message names the field."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings not counted)."""
    if text.count("[") + text.count("{") == 0:
        return 0
    brackets = "".join(re.findall(r"[\[\]{}]", _STRINGS.sub("", text)))
    return max(0, max(accumulate(_STEP[ord(c)] for c in brackets), default=0))


def check_json_limits(text: str | bytes, field: str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> str:
    """`text` as a str when it is within both limits, else `JsonLimitExceeded` naming `field`."""
    if isinstance(text, bytes | bytearray):
        size = len(text)
        if size > max_bytes:
            raise JsonLimitExceeded(f"{field}: JSON of {size} bytes exceeds the limit of {max_bytes} bytes")
        try:
            text = bytes(text).decode()
        except UnicodeDecodeError as exc:
            raise JsonLimitExceeded(f"{field}: JSON is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    elif len(text) > max_bytes or len(text.encode(errors="surrogatepass")) > max_bytes:
        size = len(text.encode(errors="surrogatepass"))
        raise JsonLimitExceeded(f"{field}: JSON of {size} bytes exceeds the limit of {max_bytes} bytes")
    # Cheap upper bound first: fewer opening brackets than the limit cannot nest deeper than it.
    if text.count("[") + text.count("{") > max_depth:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise JsonLimitExceeded(f"{field}: JSON too deeply nested ({depth} levels; the limit is {max_depth})")
    return text


def loads_bounded(text: str | bytes, field: str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """`json.loads(text)` within the limits: `JsonLimitExceeded` past them, `ValueError` for invalid JSON."""
    return json.loads(check_json_limits(text, field, max_depth=max_depth, max_bytes=max_bytes))
