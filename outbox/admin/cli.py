"""`soma outbox list|stats|replay` and `soma admin serve`: the outbox's admin side from a terminal.

The commands share their implementation with the HTTP API (outbox.admin.queries, .replay),
imported when a command runs. A terminal user holds the database credentials, so it acts
on any tenant (one per command); its audit name is ``cli:<os user>``. `app` is the
`soma admin` group; list, stats and replay join the `soma outbox` group (outbox.cli).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import pwd
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from soma.cli.context import console, err_console, settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from outbox.admin.auth import Principal
    from outbox.admin.filters import OutboxFilter

app = typer.Typer(help="The outbox admin HTTP API (inspection and replay).", no_args_is_help=True)

LONG_REPLAY = 1000  # rows from which a replay shows a progress bar

TenantOpt = typer.Option(..., "--tenant", help="The tenant whose rows to look at (one per command).")
StatusOpt = typer.Option(None, "--status", help="pending, sent, failed or dead.")
TopicOpt = typer.Option(None, "--topic", help="Catalog topic name.")
SinceOpt = typer.Option(None, "--since", help="created_at >= this ISO-8601 time (no zone = UTC).")
UntilOpt = typer.Option(None, "--until", help="created_at < this ISO-8601 time (no zone = UTC).")
JsonOpt = typer.Option(False, "--json", help="One JSON document instead of tables.")


def _actor() -> str:
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid-{os.getuid()}"


def _principal() -> Principal:
    from outbox.admin.auth import Principal

    return Principal(actor=_actor(), all_tenants=True)


def _filter(tenant: str, status: str | None, topic: str | None, since: str | None, until: str | None) -> OutboxFilter:
    from outbox.admin.filters import build_filter
    from soma.contracts.catalog import load_catalog

    return build_filter(
        tenant, status=status, topic=topic, since=since, until=until, known_topics=frozenset(load_catalog().topics)
    )


# The filter options of list and stats, in this order, ahead of each command's own.
_FILTER_OPTIONS = [
    inspect.Parameter("tenant", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=TenantOpt, annotation=str),
    *(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=str | None)
      for name, option in (("status", StatusOpt), ("topic", TopicOpt), ("since", SinceOpt), ("until", UntilOpt))),
]


def _with_filter(command: Callable[..., None]) -> Callable[..., None]:
    """`command(flt, **own)` as a typer command whose options are the filter's, then its own ones."""
    own = list(inspect.signature(command).parameters.values())[1:]  # annotations as text: typer resolves them

    @functools.wraps(command)
    def run(tenant: str, status: str | None, topic: str | None, since: str | None, until: str | None,
            **options: Any) -> None:
        command(_filter(tenant, status, topic, since, until), **options)

    params = [*_FILTER_OPTIONS, *own]
    cast(Any, run).__signature__ = inspect.Signature(params, return_annotation=None)
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return run


@contextmanager
def _engine() -> Iterator[Engine]:
    from soma.clients import database_engine

    engine = database_engine(settings())
    try:
        yield engine
    finally:
        engine.dispose()


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


@_with_filter
def list_events(
    flt: OutboxFilter,
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="Rows per page (1-1000)."),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of the previous page."),
    as_json: bool = JsonOpt,
) -> None:
    """List one tenant's outbox rows, by id, a page at a time."""
    from rich.table import Table

    from outbox.admin.filters import decode_cursor
    from outbox.admin.queries import admin_db_errors, row_view
    from outbox.admin.queries import list_events as query

    after = decode_cursor(cursor)
    with _engine() as engine, admin_db_errors(settings()), engine.connect() as conn:
        page = query(conn, flt, after_id=after, limit=limit)
    if as_json:
        _print_json({"tenant": flt.tenant, "items": [row_view(r) for r in page.items], "next_cursor": page.next_cursor})
        return
    table = Table("id", "status", "topic", "event_id", "attempts", "created_at", "sent_at", "last_error")
    for row in page.items:
        table.add_row(
            str(row.id), row.status, row.topic, row.event_id, str(row.attempts),
            row.created_at.isoformat(timespec="seconds"),
            row.sent_at.isoformat(timespec="seconds") if row.sent_at else "",
            (row.last_error or "")[:60],
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"more rows: --cursor {page.next_cursor}")


