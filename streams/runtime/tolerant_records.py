"""Record batches whose header names are not UTF-8 are read, not fatal, by the streams' aiokafka consumer.

aiokafka decodes every header name as strict UTF-8 while it unpacks a fetched batch; one record
with a header name such as b"\\xff" raises `UnicodeDecodeError` out of the fetcher, the Faust
consumer dies, and after every restart it fetches the same record again: one producer's record
stops the stream for every tenant. `install()` (called once by `streams.app`) gives the fetcher
a `MemoryRecords` whose batches are read by aiokafka's fast (C) reader as before; only a batch
that raises `UnicodeDecodeError` is read again by aiokafka's pure-Python reader over a buffer
whose slices decode with invalid bytes replaced (U+FFFD). The fetcher itself skips the records
of that batch it already handed out (by offset), so nothing is delivered twice. The record then
reaches `streams.runtime.records` like any other, with the replaced name.
"""

from __future__ import annotations

from typing import Any

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy


class _ReplacingSlice(bytearray):
    def decode(self, encoding: str = "utf-8", errors: str = "replace") -> str:
        return bytes(self).decode(encoding, "replace")


class _ReplacingBuffer(bytearray):
    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return _ReplacingSlice(item) if isinstance(index, slice) else item


class _ReplacingBatch(_DefaultRecordBatchPy):
    """aiokafka's pure-Python batch reader with header names decoded with invalid bytes replaced."""

    def __init__(self, buffer: Any) -> None:
        super().__init__(buffer)
        self._buffer = _ReplacingBuffer(self._buffer)

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _ReplacingBuffer):  # decompression made a new buffer
            self._buffer = _ReplacingBuffer(self._buffer)


class _FallbackBatch:
    """A fetched batch read by the fast reader until a header name is not UTF-8, then by `_ReplacingBatch`."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw
        self._records: Any = None  # iter(batch): the readers decompress the batch there, not in __next__
        self._replacing: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> _FallbackBatch:
        self._records = iter(self._batch)
        return self

    def __next__(self) -> Any:
        if self._replacing is not None:
            return next(self._replacing)
        if self._records is None:
            self._records = iter(self._batch)
        try:
            return next(self._records)
        except UnicodeDecodeError:
            # From the start of the batch: the fetcher skips the offsets it already handed out.
            self._replacing = iter(_ReplacingBatch(self._raw))
            return next(self._replacing)


class TolerantMemoryRecords(_MemoryRecordsPy):
    """aiokafka's `MemoryRecords` whose v2 batches fall back to `_ReplacingBatch` on a non-UTF-8 header name."""

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if raw is None or batch is None or batch.__class__.__name__.startswith("Legacy"):
            return batch
        return _FallbackBatch(batch, raw)


def install() -> None:
    """Make aiokafka's fetcher read batches through `TolerantMemoryRecords` (idempotent)."""
    fetcher.MemoryRecords = TolerantMemoryRecords  # type: ignore[misc,assignment]
