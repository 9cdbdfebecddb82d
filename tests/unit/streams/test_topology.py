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


def test_sources_with_different_partition_counts_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The integrator owns a tenant's sleep where it computes its frames: Faust assigns the same partition of
    co-partitioned sources to one worker only when their partition counts agree (SOMA_ENV may change them)."""
    from dataclasses import replace

    import streams.app as app_module

    catalog = load_catalog()

    class Skewed:
        def topic(self, name: str) -> object:
            spec = catalog.topic(name)
            return replace(spec, partitions=6) if name == "cog.sleep_requests" else spec

    monkeypatch.setattr(app_module, "catalog_for", lambda settings: Skewed())
    with pytest.raises(SpecError, match=r"^stream integrator: its sources are co-partitioned .* "
                                        r"cog.predictor_updates: 3, cog.sleep_requests: 6 partitions"):
        StreamApp("integrator", ["cog.predictor_updates", "cog.sleep_requests"])
