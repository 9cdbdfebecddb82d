"""Deterministic output ids and the window of applied input ids."""

from __future__ import annotations

from soma.contracts.ids import derive_id
from streams.logic.ids import remember


def test_derived_ids_are_deterministic_and_distinct_per_slot() -> None:
    assert derive_id("e1", "memory") == derive_id("e1", "memory")
    assert derive_id("e1", "memory") != derive_id("e1", "reply")
    assert derive_id("e1", "memory") != derive_id("e2", "memory")


def test_remember_keeps_a_window() -> None:
    assert remember(["a", "b"], "c", 2) == ["b", "c"]
