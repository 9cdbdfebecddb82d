"""`python -m tests.support.admin_cli ...`: the `soma` CLI with the outbox admin commands wired in.

`soma.cli` registers `soma outbox list|stats|replay` and `soma admin` itself; until it does,
this adds them the same way, so the tests run the real commands through `soma.cli.main`
(one-line errors, exit codes) either way.
"""

from __future__ import annotations

import typer

from soma.cli import app, main, outbox_admin


def _group(name: str) -> typer.Typer | None:
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    return None


def wire() -> None:
    outbox = _group("outbox")
    if outbox is None:
        outbox = typer.Typer(no_args_is_help=True)
        app.add_typer(outbox, name="outbox")
    present = {command.name for command in outbox.registered_commands}
    for name, function in (("list", outbox_admin.list_events), ("stats", outbox_admin.stats),
                           ("replay", outbox_admin.replay)):
        if name not in present:
            outbox.command(name)(function)
    if _group("admin") is None:
        app.add_typer(outbox_admin.admin_app, name="admin")


if __name__ == "__main__":
    wire()
    main()
