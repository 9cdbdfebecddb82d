"""`soma outbox`: write an event through the transactional outbox (emit), run the relay, and the
admin's list|stats|replay (outbox.admin.cli). `app` is the whole group; `soma.cli` mounts it.

Each command imports its implementation when it runs, so `soma --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import typer

from outbox.admin import cli as admin_cli
from soma.cli.context import settings

app = typer.Typer(help="The transactional outbox: emit events into it, relay it to Kafka.", no_args_is_help=True)


class _RepeatFilter(logging.Filter):
    """Lets one identical message through per `interval_s`."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        import time

        message, now = record.getMessage(), time.monotonic()
        if now - self._last.get(message, -self.interval_s) < self.interval_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[message] = now
        return True


def _headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected name=value, got {item!r}", param_hint="--header")
        headers[name] = value
    return headers


@app.command("emit")
def emit(
    topic: str = typer.Argument(..., help="Catalog topic name, e.g. chat.messages."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant the event belongs to (fills tenant_id)."),
    dedupe_key: str = typer.Option(..., "--dedupe-key", help="Idempotency key: emitting it again is a no-op."),
    value_json: str | None = typer.Option(None, "--value-json", help="The event as a JSON object."),
    file: Path | None = typer.Option(
        None, "--file", help="The event as one JSON object in a file ('-': stdin), e.g. one too long for argv."
    ),
    key: str | None = typer.Option(None, "--key", help="Record key; default: the catalog's key for the topic."),
    header: list[str] = typer.Option([], "--header", help="Extra record header name=value (repeatable)."),
) -> None:
    """Validate and encode the event, insert it into the outbox and commit; print its row as JSON.

    "created" is false when the tenant already had a row with this dedupe key (nothing changed).
    """
    from sqlalchemy.orm import Session

    from outbox.writer import Emission, OutboxWriter
    from soma.cli.context import parse_json_lines
    from soma.clients import database_engine, database_errors
    from soma.contracts.catalog import load_catalog
    from soma.contracts.codec import Codec
    from soma.observability import telemetry

    config = settings()
    telemetry.setup(config, "cli")  # the event's trace starts at this write (when tracing is on)
    catalog = load_catalog(settings=config)
    codec = Codec(catalog, config)
    writer = OutboxWriter(catalog, codec, config)
    # --tenant fills tenant_id (a different tenant_id in the JSON is refused by prepare).
    values = parse_json_lines(value_json, file)
    if len(values) != 1:
        raise typer.BadParameter(f"one event per emit: {file} holds {len(values)}", param_hint="--file")
    event = codec.from_json(topic, {"tenant_id": tenant, **values[0]})
    emission = Emission(topic, event, tenant, dedupe_key, key, _headers(header) or None)
    engine = database_engine(config)
    try:
        # The session connects at its first statement, after the event is validated and encoded.
        with database_errors(config), Session(engine) as session, session.begin():
            emitted = writer.write(session, [emission])[0]
            row = emitted.row
            line = {
                "id": row.id, "created": emitted.created, "tenant": row.tenant_id, "dedupe_key": row.dedupe_key,
                "topic": row.topic, "key": row.key, "event_id": row.event_id, "status": row.status,
            }
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps(line) + "\n")


@app.command("relay")
def relay(
    drain: bool = typer.Option(False, "--drain", help="Exit once nothing is due and nothing is in flight."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Do not serve /metrics and /healthz."),
    quiet: bool = typer.Option(False, "--quiet", help="Only warnings and errors on stderr."),
) -> None:
    """Publish committed outbox rows to Kafka until SIGTERM (or, with --drain, until nothing is due).

    SIGTERM/SIGINT: stop claiming, wait for the broker's reports on what is in flight, record
    them, release every other claim, exit 0. A SIGKILL loses nothing either: unacknowledged
    rows are still pending and the next relay claims them.
    """
    from outbox.relay.service import Relay
    from soma.observability import telemetry
    from soma.observability.logs import configure_logging

    config = settings()
    configure_logging(config, "relay")  # JSON lines on stderr (SOMA_LOG_FORMAT), secrets redacted
    # librdkafka repeats a refused connection every reconnect backoff: once per 30 s is enough.
    logging.getLogger("soma.librdkafka").addFilter(_RepeatFilter(30.0))
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)
    outbox_log = logging.getLogger("outbox")
    telemetry.setup(config, "relay")  # a publish span per row when tracing is on; flushed at exit
    relay_ = Relay(config, serve_metrics=not no_metrics)
    relay_.install_signal_handlers()
    relay_.start()
    where = f"http://{config.relay.metrics_host}:{relay_.server.port}" if relay_.server else "off"
    outbox_log.info(
        "relay: started (pid %d); metrics %s; batch %d, tenant quota %d, pipeline depth %d",
        os.getpid(), where, config.relay.batch_size, config.relay.tenant_quota,
        config.relay.pipeline_depth,
    )
    relay_.run(drain=drain)


