"""A service's own catalog directory for tests: a copy of a packaged catalog plus a topic of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

SERVICE_TOPIC = "orders.placed"
_ENTRY = f"""
  - name: {SERVICE_TOPIC}
    description: A service's own topic, in its own catalog directory.
    key: "{{tenant_id}}:{{session_id}}"
    value_schema: soma.events.ChatMessage
    partitions: 1
    replication_factor: 1
    cleanup_policy: delete
    retention_ms: null
    producers: [orders service]
    consumers: [billing]
"""


def service_catalog(packaged: Path, target: Path) -> Path:
    """`target`: `packaged` (topics.yaml + schemas/) copied, with `SERVICE_TOPIC` added to its topics."""
    shutil.copytree(packaged, target, ignore=shutil.ignore_patterns("__pycache__"))
    with (target / "topics.yaml").open("a") as catalog:
        catalog.write(_ENTRY)
    return target
