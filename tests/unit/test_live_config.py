"""Live config validation: type, version, checksum, scope, reset."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from soma.live_config import LiveConfig, checksum, field_for, parse_text
from soma.settings import Settings


def update(name: str, value: Any, version: int, tenant: str | None = None, check: str | None = None) -> dict:
    return {"name": name, "value": value, "version": version, "scope_tenant": tenant,
            "checksum": checksum(value) if check is None else check}


def test_checksum_is_sha256_of_canonical_json() -> None:
    assert checksum(0.5) == hashlib.sha256(b"0.5").hexdigest()
    assert checksum(True) == hashlib.sha256(b"true").hexdigest()
    assert checksum(None) == hashlib.sha256(b"null").hexdigest()


def test_valid_update_applies_and_tenant_scope_overrides() -> None:
    live = LiveConfig(Settings().streams.live)
    assert live.apply(update("INTEGRATOR_TEMPERATURE", 0.25, 1)).accepted
    assert live.get("integrator_temperature") == 0.25
    assert live.apply(update("INTEGRATOR_TEMPERATURE", 2.0, 1, tenant="t1")).accepted
    assert live.get("integrator_temperature", "t1") == 2.0
    assert live.get("integrator_temperature", "t2") == 0.25


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("INTEGRATOR_TEMPERATURE", "hot", "valid number"),
        ("INTEGRATOR_TEMPERATURE", -1.0, "greater than 0"),
        ("ENABLE_COG_THREADS", 1, "valid boolean"),
        ("SEGMENTER_MODE", "fancy", "threshold"),
        ("KAFKA_BOOTSTRAP", "x:1", "not a live setting"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(name: str, value: Any, reason: str) -> None:
    decision = LiveConfig(Settings().streams.live).apply(update(name, value, 1))
    assert not decision.accepted
    assert reason in decision.reason


def test_old_version_and_bad_checksum_are_rejected() -> None:
    live = LiveConfig(Settings().streams.live)
    assert live.apply(update("INTEGRATOR_ALPHA", 0.3, 5)).accepted
    stale = live.apply(update("INTEGRATOR_ALPHA", 0.9, 5))
    assert not stale.accepted
    assert "not newer" in stale.reason
    bad = live.apply(update("INTEGRATOR_ALPHA", 0.9, 6, check="00"))
    assert not bad.accepted
    assert "checksum" in bad.reason
    assert live.get("integrator_alpha") == 0.3


def test_null_resets_to_the_default_and_ints_fit_floats() -> None:
    live = LiveConfig(Settings().streams.live)
    assert live.apply(update("INTEGRATOR_TEMPERATURE", 3, 1)).accepted
    assert live.get("integrator_temperature") == 3.0
    assert live.apply(update("INTEGRATOR_TEMPERATURE", None, 2)).accepted
    assert live.get("integrator_temperature") == Settings().streams.live.integrator_temperature


def test_parse_text() -> None:
    assert parse_text("enable_cog_threads", "true") is True
    assert parse_text("segmenter_dwell_frames", "4") == 4
    assert parse_text("integrator_temperature", "0.5") == 0.5
    with pytest.raises(ValueError, match="integer"):
        parse_text("segmenter_dwell_frames", "x")
    assert field_for("INTEGRATOR_ALPHA") == "integrator_alpha"
    assert field_for("DATABASE_URL") is None
