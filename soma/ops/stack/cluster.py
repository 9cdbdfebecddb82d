"""The local Kafka: one broker (the default) or N KRaft nodes on loopback (`SOMA_STACK_KAFKA_BROKERS`).

Each node is a `LocalKafka` (its own data dir, ports, pid file and log); the N controllers form
the quorum, so the cluster keeps working with a minority of nodes down. `down` and `status` see
every node that has a pid file in the state dir, whatever the setting says now.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from confluent_kafka import KafkaException

from soma.clients import kafka_admin
from soma.errors import StackError
from soma.ops.processes import Daemon, terminate
from soma.ops.stack.kafka import LocalKafka
from soma.ops.stack.system import port_open
from soma.settings import Settings, env_name

_NODE_PID = re.compile(r"^kafka(?:-(\d+))?\.pid$")


class LocalCluster:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        count = settings.stack.kafka_brokers
        servers = settings.kafka_servers
        if count > 1 and len(servers) != count:
            example = ",".join(f"127.0.0.1:{19092 + n}" for n in range(count))
            raise StackError(
                f"kafka: {env_name('stack_kafka_brokers')}={count} needs {count} host:port in "
                f"{env_name('kafka_bootstrap')} (one per broker, e.g. {example}); it lists {len(servers)}"
            )
        self.nodes = [LocalKafka(settings, node, count) for node in range(1, count + 1)]
        self._check_ports()

    def _check_ports(self) -> None:
        used: dict[int, str] = {}
        for node in self.nodes:
            for port, role in ((node.port, "client"), (node.controller_port, "controller")):
                what = f"broker {node.node} {role} port {port}"
                if port in used:
                    raise StackError(
                        f"kafka: {what} is also {used[port]}: choose other ports in {env_name('kafka_bootstrap')}"
                        f" / {env_name('stack_kafka_controller_port')}"
                    )
                used[port] = what

    @property
    def first(self) -> LocalKafka:
        return self.nodes[0]

    def start(self) -> list[tuple[LocalKafka, int]]:
        """Start every node that does not answer yet; (node, pid) of those started."""
        started = []
        for node in self.nodes:
            if not port_open(node.host, node.port):
                started.append((node, node.start()))
        return started

    def exited_early(self) -> str | None:
        for node in self.nodes:
            died = node.exited_early()
            if died:
                return f"broker {node.node}: {died}" if len(self.nodes) > 1 else died
        return None

    def unregistered(self) -> list[str]:
        """Node ids the cluster's metadata does not list yet (a started node may not have joined)."""
        if len(self.nodes) == 1:
            return []
        try:
            brokers = kafka_admin(self.settings).list_topics(timeout=self.settings.kafka.timeout_s).brokers
        except KafkaException as exc:
            return [f"all ({exc.args[0]})"]
        return [str(node.node) for node in self.nodes if node.node not in brokers]

    def closed_ports(self) -> list[str]:
        return [f"{node.host}:{node.port}" for node in self.nodes if not port_open(node.host, node.port)]


def managed_pids(settings: Settings) -> dict[str, int]:
    """Every broker this state dir started and that still runs: pid file name -> pid."""
    home = settings.stack.state_dir.resolve() / "kafka"
    found = {}
    for daemon in _daemons(home):
        pid = daemon.pid()
        if pid is not None:
            found[daemon.name] = pid
    return found


def _daemons(home: Path) -> list[Daemon]:
    """The pid-file view of each node the state dir recorded (no settings needed to stop them)."""
    if not home.is_dir():
        return []
    daemons = []
    for path in sorted(home.iterdir()):
        match = _NODE_PID.match(path.name)
        if match:
            marker = "kafka.Kafka" if match.group(1) is None else str(home / f"server-{match.group(1)}.properties")
            daemons.append(Daemon(path.stem, path, marker))
    return daemons


def stop_all(settings: Settings, grace_s: float = 30.0) -> list[str]:
    """SIGTERM every broker this state dir started, all at once (a node alone would wait for a quorum
    its stopped peers no longer form), SIGKILL after `grace_s`; the names of those stopped."""
    home = settings.stack.state_dir.resolve() / "kafka"
    running = [(daemon, pid) for daemon in _daemons(home) if (pid := daemon.pid()) is not None]
    errors: list[str] = []

    def stop(daemon: Daemon, pid: int) -> None:
        try:
            terminate(pid, grace_s)
        except StackError as exc:
            errors.append(str(exc))
        daemon.pid_file.unlink(missing_ok=True)

    threads = [threading.Thread(target=stop, args=pair, daemon=True) for pair in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise StackError(f"kafka: {errors[0]}")
    return [daemon.name for daemon, _ in running]

