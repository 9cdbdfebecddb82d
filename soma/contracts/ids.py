"""Deterministic event ids: an output's id is derived from its input's, so a redelivery re-emits it."""

from __future__ import annotations

import uuid

# Fixed namespace: an output's id is uuid5(namespace, "<input event id>/<output slot>").
OUTPUT_NAMESPACE = uuid.UUID("5a0e4c1e-6b1d-4f39-9a0c-2f4f3c9a7d11")


def derive_id(input_event_id: str, slot: str) -> str:
    """The event id of output `slot` of the input: a redelivery re-emits the same id."""
    return str(uuid.uuid5(OUTPUT_NAMESPACE, f"{input_event_id}/{slot}"))
