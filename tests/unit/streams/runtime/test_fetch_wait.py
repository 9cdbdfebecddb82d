"""The stream consumers Faust creates long-poll at most FETCH_MAX_WAIT_MS, not Faust's 1.5 s."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.transport.drivers import aiokafka as driver

from streams.runtime import fetch_wait


def test_install_sets_the_wait_of_every_worker_consumer_once(monkeypatch: Any) -> None:
    made = SimpleNamespace(_fetch_max_wait_ms=1500)
    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: made)
    fetch_wait.install(200)
    fetch_wait.install(100)  # again: wraps Faust's original, not the previous wrapper
    consumer = driver.AIOKafkaConsumerThread._create_worker_consumer(None, None)  # type: ignore[arg-type]
    assert consumer is made
    assert made._fetch_max_wait_ms == 100
    patched = driver.AIOKafkaConsumerThread._create_worker_consumer
    assert patched.soma_original(None, None) is made  # type: ignore[attr-defined]


def test_streams_install_it() -> None:
    import streams.app  # noqa: F401 - installs at import

    assert driver.AIOKafkaConsumerThread._create_worker_consumer.soma_fetch_wait_ms == (  # type: ignore[attr-defined]
        fetch_wait.FETCH_MAX_WAIT_MS)
