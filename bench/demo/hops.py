"""What `soma demo` saw at each hop, and the rich table that shows it (pure: no I/O here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

SEEN, MISSED, SKIPPED, INFO = "seen", "missed", "skipped", "info"
STYLES = {SEEN: "green", MISSED: "bold red", SKIPPED: "yellow", INFO: "cyan"}


@dataclass(frozen=True)
class Hop:
    """One observation: where (topic or store), whose (tenant), what (key fields), how late."""

    step: str  # the scenario step, e.g. "chat + tool call"
    hop: str  # what happened, e.g. "relay published the user message"
    where: str  # a topic, or a store: outbox_events, memory_replica, redis, admin API
    tenant: str
    fields: str = ""
    latency_s: float | None = None  # since the step's input (commit, send or request)
    status: str = SEEN
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status == MISSED


def format_latency(seconds: float | None) -> str:
    """`12.3 ms` below a second, `1.23 s` above; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def hop_table(hops: Sequence[Hop], title: str = "soma demo: what happened at each hop") -> Table:
    table = Table("step", "hop", "topic / store", "tenant", "key fields", "latency", "status", title=title,
                  show_lines=False, expand=False)
    previous_step = None
    for hop in hops:
        style = STYLES.get(hop.status, "")
        status = hop.status if not hop.note else f"{hop.status}: {hop.note}"
        table.add_row(
            hop.step if hop.step != previous_step else "",
            hop.hop, hop.where, hop.tenant, hop.fields, format_latency(hop.latency_s),
            Text(status, style=style),
            style="red" if hop.failed else None,
        )
        previous_step = hop.step
    return table


def missed(hops: Sequence[Hop]) -> list[Hop]:
    return [hop for hop in hops if hop.failed]


def verdict(hops: Sequence[Hop]) -> str:
    """One line: every hop seen, or which ones were not (in order)."""
    lost = missed(hops)
    if not lost:
        seen = sum(1 for hop in hops if hop.status == SEEN)
        return f"all {seen} hops seen"
    names = "; ".join(f"{hop.step}: {hop.hop} ({hop.where}, {hop.tenant})" for hop in lost)
    return f"{len(lost)} hop(s) did not happen in time: {names}"
