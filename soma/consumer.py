"""At-least-once consuming for services: `for event in consume(topics, group=...)`.

An event's offset is committed only after the handler is done with it, that is once the loop asks
for the next event (or leaves a `with consume(...)` block without an exception), in batches: every
`commit_every` events or `commit_interval_ms`, whichever comes first, and when the consumer closes.
An exception in the loop body leaves that event uncommitted, so a restarted consumer of the group
gets it again (with whatever else came after the last commit: handlers must tolerate repeats, see
`soma.dedupe`).

    with consume(["chat.messages"], group="billing") as events:
        for event in events:
            if event.error is not None:      # a poison record: reported, not fatal
                log.warning("skipping %s", event.error); continue
            handle(event.value)

Without `with`, a plain `for` works the same, except that leaving it with `break` cannot be told
from an exception: the last event stays uncommitted (delivered again later, never lost).
Built on `EventConsumer(commit=False)`; `soma.consumer_async.consume_async` is the asyncio form.
At a rebalance, what was handled of the partitions leaving is committed before they go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TypedDict, Unpack

from confluent_kafka import KafkaException

from soma.contracts.catalog import Catalog, catalog_for
from soma.contracts.codec import Codec
from soma.contracts.events import ConsumedEvent, EventConsumer
from soma.errors import ConsumeError, first_line
from soma.settings import Settings, load_settings

log = logging.getLogger("soma.consumer")

COMMIT_EVERY = 100
COMMIT_INTERVAL_MS = 1000
POLL_TIMEOUT_S = 0.2  # one poll's wait: bounds how late a due commit, an idle stop or a close is


class Offsets:
    """Handled-but-uncommitted offsets, and when the next batch is due (pure bookkeeping)."""

    def __init__(self, every: int, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.interval_s, self.clock = every, interval_s, clock
        self.pending: dict[tuple[str, int], int] = {}  # the next offset to read, per partition
        self.count = 0
        self.since = clock()

    def done(self, event: ConsumedEvent) -> None:
        key = (event.topic, event.partition)
        self.pending[key] = max(self.pending.get(key, 0), event.offset + 1)
        self.count += 1

    def due(self) -> bool:
        if not self.pending:
            return False
        return self.count >= self.every or self.clock() - self.since >= self.interval_s

    def take(self, partitions: Sequence[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """The offsets to commit (all, or those of `partitions`), removed from the batch."""
        keys = list(self.pending) if partitions is None else [p for p in partitions if p in self.pending]
        taken = {key: self.pending.pop(key) for key in keys}
        if not self.pending:
            self.count, self.since = 0, self.clock()
        return taken

    def restore(self, offsets: dict[tuple[str, int], int]) -> None:
        """Put back offsets whose commit failed (the next batch retries them)."""
        for key, offset in offsets.items():
            self.pending[key] = max(self.pending.get(key, 0), offset)


def check_options(group: str, commit_every: int, commit_interval_ms: int) -> None:
    if not isinstance(group, str) or not group.strip() or len(group) > 255:
        raise ConsumeError("consume: group must be a non-empty string of at most 255 characters")
    if not isinstance(commit_every, int) or commit_every < 1:
        raise ConsumeError(f"consume: commit_every must be a positive integer, got {commit_every!r}")
    if not isinstance(commit_interval_ms, int) or commit_interval_ms < 1:
        raise ConsumeError(f"consume: commit_interval_ms must be a positive integer, got {commit_interval_ms!r}")


class ConsumerCore:
    """The consuming loop's steps, shared by the sync and asyncio forms (which runs them in a thread)."""

    def __init__(
        self, topics: Sequence[str], group: str, *, settings: Settings | None = None, catalog: Catalog | None = None,
        from_beginning: bool = True, commit_every: int = COMMIT_EVERY, commit_interval_ms: int = COMMIT_INTERVAL_MS,
        max_events: int | None = None, idle_timeout_s: float | None = None,
    ) -> None:
        if isinstance(topics, str):
            topics = [topics]
        if not topics:
            raise ConsumeError("consume: no topics given")
        check_options(group, commit_every, commit_interval_ms)
        self.settings = settings if settings is not None else load_settings()
        self.catalog = catalog if catalog is not None else catalog_for(self.settings)
        self.offsets = Offsets(commit_every, commit_interval_ms / 1000)
        self.max_events, self.idle_timeout_s = max_events, idle_timeout_s
        self.consumer = EventConsumer(
            self.settings, self.catalog, Codec(self.catalog, self.settings), list(topics), group,
            from_beginning=from_beginning, commit=False, on_revoke=self._revoked, resolve_start=True,
        )
        self.current: ConsumedEvent | None = None  # handed to the caller, not known to be handled yet
        self.early: list[ConsumedEvent] = []  # polled by `wait_assigned`, before the caller asked
        self.delivered = 0
        self.last_event = time.monotonic()
        self.finished = self.closed = False

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        try:
            self.consumer.commit_offsets(offsets)
        except KafkaException as exc:  # not a loss: the records come again; retried with the next batch
            log.warning("consume: commit failed, retried with the next batch: %s", first_line(exc))
            self.offsets.restore(offsets)

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        offsets = self.offsets.take(partitions)
        if offsets:
            try:
                self.consumer.commit_offsets(offsets)
            except KafkaException as exc:  # the new owner starts from the last commit: repeats, no loss
                log.warning("consume: commit at rebalance failed: %s", first_line(exc))

    def handled(self) -> None:
        """The caller is done with the current event (it asked for the next, or left normally)."""
        if self.current is not None:
            self.offsets.done(self.current)
            self.current = None

    def wait_assigned(self, timeout_s: float) -> bool:
        """Poll until the group assigned partitions (records that come meanwhile wait in `early`)."""
        deadline = time.monotonic() + timeout_s
        while not self.consumer.assigned and time.monotonic() < deadline:
            event = self.consumer.poll(POLL_TIMEOUT_S)
            if event is not None:
                self.early.append(event)
        return self.consumer.assigned

    def step(self) -> ConsumedEvent | None:
        """Mark the previous event handled, commit when due, poll once; None when nothing came."""
        self.handled()
        if self.offsets.due():
            self._commit(self.offsets.take())
        if self.max_events is not None and self.delivered >= self.max_events:
            self.finished = True
            return None
        event = self.early.pop(0) if self.early else self.consumer.poll(POLL_TIMEOUT_S)
        now = time.monotonic()
        if event is None:
            if self.idle_timeout_s is not None and now - self.last_event > self.idle_timeout_s:
                self.finished = True
            return None
        self.current, self.last_event = event, now
        self.delivered += 1
        return event

    def commit(self) -> None:
        """Commit every handled event now (the batch rules aside)."""
        self._commit(self.offsets.take())

    def close(self, handled_last: bool) -> None:
        """Commit what was handled (the last event too when `handled_last`), then leave the group."""
        if self.closed:
            return
        if handled_last:
            self.handled()
        self.closed = True
        try:
            self.commit()
        finally:
            self.consumer.close()

    def committed(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return self.consumer.committed(partitions)


class Consumption:
    """What `consume` returns: iterate it (once), ideally inside `with`."""

    def __init__(self, core: ConsumerCore) -> None:
        self.core = core
        self._managed = self._started = False

    def __enter__(self) -> Consumption:
        self._managed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        # Leaving the block normally (break included) means the last event was handled.
        self.core.close(handled_last=kind is None)

    def __iter__(self) -> Iterator[ConsumedEvent]:
        if self._started:
            raise ConsumeError("consume: a consumer is iterated once")
        self._started = True
        return self._events()

    def _events(self) -> Iterator[ConsumedEvent]:
        normal = False
        try:
            while not self.core.finished and not self.core.closed:
                event = self.core.step()
                if event is not None:
                    yield event
            normal = True
        finally:
            if not self._managed:  # break and exceptions look alike here: keep the last event uncommitted
                self.core.close(handled_last=normal)

    def wait_assigned(self, timeout_s: float = 60.0) -> bool:
        """Join the group and fix where each partition starts; False if that took over `timeout_s`.

        With `from_beginning=False`, every record produced after this returns True is delivered
        (without it, "latest" is only resolved at the first fetch). Nothing is skipped meanwhile.
        """
        return self.core.wait_assigned(timeout_s)

    def commit(self) -> None:
        """Commit every handled event now."""
        self.core.commit()

    def committed(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed next offset per (topic, partition) (-1001: none)."""
        return self.core.committed(partitions)

    def close(self) -> None:
        """Commit what was handled, except the event in hand, and leave the group."""
        self.core.close(handled_last=False)


class ConsumeOptions(TypedDict, total=False):
    """`consume` / `consume_async` options beyond topics and group (defaults in `ConsumerCore`)."""

    settings: Settings | None
    catalog: Catalog | None
    from_beginning: bool
    commit_every: int
    commit_interval_ms: int
    max_events: int | None
    idle_timeout_s: float | None


def consume(topics: Sequence[str] | str, *, group: str, **options: Unpack[ConsumeOptions]) -> Consumption:
    """At-least-once events of catalog `topics` for consumer group `group`.

    Options: `settings` and `catalog` (default: `load_settings()`, and `catalog_for(settings)`: SOMA_CATALOG_DIR
    with SOMA_ENV's overrides), `from_beginning` (True), `commit_every` (100 events), `commit_interval_ms` (1000),
    `max_events`, `idle_timeout_s`.

    `from_beginning` (default True): a group with no committed offset starts at the oldest retained
    record, so nothing emitted before the service first ran is skipped. The iteration ends after
    `max_events` events or `idle_timeout_s` seconds without one (default: never). Poison records
    come with `event.error` set and an empty value; they are committed like any other once handled.
    """
    return Consumption(ConsumerCore([topics] if isinstance(topics, str) else list(topics), group, **options))
