"""The contract every dedupe store keeps (soma.dedupe), run against each backend.

`Backend` opens a store and gives the transaction a handler would run in: a real Session for the
PostgreSQL store (the mark joins it), none for the others. Unit tests run it on memory://, the
integration tests on PostgreSQL and Redis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from soma.dedupe import DedupeStore
from soma.errors import ConsumeError

Transaction = Callable[[], AbstractContextManager[Any]]


class Effect(Exception):
    """The handler's effect failed."""


def _new_id() -> str:
    return str(uuid.uuid4())


def first_time_then_repeat(store: DedupeStore, transaction: Transaction) -> None:
    event_id = _new_id()
    with transaction() as session, store.once(event_id, session=session) as first:
        assert first
    assert store.seen(event_id)
    with transaction() as session, store.once(event_id, session=session) as first:
        assert not first


def a_failed_effect_is_not_marked(store: DedupeStore, transaction: Transaction) -> None:
    event_id = _new_id()

    def handle() -> None:
        with transaction() as session, store.once(event_id, session=session) as first:
            assert first
            raise Effect

    with pytest.raises(Effect):
        handle()
    assert not store.seen(event_id)
    with transaction() as session, store.once(event_id, session=session) as first:
        assert first  # the redelivery is handled


def scopes_are_apart(store: DedupeStore, other: DedupeStore, transaction: Transaction) -> None:
    event_id = _new_id()
    with transaction() as session, store.once(event_id, session=session) as first:
        assert first
    with transaction() as session, other.once(event_id, session=session) as first:
        assert first
    assert other.seen(event_id)


def marks_expire_after_the_ttl(short: DedupeStore, transaction: Transaction) -> None:
    event_id = _new_id()
    with transaction() as session, short.once(event_id, session=session):
        pass
    deadline = time.monotonic() + 30
    while short.seen(event_id):  # polled: the TTL is short, the machine may be slow
        assert time.monotonic() < deadline, "the mark did not expire"
        time.sleep(0.05)
    short.prune()
    with transaction() as session, short.once(event_id, session=session) as first:
        assert first


def bad_ids_are_one_line(store: DedupeStore, transaction: Transaction) -> None:
    for bad in ("", "x" * 201, "a\nb", None, 5):
        with pytest.raises(ConsumeError) as caught, transaction() as session, \
                store.once(bad, session=session):  # type: ignore[arg-type]
            pass
        assert "\n" not in str(caught.value)


CONTRACT = [first_time_then_repeat, a_failed_effect_is_not_marked, bad_ids_are_one_line]


def run_contract(open_store: Callable[..., DedupeStore], transaction: Transaction) -> Iterator[str]:
    """Every contract case on fresh stores (names yielded as they pass, for the report)."""
    scope = f"s-{uuid.uuid4().hex[:8]}"
    store = open_store(scope=scope, ttl_s=3600)
    other = open_store(scope=f"{scope}-other", ttl_s=3600)
    short = open_store(scope=f"{scope}-short", ttl_s=0.5)
    try:
        for case in CONTRACT:
            case(store, transaction)
            yield case.__name__
        scopes_are_apart(store, other, transaction)
        yield "scopes_are_apart"
        marks_expire_after_the_ttl(short, transaction)
        yield "marks_expire_after_the_ttl"
    finally:
        for each in (store, other, short):
            each.close()
