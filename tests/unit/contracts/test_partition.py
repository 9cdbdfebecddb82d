"""Java-compatible partitioning: the hash and the partition are Kafka's Java client's, byte for byte.

The vectors are Kafka's own (clients/.../UtilsTest.testMurmur2, signed Java ints), librdkafka's
(src/rdmurmur2.c unittest_murmur2, the Java results as unsigned) and kafka-python's partitions
of 1000 "compared with output from Kafka's org.apache.kafka.clients.producer.Partitioner".
"""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from soma.contracts.partition import aiokafka_partitioner, murmur2, partition_for
from soma.settings import load_settings


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


@pytest.mark.parametrize(("data", "java"), [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_kafkas_utils_test(data: bytes, java: int) -> None:
    assert _signed(murmur2(data)) == java


@pytest.mark.parametrize(("data", "expected"), [
    (b"kafka", 0xD067CF64),
    (b"giberish123456789", 0x8F552B0C),
    (b"1234", 0x9FC97B14),
    (b"234", 0xE7C009CA),
    (b"34", 0x873930DA),
    (b"4", 0x5A4B5CA1),
    (b"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424F1C),
    (b"reAmbleWillBeRemoved,ThePrePartThatIs", 0x4A62B377),
    (b"eAmbleWillBeRemoved,ThePrePartThatIs", 0xE0E4E09E),
    (b"AmbleWillBeRemoved,ThePrePartThatIs", 0x62B8B43F),
    (b"", 0x106E08D9),
])
def test_murmur2_matches_librdkafkas_java_results(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("key", "partition"), [
    (b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742),
])
def test_partition_is_javas_default_partitioner(key: bytes, partition: int) -> None:
    assert partition_for(key, 1000) == partition


def test_sign_bit_is_cleared_not_abs() -> None:
    # Java's toPositive masks the sign bit (abs() would differ for a negative hash): "21" hashes negative.
    assert murmur2(b"21") >= 1 << 31
    assert partition_for(b"21", 1000) == (murmur2(b"21") & 0x7FFFFFFF) % 1000 == 340
    assert partition_for(b"21", 1000) != abs(_signed(murmur2(b"21"))) % 1000


def test_non_ascii_keys_hash_their_utf8_bytes() -> None:
    key = "acme:sitzung-ü-会话-🙂".encode()
    assert partition_for(key, 7) == (murmur2(key) & 0x7FFFFFFF) % 7
    assert murmur2(b"\x81" * 1000) == murmur2(bytes([0x81]) * 1000)  # high bytes are unsigned, not Java's signed


def test_a_topic_has_partitions() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"k", 0)


def test_aiokafka_partitioner_agrees_with_aiokafkas_default_and_spreads_null_keys() -> None:
    default = DefaultPartitioner()
    partitions = list(range(12))
    for index in range(300):
        key = f"tenant-{index % 7}:session-{index}-ü".encode()
        assert aiokafka_partitioner(key, partitions, partitions) == default(key, partitions, partitions)
    assert aiokafka_partitioner(b"", partitions, partitions) == default(b"", partitions, partitions)
    assert aiokafka_partitioner(None, partitions, [5]) == 5  # a NULL key: a random available partition
    assert aiokafka_partitioner(None, partitions, []) in partitions


def test_every_librdkafka_producer_uses_javas_partitioner() -> None:
    settings = load_settings()
    assert settings.producer_config()["partitioner"] == "murmur2_random"
    assert settings.producer_config(**{"linger.ms": 0})["partitioner"] == "murmur2_random"
