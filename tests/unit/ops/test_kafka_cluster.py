"""The local Kafka's nodes: one broker as before, or N KRaft broker+controller nodes with their own files and ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma.errors import SettingsError, StackError
from soma.ops.stack.cluster import LocalCluster, managed_pids, stop_all
from soma.ops.stack.kafka import LocalKafka
from soma.settings import Settings, load_settings

BOOTSTRAP3 = "127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194"


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return load_settings(_env_file=None, state_dir=tmp_path, **extra)


def test_a_single_broker_keeps_its_files_and_config(tmp_path: Path) -> None:
    (node,) = LocalCluster(_settings(tmp_path)).nodes
    assert (node.daemon.pid_file.name, node.log_file.name, node.data.name) == ("kafka.pid", "kafka.log", "data")
    assert node.daemon.marker == "kafka.Kafka"
    props = _props(node._write_config())
    assert node._config.name == "server.properties"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert "broker.session.timeout.ms" not in props
    assert "-Xmx768m" in node._java("kafka.Kafka")


def test_three_nodes_have_their_own_ports_files_and_one_quorum(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_bootstrap=BOOTSTRAP3, stack_kafka_brokers=3,
                         stack_kafka_controller_port=19292)
    nodes = LocalCluster(settings).nodes
    assert [n.node for n in nodes] == [1, 2, 3]
    second = nodes[1]
    assert (second.host, second.port, second.controller_port) == ("127.0.0.1", 19193, 19293)
    assert (second.daemon.pid_file.name, second.log_file.name, second.data.name) == ("kafka-2.pid", "kafka-2.log",
                                                                                        "data-2")
    assert second.daemon.marker.endswith("server-2.properties")  # a signal never reaches another node's pid
    props = _props(second._write_config())
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19292,2@127.0.0.1:19293,3@127.0.0.1:19294"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19193,CONTROLLER://127.0.0.1:19293"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19193"
    assert props["log.dirs"] == str(tmp_path.resolve() / "kafka" / "data-2")
    assert (props["offsets.topic.replication.factor"], props["transaction.state.log.min.isr"]) == ("3", "2")
    assert props["broker.session.timeout.ms"] == "3000"
    assert "-Xmx512m" in second._java("kafka.Kafka")
    assert {n._config for n in nodes} == {tmp_path.resolve() / "kafka" / f"server-{i}.properties" for i in (1, 2, 3)}


def test_a_bootstrap_list_of_another_length_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StackError) as caught:
        LocalCluster(_settings(tmp_path, stack_kafka_brokers=3))
    assert str(caught.value) == (
        "kafka: SOMA_STACK_KAFKA_BROKERS=3 needs 3 host:port in SOMA_KAFKA_BOOTSTRAP (one per broker, e.g. "
        "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094); it lists 1")


def test_a_port_used_twice_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_bootstrap=BOOTSTRAP3, stack_kafka_brokers=3,
                         stack_kafka_controller_port=19194)
    expected = r"^kafka: broker 3 client port 19194 is also broker 1 controller port 19194: choose"
    with pytest.raises(StackError, match=expected):
        LocalCluster(settings)


def test_the_broker_count_is_bounded_and_named(tmp_path: Path) -> None:
    for bad in (0, 6):
        with pytest.raises(SettingsError, match=r"^invalid setting SOMA_STACK_KAFKA_BROKERS: "):
            _settings(tmp_path, stack_kafka_brokers=bad)


def test_nothing_recorded_nothing_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert managed_pids(settings) == {}
    assert stop_all(settings) == []
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "kafka-2.pid").write_text("999999999\n")  # stale: no such process
    assert managed_pids(settings) == {}
    assert not (tmp_path / "kafka" / "kafka-2.pid").exists()


def test_node_defaults_match_the_single_broker(tmp_path: Path) -> None:
    assert LocalKafka(_settings(tmp_path)).daemon.pid_file.name == "kafka.pid"
