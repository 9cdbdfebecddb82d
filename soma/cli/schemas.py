"""`soma schemas check|release|typed`: the BACKWARD-compatibility gate, and the typed events module."""

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


@app.command("typed")
def typed(
    check_only: bool = typer.Option(False, "--check", help="Only compare: exit 1 when the module is out of date."),
) -> None:
    """Regenerate soma/contracts/typed.py (one TypedDict per schema, emit's overloads per topic)."""
    from soma.contracts.catalog import load_catalog
    from soma.contracts.typedgen import TYPED_MODULE, render

    source = render(load_catalog())
    current = TYPED_MODULE.read_text() if TYPED_MODULE.exists() else ""
    if check_only:
        if current != source:
            err_console.print(f"{TYPED_MODULE} is out of date: run `soma schemas typed`", soft_wrap=True)
            raise typer.Exit(1)
        console.print(f"{TYPED_MODULE.name} matches the schemas")
        return
    if current == source:
        console.print(f"{TYPED_MODULE.name} already matches the schemas")
        return
    TYPED_MODULE.write_text(source)
    console.print(f"wrote {TYPED_MODULE}")
