"""Decoded input records, as the runtime hands them to a stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from soma.contracts.limits import record_size
from streams.runtime.records import Incoming

MakeRecord = Callable[..., Incoming]


@pytest.fixture
def incoming() -> MakeRecord:
    """`incoming(topic, value, offset=0, partition=0, headers=None)`: an `Incoming` with no key or raw bytes."""

    def make(topic: str, value: dict[str, Any], offset: int = 0, partition: int = 0,
             headers: dict[str, bytes] | None = None) -> Incoming:
        return Incoming(topic, value, partition, offset, None, b"", headers or {})

    return make


class FakeProducer:
    """Faust's producer as the runtime uses it: `send` records what it was given and returns a done future."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, timestamp: Any,
                   headers: Any) -> asyncio.Future[None]:
        self.sent.append({"topic": topic, "key": key, "value": value, "partition": partition,
                          "headers": dict(headers), "size": record_size(key, value, headers)})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