def _duration(value: str | None, option: str) -> float | None:
    from outbox.errors import InvalidFilter
    from soma.settings.values import parse_duration

    try:
        return parse_duration(value) if value is not None else None
    except ValueError as exc:
        raise InvalidFilter(option, str(exc)) from None


def _number(value: str, option: str, low: float, high: float, whole: bool) -> float:
    """`value` as a number in [low, high] (whole: an integer), else a one-line error naming `option`."""
    from outbox.errors import InvalidFilter

    try:
        number = int(value) if whole else float(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        kind = "a whole number" if whole else "a number"
        raise InvalidFilter(option, f"expected {kind} from {low:g} to {high:g}, got {value[:40]!r}")
    return number


@app.command("prune")
def prune(
    older_than: str | None = typer.Option(
        None, "--older-than", help="Delete sent rows sent longer ago than this (7d, 12h, 90s; off: none). "
        "Default: SOMA_OUTBOX_RETENTION."),
    dead_older_than: str | None = typer.Option(
        None, "--dead-older-than", help="Delete dead rows parked longer ago than this (off: none). "
        "Default: SOMA_OUTBOX_DEAD_RETENTION."),
    batch: str = typer.Option("1000", "--batch", help="Most rows deleted per transaction (1-50000)."),
    budget: str = typer.Option("300", "--budget", help="Seconds the run may take at most (0.1-86400)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line instead of a sentence."),
) -> None:
    """Delete sent outbox rows older than the retention (and dead ones, if asked): what the relay does
    every SOMA_OUTBOX_RELAY_PRUNE_INTERVAL_S. Pending and failed rows are never touched.

    Short transactions of at most --batch rows that skip locked rows; stops after --budget seconds
    (run it again to go on). Rows pruned can no longer be replayed, and their dedupe keys may be
    written again.
    """
    from outbox.retention import PruneRequest
    from outbox.retention import prune as run_prune
    from soma.clients import database_engine
    from soma.settings.values import format_duration

    config = settings()
    sent_s = config.relay.retention if older_than is None else _duration(older_than, "--older-than")
    dead_s = config.relay.dead_retention if dead_older_than is None else _duration(dead_older_than, "--dead-older-than")
    budget_s = _number(budget, "--budget", 0.1, 86_400, whole=False)
    request = PruneRequest(sent_s, dead_s, int(_number(batch, "--batch", 1, 50_000, whole=True)), budget_s)
    engine = database_engine(config)
    try:
        from outbox.admin.queries import admin_db_errors

        with admin_db_errors(config):
            result = run_prune(engine, request, dry_run=dry_run)
    finally:
        engine.dispose()
    line = {
        "dry_run": dry_run, "sent": result.sent, "dead": result.dead, "complete": result.complete,
        "windows": result.windows, "elapsed_s": round(result.elapsed_s, 3),
        "sent_older_than": format_duration(sent_s), "dead_older_than": format_duration(dead_s),
    }
    if as_json:
        sys.stdout.write(json.dumps(line) + "\n")
        return
    verb = "would delete" if dry_run else "deleted"
    rest = "" if result.complete else f"; stopped after {budget_s:g}s (--budget): run again for the rest"
    sys.stdout.write(
        f"{verb} {result.sent} sent row(s) older than {line['sent_older_than']} and {result.dead} dead row(s)"
        f" older than {line['dead_older_than']} in {result.elapsed_s:.1f}s{rest}\n"
    )


# The admin's terminal side, after emit and relay (the order `soma outbox --help` lists them in).
app.command("list")(admin_cli.list_events)
app.command("stats")(admin_cli.stats)
app.command("replay")(admin_cli.replay)
