"""A command group whose commands are `"module:attr"` strings, imported only when one runs.

The group's help lists every command from the table alone (name and short help), so `soma
--help` imports no command module; running (or asking for the help of) one command imports its
module then. A target is a `typer.Typer` (a command group) or a function (one command).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Entry:
    """One command of the table: its name, where it lives (`"module:attr"`) and its one-line help."""

    name: str
    target: str
    help: str


def load(entry: Entry) -> Any:
    """The object `entry.target` names (imports its module)."""
    module, _, attr = entry.target.partition(":")
    return getattr(importlib.import_module(module), attr)


def command(entry: Entry) -> Any:
    """The click command for `entry`: a Typer app becomes a group, a function a single command."""
    target = load(entry)
    if isinstance(target, typer.Typer):
        # get_group, not get_command: a sub-app never shows the completion options.
        return typer.main.get_group(target)
    single = typer.Typer(add_completion=False)
    single.command(entry.name)(target)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A TyperGroup holding placeholders (name + help) until a command is resolved."""

    def __init__(self, *, entries: Sequence[Entry], **attrs: Any) -> None:
        # The placeholders keep the table's order and feed typer's "did you mean" suggestions.
        super().__init__(commands=[TyperCommand(e.name, help=e.help) for e in entries], **attrs)
        self.entries = {e.name: e for e in entries}
        self._loaded: set[str] = set()
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if not self._listing and cmd_name in self.entries and cmd_name not in self._loaded:
            self.commands[cmd_name] = command(self.entries[cmd_name])
            self._loaded.add(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The listing reads only the placeholders: nothing is imported for `soma --help`.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
