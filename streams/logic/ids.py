"""Deterministic output ids and the bounded window of seen input ids."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

# Fixed namespace: an output's id is uuid5(namespace, "<input event id>/<output slot>").
OUTPUT_NAMESPACE = uuid.UUID("5a0e4c1e-6b1d-4f39-9a0c-2f4f3c9a7d11")


def derive_id(input_event_id: str, slot: str) -> str:
    """The event id of output `slot` of the input: a redelivery re-emits the same id."""
    return str(uuid.uuid5(OUTPUT_NAMESPACE, f"{input_event_id}/{slot}"))


def remember(seen: Sequence[str], event_id: str, window: int) -> list[str]:
    """`seen` plus `event_id`, keeping only the last `window` ids."""
    updated = [*seen, event_id]
    return updated[-window:] if len(updated) > window else updated
