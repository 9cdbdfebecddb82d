"""Per-tenant rate limits against the real PostgreSQL and Kafka, with `soma outbox relay` processes.

Rates are measured from the rows' own acknowledgement times (`sent_at`), so the bounds hold however
late the test looks: a limited tenant never publishes faster than its rate (plus its burst), an
unlimited one written at the same time drains far earlier, and every row is sent, none failed.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from sqlalchemy import Engine, text

from soma.config_updates import publish
from soma.contracts.catalog import load_catalog
from soma.contracts.topics import ensure
from soma.settings import Settings
from tests.support.outbox_relay import (
    create_topic,
    insert_rows,
    metrics_url,
    relay_process,
    relay_settings,
    scrape,
    status_counts,
)
from tests.support.procs import wait_for

SLACK = 1.3  # a measured rate may exceed its limit by this factor (clock and batching granularity), plus the burst


def _sent_times(engine: Engine, tenant: str) -> list[float]:
    """Acknowledgement times (epoch seconds) of the tenant's sent rows, in order."""
    query = text("SELECT extract(epoch FROM sent_at)::float8 FROM outbox_events"
                 " WHERE tenant_id = :t AND status = 'sent' ORDER BY sent_at")
    with engine.connect() as conn:
        return [float(t) for t in conn.execute(query, {"t": tenant}).scalars()]


def _busiest_window(times: list[float], window_s: float) -> int:
    """The most rows acknowledged within any `window_s` seconds."""
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] > window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def _attempts(engine: Engine, tenant: str) -> set[int]:
    with engine.connect() as conn:
        query = text("SELECT DISTINCT attempts FROM outbox_events WHERE tenant_id = :t")
        return {int(a) for a in conn.execute(query, {"t": tenant}).scalars()}


