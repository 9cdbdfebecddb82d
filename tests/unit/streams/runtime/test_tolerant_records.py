"""A fetched batch with a header name that is not UTF-8 is read with the name replaced, not fatal."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.memory_records import MemoryRecords

from streams.runtime.tolerant_records import TolerantMemoryRecords


class RawName(str):
    """A header name that the (pure-Python) builder writes as bytes that are not UTF-8."""

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe"


def _batch(bad_at: int | None) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                           producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for offset in range(3):
        name = RawName("x") if offset == bad_at else "tenant"
        builder.append(offset, timestamp=1, key=b"k", value=f"v{offset}".encode(), headers=[(name, b"h")])
    return bytes(builder.build())


def _read(records: object) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    out = []
    while records.has_next():  # type: ignore[attr-defined]
        for record in records.next_batch():  # type: ignore[attr-defined]
            out.append((record.value, list(record.headers)))
    return out


def test_aiokafkas_own_reader_dies_on_such_a_header_name() -> None:
    with pytest.raises(UnicodeDecodeError):
        _read(MemoryRecords(_batch(bad_at=1)))


def test_the_tolerant_reader_reads_every_record_with_the_name_replaced() -> None:
    got = _read(TolerantMemoryRecords(_batch(bad_at=1)))
    # the fallback re-reads the batch from its start: the fetcher skips offsets it already handed out
    assert [value for value, _ in got] == [b"v0", b"v0", b"v1", b"v2"]
    assert got[2][1] == [("\ufffd\ufffd", b"h")]
    assert got[3][1] == [("tenant", b"h")]


def test_good_batches_are_read_by_the_fast_reader_unchanged() -> None:
    assert _read(TolerantMemoryRecords(_batch(bad_at=None))) == _read(MemoryRecords(_batch(bad_at=None)))


def test_compressed_batches_are_read_too() -> None:
    builder = _DefaultRecordBatchBuilderPy(magic=2, compression_type=3, is_transactional=False, producer_id=-1,
                                           producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)  # lz4
    for offset in range(3):
        name = RawName("x") if offset == 2 else "tenant"
        builder.append(offset, timestamp=1, key=b"k", value=b"[" * 5_000, headers=[(name, b"h")])
    got = _read(TolerantMemoryRecords(bytes(builder.build())))
    assert [headers[0][0] for _, headers in got] == ["tenant", "tenant", "tenant", "tenant", "\ufffd\ufffd"]
