"""The poison suite: bad input through every entry point while a healthy tenant's traffic flows.

The whole platform runs under `soma up --detach` (its own prefix, schema, state dir and ports).
A healthy tenant writes chat messages through the outbox before and during a barrage of bad
input: events the writer must refuse, `soma produce` calls that must fail in one line, raw
bytes on every source topic that the streams must dead-letter, admin API requests that must be
refused without a 5xx, and a legacy outbox row too large for its topic that the relay must park.
The suite asserts every bad input was refused or dead-lettered with its reason, the healthy
tenant received every event, and no component restarted. It prints the healthy tenant's
commit -> replica latency with and without the poison traffic (measured, not asserted).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox.writer import OutboxWriter
from soma.clients import database_engine, kafka_producer
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.samples import sample
from soma.dlq.reader import DlqReader
from soma.dlq.select import DlqFilter
from soma.errors import SomaError
from soma.settings import Settings
from tests.support.detached import ADMIN_TOKEN, COMPONENTS, detached_platform, platform_state
from tests.support.procs import run_soma, wait_for

HEALTHY = "healthy"
SOURCES = ("chat.messages", "tool.requests", "tool.results", "cog.predictor_updates", "cog.global_frame",
           "memory.writes")
BIG = 1_100_000  # over the default 1,000,000-byte record limit


@pytest.fixture
def poisoned(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    # Few, quick retries: the oversized legacy row is parked within the test (the policy itself is unit-tested).
    with detached_platform(settings, tmp_path, "poison", enable_cog_threads=True, outbox_relay_max_attempts=3,
                           outbox_relay_retry_base_s=0.5, outbox_relay_retry_max_s=2.0) as own:
        up = run_soma(own, "up", "--detach", "--timeout", "240", timeout_s=300, COLUMNS="200")
        assert up.returncode == 0, up.stdout + up.stderr
        yield own


class Healthy:
    """The healthy tenant: chat messages written through the outbox, followed to the replica."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        catalog = load_catalog()
        self.writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
        self.engine = engine
        self.sent: list[str] = []  # memory keys of the user messages
        self.calls = 0
        self.lock = threading.Lock()

    def send(self, phase: str, count: int, rate: float) -> None:
        session = f"{phase}-{uuid.uuid4().hex[:6]}"
        for seq in range(1, count + 1):
            calls, where, number = [], session, seq
            if seq % 5 == 0:  # every fifth asks the calc tool: the tool round trip keeps flowing too
                # in a session of its own: the tool's answer takes the session's next sequence number
                calls = [{"call_id": f"c{seq}", "tool": "calc", "arguments_json": json.dumps({"op": "add", "a": seq,
                                                                                              "b": 1})}]
                where, number = f"{session}-c{seq}", 1
            event = {"session_id": where, "sequence": number, "role": "user", "content": f"hello {seq}",
                     "tool_calls": calls}
            with Session(self.engine) as db, db.begin():
                self.writer.emit(db, "chat.messages", event, tenant=HEALTHY, dedupe_key=f"{where}:{number}")
            with self.lock:
                self.sent.append(f"chat:{where}:{number:012d}")
                self.calls += len(calls)
            time.sleep(1 / rate)

    def latencies_ms(self, phase: str) -> list[float]:
        """Outbox commit -> replica row of each user message of `phase` (database clock on both sides)."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT EXTRACT(EPOCH FROM (r.applied_at - o.created_at)) * 1000 FROM memory_replica r"
                " JOIN outbox_events o ON o.tenant_id = r.tenant_id"
                " AND o.dedupe_key = split_part(r.memory_key, ':', 2) || ':'"
                " || ltrim(split_part(r.memory_key, ':', 3), '0')"
                " WHERE r.tenant_id = :t AND r.memory_key LIKE :p AND r.payload->>'role' = 'user'"
            ), {"t": HEALTHY, "p": f"chat:{phase}-%"})
            return sorted(float(value) for (value,) in rows)

    def replicated(self) -> tuple[int, int]:
        """(user rows, tool rows) of the healthy tenant in the replica."""
        with self.engine.connect() as conn:
            rows = dict(conn.execute(text(
                "SELECT payload->>'role', count(*) FROM memory_replica WHERE tenant_id = :t GROUP BY 1"
            ), {"t": HEALTHY}).all())
        return int(rows.get("user", 0)), int(rows.get("tool", 0))


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


def _one_line_soma_error(result: Any) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("soma: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _writer_refusals(settings: Settings, engine: Engine) -> int:
    """Events the writer must refuse with one line, writing nothing."""
    catalog = load_catalog()
    writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
    chat = {"session_id": "w", "sequence": 1, "role": "user", "content": "hi"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("oversized", {**chat, "content": "x" * BIG}, "poison"),
        ("tenant with ':'", chat, "acme:eu"),
        ("tenant with a space", chat, "acme corp"),
        ("tenant with a control character", chat, "acme\x07"),
        ("unknown field", {**chat, "no_such_field": 1}, "poison"),
        ("wrong type", {**chat, "sequence": "one"}, "poison"),
        ("lone surrogate", {**chat, "content": "bad \ud800 text"}, "poison"),
        ("huge number", {**chat, "sequence": 2**80}, "poison"),
    ]
    for name, event, tenant in cases:
        with Session(engine) as db, pytest.raises(SomaError) as caught, db.begin():
            writer.emit(db, "chat.messages", event, tenant=tenant, dedupe_key=f"w-{uuid.uuid4().hex}")
        assert "\n" not in str(caught.value), name
    with engine.connect() as conn:
        written = conn.execute(text("SELECT count(*) FROM outbox_events WHERE dedupe_key LIKE 'w-%'")).scalar_one()
    assert written == 0
    return len(cases)


def _produce_refusals(settings: Settings, tmp_path: Path) -> int:
    """`soma produce` calls that must fail in one line and send nothing."""
    oversized = tmp_path / "oversized.json"
    oversized.write_text(json.dumps({"session_id": "p", "sequence": 1, "role": "user", "content": "x" * BIG}))
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"session_id": "p", "sequence": \xff\xfe}')
    cases = [
        ("chat.messages", "--tenant", "poison", "--file", str(oversized)),
        ("chat.messages", "--tenant", "poison", "--file", str(broken)),
        ("chat.messages", "--tenant", "poison", "--value-json", "{not json"),
        ("no.such.topic", "--tenant", "poison", "--value-json", "{}"),
        ("chat.messages", "--tenant", "bad tenant", "--value-json", json.dumps({"session_id": "p", "sequence": 1,
                                                                              "role": "user", "content": "hi"})),
    ]
    for args in cases:
        _one_line_soma_error(run_soma(settings, "produce", *args, timeout_s=60))
    return len(cases)


def _accepted_but_dead_lettered(settings: Settings, tmp_path: Path) -> list[str]:
    """Valid records whose content the streams must dead-letter (sent with `soma produce`)."""
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps({"session_id": "deep", "call_id": "deep-1", "tool": "calc",
                                "arguments_json": "[" * 50_000 + "]" * 50_000, "requested_by": "poison"}))
    result = run_soma(settings, "produce", "tool.requests", "--tenant", "poison", "--file", str(deep), timeout_s=60)
    assert result.returncode == 0, result.stdout + result.stderr
    unknown = {"session_id": "u", "call_id": "u-1", "tool": "no-such-tool", "arguments_json": "{}",
               "requested_by": "poison"}
    result = run_soma(settings, "produce", "tool.requests", "--tenant", "poison", "--value-json", json.dumps(unknown),
                      timeout_s=60)
    assert result.returncode == 0, result.stdout + result.stderr  # answered with an error result, not a crash
    return ["too deeply nested"]


def _raw_records(settings: Settings) -> list[tuple[str, bytes]]:
    """Bytes no producer of the platform would send, on every source topic; returns (topic, key) of each
    record the streams must dead-letter."""
    catalog = load_catalog()
    codec = Codec(catalog, settings)
    producer = kafka_producer(settings)
    expected: list[tuple[str, bytes]] = []
    for topic in SOURCES:
        valid = codec.encode(topic, codec.fill_defaults(topic, sample(topic, tenant="poison")))
        bad_tenant = codec.encode(topic, codec.fill_defaults(topic, sample(topic, tenant="poison")
                                                              | {"tenant_id": "bad tenant"}))
        cases: dict[str, bytes | None] = {
            "empty": b"",
            "null": None,
            "garbage": b"\x00garbage\xff",
            "truncated": valid[: len(valid) // 2],
            "unknown fingerprint": b"\xc3\x01" + os.urandom(8) + valid[10:],
            "tenant id with a space": bad_tenant,
        }
        for case, value in cases.items():
            key = f"poison:{topic}:{case}".encode()
            headers = [("tenant", b"\xff\xfe poison"), ("event-type", b"\x80")]
            producer.produce(settings.topic_name(topic), value=value, key=key, headers=headers)
            expected.append((topic, key))
        # A valid record with an invalid UTF-8 key and headers is processed, not dead-lettered.
        producer.produce(settings.topic_name(topic), value=valid, key=b"\xff\xfe", headers=[("tenant", b"\xff")])
    # Live config: garbage on config_updates is skipped by every process, never fatal.
    producer.produce(settings.topic_name("config_updates"), value=b"\x00not an update", key=b"INTEGRATOR_ALPHA")
    assert producer.flush(30) == 0
    return expected


def _admin_refusals(settings: Settings) -> int:
    """Hostile admin API requests: 4xx, never 5xx."""
    base = f"http://127.0.0.1:{settings.admin.port}"
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    cases: list[tuple[str, str, bytes | None, dict[str, str]]] = [
        ("POST", "/admin/outbox/replay", b"{not json", bearer | {"Content-Type": "application/json"}),
        ("POST", "/admin/outbox/replay", json.dumps({"tenant": "healthy", "ids": [2**70]}).encode(),
         bearer | {"Content-Type": "application/json"}),
        ("GET", "/admin/outbox?tenant=%FF%FE", None, bearer),
        ("GET", "/admin/outbox?tenant=healthy&limit=999999999", None, bearer),
        ("GET", "/admin/outbox?tenant=" + "a" * 5000, None, bearer),
        ("GET", "/admin/dlq?tenant=%00", None, bearer),
        ("GET", "/admin/dlq/not-an-id", None, bearer),
        ("GET", "/admin/outbox?tenant=healthy", None, {"Authorization": "Bearer wrong-token-0123456789"}),
        ("POST", "/admin/dlq/redrive", json.dumps({"ids": ["dlq:0:0"] * 5000}).encode(),
         bearer | {"Content-Type": "application/json"}),
    ]
    for method, path, body, headers in cases:
        request = urllib.request.Request(base + path, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own loopback API
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert 400 <= status < 500, (method, path, status)
    return len(cases)


def _legacy_oversized_row(settings: Settings, engine: Engine) -> int:
    """An outbox row written before the size check existed (inserted directly): the relay must park it."""
    with engine.begin() as conn:
        return int(conn.execute(text(
            "INSERT INTO outbox_events (tenant_id, dedupe_key, topic, key, headers, payload, event_type, event_id)"
            " VALUES ('legacy', 'legacy-1', 'chat.messages', 'legacy:s', '{}'::jsonb, :payload,"
            " 'soma.events.ChatMessage', :event_id) RETURNING id"
        ), {"payload": b"\xc3\x01" + b"x" * BIG, "event_id": str(uuid.uuid4())}).scalar_one())


@pytest.mark.timeout(900)
def test_bad_input_everywhere_stops_nobody_and_the_healthy_tenant_loses_nothing(
    poisoned: Settings, tmp_path: Path,
) -> None:
    settings = poisoned
    engine = database_engine(settings)
    healthy = Healthy(settings, engine)
    try:
        healthy.send("calm", count=30, rate=10)  # the baseline, without poison

        flowing = threading.Thread(target=healthy.send, args=("poisoned", 60, 10), daemon=True)
        flowing.start()
        refused = _writer_refusals(settings, engine) + _produce_refusals(settings, tmp_path)
        dead_reasons = _accepted_but_dead_lettered(settings, tmp_path)
        expected_letters = _raw_records(settings)
        refused += _admin_refusals(settings)
        legacy = _legacy_oversized_row(settings, engine)
        flowing.join(timeout=120)
        assert not flowing.is_alive()

        # The healthy tenant: every user message and every tool answer in the replica.
        expected = (len(healthy.sent), healthy.calls)
        try:
            wait_for(lambda: healthy.replicated() == expected, timeout_s=180, interval_s=1.0,
                     what=f"{expected[0]} user and {expected[1]} tool rows of the healthy tenant")
        except TimeoutError:
            with engine.connect() as conn:
                outbox = conn.execute(text("SELECT status, count(*), max(last_error) FROM outbox_events"
                                           " WHERE tenant_id = :t GROUP BY 1"), {"t": HEALTHY}).all()
            replica = healthy.replicated()
            raise AssertionError(f"replica {replica} != {expected}; healthy outbox rows {outbox}") from None

        # Every raw bad record and every poisonous valid one is in the DLQ with its reason.
        reader = DlqReader(settings, Codec(load_catalog(), settings))
        try:
            def letters() -> list[Any]:
                return reader.scan(DlqFilter(), limit=1000).items

            wait_for(lambda: {(d.source_topic, d.original_key) for d in letters()} >= set(expected_letters),
                     timeout_s=120, interval_s=2.0, what="every raw poison record dead-lettered")
            found = letters()
            assert all(d.error.strip() for d in found)
            for reason in dead_reasons:
                assert any(reason in d.error for d in found), reason
        finally:
            reader.close()

        # The legacy row is parked with its reason; the relay went on.
        def legacy_row() -> tuple[str, str | None]:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT status, last_error FROM outbox_events WHERE id = :id"),
                                   {"id": legacy}).one()
                return str(row.status), row.last_error

        wait_for(lambda: legacy_row()[0] == "dead", timeout_s=120, interval_s=1.0, what="the oversized row dead")
        assert "size" in (legacy_row()[1] or "").lower() or "large" in (legacy_row()[1] or "").lower()

        # Nobody restarted.
        state = platform_state(settings)
        assert {c.name: c.restarts for c in state.components} == dict.fromkeys(COMPONENTS, 0)
        assert {c.state for c in state.components} == {"ready"}

        calm, poisoned_ms = healthy.latencies_ms("calm"), healthy.latencies_ms("poisoned")
        print(f"\npoison suite: {refused} refused at the edge, {len(expected_letters)} raw records dead-lettered;"
              f" healthy tenant commit->replica p99 {_p99(calm):.0f} ms calm ({len(calm)} msgs),"
              f" {_p99(poisoned_ms):.0f} ms with poison ({len(poisoned_ms)} msgs)")
    finally:
        engine.dispose()
