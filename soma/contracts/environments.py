"""Per-environment topic overrides: the `environments:` section of topics.yaml, selected by `SOMA_ENV`.

    environments:
      cluster3:
        defaults: {replication_factor: 3, min_insync_replicas: 2}   # every topic, and Faust's internal ones
        topics:
          chat.messages: {partitions: 6}                             # one topic (wins over defaults)

A topic's effective value is: the environment's entry for the topic, else the environment's
defaults, else the topic's own value in `topics:` (`min_insync_replicas` unset there: the
broker's default). Errors name the file line, the environment, the topic and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from soma.errors import CatalogError

OVERRIDABLE = ("replication_factor", "min_insync_replicas", "partitions")
ENV_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Overrides:
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    partitions: int | None = None

    def over(self, base: Overrides) -> Overrides:
        """These values where set, else `base`'s."""
        return Overrides(*(getattr(self, f) if getattr(self, f) is not None else getattr(base, f) for f in OVERRIDABLE))


@dataclass(frozen=True)
class Environment:
    name: str
    defaults: Overrides
    topics: Mapping[str, Overrides]
    line: int

    def for_topic(self, topic: str) -> Overrides:
        return self.topics.get(topic, Overrides()).over(self.defaults)


def _lines(document: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """The line of every mapping key under `environments:`, by its path (env, section, topic, field)."""
    found: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, str(key.value))
                found[here] = key.start_mark.line + 1
                walk(value, here)

    if isinstance(document, yaml.MappingNode):
        for key, value in document.value:
            if getattr(key, "value", None) == "environments":
                found[()] = key.start_mark.line + 1
                walk(value, ())
    return found


def _overrides(raw: Any, path: tuple[str, ...], fail: Any) -> Overrides:
    if not isinstance(raw, dict):
        raise fail(path, "must be a mapping of " + ", ".join(OVERRIDABLE))
    unknown = sorted(set(map(str, raw)) - set(OVERRIDABLE))
    if unknown:
        raise fail((*path, unknown[0]), f"unknown field {unknown[0]!r} (known: {', '.join(OVERRIDABLE)})")
    for name, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail((*path, name), f"{name} must be a positive integer")
    found = Overrides(**raw)
    if found.min_insync_replicas and found.replication_factor and found.min_insync_replicas > found.replication_factor:
        raise fail((*path, "min_insync_replicas"), f"min_insync_replicas {found.min_insync_replicas} is more than "
                   f"replication_factor {found.replication_factor}: no write with acks=all could succeed")
    return found


def parse_environments(
    raw: Any, document: yaml.Node | None, file: str, topics: Mapping[str, Any]
) -> dict[str, Environment]:
    """The validated `environments:` section (absent: none). `topics`: the catalog's topics by name."""
    if raw is None:
        return {}
    lines = _lines(document)

    def fail(path: tuple[str, ...], problem: str) -> CatalogError:
        line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), 1)
        where = f"environment {path[0]!r}" if path else "environments"
        topic = f": topic {path[2]!r}" if len(path) > 2 and path[1] == "topics" else ""
        return CatalogError(f"{file}:{line}: {where}{topic}: {problem}")

    if not isinstance(raw, dict) or not raw:
        raise fail((), "must map environment names to their overrides")
    found = {}
    for name, body in raw.items():
        name = str(name)
        if not set(name) <= ENV_NAME_CHARS:
            raise fail((name,), "an environment name is lower case letters, digits, '-' and '_'")
        if not isinstance(body, dict):
            raise fail((name,), "must be a mapping with `defaults` and/or `topics`")
        unknown = sorted(set(map(str, body)) - {"defaults", "topics"})
        if unknown:
            raise fail((name, unknown[0]), f"unknown section {unknown[0]!r} (known: defaults, topics)")
        defaults = _overrides(body.get("defaults") or {}, (name, "defaults"), fail)
        per_topic = body.get("topics") or {}
        if not isinstance(per_topic, dict):
            raise fail((name, "topics"), "must map topic names to their overrides")
        overrides = {}
        for topic, values in per_topic.items():
            topic = str(topic)
            if topic not in topics:
                raise fail((name, "topics", topic), "not a topic of the catalog")
            overrides[topic] = _overrides(values, (name, "topics", topic), fail)
        env = Environment(name, defaults, overrides, lines.get((name,), 1))
        for topic, spec in topics.items():  # the merged values must hold too (e.g. defaults' min ISR vs a topic's RF)
            merged = env.for_topic(topic).over(Overrides(spec.replication_factor, spec.min_insync_replicas))
            if merged.min_insync_replicas and merged.replication_factor and \
                    merged.min_insync_replicas > merged.replication_factor:
                raise fail((name, "topics", topic), f"min_insync_replicas {merged.min_insync_replicas} is more "
                           f"than replication_factor {merged.replication_factor}")
        found[name] = env
    return found


def apply(spec: Any, env: Environment) -> Any:
    """`spec` (a TopicSpec) with `env`'s overrides for it."""
    values = env.for_topic(spec.name)
    changes = {field: getattr(values, field) for field in OVERRIDABLE if getattr(values, field) is not None}
    return replace(spec, **changes) if changes else spec
