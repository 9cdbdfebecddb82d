"""The architecture's rules, checked on the source: who reads the environment, who imports whom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("soma", "outbox", "streams", "soma_migrations")


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_settings_module_reads_the_environment() -> None:
    offenders = []
    for package in PACKAGES:
        for path in _modules(package):
            if path.is_relative_to(REPO / "soma" / "settings"):
                continue
            source = path.read_text()
            if "os.environ" in source or "os.getenv" in source or "getenv(" in source:
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("soma", {"outbox", "streams", "bench", "soma_migrations"}),
        ("outbox", {"streams", "bench", "soma_migrations"}),
        ("streams", {"outbox", "bench", "soma_migrations"}),
        ("soma_migrations", {"bench"}),  # joins outbox's and streams' tables for Alembic; nothing imports it
    ],
)
def test_imports_only_go_downward(package: str, forbidden: set[str]) -> None:
    # No exemption: the CLI names the upper layers' commands as "module:attr" strings (soma/cli/__init__.py),
    # and soma.ops.migrations finds soma_migrations by name with importlib.resources.
    offenders = [str(path.relative_to(REPO)) for path in _modules(package) if _imports(path) & forbidden]
    assert offenders == []


def test_the_cli_table_names_every_command_as_a_string() -> None:
    from soma.cli import COMMANDS

    for entry in COMMANDS:
        module, _, attr = entry.target.partition(":")
        assert module, entry
        assert attr, entry


def test_no_assert_used_for_validation_in_package_code() -> None:
    offenders = []
    for package in PACKAGES:
        for path in _modules(package):
            if any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(path.read_text()))):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme
    assert "make test" in ci


def test_readme_documents_every_setting() -> None:
    from soma.settings import Settings, env_name

    readme = (REPO / "README.md").read_text()
    missing = [env_name(name) for name in Settings.flat_fields() if f"`{env_name(name)}`" not in readme]
    assert missing == []
