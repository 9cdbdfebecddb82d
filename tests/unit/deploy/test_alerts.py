"""deploy/prometheus: the alert rules are well-formed and use only metrics the code exports.

`promtool check rules` itself runs in tests/integration/deploy/test_promtool.py when promtool can be built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from outbox.admin.metrics import AdminMetrics
from outbox.relay.metrics import RelayMetrics
from soma.observability.metrics import metric_names
from soma.ops.supervisor.spec import STREAMS
from soma.settings import Settings
from streams.runtime.metrics import StreamMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
SEVERITIES = {"info", "warning", "critical"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
# What a PromQL identifier can be besides a metric name.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan"}
REQUIRED_ALERTS = {  # what issue 6 asks the rules to cover
    "SomaOutboxBacklogHigh", "SomaOutboxOldestPendingTooOld", "SomaOutboxCircuitOpen", "SomaStreamConsumerLagHigh",
    "SomaDeadLettersGrowing", "SomaReplicaLagHigh", "SomaProcessDown",
}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "alerts.yaml").read_text())
    assert isinstance(document, dict)
    assert set(document) == {"groups"}
    rules = []
    names = set()
    for group in document["groups"]:
        assert set(group) <= {"name", "rules", "interval", "limit"}, group.keys()
        assert group["name"] not in names, f"duplicate group {group['name']}"
        names.add(group["name"])
        assert group["rules"], f"group {group['name']} has no rules"
        rules.extend(group["rules"])
    return rules


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, label matchers, groupings, ranges removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        found.add(name)
    return found


def _exported() -> set[str]:
    names = {"up"}  # Prometheus' own per-target series
    for registry in (RelayMetrics().registry, StreamMetrics("x").registry, AdminMetrics().registry):
        names |= metric_names(registry)
    return names


def test_metric_names_in_parses_selectors_functions_and_groupings() -> None:
    expr = 'sum by (tenant, topic) (rate(outbox_failed_total{topic=~"a|b"}[5m])) > 0 and on (x) up offset 5m'
    assert metric_names_in(expr) == {"outbox_failed_total", "up"}
    assert metric_names_in("max(soma_dlq_depth) > 1e3") == {"soma_dlq_depth"}


def test_every_rule_is_complete_and_named_once() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, name
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip(), name
        assert DURATION.match(str(rule["for"])), f"{name}: for {rule['for']!r}"
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert rule["expr"].count("(") == rule["expr"].count(")"), name


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_metric_an_alert_uses_is_exported_by_the_code(rule: dict[str, Any]) -> None:
    used = metric_names_in(rule["expr"])
    assert used, f"{rule['alert']}: no metric found in {rule['expr']!r}"
    assert used <= _exported(), f"{rule['alert']}: unknown metric(s) {used - _exported()}"


def test_label_names_used_by_alerts_exist_on_their_metrics() -> None:
    """`by (...)` groupings and `$labels.x` in annotations name labels the selected metrics have."""
    labels: dict[str, set[str]] = {"up": {"job", "instance"}}
    for metrics in (RelayMetrics(), StreamMetrics("x"), AdminMetrics()):
        for collector in set(metrics.registry._names_to_collectors.values()):
            for name in metrics.registry._collector_to_names[collector]:
                labels[name] = {"service", "job", "instance", *getattr(collector, "_labelnames", ())}
    for rule in _rules():
        available = set.intersection(*(labels[m] for m in metric_names_in(rule["expr"])))
        grouped = {
            label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]) for label in group.split(",")
        }
        assert grouped <= available, f"{rule['alert']}: {grouped - available}"
        text = " ".join(rule["annotations"].values())
        if "by (" in rule["expr"]:
            available = grouped or available
        used = set(re.findall(r"\$labels\.([a-zA-Z_]+)", text))
        assert used <= available, f"{rule['alert']}: annotations use {used - available}"


def test_scrape_config_targets_every_process_at_its_default_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    defaults = Settings.flat_fields()
    relay = f"{defaults['outbox_relay_metrics_host'].default}:{defaults['outbox_relay_metrics_port'].default}"
    admin = f"{defaults['admin_host'].default}:{defaults['admin_port'].default}"
    base = defaults["streams_web_port_base"].default
    streams = {f"{defaults['streams_web_host'].default}:{base + offset}" for offset in (s.port_offset for s in STREAMS)}
    assert targets["soma-relay"] == [relay]
    assert targets["soma-admin-api"] == [admin]
    assert set(targets["soma-streams"]) == streams
    assert all(job.startswith("soma-") for job in targets)  # SomaProcessDown selects job=~"soma-.*"
