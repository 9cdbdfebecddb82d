"""Apache Kafka in KRaft mode, run from Maven Central jars: one broker, or one node of a local cluster.

`kafka-pom.xml` (beside this file) pins the version; Maven resolves `kafka_2.13` and its
runtime dependencies into the state folder, the storage is formatted once with a cluster
id kept there, and each broker runs as a plain `java` child recorded in a pid file.
A node of an N-broker cluster (`soma.ops.stack.cluster`) is a combined broker+controller:
node id i, the i-th `SOMA_KAFKA_BOOTSTRAP` address, controller port `SOMA_STACK_KAFKA_CONTROLLER_PORT`
+ i - 1, its own data dir, pid file and log; the N controllers form the KRaft quorum.
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
    def __init__(self, settings: Settings, node: int = 1, nodes: int = 1) -> None:
        """Node `node` (1-based) of `nodes`; the single broker (1 of 1) keeps the historic file names."""
        self.settings = settings
        self.node, self.nodes = node, nodes
        self.home = settings.stack.state_dir.resolve() / "kafka"
        self.version = kafka_version()
        self.libs = self.home / f"libs-{self.version}"
        suffix = "" if nodes == 1 else f"-{node}"
        self.data = self.home / f"data{suffix}"
        self._log = self.home / f"kafka{suffix}.log"
        self._config = self.home / f"server{suffix}.properties"
        # A node's own config file is in its command line: a signal never reaches another node's pid.
        self.daemon = Daemon(f"kafka{suffix}", self.home / f"kafka{suffix}.pid",
                             MAIN_CLASS if nodes == 1 else str(self._config))
        host, port = settings.kafka_servers[node - 1]
        self.host, self.port = host, port
        self.controller_port = settings.stack.kafka_controller_port + node - 1

    @property
    def log_file(self) -> Path:
        return self.home / self._log.name

    @property
    def heap(self) -> str:
        return self.settings.stack.kafka_heap if self.nodes == 1 else self.settings.stack.kafka_cluster_heap

    def voters(self) -> str:
        """controller.quorum.voters: every node's id at its controller port."""
        base = self.settings.stack.kafka_controller_port
        return ",".join(
            f"{n}@{self.settings.kafka_servers[n - 1][0]}:{base + n - 1}" for n in range(1, self.nodes + 1)
        )

    def fetch(self) -> bool:
        """Resolve the jars with Maven unless already there; True when it downloaded."""
        cache = self.settings.stack.state_dir.resolve() / "cache" / "m2"
        goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
        return maven_fetch(POM, goal, self.libs, cache, f"kafka:kafka_2.13:{self.version}")

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        controller = self.controller_port
        # Internal topics as safe as the cluster allows: all replicas, acks=all needs two of them.
        replicas, min_isr = str(min(3, self.nodes)), str(min(2, self.nodes))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": self.voters(),
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            # Tests create and join many short-lived groups: do not wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
        }
        if self.nodes > 1:  # loopback: fence a dead node in ~3 s (default 9 s), so its partitions move on sooner
            props |= {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"}
        config = self._config
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j.properties").write_text(LOG4J)
        return config

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC",
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
