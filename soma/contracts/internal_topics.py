"""The topics Faust makes for itself, named as faust-streaming names them, so `soma topics ensure` owns them too.

- a table's changelog: `<app id>-<table>-changelog`, compacted, as many partitions as the stream's
  first source (Faust refuses to start when they differ);
- the leader assignor's topic: `<app id>-__assignor-__leader`, one partition;
- a `group_by`'s repartition topic: `<source>-<name>-repartition` (no stream uses one today; any on
  the broker under the prefix is checked for its replication factor).

The app id is `<topic prefix>soma-<stream>` (streams/app.py). Replication factor and
min.insync.replicas: the environment's defaults (`SOMA_ENV`), else the first source's.
"""

from __future__ import annotations

from dataclasses import replace

from soma.contracts.catalog import Catalog, TopicSpec
from soma.ops.supervisor.spec import STREAMS
from soma.settings import Settings

REPARTITION_SUFFIX = "-repartition"


def app_id(settings: Settings, stream: str) -> str:
    return f"{settings.kafka.topic_prefix}soma-{stream}"


def changelog_topic(settings: Settings, stream: str, table: str) -> str:
    return f"{app_id(settings, stream)}-{table}-changelog"


def leader_topic(settings: Settings, stream: str) -> str:
    return f"{app_id(settings, stream)}-__assignor-__leader"


def replication(catalog: Catalog, source: TopicSpec) -> tuple[int, int | None]:
    """(replication factor, min.insync.replicas) of a stream's internal topics."""
    if catalog.env is not None:
        defaults = catalog.environments[catalog.env].defaults
        return (defaults.replication_factor or source.replication_factor,
                defaults.min_insync_replicas or source.min_insync_replicas)
    return source.replication_factor, source.min_insync_replicas


def internal_specs(settings: Settings, catalog: Catalog) -> dict[str, TopicSpec]:
    """Every stream's changelog and leader topics by physical name, as specs of the catalog's shape."""
    specs: dict[str, TopicSpec] = {}
    for stream in STREAMS:
        source = catalog.topic(stream.sources[0])
        replicas, min_isr = replication(catalog, source)
        base = replace(source, description=f"Faust internal topic of streams.{stream.name}",
                       replication_factor=replicas, min_insync_replicas=min_isr,
                       producers=(f"streams.{stream.name}",), consumers=(f"streams.{stream.name}",))
        for table in stream.tables:
            name = changelog_topic(settings, stream.name, table)
            specs[name] = replace(base, name=name, cleanup_policy="compact", retention_ms=None)
        name = leader_topic(settings, stream.name)
        specs[name] = replace(base, name=name, partitions=1, cleanup_policy="delete", retention_ms=None)
    return specs
