"""The dedupe contract on the memory:// store (the same cases run on PostgreSQL and Redis in
tests/integration/api/test_dedupe.py), and the URL rules."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from soma import open_dedupe
from soma.dedupe import DedupeStore
from soma.dedupe.memory import MemoryStore
from soma.errors import ConsumeError
from tests.support.dedupe_contract import run_contract


@contextmanager
def no_transaction() -> Iterator[Any]:
    yield None


def test_the_memory_store_keeps_the_contract() -> None:
    def memory(**options: Any) -> DedupeStore:
        return open_dedupe("memory://", **options)

    assert list(run_contract(memory, no_transaction)) == [
        "first_time_then_repeat", "a_failed_effect_is_not_marked", "bad_ids_are_one_line", "scopes_are_apart",
        "marks_expire_after_the_ttl",
    ]


def test_once_async_marks_after_the_block() -> None:
    store = MemoryStore("s", 60)

    async def run() -> list[bool]:
        results = []
        for _ in range(2):
            async with store.once_async("e1") as first:
                results.append(first)
        return results

    assert asyncio.run(run()) == [True, False]


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("mysql://h/db", {"scope": "s"}, "unknown store scheme 'mysql'"),
        ("memory://", {"scope": ""}, "scope"),
        ("memory://", {"scope": "s", "ttl_s": 0}, "ttl_s"),
        ("memory://", {"scope": "s", "ttl_s": "1"}, "ttl_s"),
        ("memory://", {"scope": "s\x00"}, "control character"),
    ],
)
def test_bad_store_options_are_one_line(url: str, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConsumeError, match=needle):
        open_dedupe(url, **options)


def test_the_postgresql_store_needs_the_handlers_session() -> None:
    store = open_dedupe("postgresql://u:secret@127.0.0.1:1/db", scope="s")
    with pytest.raises(ConsumeError, match="session=") as caught, store.once("e1"):
        pass
    assert "secret" not in str(caught.value)
