"""The `soma` command: the one place that wires the core, the outbox and the streams together.

Each command group lives in its own module and imports its implementation only when a
command runs, so `soma --help` stays fast and a group's dependencies load only when used.
Expected failures (`SomaError`) print one line on stderr and exit 1; no traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from outbox import cli as outbox_cli
from outbox.admin import cli as admin_cli
from soma.cli import (
    bench_cmd,
    config_cmd,
    db,
    demo,
    events,
    platform,
    schemas,
    settings_cmd,
    stack,
    topics,
)
from soma.errors import SomaError

app = typer.Typer(
    name="soma",
    help="Soma Event Platform: Avro events on Kafka, a transactional outbox, Faust streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(schemas.app, name="schemas")
app.add_typer(db.app, name="db")
app.add_typer(outbox_cli.app, name="outbox")
app.add_typer(admin_cli.app, name="admin")
app.command("up")(platform.up)
app.command("down")(platform.down)
app.command("ps")(platform.ps)
app.command("health")(platform.health)
app.command("produce")(events.produce)
app.command("consume")(events.consume)
app.command("settings")(settings_cmd.show)
app.add_typer(config_cmd.app, name="config")
app.command("demo")(demo.demo)
app.add_typer(bench_cmd.app, name="bench")


def main() -> None:
    # A terminal command shows warnings and errors; librdkafka's transient warnings
    # (a coordinator still loading, a retried connection) only when they become errors.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("soma.librdkafka").setLevel(logging.ERROR)
    try:
        app()
    except SomaError as exc:
        from soma.observability.logs import structured_logging

        if structured_logging():  # a long-running process: its last line is a log line like the others
            logging.getLogger("soma").error("soma: error: %s", exc)
        else:
            print(f"soma: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("soma: interrupted", file=sys.stderr)
        sys.exit(130)
