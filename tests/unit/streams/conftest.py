"""Decoded input records, as the runtime hands them to a stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.runtime.records import Incoming

MakeRecord = Callable[..., Incoming]


@pytest.fixture
def incoming() -> MakeRecord:
    """`incoming(topic, value, offset=0, partition=0, headers=None)`: an `Incoming` with no key or raw bytes."""

    def make(topic: str, value: dict[str, Any], offset: int = 0, partition: int = 0,
             headers: dict[str, bytes] | None = None) -> Incoming:
        return Incoming(topic, value, partition, offset, None, b"", headers or {})

    return make
