"""Renders the topic catalog as Markdown (`soma topics docs` writes docs/topics.md)."""

from __future__ import annotations

import json
from typing import Any

from soma.contracts.catalog import Catalog, TopicSpec
from soma.contracts.schemas import Schema

HEADER = """\
# Topics

Generated from `topics.yaml` by `soma topics docs`; do not edit by hand (a test fails when
this file is stale). Physical names carry `SOMA_TOPIC_PREFIX` in front, empty by default.
Replication factor 1 fits the single-broker development stack; an environment (`SOMA_ENV`,
see [Environments](#environments)) overrides it, and `soma topics ensure` applies that.
A key is a template over the value's fields; a `[bracketed]` part is left out when a field
in it is null (`[{scope_tenant}/]{name}` is `NAME` globally, `t1/NAME` for tenant t1).
Every producer puts a key on partition `murmur2(key) % partitions`, as Kafka's Java producer does
(see docs/architecture.md, "Partitioning").

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


def _type(schema: Any) -> str:
    if isinstance(schema, list):
        return " \\| ".join(_type(branch) for branch in schema)
    if isinstance(schema, dict):
        kind = schema.get("logicalType") or schema["type"]
        if kind == "array":
            return f"array<{_type(schema['items'])}>"
        if kind == "map":
            return f"map<{_type(schema['values'])}>"
        if kind == "enum":
            return f"enum {'/'.join(schema['symbols'])}"
        if kind == "record":
            return f"record {schema['name']}"
        return str(kind)
    return str(schema)


def _fields(schema: Schema) -> list[str]:
    rows = ["| field | type | meaning |", "|---|---|---|"]
    for field in schema.raw["fields"]:
        default = f" (default `{json.dumps(field['default'])}`)" if "default" in field else ""
        rows.append(f"| `{field['name']}` | {_type(field['type'])} | {field.get('doc', '')}{default} |")
    return rows


def _section(spec: TopicSpec, schema: Schema) -> str:
    lines = [
        f"## `{spec.name}`",
        "",
        spec.description.strip(),
        "",
        f"- **Value**: `{spec.value_schema}`",
        f"- **Key**: `{spec.key}`" + (f": {spec.key_description.strip()}" if spec.key_description else ""),
        f"- **Partitions**: {spec.partitions}; **replication factor**: {spec.replication_factor}"
        + (f"; **min.insync.replicas**: {spec.min_insync_replicas}" if spec.min_insync_replicas else ""),
        f"- **Cleanup policy**: {spec.cleanup_policy}; **retention**: {_retention(spec)}",
        f"- **Producers**: {', '.join(spec.producers) or '-'}",
        f"- **Consumers**: {', '.join(spec.consumers) or '-'}",
        "",
        *_fields(schema),
        "",
    ]
    return "\n".join(lines)


def _value(value: int | None) -> str:
    return "-" if value is None else str(value)


def _environments(catalog: Catalog) -> str:
    """The `environments:` overrides, one row per environment default and per topic entry."""
    if not catalog.environments:
        return ""
    rows = [
        "## Environments",
        "",
        "Overrides selected by `SOMA_ENV`: a topic's own entry wins over the environment's defaults, which win",
        "over the topic's values above (`-`: not overridden; a min.insync.replicas set nowhere is the broker's, 1).",
        "The defaults also set the replication of the streams' Faust changelog and leader topics.",
        "",
        "| environment | applies to | replication factor | min.insync.replicas | partitions |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(catalog.environments):
        env = catalog.environments[name]
        entries = [("defaults", env.defaults), *((f"`{t}`", o) for t, o in sorted(env.topics.items()))]
        for target, o in entries:
            rows.append(f"| `{name}` | {target} | {_value(o.replication_factor)} | "
                        f"{_value(o.min_insync_replicas)} | {_value(o.partitions)} |")
    return "\n".join(rows) + "\n"


def render_markdown(catalog: Catalog) -> str:
    specs = sorted(catalog.topics.values(), key=lambda spec: spec.name)
    rows = "".join(
        f"| [`{s.name}`](#{s.name.replace('.', '')}) | `{s.value_schema}` | `{s.key}` "
        f"| {s.partitions} | {s.cleanup_policy} | {_retention(s)} |\n"
        for s in specs
    )
    sections = "\n".join(_section(spec, catalog.schemas.get(spec.value_schema)) for spec in specs)
    environments = _environments(catalog)
    return HEADER + rows + "\n" + sections + ("\n" + environments if environments else "")
