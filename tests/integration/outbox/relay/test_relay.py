"""The relay against the real Kafka and PostgreSQL, run as `soma outbox relay` processes."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox.relay.claim import explain_claim
from outbox.relay.policy import FairShare
from outbox.writer import Emission, OutboxWriter
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.topics import ensure
from soma.settings import Settings
from tests.support.outbox_relay import (
    consume_all,
    create_topic,
    insert_rows,
    metrics_url,
    relay_process,
    relay_settings,
    scrape,
    status_counts,
)
from tests.support.procs import wait_for
from tests.support.samples import sample


def _published(log_file: Path) -> int:
    match = re.search(r"stopped; published (\d+)", log_file.read_text(errors="replace"))
    return int(match.group(1)) if match else -1


def _sent_rows(engine: Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT dedupe_key, "partition", "offset" FROM outbox_events WHERE status = \'sent\''))
        return {key: (part, off) for key, part, off in rows}


def test_relay_publishes_key_headers_and_value_and_records_where(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    catalog = load_catalog()
    ensure(outbox_db, catalog)
    writer = OutboxWriter(catalog, Codec(catalog, outbox_db), outbox_db)
    run = uuid.uuid4().hex[:6]
    tenants = [f"acme-{run}", f"globex-{run}"]
    emissions = [Emission("chat.messages", sample("chat.messages", tenant=t, n=i), t, f"order-{i}")
                 for t in tenants for i in range(15)]
    with Session(engine) as session, session.begin():
        writer.write(session, emissions)
    with Session(engine) as session, session.begin():  # a repeat of one dedupe key: no second event
        writer.write(session, emissions[:1])
    # The idle timeout is long: a prompt publish later on can only come from the writer's NOTIFY.
    config = relay_settings(outbox_db, outbox_relay_idle_timeout_s=120, outbox_relay_gauge_interval_s=0.3)
    log_file = tmp_path / "relay.log"
    with relay_process(config, log_file) as proc:
        url = metrics_url(log_file)
        wait_for(lambda: status_counts(engine).get("sent") == 30, 60, what="30 rows sent")
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        time.sleep(1.0)  # idle now (waiting on LISTEN)
        with Session(engine) as session, session.begin():
            writer.write(session, [Emission("chat.messages", sample("chat.messages", tenant=tenants[0]),
                                            tenants[0], "late")])
        wait_for(lambda: status_counts(engine).get("sent") == 31, 3, interval_s=0.02, what="woken by NOTIFY")
        wait_for(lambda: scrape(url).get(f'outbox_pending{{tenant="{tenants[0]}"}}') == 0, 10, what="gauge")
        metrics = scrape(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert metrics[f'outbox_published_total{{tenant="{tenants[0]}",topic="chat.messages"}}'] == 16
    assert metrics[f'outbox_published_total{{tenant="{tenants[1]}",topic="chat.messages"}}'] == 15
    assert metrics["outbox_publish_latency_seconds_count"] == 31
    assert metrics[f'outbox_circuit_state{{tenant="{tenants[0]}"}}'] == 0
    assert f'outbox_oldest_pending_age_seconds{{tenant="{tenants[0]}"}}' in metrics
    with engine.connect() as conn:
        late_ms = conn.execute(text(
            "SELECT extract(epoch FROM sent_at - created_at) * 1000 FROM outbox_events WHERE dedupe_key = 'late'"
        )).scalar_one()
    assert late_ms < 1000

    codec = Codec(catalog, outbox_db)
    with engine.connect() as conn:
        sent = set(conn.execute(text('SELECT "partition", "offset" FROM outbox_events WHERE status = \'sent\'')))
    records = [r for r in consume_all(outbox_db, "chat.messages")
               if r.headers.get("tenant") in tenants]
    assert len(records) == 31
    assert Counter((r.headers["tenant"], r.headers["dedupe-key"]) for r in records).most_common(1)[0][1] == 1
    for record in records:
        value = codec.decode("chat.messages", record.value)
        assert record.key == f"{value['tenant_id']}:{value['session_id']}"
        assert record.headers["event-type"] == "soma.events.ChatMessage"
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", record.headers["traceparent"])
    assert {(r.partition, r.offset) for r in records} == sent


def test_two_relays_publish_20000_rows_exactly_once(outbox_db: Settings, engine: Engine, tmp_path: Path) -> None:
    topic = create_topic(outbox_db, partitions=6)
    config = relay_settings(outbox_db, outbox_relay_poll_max_s=0.05)
    logs = [tmp_path / "relay-1.log", tmp_path / "relay-2.log"]
    with relay_process(config, logs[0]) as first, relay_process(config, logs[1]) as second:
        metrics_url(logs[0])
        metrics_url(logs[1])
        prefixes = [insert_rows(engine, f"tenant-{n}", 5000, topic) for n in range(4)]
        wait_for(lambda: status_counts(engine).get("sent") == 20_000, 120, what="20,000 rows sent")
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        assert second.wait(30) == 0
    counts = Counter(r.headers["dedupe-key"] for r in consume_all(outbox_db, topic))
    expected = {f"{prefix}{i}" for prefix in prefixes for i in range(1, 5001)}
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a row was published twice"
    assert sum(counts.values()) == 20_000
    shares = [_published(log) for log in logs]
    print(f"relay shares: {shares}")
    assert sum(shares) == 20_000
    assert min(shares) > 0, f"both relays should have published: {shares}"


def test_relay_sigkilled_mid_batch_loses_nothing(outbox_db: Settings, engine: Engine, tmp_path: Path) -> None:
    topic = create_topic(outbox_db, partitions=3)
    prefix = insert_rows(engine, "tenant-k", 40_000, topic)
    config = relay_settings(outbox_db, outbox_relay_batch_size=500)
    with relay_process(config, tmp_path / "relay-1.log") as proc:
        wait_for(lambda: status_counts(engine).get("sent", 0) >= 5000, 60, interval_s=0.02, what="5,000 sent")
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    left = status_counts(engine).get("pending", 0)
    assert left > 0, "the relay should have been killed mid-stream"
    with relay_process(config, tmp_path / "relay-2.log") as proc:
        wait_for(lambda: status_counts(engine) == {"sent": 40_000}, 90, what="all 40,000 sent after restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    counts = Counter(r.headers["dedupe-key"] for r in consume_all(outbox_db, topic))
    assert set(counts) == {f"{prefix}{i}" for i in range(1, 40_001)}  # nothing lost (duplicates allowed)
    duplicates = sum(counts.values()) - 40_000
    print(f"killed with {left} rows pending; {duplicates} records published twice")  # shown with -rP
    assert duplicates <= 4 * 500 * 2, f"{duplicates} duplicates: more than the claims in flight at the kill"


def test_sigterm_records_in_flight_deliveries_and_releases_the_rest(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    topic = create_topic(outbox_db, partitions=3)
    insert_rows(engine, "tenant-t", 40_000, topic)
    log_file = tmp_path / "relay.log"
    with relay_process(relay_settings(outbox_db, outbox_relay_batch_size=500), log_file) as proc:
        wait_for(lambda: status_counts(engine).get("sent", 0) >= 5000, 60, interval_s=0.02, what="5,000 sent")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    counts = status_counts(engine)
    assert counts.get("pending", 0) > 0, "the relay should have been stopped mid-stream"
    sent = _sent_rows(engine)
    published = consume_all(outbox_db, topic)
    # Every record the broker acknowledged is marked sent, with its partition/offset, and nothing else.
    assert {r.headers["dedupe-key"]: (r.partition, r.offset) for r in published} == sent
    assert _published(log_file) == len(sent)
    with engine.begin() as conn:  # no claim survives the relay: every pending row can be locked at once
        conn.execute(text("SELECT id FROM outbox_events WHERE status = 'pending' FOR UPDATE NOWAIT")).all()


def test_small_tenant_is_not_stuck_behind_a_big_one(outbox_db: Settings, engine: Engine, tmp_path: Path) -> None:
    """100,000 pending rows of one tenant, then 100 of another: the 100 go out before the big one's 5,000th."""
    topic = create_topic(outbox_db, partitions=1)  # one partition: offsets give the publish order
    payload = b"\xc3\x01" + os.urandom(1024)
    big, small = "a-big", "z-small"  # the small one sorts last and its rows are the newest: no head start
    insert_rows(engine, big, 100_000, topic, payload=payload, key="same")
    insert_rows(engine, small, 100, topic, payload=payload, key="same")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE outbox_events"))
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL jit = off"))
        plan = explain_claim(conn, FairShare(1000, 20, {}).plan({}))
        conn.rollback()
    assert "ix_outbox_events_due" in plan, plan
    assert "Seq Scan" not in plan, plan
    buffers = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plan)
    assert buffers is not None
    touched = int(buffers.group(1)) + int(buffers.group(2) or 0)
    assert touched < 5000, f"the claim touched {touched} pages: it should not walk the big tenant's rows\n{plan}"

    config = relay_settings(outbox_db, outbox_relay_tenant_quota=20)
    with relay_process(config, tmp_path / "relay.log") as proc:
        wait_for(lambda: status_counts(engine, small).get("sent") == 100, 60, what="small tenant published")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    records = sorted(consume_all(outbox_db, topic),
                     key=lambda r: r.offset)
    order = [r.headers["tenant"] for r in records]
    last_small = max(i for i, tenant in enumerate(order) if tenant == small)
    big_before = order[:last_small].count(big)
    assert order.count(small) == 100
    print(f"claim touched {touched} pages; {big_before} big-tenant records before the small tenant's last")
    assert big_before < 5000, f"{big_before} rows of the big tenant went out before the small tenant's last"


