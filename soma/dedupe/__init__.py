"""Dedupe on `event_id`, for handlers that are not idempotent: `with store.once(event_id, ...) as first`.

At-least-once delivery repeats events (after a crash, a rebalance, a redelivered batch). A store
remembers the event ids a consumer group has handled, per `scope` (use the group's name), for
`ttl_s`. The backend is chosen by URL scheme (`open_dedupe`):

- ``postgresql://`` (default: the platform's database): the mark is a row inserted in the
  HANDLER'S OWN TRANSACTION (`session=`), before its effect. The effect and the mark commit
  together or not at all, and a concurrent duplicate waits on the row's lock, so at-least-once
  delivery plus this store gives effectively-once for a handler that writes to the same database.
  Table ``soma_dedupe`` (migration 0008); `prune()` deletes marks older than the TTL.
- ``redis://``: a key with a TTL, set AFTER the block's effect succeeded. Weaker: a crash between
  the effect and the mark repeats the effect once, and two consumers handling the same event at the
  same moment both see it as new. It suppresses redeliveries; it cannot make a side effect atomic.
- ``memory://``: the Redis semantics in one process (unit tests).

    store = open_dedupe(scope="billing")                    # PostgreSQL, from the settings
    for event in consume(["chat.messages"], group="billing"):
        with Session(engine) as session, session.begin():
            with store.once(event.value["event_id"], session=session) as first:
                if first:
                    charge(session, event.value)            # same transaction as the mark
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from soma.errors import ConsumeError

if TYPE_CHECKING:
    from soma.settings import Settings

DEFAULT_TTL_S = 7 * 24 * 3600.0
EVENT_ID_MAX = 200
SCOPE_MAX = 255


def check_id(event_id: object, what: str = "event_id") -> str:
    limit = SCOPE_MAX if what == "scope" else EVENT_ID_MAX
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > limit:
        raise ConsumeError(f"dedupe: {what} must be a non-empty string of at most {limit} characters")
    if any(ord(c) < 32 for c in event_id):
        raise ConsumeError(f"dedupe: {what} {event_id[:60]!r} holds a control character")
    return event_id


class DedupeStore(ABC):
    """Remembers handled event ids of one scope for `ttl_s` seconds."""

    transactional = False  # True: the mark joins the caller's database transaction (`session=`)

    def __init__(self, scope: str, ttl_s: float) -> None:
        self.scope = check_id(scope, "scope")
        if not isinstance(ttl_s, int | float) or ttl_s <= 0:
            raise ConsumeError(f"dedupe: ttl_s must be a positive number of seconds, got {ttl_s!r}")
        self.ttl_s = float(ttl_s)

    @abstractmethod
    def claim(self, event_id: str, session: Any = None) -> bool:
        """True when `event_id` is new. A transactional store also marks it (in `session`)."""

    @abstractmethod
    def mark(self, event_id: str) -> None:
        """Remember `event_id` as handled (non-transactional stores, after the effect)."""

    @abstractmethod
    def seen(self, event_id: str) -> bool:
        """Whether `event_id` is remembered (committed marks only)."""

    def prune(self) -> int:
        """Forget marks older than the TTL; how many were removed (0 where the backend expires them)."""
        return 0

    def close(self) -> None:  # noqa: B027 -- an optional hook: only stores with connections override it
        """Release connections."""

    @contextmanager
    def once(self, event_id: str, *, session: Any = None) -> Iterator[bool]:
        """Yields True the first time `event_id` is handled in this scope, False for a repeat.

        Transactional store: the mark is in `session`'s transaction (commit it with the effect).
        Otherwise: the mark is set when the block ends without an exception.
        """
        first = self.claim(check_id(event_id), session)
        yield first
        if first and not self.transactional:
            self.mark(event_id)

    @asynccontextmanager
    async def once_async(self, event_id: str, *, session: Any = None) -> AsyncIterator[bool]:
        """`once` for asyncio handlers (`session` an AsyncSession for the PostgreSQL store)."""
        import asyncio

        first = await self._claim_async(check_id(event_id), session)
        yield first
        if first and not self.transactional:
            await asyncio.to_thread(self.mark, event_id)

    async def _claim_async(self, event_id: str, session: Any) -> bool:
        import asyncio

        return await asyncio.to_thread(self.claim, event_id, session)


def open_dedupe(
    url: str | None = None, *, scope: str, ttl_s: float = DEFAULT_TTL_S, settings: Settings | None = None
) -> DedupeStore:
    """A store for `url` (postgresql://, redis://, rediss://, memory://); None: the platform's database."""
    engine_options: dict[str, Any] = {}
    if url is None:  # the platform's database, schema (SOMA_DATABASE_SCHEMA) and timeouts included
        from soma.settings import load_settings

        settings = settings or load_settings()
        url, engine_options = settings.database.url.get_secret_value(), settings.sqlalchemy_engine_options()
    if not isinstance(url, str):
        raise ConsumeError("dedupe: the store URL must be a string")
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        from soma.dedupe.memory import MemoryStore

        return MemoryStore(scope, ttl_s)
    if scheme in ("redis", "rediss"):
        from soma.dedupe.redis_store import RedisStore

        return RedisStore(url, scope, ttl_s)
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        from soma.dedupe.postgres import PostgresStore

        return PostgresStore(url, scope, ttl_s, engine_options)
    raise ConsumeError(f"dedupe: unknown store scheme {scheme[:40]!r} (postgresql://, redis://, memory://)")
