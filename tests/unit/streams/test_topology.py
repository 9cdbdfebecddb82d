"""The stream topology in soma/ops/supervisor/spec.py matches the streams, and `soma topics ensure` names
their Faust topics exactly as faust-streaming does."""

from __future__ import annotations

import importlib

import pytest

from soma.contracts.catalog import load_catalog
from soma.contracts.internal_topics import changelog_topic, internal_specs, leader_topic
from soma.ops.supervisor.spec import STREAMS, SpecError
from streams.app import StreamApp


@pytest.mark.parametrize("name", [s.name for s in STREAMS])
def test_faust_names_the_internal_topics_as_ensure_does(name: str) -> None:
    module = importlib.import_module(f"streams.{name}")
    stream = module.stream
    assert stream.topology.name == name
    settings = stream.settings
    tables = {t.name: t for t in stream.app.tables.values()}
    assert set(tables) == set(stream.topology.tables)
    for table_name, table in tables.items():
        assert table.changelog_topic.get_topic_name() == changelog_topic(settings, name, table_name)
        assert table.partitions == load_catalog().topic(stream.topology.sources[0]).partitions
    assert stream.app._leader_assignor._leader_topic_name == leader_topic(settings, name)
    assert stream.app.conf.topic_replication_factor == internal_specs(settings, load_catalog())[
        leader_topic(settings, name)].replication_factor


def test_a_stream_whose_sources_differ_from_its_topology_refuses_to_start() -> None:
    with pytest.raises(SpecError, match=r"^stream tools: sources \['tool.results'\] differ from its topology's"):
        StreamApp("tools", ["tool.results"])


def test_an_undeclared_table_is_refused() -> None:
    import streams.tools as tools

    with pytest.raises(SpecError, match=r"^stream tools: table 'extra' is not declared in its topology"):
        tools.stream.table("extra")
