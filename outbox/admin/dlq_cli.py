"""`soma dlq list|show|redrive`: dead letters from a terminal, with the admin API's rules.

The commands share their implementation with the HTTP API (outbox.admin.dlq). A terminal user
holds the platform's credentials, so by default it acts on every tenant under the audit name
``cli:<os user>``; with ``--token-file`` it acts as that admin token (SOMA_ADMIN_TOKENS), with
its name and tenant scope, exactly as over HTTP. Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soma.cli.context import console, settings

if TYPE_CHECKING:
    from outbox.admin.auth import Principal
    from outbox.admin.dlq import DeadLetters
    from soma.dlq.select import DlqFilter

app = typer.Typer(
    help="Dead letters: list and show them decoded, redrive them to their source topic (audited).",
    no_args_is_help=True,
)

TenantOpt = typer.Option(None, "--tenant", help="Only this tenant's dead letters.")
SourceOpt = typer.Option(None, "--source-topic", help="Only those read from this catalog topic.")
StreamOpt = typer.Option(None, "--stream", help="Only those of this stream (worker, tools, ...).")
ErrorTypeOpt = typer.Option(None, "--error-type", help="Only this error type (decode, processing, ...).")
ReasonOpt = typer.Option(None, "--reason", help="Only those whose error contains this text (any case).")
SinceOpt = typer.Option(None, "--since", help="Dead-lettered at or after this ISO-8601 time (no zone = UTC).")
UntilOpt = typer.Option(None, "--until", help="Dead-lettered before this ISO-8601 time (no zone = UTC).")
TokenOpt = typer.Option(
    None, "--token-file", help="Act as this admin token (a file holding it; '-' reads stdin): its scope applies."
)
JsonOpt = typer.Option(False, "--json", help="One JSON document instead of tables.")


def _principal(token_file: Path | None) -> Principal:
    from outbox.admin.auth import TokenRegistry
    from outbox.admin.cli import _principal as terminal_user
    from outbox.errors import AccessDenied
    from soma.dlq.errors import InvalidDlqRequest

    if token_file is None:
        return terminal_user()
    try:
        token = sys.stdin.readline() if str(token_file) == "-" else token_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidDlqRequest("--token-file", f"cannot read {token_file}: {reason}") from None
    found = TokenRegistry.from_settings(settings()).authenticate(token.strip())
    if found is None:
        raise AccessDenied("--token-file: not a token of SOMA_ADMIN_TOKENS")
    return found


@contextmanager
def _letters() -> Iterator[DeadLetters]:
    from outbox.admin.cli import _engine
    from outbox.admin.dlq import DeadLetters
    from soma.contracts.catalog import load_catalog
    from soma.contracts.codec import Codec

    # A broker that cannot be reached is one line (naming the address and setting), not librdkafka's retries.
    logging.getLogger("soma.librdkafka").setLevel(logging.CRITICAL)
    catalog = load_catalog()
    with _engine() as engine:
        letters = DeadLetters(engine, settings(), catalog, Codec(catalog, settings()))
        try:
            yield letters
        finally:
            letters.close()


def _filter(
    tenant: str | None, source_topic: str | None, stream: str | None, error_type: str | None,
    reason: str | None, since: str | None, until: str | None,
) -> DlqFilter:
    from soma.contracts.catalog import load_catalog
    from soma.dlq.select import build_filter

    return build_filter(
        tenant=tenant, source_topic=source_topic, stream=stream, error_type=error_type, reason=reason,
        since=since, until=until, known_topics=frozenset(load_catalog().topics),
    )


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str, ensure_ascii=False) + "\n")


@app.command("list")
def list_letters(
    tenant: str | None = TenantOpt,
    source_topic: str | None = SourceOpt,
    stream: str | None = StreamOpt,
    error_type: str | None = ErrorTypeOpt,
    reason: str | None = ReasonOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="Most dead letters shown (1-1000)."),
    after: str | None = typer.Option(None, "--after", help="Continue after this id (the 'more' line's)."),
    token_file: Path | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List dead letters, oldest first, filtered. Reads the dlq topic within one broker timeout."""
    from rich.markup import escape
    from rich.table import Table

    from soma.dlq.letters import summary
    from soma.dlq.select import LetterId

    flt = _filter(tenant, source_topic, stream, error_type, reason, since, until)
    start = LetterId.parse(after, "--after") if after is not None else None
    principal = _principal(token_file)
    with _letters() as letters:
        page = letters.scan(principal, flt, limit=limit, after=start)
        topic = letters.reader.topic
    if as_json:
        _print_json({"items": [summary(x) for x in page.items], "scanned": page.scanned, "complete": page.complete,
                     "next_after": page.next_after, "topic_exists": page.topic_exists})
        return
    if not page.topic_exists:
        console.print(f"no dead letters: topic {topic} does not exist (yet)")
        return
    table = Table("id", "dead-lettered at", "tenant", "stream", "source", "error type", "error",
                  title=f"{len(page.items)} dead letter(s) of {page.scanned} read")
    for letter in page.items:
        when = letter.timestamp.isoformat(timespec="seconds") if letter.timestamp else ""
        cells = (letter.tenant, letter.stream, letter.source, letter.error_type, letter.error[:80])
        table.add_row(str(letter.id), when, *(escape(cell) for cell in cells))
    console.print(table)
    if page.next_after:
        console.print(f"more: --after {page.next_after}")


