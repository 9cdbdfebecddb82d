"""A minimal service on the platform: emit an event through the outbox, then read it back from Kafka.

Run it where the platform's settings point at the stack (SOMA_DATABASE_URL, SOMA_KAFKA_BOOTSTRAP,
...), after `soma db upgrade` and `soma topics ensure`, with a relay running (`soma relay`):

    python service.py [--tenant T] [--timeout-s S]

It writes one chat message in its own database transaction (the outbox row commits with the
caller's data, or not at all), then consumes `chat.messages` until that event arrives (the relay
published it), and prints one success line. Exit code 1 (one line on stderr) when it does not.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from sqlalchemy.orm import Session

from outbox.writer import OutboxWriter
from soma.clients import database_engine
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventConsumer
from soma.errors import SomaError
from soma.settings import load_settings

TOPIC = "chat.messages"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="example-tenant")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="how long to wait for the event")
    args = parser.parse_args()

    settings = load_settings()
    catalog = load_catalog(settings=settings)  # SOMA_CATALOG_DIR, else the catalog shipped in the package
    codec = Codec(catalog, settings)
    writer = OutboxWriter(catalog, codec, settings)
    engine = database_engine(settings)
    session_id = f"example-{uuid.uuid4().hex[:8]}"
    # Subscribed before emitting, from the beginning: the event cannot slip past between the two.
    consumer = EventConsumer(settings, catalog, codec, [TOPIC], f"example-{session_id}", from_beginning=True)
    try:
        with Session(engine) as session, session.begin():
            row = writer.emit(
                session, TOPIC,
                {"session_id": session_id, "sequence": 1, "role": "user", "content": "hello from a service"},
                tenant=args.tenant, dedupe_key=f"{session_id}:1",
            )
            event_id = row.event_id
        deadline = time.monotonic() + args.timeout_s
        while time.monotonic() < deadline:
            event = consumer.poll(1.0)
            if event is not None and event.value.get("event_id") == event_id:
                print(f"service ok: emitted and consumed {TOPIC} event {event_id} (tenant {args.tenant},"
                      f" partition {event.partition}, offset {event.offset})")
                return 0
        print(f"service: event {event_id} not consumed from {TOPIC} within {args.timeout_s:.0f}s", file=sys.stderr)
        return 1
    except SomaError as exc:
        print(f"service: {exc}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
