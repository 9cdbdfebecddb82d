"""The bounded window of input ids a stream has already applied (per key)."""

from __future__ import annotations

from collections.abc import Sequence


def remember(seen: Sequence[str], event_id: str, window: int) -> list[str]:
    """`seen` plus `event_id`, keeping only the last `window` ids."""
    updated = [*seen, event_id]
    return updated[-window:] if len(updated) > window else updated