@app.command("show")
def show(
    letter_id: str = typer.Argument(..., metavar="ID", help="The dead letter: dlq:<partition>:<offset>."),
    token_file: Path | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """One dead letter: where it came from, why it failed, and the original record decoded (or a preview)."""
    from rich.markup import escape

    from soma.dlq.letters import detail
    from soma.dlq.select import LetterId

    wanted = LetterId.parse(letter_id, "ID")
    principal = _principal(token_file)
    with _letters() as letters:
        view = detail(letters.codec, letters.show(principal, wanted))
    if as_json:
        _print_json(view)
        return
    original = view.pop("original")
    headers = view.pop("original_headers")
    for name, value in view.items():
        console.print(f"[b]{name}[/b]: {escape(str(value))}", markup=True, highlight=False)
    console.print("[b]original_headers[/b]:", markup=True)
    for name, value in headers.items():
        console.print(f"  {name}: {value}", markup=False)
    if "value" in original:
        console.print(f"[b]original value[/b] ({original['size']} bytes, decoded):", markup=True)
        console.print_json(json.dumps(original["value"], default=str))
    else:
        why = escape(str(original["not_decodable"]))
        console.print(f"[b]original value[/b] ({original['size']} bytes): not decodable: {why}", markup=True)
        console.print(f"  hex: {original['preview_hex']}", markup=False)
        console.print(f"  base64{'' if original['preview_complete'] else ' (start)'}: {original['preview_base64']}",
                      markup=False)


def redrive(
    ids: Annotated[
        list[str] | None, typer.Option("--ids", help="Dead-letter ids, comma-separated; repeatable.")
    ] = None,
    tenant: str | None = typer.Option(None, "--tenant", help="The tenant (required to redrive by filter)."),
    source_topic: str | None = SourceOpt,
    stream: str | None = StreamOpt,
    error_type: str | None = ErrorTypeOpt,
    reason: str | None = ReasonOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be redriven; send nothing."),
    token_file: Path | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Send dead letters back to their source topic (original key, value, headers + redrive-of), audited.

    Choose them with --ids, or with --tenant and any of the filters. Everything is checked before
    anything is sent; exit 1 if the broker did not acknowledge every record.
    """
    from dataclasses import asdict

    from soma.dlq.errors import InvalidDlqRequest
    from soma.dlq.select import parse_ids

    filtering = any(v is not None for v in (source_topic, stream, error_type, reason, since, until))
    if ids and filtering:
        raise InvalidDlqRequest("--ids", "give either --ids or --tenant with filters, not both")
    if not ids and tenant is None:
        raise InvalidDlqRequest("--tenant", "give --ids, or --tenant (and filters) to redrive by filter")
    wanted = parse_ids(ids, "--ids") if ids else None
    flt = _filter(tenant, source_topic, stream, error_type, reason, since, until)
    principal = _principal(token_file)
    with _letters() as letters:
        if wanted is not None:
            result = letters.redrive_ids(principal, wanted, tenant=tenant, dry_run=dry_run)
        else:
            result = letters.redrive_filter(principal, flt, dry_run=dry_run)
    if as_json:
        _print_json(asdict(result))
    else:
        verb = "would redrive" if result.dry_run else "redrove"
        topics = ", ".join(f"{name}: {count}" for name, count in result.by_topic.items()) or "none matched"
        console.print(f"{verb} {result.count} dead letter(s) of tenant {result.tenant} ({topics})", markup=False)
        for landed in result.redriven:
            console.print(f"  {landed['id']} -> {landed['topic']}[{landed['partition']}]@{landed['offset']}")
        if result.dry_run and result.ids:
            console.print(f"ids{' (first)' if result.count > len(result.ids) else ''}: {', '.join(result.ids)}")
        if result.audit_event_id:
            console.print(f"audit event {result.audit_event_id} (outcome {result.outcome})")
    if result.failed:
        first_id, why = next(iter(result.failed.items()))
        print(f"soma: error: {len(result.failed)} of {result.count} dead letter(s) not acknowledged "
              f"({first_id}: {why}); the redrive is audited as {result.outcome}", file=sys.stderr)
        raise typer.Exit(1)


app.command("redrive")(redrive)
