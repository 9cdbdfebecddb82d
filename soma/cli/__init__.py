"""The `soma` command: a table of the commands each layer contributes, loaded when one runs.

`soma.cli` only composes: each entry names its command as a `"module:attr"` string (a Typer
app or a function), imported only when that command runs, so `soma --help` stays fast and the
core never imports a layer above it (outbox, streams, bench). Expected failures (`SomaError`)
print one line on stderr and exit 1; no traceback.
"""

from __future__ import annotations

import logging
import sys

from soma.cli.lazy import Entry, LazyGroup
from soma.errors import SomaError

# In the order `soma --help` lists them.
COMMANDS: tuple[Entry, ...] = (
    Entry("up", "soma.cli.platform:up",
          "Run the platform: the stack, migrations, topics, then the relay, admin API and streams, supervised."),
    Entry("down", "soma.cli.platform:down",
          "Stop a running platform (its supervisor stops the components); the stack stays up unless --stack."),
    Entry("ps", "soma.cli.platform:ps",
          "The platform's components: state, pid, restarts, uptime, health URL (from the supervisor's state file)."),
    Entry("health", "soma.cli.platform:health",
          "Stack health plus every component's /readyz in one table; exit 1 naming whatever is not ready."),
    Entry("produce", "soma.cli.events:produce",
          "Validate every event, then send them and print partition/offset once the broker acknowledged each."),
    Entry("consume", "soma.cli.events:consume",
          "Print one JSON object per record: topic, partition, offset, key, headers and the decoded value."),
    Entry("settings", "soma.cli.settings_cmd:show",
          "Print the effective settings (environment and .env applied; secrets masked)."),
    Entry("demo", "bench.cli:demo",
          "Drive two tenants through the running platform and show what happened at each hop."),
    Entry("stack", "soma.cli.stack:app",
          "Provision, start, stop and check the local Kafka / PostgreSQL / Redis stack."),
    Entry("topics", "soma.cli.topics:app",
          "Create catalog topics, compare catalog vs broker, render docs/topics.md."),
    Entry("schemas", "soma.cli.schemas:app",
          "Check schema changes against released versions; release new versions."),
    Entry("db", "soma.cli.db:app",
          "Database migrations (Alembic): the only way the schema changes."),
    Entry("outbox", "outbox.cli:app",
          "The transactional outbox: emit events into it, relay it to Kafka."),
    Entry("admin", "outbox.admin.cli:app",
          "The outbox admin HTTP API (inspection and replay)."),
    Entry("dlq", "outbox.admin.dlq_cli:app",
          "Dead letters: list and show them decoded, redrive them to their source topic (audited)."),
    Entry("sleep", "outbox.admin.sleep_cli:app",
          "Cognitive sleep per tenant: show or set its state and policy (audited)."),
    Entry("config", "soma.cli.config_cmd:app",
          "Live settings: publish changes on config_updates and show the effective values."),
    Entry("bench", "bench.cli:app",
          "Benchmarks against the running platform (loopback only)."),
)

app = LazyGroup(
    name="soma",
    entries=COMMANDS,
    help="Soma Event Platform: Avro events on Kafka, a transactional outbox, Faust streams.",
    no_args_is_help=True,
)


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
