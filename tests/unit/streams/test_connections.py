"""The streams build no connection of their own: every client comes from `soma.clients`."""

from __future__ import annotations

from pathlib import Path

STREAMS = Path(__file__).resolve().parents[3] / "streams"
CONSTRUCTORS = ("AIOKafkaConsumer(", "AIOKafkaProducer(", "Redis(", "Redis.from_url(", "from_url(", "AsyncClient(",
                "Client(", "create_engine(", "create_async_engine(", "Producer(", "Consumer(", "AdminClient(")


def test_no_stream_module_constructs_a_client() -> None:
    offenders = [
        f"{path.relative_to(STREAMS.parent)}: {name}"
        for path in sorted(STREAMS.rglob("*.py"))
        for name in CONSTRUCTORS
        if name in path.read_text()
    ]
    assert offenders == []
