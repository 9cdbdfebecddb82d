"""A short run of the relay, the admin API and one stream as real processes, with secrets configured.

Every line each process writes (stdout and stderr, to a file) must be a JSON object with the
required keys, none may contain a configured secret (nor the wrong token a caller sent), and
every process's /metrics must label its samples with its `service`.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from soma.clients import kafka_producer
from soma.contracts.events import HEADER_TENANT
from soma.observability.logs import settings_secrets
from soma.settings import Settings
from tests.support.outbox_relay import metrics_url, own_schema, scrape
from tests.support.procs import SOMA, background, run_soma, wait_for
from tests.support.samples import sample
from tests.support.streams import FAUST, Bus, free_port_base, port_of, wait_ready

REQUIRED = {"ts", "level", "service", "logger", "message"}


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _lines(path: Path) -> list[dict[str, Any]]:
    parsed = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:300]}") from None
        assert isinstance(value, dict), f"{path.name}:{number}: {line[:300]}"
        assert value.keys() >= REQUIRED, f"{path.name}:{number} lacks {REQUIRED - value.keys()}: {line[:300]}"
        parsed.append(value)
    return parsed


Sample = tuple[str, frozenset[tuple[str, str]]]


def _samples(body: str) -> dict[Sample, float]:
    """Prometheus text as {(name, labels): value}."""
    found = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name, _, labels = series.partition("{")
            pairs = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', labels))
            found[(name, pairs)] = float(value)
    return found


def _key(name: str, **labels: str) -> Sample:
    return name, frozenset(labels.items())


def test_every_process_logs_json_without_secrets_and_labels_its_metrics(settings: Settings, tmp_path: Path) -> None:
    good, wrong = f"good-{uuid.uuid4().hex}", f"wrong-{uuid.uuid4().hex}"
    tenant = f"logs-{uuid.uuid4().hex[:6]}"
    ensured = run_soma(settings, "topics", "ensure", timeout_s=120)
    assert ensured.returncode == 0, ensured.stderr
    with own_schema(settings, "logs") as schema_settings:
        own = schema_settings.replace(
            admin_tokens=SecretStr(json.dumps({good: {"scope": "admin", "name": "ops"}})),
            admin_port=free_port_base(1),
            kafka_sasl_password=SecretStr(f"sasl-{uuid.uuid4().hex}"),  # unused with PLAINTEXT, still secret
            streams_web_port_base=free_port_base(),
            outbox_relay_metrics_port=0,
            log_level="INFO",
        )
        secrets = [s for s in settings_secrets(own) if len(s) >= 6] + [wrong]
        assert good in secrets
        assert own.database.url.get_secret_value() in secrets
        password = own.sqlalchemy_url().password
        emitted = run_soma(own, "outbox", "emit", "tool.requests", "--tenant", tenant, "--dedupe-key", "logs-1",
                           "--value-json", json.dumps(sample("tool.requests", tenant)), timeout_s=60)
        assert emitted.returncode == 0, emitted.stderr

        logs = {name: tmp_path / f"{name}.log" for name in ("relay", "admin-api", "stream-tools")}
        with ExitStack() as running:
            running.enter_context(background([*SOMA, "outbox", "relay"], own, logs["relay"], max_lifetime_s=300))
            running.enter_context(background([*SOMA, "admin", "serve"], own, logs["admin-api"], max_lifetime_s=300))
            # --quiet: no banner on stdout (faust's CLI prints it before the worker configures logging)
            running.enter_context(background([FAUST, "-A", "streams.tools", "--quiet", "worker", "-l", "warn"], own,
                                             logs["stream-tools"], max_lifetime_s=300))
            # relay: the emitted row is published; its metrics carry service="relay" (checked by scrape)
            relay = metrics_url(logs["relay"])
            wait_for(lambda: scrape(relay).get(f'outbox_published_total{{tenant="{tenant}",topic="tool.requests"}}')
                     == 1, 60, what="the relay publishing the row")
            # admin API: a wrong token (refused), then the right one, then its metrics
            admin = f"http://127.0.0.1:{own.admin.port}"
            wait_for(lambda: _get(f"{admin}/healthz")[0] == 200, 60, what="admin API health")
            assert _get(f"{admin}/admin/outbox?tenant={tenant}", wrong)[0] == 401
            status, body = _get(f"{admin}/admin/outbox?tenant={tenant}", good)
            assert status == 200, body
            status, body = _get(f"{admin}/metrics")
            assert status == 200
            counts = _samples(body)
            route = {"service": "admin-api", "route": "/admin/outbox", "method": "GET"}
            assert counts[_key("soma_admin_requests_total", **route, status="401")] == 1
            assert counts[_key("soma_admin_requests_total", **route, status="200")] == 1
            # stream: consumes the published request, dead-letters an undecodable record of the tenant
            wait_ready(own, "tools", timeout_s=120)
            Bus(own).collect("tool.results", lambda found: len(found) >= 1, timeout_s=60,
                             keep=lambda e: e.value["tenant_id"] == tenant)
            producer = kafka_producer(own)
            producer.produce(own.topic_name("tool.requests"), key=f"{tenant}:s1".encode(), value=b"not avro",
                             headers=[(HEADER_TENANT, tenant.encode())])
            assert producer.flush(10) == 0
            stream = f"http://127.0.0.1:{port_of(own, 'tools')}/metrics"

            def stream_metrics() -> dict[Sample, float]:
                return _samples(_get(stream)[1])

            dead = _key("soma_stream_dead_letters_total", service="stream-tools", reason="decode", tenant=tenant)
            wait_for(lambda: stream_metrics().get(dead) == 1, 60, what="the dead letter counted")
            depth = _key("soma_dlq_depth", service="stream-tools")
            wait_for(lambda: stream_metrics().get(depth, 0) >= 1, 60, what="the DLQ depth gauge")
            final = stream_metrics()
            lags = [dict(labels) for name, labels in final if name == "soma_stream_consumer_lag"]
            assert lags
            assert all(lag.keys() == {"service", "topic", "partition"} for lag in lags), lags
            assert {lag["topic"] for lag in lags} == {"tool.requests"}
            assert all(("service", "stream-tools") in labels for _, labels in final)
        # stopped (SIGTERM): the files hold everything each process wrote, start to stop

    by_service = {}
    for name, path in logs.items():
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{name}.log contains a configured secret ({secret[:4]}...)"
        assert f":{password}@" not in text, f"{name}.log contains the database password in a URL"
        lines = _lines(path)
        assert lines, f"{name}.log is empty"
        assert {line["service"] for line in lines} == {name}
        by_service[name] = lines
    assert any("relay: started" in line["message"] for line in by_service["relay"])
    assert any(line["logger"].startswith("uvicorn") for line in by_service["admin-api"])
    assert any(line["logger"].startswith(("faust", "mode", "aiokafka")) for line in by_service["stream-tools"])
    dead = [line for line in by_service["stream-tools"] if "dead-lettering" in line["message"]]
    assert dead
    assert dead[0]["tenant"] == tenant
    assert dead[0]["level"] == "WARNING"
