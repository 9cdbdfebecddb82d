"""The one output type of every stream: what the decision logic returns and the runtime sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Output:
    topic: str  # catalog name
    event: Mapping[str, Any]  # without tenant_id (the envelope adds it) but with its deterministic event_id
    tenant: str | None = None  # None: the tenant of the input that caused it
