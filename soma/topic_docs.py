"""Renders the topic catalog as Markdown (`soma topics docs` writes docs/topics.md)."""

from __future__ import annotations

from soma.catalog import Catalog, TopicSpec

HEADER = """\
# Topics

Generated from `topics.yaml` by `soma topics docs`; do not edit by hand (a test fails when
this file is stale). Physical names carry `SOMA_TOPIC_PREFIX` in front, empty by default.
Replication factor 1 fits the single-broker development stack; production overrides it.

| topic | value | key | partitions | cleanup | retention |
|---|---|---|---|---|---|
"""


def _retention(spec: TopicSpec) -> str:
    if spec.retention_ms is None:
        return "forever"
    seconds = spec.retention_ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{spec.retention_ms} ms"


def _section(spec: TopicSpec) -> str:
    lines = [
        f"## `{spec.name}`",
        "",
        spec.description.strip(),
        "",
        f"- **Value**: `{spec.value_schema}`",
        f"- **Key**: `{spec.key}`" + (f": {spec.key_description.strip()}" if spec.key_description else ""),
        f"- **Partitions**: {spec.partitions}; **replication factor**: {spec.replication_factor}",
        f"- **Cleanup policy**: {spec.cleanup_policy}; **retention**: {_retention(spec)}",
        f"- **Producers**: {', '.join(spec.producers) or '-'}",
        f"- **Consumers**: {', '.join(spec.consumers) or '-'}",
        "",
    ]
    return "\n".join(lines)


def render_markdown(catalog: Catalog) -> str:
    specs = sorted(catalog.topics.values(), key=lambda spec: spec.name)
    rows = "".join(
        f"| [`{s.name}`](#{s.name.replace('.', '').replace('_', '_')}) | `{s.value_schema}` | `{s.key}` "
        f"| {s.partitions} | {s.cleanup_policy} | {_retention(s)} |\n"
        for s in specs
    )
    return HEADER + rows + "\n" + "\n".join(_section(spec) for spec in specs)
