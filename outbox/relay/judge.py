"""What the broker's reports on a batch mean for its rows, the circuits and the metrics.

`judge` decides (sent, failed with a backoff, or dead; which rows were never reported and stay
as they were). Decisions only: no database, no broker, no clock of its own (`now` is given),
so it is unit-tested like `policy`. `committer` writes the decisions.

`row_fault` tells the row's own faults (too large, unknown topic, cannot be encoded, refused by
the broker: they use up one of its `max_attempts`) from failures of the path to the broker
(transport, timeouts, broker down, not enough replicas, a fatal producer error: retried with a
backoff, the attempt is not counted, so an outage of any length parks no row as dead).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outbox.relay.policy import Circuits
from soma.backoff import jittered_delay

if TYPE_CHECKING:  # only the type: the batch is read, never sent, here
    from outbox.relay.publisher import Batch


@dataclass
class Outcome:
    """The decisions on one batch, ready to be written."""

    batch: Batch
    sent_ids: list[int] = field(default_factory=list)
    sent_partitions: list[int] = field(default_factory=list)
    sent_offsets: list[int] = field(default_factory=list)
    sent_acked_at: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    fail_ids: list[int] = field(default_factory=list)
    fail_statuses: list[str] = field(default_factory=list)
    fail_errors: list[str] = field(default_factory=list)
    fail_delays: list[float] = field(default_factory=list)
    fail_counted: list[bool] = field(default_factory=list)  # the failure used up one of the row's attempts
    published: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead: Counter[tuple[str, str]] = field(default_factory=Counter)
    unreported_tenants: set[str] = field(default_factory=set)
    committed: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float
    max_s: float
    max_attempts: int


# librdkafka / broker error codes (KafkaError.name()) that say nothing about the row itself.
NOT_THE_ROWS_FAULT = frozenset({
    "_MSG_TIMED_OUT", "_TIMED_OUT", "_TIMED_OUT_QUEUE", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE",
    "_DESTROY", "_FATAL", "_PURGE_QUEUE", "_PURGE_INFLIGHT", "_QUEUE_FULL", "_WAIT_COORD", "_NODE_UPDATE",
    "_PREV_IN_PROGRESS", "_IN_PROGRESS", "_RETRY",
    "REQUEST_TIMED_OUT", "NETWORK_EXCEPTION", "BROKER_NOT_AVAILABLE", "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_FOR_PARTITION", "NOT_LEADER_OR_FOLLOWER", "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "KAFKA_STORAGE_ERROR", "THROTTLING_QUOTA_EXCEEDED",
    "OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID", "INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED",
    "CONCURRENT_TRANSACTIONS", "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH", "REBALANCE_IN_PROGRESS",
})


def row_fault(code: str | None) -> bool:
    """Whether a failure with this error code is the row's own (it uses up one of its attempts).

    Unknown codes count as the row's fault: a row is never retried forever for a reason
    nobody classified. Transport and broker-side failures (`NOT_THE_ROWS_FAULT`) do not.
    """
    return code not in NOT_THE_ROWS_FAULT


def judge(batch: Batch, retry: RetryPolicy, circuits: Circuits, rng: random.Random, now: float) -> Outcome:
    """Sort every row of `batch` by its delivery report and feed the tenants' circuits."""
    out = Outcome(batch)
    for index, row in enumerate(batch.rows):
        if index >= batch.produced or batch.acked_at[index] == 0.0:
            out.unreported_tenants.add(row.tenant_id)  # never produced, or no report yet: released at commit
            continue
        error = batch.errors[index]
        circuit = circuits.get(row.tenant_id)
        if error is None:
            out.sent_ids.append(row.id)
            out.sent_partitions.append(batch.partitions[index])
            out.sent_offsets.append(batch.offsets[index])
            out.sent_acked_at.append(batch.acked_at[index])
            out.latencies.append(max(0.0, batch.acked_at[index] - row.created_epoch))
            out.published[(row.tenant_id, row.topic)] += 1
            circuit.success()
            continue
        counted = row_fault(batch.codes[index])
        attempts = row.attempts + 1  # the backoff of an uncounted failure stays at its current step
        is_dead = counted and attempts >= retry.max_attempts
        out.fail_ids.append(row.id)
        out.fail_statuses.append("dead" if is_dead else "failed")
        out.fail_errors.append(error)
        out.fail_delays.append(0.0 if is_dead else jittered_delay(attempts, retry.base_s, retry.max_s, rng))
        out.fail_counted.append(counted)
        (out.dead if is_dead else out.failed)[(row.tenant_id, row.topic)] += 1
        circuit.failure(now)
    for tenant in out.unreported_tenants:
        circuits.get(tenant).released()
    return out
