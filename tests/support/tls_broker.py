"""A private single KRaft broker whose only client listener is TLS with client authentication required.

It runs from the local stack's broker jars (`soma.ops.stack.kafka.LocalKafka`'s Maven download) with
its own folder, ports, data and cluster id, as a bounded child in its own process group (SIGTERM,
a grace, then SIGKILL: `soma.ops.processes.background`). The shared stack is never touched.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import KafkaException

from soma.clients import kafka_admin
from soma.ops.processes import background, run_bounded, wait_for
from soma.ops.stack.kafka import MAIN_CLASS, LocalKafka
from soma.settings import Settings
from tests.support.tls import STORE_PASSWORD, Pki

HOST = "127.0.0.1"
QUIET_LOG4J = "log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n" \
              "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n" \
              "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _properties(folder: Path, pki: Pki, port: int, controller: int) -> Path:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller}",
        "listeners": f"SSL://{HOST}:{port},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"SSL://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SSL",
        "listener.security.protocol.map": "SSL:SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(pki.server_keystore),
        "ssl.keystore.password": STORE_PASSWORD,
        "ssl.key.password": STORE_PASSWORD,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca),
        "ssl.client.auth": "required",
        "log.dirs": str(folder / "data"),
        "offsets.topic.replication.factor": "1",  # one broker (consumers with a group.id look for it)
    }
    config = folder / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return config


def _java(kafka: LocalKafka, folder: Path, main: str, *args: str) -> list[str]:
    return ["java", "-Xmx384m", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{folder / 'log4j.properties'}", "-cp", f"{kafka.libs}/*", main, *args]


def _ready(settings: Settings) -> bool:
    admin = kafka_admin(settings)
    try:
        admin.list_topics(timeout=2)
    except KafkaException:
        return False
    return True


@contextmanager
def tls_broker(base: Settings, pki: Pki, folder: Path, timeout_s: float = 120.0) -> Iterator[Settings]:
    """Start the broker; yield `base` pointed at it over mutual TLS (the client certificate of `pki`)."""
    kafka = LocalKafka(base)
    kafka.fetch()  # a no-op once the stack has its jars
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log4j.properties").write_text(QUIET_LOG4J)
    port, controller = free_port(), free_port()
    config = _properties(folder, pki, port, controller)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    formatted = run_bounded(_java(kafka, folder, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                  "-c", str(config)), timeout_s=120)
    if formatted.returncode != 0:
        raise RuntimeError(f"formatting the TLS broker failed: {formatted.stderr.strip()[-500:]}")
    settings = base.replace(
        kafka_bootstrap=f"{HOST}:{port}", kafka_security_protocol="SSL", kafka_ssl_ca_file=str(pki.ca),
        kafka_ssl_cert_file=str(pki.client_cert), kafka_ssl_key_file=str(pki.client_key),
    )
    log_file = folder / "broker.log"
    with background(_java(kafka, folder, MAIN_CLASS, str(config)), log_file, dict(os.environ),
                    max_lifetime_s=timeout_s + 300, grace_s=15.0) as proc:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the TLS broker exited: {log_file.read_text(errors='replace')[-1500:]}")
            return _ready(settings)

        wait_for(up, timeout_s, interval_s=0.5, what=f"TLS broker on {HOST}:{port}")
        yield settings
