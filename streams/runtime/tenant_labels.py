"""Bounded `tenant` label values: record-borne tenant ids must not grow a process's metrics without end.

A tenant label is the tenant id (cut to `MAX_LABEL_CHARS`); while `max_tenants` tenants already
have series, a new one is counted as ``other`` (until one of them is swept). Every series made
through `child` is remembered under its tenant label, and `sweep` removes all of them for the
tenants not seen for `idle_s` (their counters start again from 0 when they come back, which
Prometheus' `rate()`/`increase()` read as a counter reset).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

OTHER = "other"  # the label of tenants over the bound
UNKNOWN = "unknown"  # the label of a record without a tenant
MAX_LABEL_CHARS = 100


class TenantLabels:
    def __init__(self, idle_s: float, max_tenants: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.max_tenants = max_tenants
        self._clock = clock
        self._seen: dict[str, float] = {}  # tenant label -> last use
        self._series: dict[str, set[tuple[Any, tuple[str, ...]]]] = {}  # tenant label -> (metric, label values)
        # (metric, label values) -> its child: `metric.labels()` takes a lock and builds a tuple each call,
        # and the streams ask for a child per record
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def label(self, tenant: str | None) -> str:
        """The label value for `tenant`, marking it used now."""
        name = (tenant or UNKNOWN)[:MAX_LABEL_CHARS]
        if name not in self._seen and name not in (OTHER, UNKNOWN) and self.active() >= self.max_tenants:
            name = OTHER
        self._seen[name] = self._clock()
        return name

    def active(self) -> int:
        """Tenants with series now (``other`` and ``unknown`` not counted)."""
        return sum(1 for name in self._seen if name not in (OTHER, UNKNOWN))

    def child(self, metric: Any, tenant: str | None, *labels: str) -> Any:
        """`metric.labels(*labels, tenant label)` (the tenant is every such metric's last label)."""
        name = self.label(tenant)
        series = (metric, (*labels, name))
        child = self._children.get(series)
        if child is None:
            self._series.setdefault(name, set()).add(series)
            child = self._children[series] = metric.labels(*series[1])
        return child

    def sweep(self) -> list[str]:
        """Drop the series of every tenant idle for `idle_s` or longer; the tenant labels dropped."""
        cutoff = self._clock() - self.idle_s
        idle = [name for name, last in self._seen.items() if last <= cutoff]
        for name in idle:
            del self._seen[name]
            for metric, values in self._series.pop(name, set()):
                self._children.pop((metric, values), None)
                with contextlib.suppress(KeyError):  # already gone
                    metric.remove(*values)
        return idle
