"""docker-compose.yaml stays valid and in step with the code (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from soma.stack.kafka import kafka_version

REPO = Path(__file__).resolve().parents[2]
INFRA = {"kafka", "postgres", "redis"}
NOT_STREAMS = {"__init__", "app", "errors"}


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_compose_has_the_infrastructure_with_health_checks() -> None:
    services = _compose()["services"]
    assert set(services) >= INFRA
    for name in INFRA:
        assert "healthcheck" in services[name], name
        assert all(str(port).startswith("127.0.0.1:") for port in services[name].get("ports", []))


def test_compose_kafka_is_the_version_the_stack_provisions() -> None:
    assert _compose()["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


def test_every_stream_module_has_a_compose_service() -> None:
    streams = {p.stem for p in (REPO / "streams").glob("*.py")} - NOT_STREAMS
    services = set(_compose()["services"])
    assert {f"stream-{name}" for name in streams} <= services
    # ...and no service names a stream that does not exist.
    assert {s.removeprefix("stream-") for s in services if s.startswith("stream-")} <= streams


def test_compose_runs_the_platform_processes_after_migrations() -> None:
    services = _compose()["services"]
    assert services["init"]["entrypoint"][-1] == "soma db upgrade head && soma topics ensure"
    assert services["relay"]["command"] == ["outbox", "relay"]
    assert services["admin"]["command"][:2] == ["admin", "serve"]
    for name in ("relay", "admin"):
        assert services[name]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
        assert "healthcheck" in services[name]
        assert services[name]["environment"]["SOMA_KAFKA_BOOTSTRAP"] == "kafka:19092"


def test_dockerfile_copies_what_the_package_reads_at_run_time() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for needed in ("topics.yaml", "schemas", "migrations", "alembic.ini", "constraints.txt"):
        assert needed in dockerfile, needed


def test_compose_services_only_depend_on_declared_healthy_services() -> None:
    services = _compose()["services"]
    for name, spec in services.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition.get("condition") in {"service_healthy", "service_completed_successfully"}
