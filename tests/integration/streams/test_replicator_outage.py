"""The replicator through a real PostgreSQL outage of its own.

The replicator's database connection goes through a loopback proxy the test cuts, so only this
process loses PostgreSQL (the shared server keeps running). While the database is unreachable the
replicator retries the same record with backoff, applies nothing, does not commit its offset and
dead-letters nothing; when the database returns, every write lands exactly once.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import TopicPartition
from pydantic import SecretStr
from sqlalchemy import text

from soma.clients import database_engine, kafka_consumer
from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.procs import wait_for
from tests.support.streams import Bus, port_of, stream_process, wait_ready
from tests.support.tcp_proxy import tcp_proxy

PARTITIONS = 3


@pytest.fixture(scope="module")
def prepared(migrated: Settings) -> Settings:
    return migrated.replace(replicator_retry_base_s=0.2, replicator_retry_max_s=1.0)


def _metric(settings: Settings, name: str) -> float:
    url = f"http://127.0.0.1:{port_of(settings, 'replicator')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, re.MULTILINE)]
    return sum(values)


def _offsets(settings: Settings, committed: bool) -> int:
    consumer = kafka_consumer(settings, f"{settings.kafka.topic_prefix}soma-replicator")
    try:
        tps = [TopicPartition(settings.topic_name("memory.writes"), p) for p in range(PARTITIONS)]
        if committed:
            return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
        return sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
    finally:
        consumer.close()


def _writes(tenant: str, start: int, count: int) -> list[dict[str, object]]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [{"tenant_id": tenant, "memory_key": f"k{n}", "operation": "upsert", "payload_json": f'{{"n": {n}}}',
             "occurred_at": t0 + timedelta(seconds=n), "event_id": str(uuid.uuid4()), "session_id": "s"}
            for n in range(start, start + count)]


def test_database_outage_backs_off_without_committing_then_applies_everything(prepared: Settings) -> None:
    url = prepared.sqlalchemy_url()
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = prepared.replace(
            database_url=SecretStr(url.set(port=proxy.port).render_as_string(hide_password=False)),
        )
        bus = Bus(prepared)
        tenant = f"outage-{uuid.uuid4().hex[:8]}"
        engine = database_engine(prepared)  # direct, not through the proxy

        def rows() -> int:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM memory_replica WHERE tenant_id = :t"),
                                        {"t": tenant}).scalar_one())

        try:
            with stream_process("replicator", proxied, LOGS):
                wait_ready(proxied, "replicator", timeout_s=90)
                bus.send_many("memory.writes", _writes(tenant, 0, 5), tenant)
                wait_for(lambda: rows() == 5, 60, what="the first writes in the replica")

                proxy.cut()
                end_before_outage = _offsets(prepared, committed=False)
                wait_for(lambda: _offsets(prepared, committed=True) >= end_before_outage, 30,
                         what="the replicator committing the writes before the outage")
                bus.send_many("memory.writes", _writes(tenant, 5, 5), tenant)
                wait_for(lambda: _metric(proxied, "soma_replicator_db_retries_total") >= 3, 60,
                         what="the replicator retrying against the unreachable database")
                time.sleep(4)  # longer than Faust's commit interval (2.8 s): a commit would have happened
                assert rows() == 5, "nothing can be applied while the database is unreachable"
                assert _offsets(prepared, committed=True) <= end_before_outage, "committed past an unapplied write"
                assert _metric(proxied, "soma_stream_dead_letters_total") == 0, "an outage is not the record's fault"

                proxy.restore()
                wait_for(lambda: rows() == 10, 60, what="every write applied after the database returned")
                wait_for(lambda: _offsets(prepared, committed=True) >= end_before_outage + 5, 30,
                         what="the offsets committed after recovery")
                assert _metric(proxied, "soma_stream_dead_letters_total") == 0
        finally:
            engine.dispose()