@_with_filter
def stats(flt: OutboxFilter, as_json: bool = JsonOpt) -> None:
    """Counts of one tenant's outbox rows by status and topic, the oldest waiting row, most attempts."""
    from dataclasses import asdict

    from rich.table import Table

    from outbox.admin.queries import admin_db_errors
    from outbox.admin.queries import stats as query
    from outbox.models import STATUSES

    with _engine() as engine, admin_db_errors(settings()), engine.connect() as conn:
        result = query(conn, flt)
    if as_json:
        _print_json(asdict(result))
        return
    table = Table("topic", *STATUSES, title=f"outbox of tenant {flt.tenant}: {result.total} row(s)")
    for name, counts in result.by_topic.items():
        table.add_row(name, *(str(counts.get(s, 0)) for s in STATUSES))
    table.add_row("[b]all[/b]", *(f"[b]{result.by_status.get(s, 0)}[/b]" for s in STATUSES))
    console.print(table)
    oldest = result.oldest_waiting_at.isoformat(timespec="seconds") if result.oldest_waiting_at else "none"
    console.print(f"oldest waiting row: {oldest}; most attempts: {result.max_attempts}")


class _Bar:
    """A rich progress bar that appears only for long replays."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < LONG_REPLAY:
            return
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress(
                "replaying", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
            )
            self._progress.start()
            self._task = self._progress.add_task("replay", total=total)
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def replay(
    tenant: str = TenantOpt,
    ids: Annotated[list[str] | None, typer.Option("--ids", help="Row ids, comma-separated; repeatable.")] = None,
    status: str | None = typer.Option(None, "--status", help="Replay rows with this status (instead of --ids)."),
    topic: str | None = TopicOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be replayed; write nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-publish chosen rows of one tenant: new pending rows with a replay-of header, audited, all or nothing.

    Choose the rows with --ids, or with --status (and optionally --topic/--since/--until).
    """
    from dataclasses import asdict

    from outbox.admin.filters import parse_ids
    from outbox.admin.replay import Replayer
    from outbox.errors import InvalidFilter
    from soma.contracts.catalog import load_catalog
    from soma.contracts.codec import Codec

    if ids and (status or topic or since or until):
        raise InvalidFilter("--ids", "give either --ids or --status [--topic --since --until], not both")
    if not ids and status is None:
        raise InvalidFilter("--status", "give --ids, or --status to replay by filter")
    flt = _filter(tenant, status, topic, since, until)
    wanted = parse_ids(ids) if ids else None
    catalog = load_catalog()
    bar = _Bar(enabled=not as_json)
    with _engine() as engine:
        replayer = Replayer(engine, settings(), catalog, Codec(catalog, settings()))
        try:
            if wanted is not None:
                result = replayer.by_ids(_principal(), wanted, tenant=flt.tenant, dry_run=dry_run, progress=bar)
            else:
                result = replayer.by_filter(_principal(), flt, dry_run=dry_run, progress=bar)
        finally:
            bar.close()
    if as_json:
        _print_json(asdict(result))
        return
    verb = "would replay" if result.dry_run else "replayed"
    topics = ", ".join(f"{name}: {count}" for name, count in result.by_topic.items()) or "no rows"
    console.print(f"{verb} {result.count} row(s) of tenant {result.tenant} ({topics})")
    shown = ", ".join(
        str(p["original_id"]) if p["replay_id"] is None else f"{p['original_id']}->{p['replay_id']}"
        for p in result.sample
    )
    if shown:
        console.print(f"ids{' (first)' if result.count > len(result.sample) else ''}: {shown}")
    if result.audit_event_id:
        console.print(f"audit event {result.audit_event_id}")


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Listen address (default SOMA_ADMIN_HOST)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (default SOMA_ADMIN_PORT)."),
) -> None:
    """Serve the admin HTTP API (OpenAPI at /docs and /openapi.json) until SIGINT/SIGTERM."""
    import uvicorn

    from outbox.admin.api import create_app
    from outbox.admin.server import Server
    from soma.observability.logs import configure_logging

    current = settings()
    configure_logging(current, "admin-api")  # JSON lines on stderr, secrets redacted; uvicorn's loggers included
    app = create_app(current)  # no token configured, or a malformed one: one line, before listening
    config = uvicorn.Config(
        app,
        host=host or current.admin.host,
        port=port or current.admin.port,
        timeout_graceful_shutdown=math.ceil(current.admin.shutdown_timeout_s),
        log_config=None,  # uvicorn's loggers (and its access log) propagate to the root handler above
        log_level=current.telemetry.log_level.lower(),
        server_header=False,
    )
    Server(config).run()
