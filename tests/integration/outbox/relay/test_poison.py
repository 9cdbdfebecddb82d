"""Rows the broker can never take do not stop the relay: each ends `dead` with its reason, the rest flow.

The rows are inserted directly (as a legacy row written before the writer's size check would be),
so they reach the relay exactly as stored.
"""

from __future__ import annotations

import signal
import socket
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, text

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


def _rows(engine: Engine, tenant: str) -> list[tuple[str, int, str | None]]:
    with engine.connect() as conn:
        query = text("SELECT status, attempts, last_error FROM outbox_events WHERE tenant_id = :t ORDER BY id")
        return [(str(s), int(a), e) for s, a, e in conn.execute(query, {"t": tenant})]


def test_oversized_legacy_row_goes_dead_and_the_relay_goes_on(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    topic = create_topic(outbox_db, partitions=3)
    before = insert_rows(engine, "early", 20, topic)  # in the same batch as the big row, produced before it
    insert_rows(engine, "legacy", 1, topic, payload=b"\xc3\x01" + b"x" * 1_100_000)
    config = relay_settings(
        outbox_db, outbox_relay_max_attempts=2, outbox_relay_retry_base_s=0.1, outbox_relay_retry_max_s=0.2,
        outbox_relay_idle_timeout_s=0.3, outbox_relay_gauge_interval_s=0.3,
    )
    log_file = tmp_path / "relay.log"
    with relay_process(config, log_file) as proc:
        url = metrics_url(log_file)
        after = insert_rows(engine, "other", 20, topic)  # another tenant's rows, committed after the big one
        wait_for(lambda: status_counts(engine, "legacy").get("dead") == 1, 30, what="the big row parked as dead")
        wait_for(lambda: status_counts(engine, "other").get("sent") == 20, 30, what="the other tenant's rows sent")
        wait_for(lambda: scrape(url).get('outbox_dead_rows{tenant="legacy"}') == 1, 10, what="dead-rows gauge")
        assert proc.poll() is None, "the relay exited because of a row"
        metrics = scrape(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    [(status, attempts, error)] = _rows(engine, "legacy")
    assert (status, attempts) == ("dead", 2)
    assert error is not None
    assert "MSG_SIZE_TOO_LARGE" in error
    assert "\n" not in error
    assert status_counts(engine, "early") == {"sent": 20}
    assert metrics[f'outbox_dead_total{{tenant="legacy",topic="{topic}"}}'] == 1
    counts = Counter(r.headers["dedupe-key"] for r in consume_all(outbox_db, topic))
    expected = {f"{before}{i}" for i in range(1, 21)} | {f"{after}{i}" for i in range(1, 21)}
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a row produced in the big row's batch was published again"



def test_an_unreachable_broker_uses_up_no_attempt(outbox_db: Settings, engine: Engine, tmp_path: Path) -> None:
    """The relay's producer points at a closed loopback port (the shared broker is left alone): every
    delivery times out, again and again, yet with max_attempts=1 no row is parked as dead."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    insert_rows(engine, "acme", 5, "chat.messages")
    insert_rows(engine, "globex", 5, "chat.messages")
    config = relay_settings(
        outbox_db, kafka_bootstrap=f"127.0.0.1:{closed_port}", outbox_relay_delivery_timeout_s=0.5,
        outbox_relay_max_attempts=1, outbox_relay_retry_base_s=0.05, outbox_relay_retry_max_s=0.2,
        outbox_relay_circuit_reset_s=0.3, outbox_relay_idle_timeout_s=0.2, outbox_relay_gauge_interval_s=0.3,
    )
    log_file = tmp_path / "relay.log"
    with relay_process(config, log_file) as proc:
        url = metrics_url(log_file)
        wait_for(lambda: sum(scrape(url).get(f'outbox_failed_total{{tenant="{t}",topic="chat.messages"}}', 0)
                             for t in ("acme", "globex")) >= 20, 60, what="at least two failures per row")
        assert proc.poll() is None
        metrics = scrape(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    rows = _rows(engine, "acme") + _rows(engine, "globex")
    assert {status for status, _, _ in rows} <= {"pending", "failed"}
    assert all(attempts == 0 for _, attempts, _ in rows), rows
    assert any(error and error.split(":")[0] in {"_MSG_TIMED_OUT", "_TRANSPORT"} for _, _, error in rows), rows
    assert metrics.get('outbox_dead_rows{tenant="acme"}', 0) == 0
    assert not any(name.startswith("outbox_dead_total") for name in metrics)
