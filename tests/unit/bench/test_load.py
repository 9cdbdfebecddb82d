"""Pure parts of `soma bench load`: percentiles, lost counts, the guards on the target and the size of a run."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bench.load import MAX_DURATION_S, MAX_RATE, LoadRefused, Series, check_target, is_loopback, percentiles
from soma.settings import Settings


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]) == {}
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([3.0]) == {"p50": 3.0, "p95": 3.0, "p99": 3.0, "max": 3.0}
    assert percentiles([5.0, 1.0, 3.0], points=(50,)) == {"p50": 3.0, "max": 5.0}


def test_series_counts_what_was_lost() -> None:
    series = Series(sent=3, latencies=[0.1, 0.2], first_in=10.0, last_out=12.0)
    assert series.received == 2
    assert series.lost == 1
    assert series.throughput == 1.0
    assert series.summary()["latency_ms"]["max"] == 200.0


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("10.0.0.5", False), ("kafka", False), ("db.example.com", False), ("0.0.0.0", False),  # noqa: S104
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _settings(**fields: object) -> Settings:
    return Settings.construct_flat(**fields)


def test_the_load_run_refuses_non_loopback_targets_and_unbounded_runs() -> None:
    check_target(_settings(), 100, 10)
    cases = {
        "Kafka 10.1.2.3 is not a loopback address (SOMA_KAFKA_BOOTSTRAP)":
            _settings(kafka_bootstrap="127.0.0.1:9092,10.1.2.3:9092"),
        "PostgreSQL db.internal is not a loopback address (SOMA_DATABASE_URL)":
            _settings(database_url=SecretStr("postgresql+psycopg://u:secret@db.internal:5432/soma")),
        "Redis cache is not a loopback address (SOMA_REDIS_URL)":
            _settings(redis_url=SecretStr("redis://:pw@cache:6379/0")),
    }
    for message, settings in cases.items():
        with pytest.raises(LoadRefused) as caught:
            check_target(settings, 100, 10)
        assert str(caught.value) == f"bench load: {message}"
        assert "secret" not in str(caught.value)
        assert "\n" not in str(caught.value)
    for rate, duration in ((MAX_RATE + 1, 10), (0, 10), (10, MAX_DURATION_S + 1), (10, 0)):
        with pytest.raises(LoadRefused, match="must be in"):
            check_target(_settings(), rate, duration)
