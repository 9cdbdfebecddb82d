"""Mutual TLS for real: a private KRaft broker that requires a client certificate (a PKI made here with
`openssl`), and every kind of client the platform builds from one set of SOMA_KAFKA_* settings
connecting through it: librdkafka's admin client, producer (`EventProducer`) and consumer, Faust's
producer and consumer (a `StreamApp`'s, from `faust_credentials`) and aiokafka (`aiokafka_reader`,
the config mirror's). Without the client certificate, with one from another CA, or trusting another
CA, the broker and the clients refuse each other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError as AIOKafkaError
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from soma.clients import aiokafka_reader, aiokafka_security, kafka_admin
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventProducer
from soma.contracts.partition import partition_for
from soma.contracts.samples import sample
from soma.ops.supervisor.spec import stream_topology
from soma.settings import Settings
from streams.app import StreamApp
from streams.logic.output import Output
from tests.support.outbox_relay import consume_all
from tests.support.tls import Pki, make_pki
from tests.support.tls_broker import tls_broker

TOPIC = "chat.messages"
PARTITIONS = 3
REFUSAL_TIMEOUT_S = 4.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(settings: Settings, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at the private TLS broker with the client certificate; the topic created there."""
    with tls_broker(settings, pki, tmp_path_factory.mktemp("tls-broker")) as secured:
        admin = kafka_admin(secured)  # the admin client, through mutual TLS
        for future in admin.create_topics([NewTopic(secured.topic_name(TOPIC), PARTITIONS, 1)]).values():
            future.result(timeout=30)
        yield secured


def test_librdkafka_producer_consumer_and_admin_over_mutual_tls(secured: Settings) -> None:
    catalog = load_catalog()
    producer = EventProducer(secured, catalog, Codec(catalog, secured))
    sent = [producer.send(TOPIC, {**sample(TOPIC, tenant="acme", n=n), "session_id": f"tls-ü-{n}"}, tenant="acme")
            for n in range(6)]
    records = {record.key: record for record in consume_all(secured, TOPIC) if record.key.startswith("acme:tls-ü-")}
    assert sorted(records) == sorted(delivered.key for delivered in sent)
    for key, record in records.items():
        assert record.partition == partition_for(key.encode(), PARTITIONS)
    assert secured.topic_name(TOPIC) in kafka_admin(secured).list_topics(timeout=10).topics


def test_faust_producer_and_consumer_and_aiokafka_over_mutual_tls(secured: Settings) -> None:
    async def run() -> None:
        # broker_credentials = faust_credentials(settings)
        stream = StreamApp("worker", stream_topology("worker").sources, secured)
        await stream.app.producer.start()
        try:
            outputs = [Output(TOPIC, {**sample(TOPIC, tenant="globex", n=n), "session_id": f"faust-{n}"}, "globex")
                       for n in range(4)]
            await stream.acknowledged(await stream.send(outputs), "test outputs")
        finally:
            await stream.app.producer.stop()
        wanted = {f"globex:faust-{n}".encode() for n in range(4)}
        # Faust's own consumer (what a stream worker reads its sources with), then the config mirror's reader.
        faust_consumer = stream.app.consumer._thread._create_worker_consumer(stream.app.transport)
        for consumer in (faust_consumer, aiokafka_reader(secured, "tls-test")):
            await consumer.start()
            try:
                partitions = [TopicPartition(secured.topic_name(TOPIC), p) for p in range(PARTITIONS)]
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                seen: dict[bytes, int] = {}
                deadline = time.monotonic() + 60
                while not wanted <= set(seen) and time.monotonic() < deadline:
                    for batch in (await consumer.getmany(timeout_ms=1000)).values():
                        seen.update({record.key: record.partition for record in batch if record.key in wanted})
                assert set(seen) == wanted
                assert all(partition == partition_for(key, PARTITIONS) for key, partition in seen.items())
            finally:
                await consumer.stop()

    asyncio.run(run())


def _librdkafka_refused(settings: Settings) -> bool:
    try:
        kafka_admin(settings).list_topics(timeout=REFUSAL_TIMEOUT_S)
    except KafkaException:
        return True
    return False


async def _aiokafka_refused(settings: Settings) -> bool:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap,
                                request_timeout_ms=int(REFUSAL_TIMEOUT_S * 1000), **aiokafka_security(settings))
    try:
        await asyncio.wait_for(producer.start(), timeout=REFUSAL_TIMEOUT_S * 3)
    except (AIOKafkaError, OSError, TimeoutError):
        return True
    finally:
        await producer.stop()
    return False


def test_refused_without_the_client_certificate_or_with_a_stranger(secured: Settings, pki: Pki) -> None:
    no_certificate = secured.replace(kafka_ssl_cert_file=None, kafka_ssl_key_file=None)
    assert _librdkafka_refused(no_certificate)
    assert asyncio.run(_aiokafka_refused(no_certificate))
    stranger = secured.replace(kafka_ssl_cert_file=str(pki.stranger_cert), kafka_ssl_key_file=str(pki.stranger_key))
    assert _librdkafka_refused(stranger)
    # ...and the clients refuse a broker their CA did not sign.
    other_ca = secured.replace(kafka_ssl_ca_file=str(Path(pki.folder) / "other-ca.pem"))
    assert asyncio.run(_aiokafka_refused(other_ca))
    assert not _librdkafka_refused(secured)  # the same broker, with the certificate: in
