"""Circuit-driven sleep requests, with the real Kafka and PostgreSQL and a `soma outbox relay` process.

A tenant's circuit is forced open the way the circuit tests do it (a row to a topic the broker does
not know, threshold 1), then closed by a good row after the reset (the half-open probe succeeds).
With ENABLE_SLEEP and its SLEEP_POLICY.circuit_sleep on (live settings on config_updates) the relay
produces one SleepRequest to light and, once closed, one to awake; with either off, nothing.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from soma.config_updates import publish
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.topics import ensure
from soma.settings import Settings
from tests.support.outbox_relay import (
    Record,
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


def _requests(settings: Settings, codec: Codec, tenants: set[str]) -> list[tuple[Record, dict[str, Any]]]:
    return [(r, codec.decode("cog.sleep_requests", r.value)) for r in consume_all(settings, "cog.sleep_requests")
            if r.key in tenants]


def test_an_open_circuit_asks_its_tenant_to_sleep_light_and_its_closing_to_wake(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    catalog = load_catalog()
    ensure(outbox_db, catalog)
    codec = Codec(catalog, outbox_db)
    run = uuid.uuid4().hex[:6]
    sleepy, flag_off, policy_off = f"sleepy-{run}", f"flagoff-{run}", f"policyoff-{run}"
    tenants = {sleepy, flag_off, policy_off}
    for tenant in (sleepy, flag_off):
        publish(outbox_db, "SLEEP_POLICY", '{"circuit_sleep": true}', tenant=tenant, author="test")
    for tenant in (sleepy, policy_off):
        publish(outbox_db, "ENABLE_SLEEP", "true", tenant=tenant, author="test")
    good_topic = create_topic(outbox_db)
    missing_topic = f"t.relay.missing.{uuid.uuid4().hex[:6]}"  # never created: every delivery fails
    config = relay_settings(
        outbox_db, outbox_relay_delivery_timeout_s=1.5, outbox_relay_max_attempts=1, outbox_relay_circuit_failures=1,
        outbox_relay_circuit_reset_s=0.5, outbox_relay_idle_timeout_s=0.5,
    )
    log_file = tmp_path / "relay.log"
    with relay_process(config, log_file) as proc:
        url = metrics_url(log_file)
        wait_for(lambda: "live settings loaded" in log_file.read_text(errors="replace"), 30,
                 what="the relay's live settings loaded")
        for tenant in tenants:
            insert_rows(engine, tenant, 1, missing_topic)
        wait_for(lambda: all(scrape(url).get(f'outbox_circuit_opened_total{{tenant="{t}"}}', 0) >= 1 for t in tenants),
                 30, what="the three circuits open")
        wait_for(lambda: any(v["to_state"] == "light" for _, v in _requests(outbox_db, codec, tenants)), 30,
                 what="the light request on cog.sleep_requests")
        for tenant in tenants:  # a row the broker takes: the half-open probe succeeds, the circuit closes
            insert_rows(engine, tenant, 1, good_topic, key=f"{tenant}:good")
        wait_for(lambda: status_counts(engine).get("sent") == 3, 30, what="the probes sent")
        wait_for(lambda: any(v["to_state"] == "awake" for _, v in _requests(outbox_db, codec, tenants)), 30,
                 what="the wake request on cog.sleep_requests")
        wait_for(lambda: scrape(url).get('outbox_circuit_sleep_requests_total{result="sent",to_state="awake"}') == 1,
                 10, what="the wake request counted")
        metrics = scrape(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # Only the tenant with both on, once per opening and closing; nothing for the flag-off or policy-off tenant.
    found = _requests(outbox_db, codec, tenants)
    assert [(r.key, v["to_state"]) for r, v in found] == [(sleepy, "light"), (sleepy, "awake")]
    for record, value in found:
        assert value["tenant_id"] == sleepy
        assert value["reason"] == "circuit"
        assert value["requested_by"] == "relay"
        assert value["until"] is None
        assert record.headers["tenant"] == sleepy
        assert record.headers["event-type"] == "soma.events.SleepRequest"
        assert record.headers["dedupe-key"] == value["event_id"]
        assert record.headers["traceparent"].startswith("00-")
    assert metrics['outbox_circuit_sleep_requests_total{result="sent",to_state="light"}'] == 1
    assert metrics.get('outbox_circuit_sleep_requests_total{result="failed",to_state="light"}', 0) == 0
    assert metrics[f'outbox_circuit_state{{tenant="{sleepy}"}}'] == 0
    assert status_counts(engine) == {"dead": 3, "sent": 3}
