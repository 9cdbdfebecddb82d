"""Spans written by the jsonl exporter (SOMA_OTEL_TRACES_EXPORTER=jsonl), read back for assertions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SpanRecord:
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    service: str
    attributes: dict[str, Any]
    links: list[str]  # span ids linked to
    status: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpanRecord:
        context = data["context"]
        return cls(
            name=data["name"], trace_id=context["trace_id"], span_id=context["span_id"],
            parent_id=data.get("parent_id"), kind=data["kind"],
            service=data["resource"]["attributes"].get("service.name", "?"),
            attributes=data.get("attributes") or {},
            links=[link["context"]["span_id"] for link in data.get("links") or []],
            status=(data.get("status") or {}).get("status_code", "UNSET"),
        )


def load_spans(paths: Iterable[Path]) -> list[SpanRecord]:
    spans = []
    for path in paths:
        if path.exists():
            spans += [SpanRecord.from_json(json.loads(line)) for line in path.read_text().splitlines() if line]
    return spans


def describe(spans: Iterable[SpanRecord]) -> str:
    """A readable listing for assertion messages."""
    return "\n".join(f"{s.service:16} {s.name:32} trace={s.trace_id[-8:]} span={s.span_id[-8:]} "
                     f"parent={(s.parent_id or '-')[-8:]}" for s in spans)