def test_a_limited_tenant_is_slowed_to_its_rate_while_an_unlimited_one_drains_at_full_speed(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    topic = create_topic(outbox_db, partitions=3)
    run = uuid.uuid4().hex[:6]
    slow, fast = f"slow-{run}", f"fast-{run}"
    rate, burst_s = 50.0, 1.0
    insert_rows(engine, slow, 500, topic)
    insert_rows(engine, fast, 2000, topic)
    config = relay_settings(outbox_db, outbox_relay_tenant_rates=f"{slow}={rate:g}",
                            outbox_relay_tenant_rate_burst_s=burst_s, outbox_relay_gauge_interval_s=0.3)
    log_file = tmp_path / "relay.log"
    held: list[float] = []
    with relay_process(config, log_file) as proc:
        url = metrics_url(log_file)

        def held_back() -> bool:  # the gauge of rows the limit holds back, seen while slow still waits
            held.append(scrape(url).get(f'outbox_rate_limited_rows{{tenant="{slow}"}}', 0.0))
            return held[-1] > 0

        wait_for(held_back, 20, interval_s=0.1, what="rows of the limited tenant held back (gauge)")
        wait_for(lambda: status_counts(engine, slow).get("sent") == 500, 55, what="the limited tenant's 500 rows")
        metrics = scrape(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    slow_times, fast_times = _sent_times(engine, slow), _sent_times(engine, fast)
    assert len(fast_times) == 2000
    start = min(slow_times[0], fast_times[0])
    slow_took, fast_took = slow_times[-1] - start, fast_times[-1] - start
    burst = rate * burst_s
    measured = (len(slow_times) - burst) / (slow_times[-1] - slow_times[0])
    busiest = _busiest_window(slow_times, 1.0)
    print(f"limited tenant: 500 rows in {slow_took:.2f} s ({measured:.1f}/s after its burst, at most {busiest} in"
          f" one second); unlimited: 2000 rows in {fast_took:.2f} s")
    # Never faster than the limit: 500 rows at 50/s with a 50-row burst take at least ~7 s even with the slack.
    assert measured <= rate * SLACK, f"{measured:.1f} rows/s over the limit of {rate}"
    assert busiest <= rate * SLACK + burst, f"{busiest} rows within one second"
    assert slow_took >= (500 - burst) / (rate * SLACK)
    # The unlimited tenant was not held behind it: done in well under half the limited tenant's time.
    assert fast_took < slow_took / 2, f"unlimited tenant took {fast_took:.2f} s, limited {slow_took:.2f} s"
    # Waiting is not failing: every row sent at its first attempt.
    assert _attempts(engine, slow) == {1}
    assert status_counts(engine) == {"sent": 2500}
    assert metrics[f'outbox_rate_limited_total{{tenant="{slow}"}}'] >= 1
    assert metrics.get(f'outbox_rate_limited_total{{tenant="{fast}"}}', 0) == 0
    assert max(held) <= 500


def test_overrides_beat_the_default_rate(outbox_db: Settings, engine: Engine, tmp_path: Path) -> None:
    """Default 10/s; one tenant raised to 200/s, one unlimited (0): each goes at its own rate."""
    topic = create_topic(outbox_db)
    run = uuid.uuid4().hex[:6]
    default, raised, free = f"dflt-{run}", f"raised-{run}", f"free-{run}"
    insert_rows(engine, default, 60, topic)
    insert_rows(engine, raised, 600, topic)
    insert_rows(engine, free, 1000, topic)
    config = relay_settings(outbox_db, outbox_relay_tenant_rate=10, outbox_relay_tenant_rate_burst_s=1.0,
                            outbox_relay_tenant_rates=f"{raised}=200,{free}=0")
    log_file = tmp_path / "relay.log"
    with relay_process(config, log_file) as proc:
        metrics_url(log_file)
        wait_for(lambda: status_counts(engine).get("sent") == 1660, 55, what="every row sent")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    times = {t: _sent_times(engine, t) for t in (default, raised, free)}
    start = min(ts[0] for ts in times.values())
    took = {t: ts[-1] - start for t, ts in times.items()}
    print(f"default 10/s: 60 rows in {took[default]:.2f} s; 200/s: 600 rows in {took[raised]:.2f} s;"
          f" unlimited: 1000 rows in {took[free]:.2f} s")
    assert _busiest_window(times[default], 1.0) <= 10 * SLACK + 10
    assert _busiest_window(times[raised], 1.0) <= 200 * SLACK + 200
    assert took[default] >= (60 - 10) / (10 * SLACK)  # the default holds: >= ~3.8 s
    assert took[raised] >= (600 - 200) / (200 * SLACK)  # its override, not the default: >= ~1.5 s...
    assert took[raised] < took[default]  # ...and far from the default's 60 s for 600 rows
    assert took[free] < took[default] / 2  # unlimited despite the default


def test_a_live_rate_applies_to_a_running_relay_and_its_reset_lifts_it(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    """`soma config set RELAY_TENANT_RATE 20 --tenant T` while the relay runs: T's next rows go at 20/s;
    `null` returns it to the static settings (unlimited here)."""
    ensure(outbox_db, load_catalog())
    topic = create_topic(outbox_db)
    tenant = f"live-{uuid.uuid4().hex[:6]}"
    log_file = tmp_path / "relay.log"
    with relay_process(relay_settings(outbox_db), log_file) as proc:
        metrics_url(log_file)
        wait_for(lambda: "live settings loaded" in log_file.read_text(errors="replace"), 30, what="live settings")
        publish(outbox_db, "RELAY_TENANT_RATE", "20", tenant=tenant, author="test")
        wait_for(lambda: f"RELAY_TENANT_RATE (tenant {tenant}) = 20" in log_file.read_text(errors="replace"), 30,
                 what="the live rate applied")
        insert_rows(engine, tenant, 150, topic, prefix=f"{tenant}-limited-")
        wait_for(lambda: status_counts(engine, tenant).get("sent") == 150, 40, what="150 rows at 20/s")
        publish(outbox_db, "RELAY_TENANT_RATE", "null", tenant=tenant, author="test")
        wait_for(lambda: f"RELAY_TENANT_RATE (tenant {tenant}) = None" in log_file.read_text(errors="replace"), 30,
                 what="the live rate reset")
        insert_rows(engine, tenant, 1000, topic, prefix=f"{tenant}-free-")
        wait_for(lambda: status_counts(engine, tenant).get("sent") == 1150, 40, what="1000 more rows")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    with engine.connect() as conn:
        query = text("SELECT extract(epoch FROM sent_at)::float8 FROM outbox_events WHERE tenant_id = :t"
                     " AND dedupe_key LIKE :p ORDER BY sent_at")
        limited = [float(t) for t in conn.execute(query, {"t": tenant, "p": f"{tenant}-limited-%"}).scalars()]
        free = [float(t) for t in conn.execute(query, {"t": tenant, "p": f"{tenant}-free-%"}).scalars()]
    limited_took, free_took = limited[-1] - limited[0], free[-1] - free[0]
    print(f"live 20/s: 150 rows in {limited_took:.2f} s; after the reset 1000 rows in {free_took:.2f} s")
    assert _busiest_window(limited, 1.0) <= 20 * SLACK + 20
    assert limited_took >= (150 - 20) / (20 * SLACK)  # >= 5 s
    assert free_took < limited_took / 2  # 1000 rows at 20/s would take 50 s
