"""A single-broker Apache Kafka in KRaft mode, run from Maven Central jars.

`kafka-pom.xml` (beside this file) pins the version; Maven resolves `kafka_2.13` and its
runtime dependencies into the state folder, the storage is formatted once with a cluster
id kept there, and the broker runs as a plain `java` child recorded in a pid file.
"""

from __future__ import annotations

from pathlib import Path

from soma.errors import StackError
from soma.ops.processes import Daemon, run_bounded
from soma.ops.stack.maven import maven_fetch, pom_property
from soma.ops.stack.system import is_loopback
from soma.settings import Settings, env_name

POM = "kafka-pom.xml"
MAIN_CLASS = "kafka.Kafka"

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.controller=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.state.change.logger=WARN
"""


def kafka_version() -> str:
    """The broker version pinned in `kafka-pom.xml`."""
    return pom_property(POM, "kafka.version")


class LocalKafka:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.stack.state_dir.resolve() / "kafka"
        self.version = kafka_version()
        self.libs = self.home / f"libs-{self.version}"
        self.data = self.home / "data"
        self.daemon = Daemon("kafka", self.home / "kafka.pid", MAIN_CLASS)
        host, port = settings.kafka_servers[0]
        self.host, self.port = host, port

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def fetch(self) -> bool:
        """Resolve the jars with Maven unless already there; True when it downloaded."""
        cache = self.settings.stack.state_dir.resolve() / "cache" / "m2"
        goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
        return maven_fetch(POM, goal, self.libs, cache, f"kafka:kafka_2.13:{self.version}")

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        controller = self.settings.stack.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{controller}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # Tests create and join many short-lived groups: do not wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
        }
        config = self.home / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j.properties").write_text(LOG4J)
        return config

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.settings.stack.kafka_heap}", "-Xms128m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp", f"{self.libs}/*", main, *args,
        ]

    def _format(self, config: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists():
            made = run_bounded(self._java("kafka.tools.StorageTool", "random-uuid"), timeout_s=60)
            cluster_id = made.stdout.strip().splitlines()[-1] if made.returncode == 0 else ""
            if not cluster_id:
                raise StackError(f"kafka: could not make a cluster id: {made.stderr.strip()[-300:]}")
            cluster_id_file.write_text(cluster_id + "\n")
        cluster_id = cluster_id_file.read_text().strip()
        result = run_bounded(
            self._java("kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", cluster_id, "-c", str(config)),
            timeout_s=120,
        )
        if result.returncode != 0:
            raise StackError(f"kafka: formatting {self.data} failed: {result.stderr.strip()[-300:]}")

    def start(self) -> int:
        """Provision and start the broker (returns at once; the caller waits for health)."""
        pid = self.daemon.pid()
        if pid is not None:
            return pid
        if not is_loopback(self.host):
            raise StackError(f"kafka: {env_name('kafka_bootstrap')} points at {self.host}, not this machine")
        self.fetch()
        config = self._write_config()
        self._format(config)
        return self.daemon.start(self._java(MAIN_CLASS, str(config)), self.log_file)

    def exited_early(self) -> str | None:
        """When the broker we started has died, the last lines of its log."""
        if self.daemon.pid_file.exists() and self.daemon.pid() is None and self.log_file.exists():
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-3:])
        return None
