"""`soma schemas check|release`: the BACKWARD-compatibility gate over released schema versions."""

from __future__ import annotations

import typer

from soma.cli.context import console, err_console

app = typer.Typer(help="Check schema changes against released versions; release new versions.",
                  no_args_is_help=True)


@app.command("check")
def check() -> None:
    """Fail (exit 1) when a current schema cannot read data written with a released version."""
    from soma.contracts.catalog import load_catalog
    from soma.contracts.compat import check_compatibility as check_schemas

    schemas = load_catalog().schemas
    breakages = check_schemas(schemas)
    for breakage in breakages:
        err_console.print(str(breakage), soft_wrap=True)
    if breakages:
        raise typer.Exit(1)
    released = sum(len(versions) for versions in schemas.history.values())
    console.print(f"{len(schemas.current)} schemas read all {released} released versions (BACKWARD)")


@app.command("release")
def release() -> None:
    """Record each changed schema as its next version (after `check` passes)."""
    from soma.contracts.catalog import load_catalog
    from soma.contracts.compat import check_compatibility as check_schemas
    from soma.contracts.compat import release as release_schemas
    from soma.errors import SchemaCompatibilityError

    schemas = load_catalog().schemas
    breakages = check_schemas(schemas)
    if breakages:
        raise SchemaCompatibilityError(f"not released: {breakages[0]}")
    written = release_schemas(schemas)
    for path in written:
        console.print(f"released {path}")
    if not written:
        console.print("nothing to release: every schema matches its latest version")
