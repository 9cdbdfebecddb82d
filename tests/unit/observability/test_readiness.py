"""A process's /readyz: which dependency is unreachable, cached checks."""

from __future__ import annotations

import pytest

from soma.observability.readiness import Readiness
from soma.settings import load_settings


def test_readiness_names_the_unreachable_dependency_and_its_setting() -> None:
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", health_check_timeout_s=0.5)
    report = Readiness(settings, "x", ("kafka", "opa")).report()
    assert report["ready"] is False
    assert set(report["checks"]) == {"kafka"}  # OPA is only checked when SOMA_OPA_URL is set
    assert "SOMA_KAFKA_BOOTSTRAP" in report["checks"]["kafka"]["detail"]


def test_readiness_caches_and_survives_a_failing_check() -> None:
    calls: list[int] = []

    def counted() -> tuple[bool, str]:
        calls.append(1)
        return True, "fine"

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom\nsecond line")

    readiness = Readiness(load_settings(health_cache_s=60), "x", (), extra={"own": counted, "bad": broken})
    first = readiness.report()
    assert readiness.report() is first
    assert len(calls) == 1
    assert first["checks"]["bad"] == {"ok": False, "detail": "RuntimeError: boom"}
    assert first["ready"] is False
    with pytest.raises(ValueError, match="unknown readiness checks"):
        Readiness(load_settings(), "x", ("kafak",))