def test_failing_tenant_opens_its_circuit_and_goes_dead_without_holding_up_others(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    good_topic = create_topic(outbox_db)
    missing_topic = f"t.relay.missing.{uuid.uuid4().hex[:6]}"  # never created: the broker does not know it
    insert_rows(engine, "bad", 3, missing_topic)
    insert_rows(engine, "good", 200, good_topic)
    config = relay_settings(
        outbox_db, outbox_relay_delivery_timeout_s=1.5, outbox_relay_max_attempts=2, outbox_relay_retry_base_s=0.1,
        outbox_relay_retry_max_s=0.2, outbox_relay_circuit_failures_by_tenant="bad=1",
        outbox_relay_circuit_reset_s_by_tenant="bad=0.3", outbox_relay_idle_timeout_s=0.5,
    )
    log_file = tmp_path / "relay.log"
    with relay_process(config, log_file) as proc:
        url = metrics_url(log_file)
        wait_for(lambda: status_counts(engine, "good").get("sent") == 200, 30, what="good tenant published")
        wait_for(lambda: status_counts(engine, "bad").get("dead") == 3, 60, what="bad rows parked as dead")
        metrics = scrape(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert metrics['outbox_circuit_opened_total{tenant="bad"}'] >= 1
    assert metrics.get('outbox_circuit_opened_total{tenant="good"}', 0) == 0
    assert metrics[f'outbox_dead_total{{tenant="bad",topic="{missing_topic}"}}'] == 3
    assert metrics[f'outbox_failed_total{{tenant="bad",topic="{missing_topic}"}}'] == 3  # first attempts
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT attempts, last_error FROM outbox_events WHERE tenant_id = 'bad'")).all()
    # An unknown topic is the row's fault: each attempt counts (a timeout would not: see test_poison).
    # The first report comes from the broker; later produce() calls refuse the row at once.
    assert all(attempts == 2 and "UNKNOWN_TOPIC" in (error or "") for attempts, error in rows), rows
