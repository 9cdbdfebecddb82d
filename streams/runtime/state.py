"""Stream state: JSON-valued Faust tables whose writes wait for the broker to hold their changelog.

State that records an input id is never written before that input's outputs are acknowledged
(the caller awaits them first), and the input is not acknowledged before its state is durable
(`write_state` awaits the changelog): a redelivery then finds either no state (and redoes the
work, with the same deterministic ids) or the state (and skips the input).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from soma.ops.supervisor.spec import SpecError, StreamTopology
from streams.runtime.emit import Emitter


class Serializable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Serializable)


class StagedStates(Generic[S]):
    """The working states of one batch by table key, and the partition of the input each key came from."""

    def __init__(self, table: Any, load: Callable[[Any], S]) -> None:
        self.table = table
        self._load = load  # from the table's JSON value (None: a new key)
        self.states: dict[str, S] = {}
        self.partitions: dict[str, int] = {}

    def get(self, key: str) -> S:
        """The key's state as the batch left it so far (else as the table holds it)."""
        return self.states[key] if key in self.states else self._load(self.table.get(key))

    def put(self, key: str, state: S, partition: int) -> None:
        self.states[key] = state
        self.partitions[key] = partition

    def changes(self) -> dict[int, dict[str, Any]]:
        """The serialized states to write, by partition."""
        by_partition: dict[int, dict[str, Any]] = {}
        for key, state in self.states.items():
            by_partition.setdefault(self.partitions[key], {})[key] = state.to_dict()
        return by_partition


class StateWriter(Emitter):
    topology: StreamTopology
    min_insync_replicas: int | None
    def table(self, name: str) -> Any:
        """A JSON-valued Faust table co-partitioned with the sources (changelog-backed, with the environment's
        min.insync.replicas when Faust creates the changelog itself)."""
        if name not in self.topology.tables:
            raise SpecError(f"stream {self.name}: table {name!r} is not declared in its topology "
                            f"(soma/ops/supervisor/spec.py), so `soma topics ensure` would not provision it")
        configs = {} if self.min_insync_replicas is None else {"min.insync.replicas": self.min_insync_replicas}
        return self.app.Table(name, default=None, partitions=self.sources_partitions, extra_topic_configs=configs)

    @property
    def sources_partitions(self) -> int:
        return int(self.app.conf.topic_partitions)

    async def write_states(self, staged: StagedStates[Any]) -> None:
        """Write a batch's working states (call once its outputs are acknowledged): every partition's changes
        handed to the producer, then one wait for all of them."""
        pending: list[Awaitable[Any]] = []
        for partition, changes in staged.changes().items():
            pending.extend(await self.send_state(staged.table, partition, changes))
        await self.acknowledged(pending, "state changelog records")

    async def write_state(self, table: Any, partition: int, changes: Mapping[str, Any]) -> None:
        """Write table keys (local store + changelog) and wait until the broker has the changelog.

        Faust's own `table[key] = value` only buffers the changelog record, and its commit-time
        flush gives up after 0.1 s without progress, so an offset can be committed before the
        state that recorded it is durable; a SIGKILL then loses that state while its input is
        not redelivered (the next input applies on top of stale state). Awaiting the changelog
        here, before the handler returns and the input is acked, closes that window.
        """
        await self.acknowledged(await self.send_state(table, partition, changes), "state changelog records")

    async def send_state(self, table: Any, partition: int, changes: Mapping[str, Any]) -> list[Awaitable[Any]]:
        """Set table keys in the local store and hand their changelog records to the producer; their deliveries.

        Serialized as Faust's own table writes are (its changelog recovery reads them back), then straight to
        the producer: not through `Topic.send`, whose per-record future message, sensor state and callbacks
        were most of a state write's time, and not via the send_soon buffer either (see `write_state`)."""
        topic = table.changelog_topic
        name = topic.get_topic_name()
        pending = []
        for key, value in changes.items():
            table.data[key] = value
            raw_key, headers = topic.prepare_key(key, table.key_serializer, None, None)
            raw_value, headers = topic.prepare_value(value, table.value_serializer, None, headers)
            pending.append(await self.app.producer.send(name, raw_key, raw_value, partition, None, headers))
        return pending
