"""docker-compose.yaml stays valid and in step with the code (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from soma.ops.stack.kafka import kafka_version
from soma.ops.supervisor.spec import STREAMS
from soma.settings import Settings
from tests.support.streams import OPA_VERSION

REPO = Path(__file__).resolve().parents[3]
INFRA = {"kafka", "postgres", "redis"}
NOT_STREAMS = {"__init__", "app", "errors"}
STREAM_SERVICES = {stream.component for stream in STREAMS}
PLATFORM = {"relay", "admin"} | STREAM_SERVICES


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
    assert {"kafka", "postgres"} <= set(services["init"]["depends_on"])
    assert services["relay"]["command"] == ["outbox", "relay"]
    assert services["admin"]["command"][:2] == ["admin", "serve"]
    for name in PLATFORM:
        assert services[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["environment"]["SOMA_KAFKA_BOOTSTRAP"] == "kafka:19092", name
    for name in STREAM_SERVICES:
        deps = services[name]["depends_on"]
        assert {dep for dep, c in deps.items() if c["condition"] == "service_healthy"} >= INFRA, name


def _default(field: str) -> object:
    """A setting's declared default (not the environment's value)."""
    return Settings.flat_fields()[field].default


def _probe(spec: dict) -> str:
    """The URL a platform service's health check requests."""
    test = " ".join(spec["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:[0-9]+/[a-z]+", test)
    assert match, test
    return match.group(0)


def test_every_service_but_the_init_job_has_a_health_check() -> None:
    services = _compose()["services"]
    for name, spec in services.items():
        if name == "init":
            assert "healthcheck" not in spec  # a job: the others wait for it to complete successfully
            continue
        assert spec["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert int(spec["healthcheck"]["retries"]) >= 3, name


def test_platform_health_checks_ask_readyz_on_each_process_own_port() -> None:
    services = _compose()["services"]
    assert _probe(services["relay"]) == f"http://127.0.0.1:{_default('outbox_relay_metrics_port')}/readyz"
    assert _probe(services["admin"]) == f"http://127.0.0.1:{_default('admin_port')}/readyz"
    assert services["admin"]["command"][-1] == str(_default("admin_port"))
    for stream in STREAMS:
        name = stream.name
        spec = services[stream.component]
        port = int(_default("streams_web_port_base")) + stream.port_offset
        assert _probe(spec) == f"http://127.0.0.1:{port}/readyz", name
        assert spec["entrypoint"] == ["faust", "-A", f"streams.{name}", "--quiet", "worker", "-l", "info"]
        assert spec["environment"]["SOMA_STREAMS_WEB_HOST"] == "0.0.0.0"  # noqa: S104
        assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_compose_runs_opa_with_the_sample_policy_for_the_integrator() -> None:
    services = _compose()["services"]
    opa = services["opa"]
    assert opa["image"].startswith("openpolicyagent/opa:")
    assert opa["image"].split(":", 1)[1].removesuffix("-debug") == OPA_VERSION.removeprefix("v")
    source, target = opa["volumes"][0].split(":")[:2]
    assert (REPO / source).resolve() == REPO / "policies" / "opa" / "leader.rego"
    assert (REPO / source).exists()
    assert opa["command"][:2] == ["run", "--server"]
    assert target in opa["command"]
    assert "/health" in " ".join(opa["healthcheck"]["test"])
    integrator = services["stream-integrator"]
    assert integrator["environment"]["SOMA_OPA_URL"] == "http://opa:8181"
    assert integrator["depends_on"]["opa"] == {"condition": "service_healthy"}


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, spec in _compose()["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), name


def test_dockerfile_installs_the_wheel_from_every_package_it_builds() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = {word for line in dockerfile.splitlines() if line.startswith("COPY ") for word in line.split()[1:-1]}
    # Every top-level package of the wheel (the catalog and migrations are package data inside them).
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", "constraints.txt", "README.md"} <= copied
    assert " -e " not in dockerfile  # no editable install: nothing is read from the source tree at run time


def test_compose_services_only_depend_on_declared_healthy_services() -> None:
    services = _compose()["services"]
    for name, spec in services.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition.get("condition") in {"service_healthy", "service_completed_successfully"}
