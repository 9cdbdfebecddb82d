"""`soma produce` and `soma consume`: catalog events from and to a terminal, one JSON object per line."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import typer

from soma.cli.context import console, parse_json_lines, settings


def produce(
    topic: str = typer.Argument(..., help="Catalog topic name, e.g. chat.messages."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant the events belong to (fills tenant_id)."),
    key: str | None = typer.Option(None, "--key", help="Record key; default: the catalog's key for the topic."),
    value_json: str | None = typer.Option(None, "--value-json", help="One event as a JSON object."),
    file: Path | None = typer.Option(None, "--file", help="JSON lines, one event each ('-' for stdin)."),
) -> None:
    """Validate every event, then send them and print partition/offset once the broker acknowledged each.

    event_id and occurred_at are filled when absent. Nothing is sent if any event is invalid.
    """
    from soma.contracts.catalog import load_catalog
    from soma.contracts.codec import Codec
    from soma.contracts.events import EventProducer
    from soma.observability import telemetry

    telemetry.setup(settings(), "cli")  # a publish span per event, ended at the broker's acknowledgement
    catalog = load_catalog()
    catalog.topic(topic)
    producer = EventProducer(settings(), catalog, Codec(catalog, settings()))
    # --tenant fills tenant_id when the JSON leaves it out (prepare refuses a mismatch).
    events = [
        producer.codec.from_json(topic, {"tenant_id": tenant, **value})
        for value in parse_json_lines(value_json, file)
    ]
    records = [producer.prepare(topic, event, tenant=tenant, key=key) for event in events]
    for delivered in producer.send_all(records):
        console.print_json(json.dumps({
            "topic": delivered.topic, "partition": delivered.partition, "offset": delivered.offset,
            "key": delivered.key, "event_id": delivered.event_id,
        }), indent=None)


def consume(
    topic: str = typer.Argument(..., help="Catalog topic name."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest retained record."),
    max_messages: int | None = typer.Option(None, "--max-messages", min=1, help="Stop after N records."),
    group: str | None = typer.Option(None, "--group", help="Consumer group (commits offsets); default: none."),
    tenant: str | None = typer.Option(None, "--tenant", help="Only records whose tenant header is this."),
    idle_timeout: float | None = typer.Option(
        None, "--idle-timeout", min=0.1, help="Stop after this many seconds without a record."
    ),
) -> None:
    """Print one JSON object per record: topic, partition, offset, key, headers and the decoded value."""
    from soma.contracts.catalog import load_catalog
    from soma.contracts.codec import Codec
    from soma.contracts.events import EventConsumer

    catalog = load_catalog()
    codec = Codec(catalog, settings())
    consumer = EventConsumer(
        settings(), catalog, codec, [topic],
        group_id=group or f"soma-cli-{uuid.uuid4().hex[:12]}", from_beginning=from_beginning,
        commit=group is not None,
    )
    printed = 0
    try:
        for event in consumer.events(idle_timeout_s=idle_timeout):
            if tenant is not None and event.headers.get("tenant") != tenant:
                continue
            line = {
                "topic": event.topic, "partition": event.partition, "offset": event.offset,
                "key": event.key, "headers": event.headers,
            }
            if event.error is None:
                line["value"] = codec.to_json(topic, event.value)
            else:
                line["error"] = event.error
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            printed += 1
            if max_messages is not None and printed >= max_messages:
                break
    finally:
        consumer.close()
