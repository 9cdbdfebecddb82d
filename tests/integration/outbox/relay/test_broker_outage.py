"""The broker goes away for 30 s under a running relay: nothing is lost, circuits open and close, metrics show it.

Stopping the shared local broker disturbs any other test session running at the same time, so
this module is marked `disruptive` (deselect with `-m "not disruptive"`); `make test` runs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from soma.errors import InfrastructureUnavailable
from soma.observability.health import kafka_round_trip
from soma.ops.stack.kafka import LocalKafka
from soma.settings import Settings
from tests.support import outbox_relay as rig  # the relay test rig: rows in, relay processes, records out
from tests.support.procs import REPO, wait_for

pytestmark = pytest.mark.disruptive

OUTAGE_S = 30.0
TENANTS = ("acme", "globex", "initech")


def _kafka_healthy(settings: Settings) -> bool:
    try:
        kafka_round_trip(settings)
    except InfrastructureUnavailable:
        return False
    return True


@pytest.fixture
def broker(stack: Settings) -> Iterator[LocalKafka]:
    """The local broker, restarted and healthy again at the end whatever happens."""
    kafka = LocalKafka(stack.replace(state_dir=REPO / ".soma"))
    if kafka.daemon.pid() is None:
        pytest.skip("the broker is not managed by `soma stack up` here (no pid file): cannot stop it")
    try:
        yield kafka
    finally:
        if kafka.daemon.pid() is None:
            kafka.start()
        wait_for(lambda: _kafka_healthy(stack), 90, interval_s=1, what="kafka healthy again")


def test_broker_outage_loses_nothing_and_circuits_open_then_close(
    outbox_db: Settings, engine: Engine, broker: LocalKafka, tmp_path: Path
) -> None:
    topic = rig.create_topic(outbox_db, partitions=3)
    config = rig.relay_settings(
        outbox_db, outbox_relay_delivery_timeout_s=3, outbox_relay_circuit_failures=3,
        outbox_relay_circuit_reset_s=2, outbox_relay_retry_base_s=0.5, outbox_relay_retry_max_s=2,
        outbox_relay_max_attempts=1000, outbox_relay_idle_timeout_s=1, outbox_relay_gauge_interval_s=0.5,
    )
    log_file = tmp_path / "relay.log"
    prefixes = []
    with rig.relay_process(config, log_file) as proc:
        url = rig.metrics_url(log_file)
        prefixes += [rig.insert_rows(engine, tenant, 100, topic) for tenant in TENANTS]
        wait_for(lambda: rig.status_counts(engine).get("sent") == 300, 30, what="300 rows sent before the outage")

        stopped_at = time.monotonic()
        broker.daemon.stop()
        # Services keep committing while the broker is away: the outbox absorbs it.
        prefixes += [rig.insert_rows(engine, tenant, 100, topic) for tenant in TENANTS]
        wait_for(lambda: all(rig.scrape(url).get(f'outbox_circuit_state{{tenant="{t}"}}') == 2 for t in TENANTS),
                 25, interval_s=0.5, what="every tenant's circuit open")
        during = rig.scrape(url)
        assert rig.status_counts(engine).get("pending", 0) + rig.status_counts(engine).get("failed", 0) > 0
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        broker.start()
        wait_for(lambda: _kafka_healthy(outbox_db), 90, interval_s=1, what="kafka healthy after restart")

        wait_for(lambda: rig.status_counts(engine) == {"sent": 600}, 90, interval_s=0.5, what="all 600 rows sent")
        wait_for(lambda: all(rig.scrape(url).get(f'outbox_circuit_state{{tenant="{t}"}}') == 0 for t in TENANTS),
                 10, what="every circuit closed again")
        # The pending gauges are recounted every SOMA_OUTBOX_RELAY_GAUGE_INTERVAL_S: wait for a recount.
        wait_for(lambda: all(rig.scrape(url).get(f'outbox_pending{{tenant="{t}"}}') == 0 for t in TENANTS),
                 30, what="pending gauges recounted to 0")
        after = rig.scrape(url)
        proc.terminate()
        assert proc.wait(30) == 0

    for tenant in TENANTS:
        assert during[f'outbox_failed_total{{tenant="{tenant}",topic="{topic}"}}'] > 0
        assert after[f'outbox_circuit_opened_total{{tenant="{tenant}"}}'] >= 1
        assert after[f'outbox_published_total{{tenant="{tenant}",topic="{topic}"}}'] == 200
        assert after[f'outbox_pending{{tenant="{tenant}"}}'] == 0
    assert after.get(f'outbox_dead_total{{tenant="{TENANTS[0]}",topic="{topic}"}}', 0) == 0
    keys = {r.headers["dedupe-key"] for r in rig.consume_all(outbox_db, topic)}
    assert keys == {f"{prefix}{i}" for prefix in prefixes for i in range(1, 101)}
