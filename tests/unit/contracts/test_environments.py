"""Per-environment topic overrides: resolution order, the streams' internal topics, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soma.contracts.catalog import CATALOG_FILE, catalog_for, load_catalog
from soma.contracts.internal_topics import changelog_topic, internal_specs, leader_topic
from soma.contracts.schemas import SCHEMA_DIR
from soma.contracts.topics import check_brokers, desired_config, wanted
from soma.errors import CatalogError
from soma.settings import Settings

ENVIRONMENTS = """\
environments:
  staging:
    defaults: {replication_factor: 2, min_insync_replicas: 2}
    topics:
      chat.messages: {partitions: 6, min_insync_replicas: 1}
      dlq: {replication_factor: 3}
  prod:
    topics:
      memory.writes: {replication_factor: 3, min_insync_replicas: 2}
"""


def _catalog(tmp_path: Path, environments: str = ENVIRONMENTS) -> Path:
    text = CATALOG_FILE.read_text()
    start = text.index("\nenvironments:")
    end = text.index("\ntopics:")
    path = tmp_path / "topics.yaml"
    path.write_text(text[:start] + "\n" + environments + text[end:])
    return path


def test_the_shipped_cluster3_environment_replicates_everything_three_times() -> None:
    catalog = load_catalog().for_env("cluster3")
    assert catalog.env == "cluster3"
    for name, spec in catalog.topics.items():
        base = load_catalog().topic(name)
        assert (spec.replication_factor, spec.min_insync_replicas) == (3, 2), name
        assert spec.partitions == base.partitions  # partitions are left as the topics say
    assert load_catalog().for_env(None) is load_catalog()  # no environment: the file's own values
    assert load_catalog().topic("chat.messages").replication_factor == 1


def test_topic_entry_beats_defaults_beats_the_topic(tmp_path: Path) -> None:
    base = load_catalog(_catalog(tmp_path), SCHEMA_DIR)
    staging = base.for_env("staging")
    chat = staging.topic("chat.messages")
    assert (chat.partitions, chat.replication_factor, chat.min_insync_replicas) == (6, 2, 1)
    dlq = staging.topic("dlq")
    assert (dlq.partitions, dlq.replication_factor, dlq.min_insync_replicas) == (1, 3, 2)
    tools = staging.topic("tool.requests")
    assert (tools.partitions, tools.replication_factor, tools.min_insync_replicas) == (3, 2, 2)
    prod = base.for_env("prod")
    assert prod.topic("memory.writes").replication_factor == 3
    assert prod.topic("chat.messages") == base.topic("chat.messages")  # no default: unchanged
    assert base.topic("chat.messages").partitions == 3  # the base catalog is not changed
    assert base.for_env("staging") is staging  # resolved once


def test_min_isr_goes_into_the_topic_config() -> None:
    spec = load_catalog().for_env("cluster3").topic("chat.messages")
    assert desired_config(spec)["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in desired_config(load_catalog().topic("chat.messages"))


def test_faust_changelog_and_leader_topics_follow_the_environment(tmp_path: Path) -> None:
    settings = Settings.construct_flat(topic_prefix="p.")
    staging = load_catalog(_catalog(tmp_path), SCHEMA_DIR).for_env("staging")
    specs = internal_specs(settings, staging)
    changelog = specs[changelog_topic(settings, "worker", "sessions")]
    assert changelog.name == "p.soma-worker-sessions-changelog"  # faust: <app id>-<table>-changelog
    # Co-partitioned with the worker's first source (its environment partitions), the environment's replication.
    assert (changelog.partitions, changelog.replication_factor, changelog.min_insync_replicas) == (6, 2, 2)
    assert desired_config(changelog, internal=True) == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    leader = specs[leader_topic(settings, "integrator")]
    assert leader.name == "p.soma-integrator-__assignor-__leader"
    assert (leader.partitions, leader.replication_factor) == (1, 2)
    assert {changelog_topic(settings, s, t) for s, t in
            (("worker", "sessions"), ("integrator", "tenants"), ("segmenter", "segmenter_tenants"))} <= set(specs)
    # Without an environment: the source topic's own replication (the single-broker default).
    plain = internal_specs(settings, load_catalog())[changelog_topic(settings, "worker", "sessions")]
    assert (plain.partitions, plain.replication_factor, plain.min_insync_replicas) == (3, 1, None)


def test_catalog_for_reads_soma_env() -> None:
    assert catalog_for(Settings.construct_flat(env="cluster3")).env == "cluster3"
    assert catalog_for(Settings.construct_flat()).env is None


def test_unknown_environment_is_one_line_naming_the_setting() -> None:
    with pytest.raises(CatalogError, match=re.escape("SOMA_ENV='prdo': no such environment in topics.yaml "
                                                     "(known: cluster3)")):
        load_catalog().for_env("prdo")


def test_replication_beyond_the_brokers_is_refused_naming_env_topic_and_field() -> None:
    settings = Settings.construct_flat(kafka_bootstrap="127.0.0.1:9092")
    catalog = load_catalog().for_env("cluster3")
    with pytest.raises(CatalogError) as caught:
        check_brokers(catalog, wanted(settings, catalog), 1, settings)
    message = str(caught.value)
    assert re.match(r"topics\.yaml: environment 'cluster3' \(SOMA_ENV\): topic '[a-z._]+': replication_factor 3 "
                    r"but the cluster at 127\.0\.0\.1:9092 has 1 broker\(s\)$", message), message
    check_brokers(catalog, wanted(settings, catalog), 3, settings)  # three brokers hold it


@pytest.mark.parametrize(
    ("environments", "message"),
    [
        ("environments:\n  x:\n    defaults: {replication_factor: 2, min_insync_replicas: 3}\n",
         "environment 'x': min_insync_replicas 3 is more than replication_factor 2"),
        ("environments:\n  x:\n    defaults: {min_insync_replicas: 2}\n",
         "environment 'x': topic 'chat.messages': min_insync_replicas 2 is more than replication_factor 1"),
        ("environments:\n  x:\n    topics:\n      chat.mesages: {partitions: 6}\n",
         "environment 'x': topic 'chat.mesages': not a topic of the catalog"),
        ("environments:\n  x:\n    topics:\n      chat.messages: {replicas: 3}\n",
         "environment 'x': topic 'chat.messages': unknown field 'replicas' (known: replication_factor, "
         "min_insync_replicas, partitions)"),
        ("environments:\n  x:\n    topics:\n      chat.messages: {partitions: 0}\n",
         "environment 'x': topic 'chat.messages': partitions must be a positive integer"),
        ("environments:\n  x:\n    defaults: {replication_factor: three}\n",
         "environment 'x': replication_factor must be a positive integer"),
        ("environments:\n  x:\n    default: {replication_factor: 3}\n",
         "environment 'x': unknown section 'default' (known: defaults, topics)"),
        ("environments:\n  Prod Env:\n    defaults: {replication_factor: 3}\n",
         "environment 'Prod Env': an environment name is lower case letters"),
        ("environments: [prod]\n", "environments: must map environment names to their overrides"),
    ],
)
def test_mistakes_name_line_environment_topic_and_field(tmp_path: Path, environments: str, message: str) -> None:
    path = _catalog(tmp_path, environments)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path, SCHEMA_DIR)
    text = str(caught.value)
    assert "\n" not in text
    assert re.match(r"^topics\.yaml:\d+: ", text), text
    assert message in text
