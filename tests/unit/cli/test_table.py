"""`soma` composes its commands from a table of "module:attr" strings, imported only when one runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from soma.cli import COMMANDS, app
from soma.cli.lazy import Entry, command
from tests.support.procs import REPO

# What `soma --help` must not import: the command modules and the layers above the core.
HEAVY = ("bench", "outbox", "streams", "soma.cli.platform", "soma.cli.events", "soma.cli.config_cmd",
         "soma.cli.outbox", "soma.cli.stack", "soma.ops", "confluent_kafka", "sqlalchemy", "alembic")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                          check=False)


def test_help_lists_the_table_and_imports_no_command_module() -> None:
    result = _python(
        "import json, sys\n"
        "from soma.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='soma')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert result.returncode == 0, result.stderr
    *help_lines, modules_line = result.stdout.strip().splitlines()
    loaded = json.loads(modules_line)
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []
    listing = "\n".join(help_lines)
    for entry in COMMANDS:
        assert entry.name in listing


@pytest.mark.parametrize("entry", COMMANDS, ids=[e.name for e in COMMANDS])
def test_each_entry_loads_and_its_help_is_the_commands_own(entry: Entry) -> None:
    loaded = command(entry)
    own = (loaded.short_help or loaded.help or "").split("\n\n")[0].replace("\n", " ").strip()
    assert own == entry.help


def test_names_are_unique_and_listed_in_table_order() -> None:
    names = [e.name for e in COMMANDS]
    assert len(set(names)) == len(names)
    assert app.list_commands(None) == names  # type: ignore[arg-type]


def test_an_expected_failure_is_one_line_on_stderr_and_exit_1() -> None:
    result = subprocess.run([sys.executable, "-m", "soma", "config", "set", "NOT_A_SETTING", "1"], capture_output=True,
                            text=True, cwd=REPO, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("soma: error: 'NOT_A_SETTING' is not a live setting; live: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_command_suggests_the_closest_one() -> None:
    result = subprocess.run([sys.executable, "-m", "soma", "topcs"], capture_output=True, text=True, cwd=REPO,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "Did you mean 'topics'?" in result.stderr
