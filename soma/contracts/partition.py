"""The partition of a record key: Java's, so every producer in any language agrees.

Kafka's Java producer (and Kafka Streams, Connect/Debezium, aiokafka's default partitioner)
puts a keyed record on ``Utils.toPositive(Utils.murmur2(key)) % partitions``; Soma's
librdkafka producers are configured with ``partitioner=murmur2_random``, the same hash
(`soma.settings.sections.PARTITIONER`), and the streams' aiokafka producer uses
`aiokafka_partitioner`, which calls `partition_for`. So a session's events land on one
partition whoever writes them.

Keys: an empty key is a key (every one of those clients hashes it, to the same partition);
only a missing (NULL) key is spread over the partitions (Java: sticky per batch, librdkafka:
random, aiokafka: random). Soma never produces a record without a key: `prepare` always
builds one from the catalog's template.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (MurmurHash2, seed 0x9747b28c) as the unsigned 32-bit pattern."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


# Cached: the streams compute it for every output, and keys (sessions, tenants) repeat.
@functools.lru_cache(maxsize=8192)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner gives a (non-NULL, possibly empty) key."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def aiokafka_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's partitioner interface over `partition_for` (Faust's ``producer_partitioner``).

    `all_partitions` is the topic's partition ids, sorted; a NULL key goes to a random available one.
    """
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 -- spreading load, not a secret
    return all_partitions[partition_for(key, len(all_partitions))]
