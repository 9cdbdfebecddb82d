"""`soma topics ensure|list|docs`: the catalog on the broker, and its rendered documentation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from soma.cli.context import console, settings

if TYPE_CHECKING:
    from soma.contracts.topics import TopicState

app = typer.Typer(help="Create catalog topics, compare catalog vs broker, render docs/topics.md.",
                  no_args_is_help=True)

STYLE = {"created": "green", "ok": "green", "updated": "green", "drift": "yellow", "missing": "red",
         "undocumented": "yellow"}


def _print(states: list[TopicState], title: str) -> None:
    prefix = settings().kafka.topic_prefix
    env = settings().kafka.env
    notes = [f"physical names: {prefix}<topic>" if prefix else "", f"environment {env} (SOMA_ENV)" if env else ""]
    caption = "; ".join(note for note in notes if note) or None
    table = Table("topic", "state", "detail", title=title, caption=caption)
    for state in states:
        detail = "see below" if state.state == "drift" else state.detail
        table.add_row(state.topic, f"[{STYLE[state.state]}]{state.state}[/]", detail)
    console.print(table)
    # Drift needs an operator's decision: say it in full, one line per topic.
    for state in states:
        if state.state == "drift":
            console.print(f"{state.topic}: drift: {state.detail}", soft_wrap=True)


@app.command("ensure")
def ensure(
    grow_partitions: bool = typer.Option(
        False, "--grow-partitions",
        help="Add partitions to existing topics that have fewer than wanted (keys may then map to other partitions).",
    ),
) -> None:
    """Create missing topics (catalog and Faust's) as SOMA_ENV asks, set min ISR; report drift (exit 2)."""
    from soma.contracts.catalog import catalog_for
    from soma.contracts.topics import ensure as ensure_topics

    states = ensure_topics(settings(), catalog_for(settings()), grow_partitions=grow_partitions)
    _print(states, "soma topics ensure")
    if any(state.state == "drift" for state in states):
        raise typer.Exit(2)


@app.command("list")
def list_topics() -> None:
    """Catalog vs broker: ok, drift, missing, and topics under the prefix the catalog does not document."""
    from soma.contracts.catalog import catalog_for
    from soma.contracts.topics import compare

    _print(compare(settings(), catalog_for(settings())), "catalog vs broker")


@app.command("docs")
def docs(
    output: Path = typer.Option(Path("docs/topics.md"), "--output", "-o", help="Where to write the Markdown."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the file is stale, instead of writing it."),
) -> None:
    """Render the topic catalog as Markdown (docs/topics.md is committed; a test keeps it fresh)."""
    from soma.contracts.catalog import load_catalog
    from soma.contracts.topic_docs import render_markdown

    text = render_markdown(load_catalog())
    if check:
        if not output.exists() or output.read_text() != text:
            console.print(f"{output} is stale: run `soma topics docs`")
            raise typer.Exit(1)
        console.print(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    console.print(f"wrote {output}")
