"""The partition of a record key, computed the way every other Soma producer does.

Soma's producers use librdkafka's default partitioner (`consistent_random`: CRC-32 of the key
modulo the partition count). aiokafka (under Faust) defaults to murmur2, which would put one
session's messages on two partitions; the streams therefore pass the partition explicitly.
"""

from __future__ import annotations

import zlib


def partition_for(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions if key else 0
