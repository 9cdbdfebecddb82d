"""Prometheus registries that label every sample with the process's `service`.

Each process (the relay, the admin API, each stream) keeps its metrics in a `ServiceRegistry`:
whatever serves or reads it (`/metrics`, `generate_latest`, `get_sample_value`) sees every
sample with ``service="<name>"`` as its first label, so dashboards and alerts can tell the
processes apart without relying on scrape configuration. Service names: ``relay``,
``admin-api``, ``stream-<name>`` (the same as the ``service`` field of their log lines).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

SERVICE_LABEL = "service"


class ServiceRegistry(CollectorRegistry):
    """A `CollectorRegistry` whose every exported sample carries ``service=<service>``."""

    def __init__(self, service: str) -> None:
        super().__init__(auto_describe=True)
        self.service = service

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            labelled.samples = [
                sample._replace(labels={SERVICE_LABEL: self.service, **sample.labels})
                for sample in metric.samples
            ]
            yield labelled


def metric_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can export (``x``, ``x_total``, ``x_bucket``, ...), even unobserved ones."""
    return set(registry._names_to_collectors)
