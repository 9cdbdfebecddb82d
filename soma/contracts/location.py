"""Where the catalog lives: the directory shipped in the package, or a service's own (`SOMA_CATALOG_DIR`).

A catalog directory holds `topics.yaml` and `schemas/` (the current `.avsc` files, released
versions under `schemas/history/<FullName>/v<N>.avsc`). The packaged one is `soma/catalog/`,
found with `importlib.resources`, so an installed wheel reads it wherever it is installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from soma.errors import CatalogError

if TYPE_CHECKING:
    from soma.settings import Settings

CATALOG_NAME = "topics.yaml"
SCHEMAS_NAME = "schemas"
SETTING = "SOMA_CATALOG_DIR"


def _packaged() -> Path:
    root = resources.files("soma") / "catalog"
    # pip installs wheels as files; a zip import would need extracting, which nothing here does.
    if not isinstance(root, Path):
        raise CatalogError(f"the packaged catalog is not a directory on disk ({root}): set {SETTING}")
    return root


PACKAGED_DIR = _packaged()
CATALOG_FILE = PACKAGED_DIR / CATALOG_NAME
SCHEMA_DIR = PACKAGED_DIR / SCHEMAS_NAME


def catalog_dir(settings: Settings) -> Path:
    """The catalog directory the settings name (checked: one line naming the setting), else the packaged one."""
    configured = settings.catalog.dir
    if configured is None:
        return PACKAGED_DIR
    directory = Path(configured).expanduser()
    if not directory.exists():
        raise CatalogError(f"{SETTING}={configured}: no such directory")
    if not directory.is_dir():
        raise CatalogError(f"{SETTING}={configured}: not a directory")
    if not (directory / CATALOG_NAME).is_file():
        raise CatalogError(f"{SETTING}={configured}: no {CATALOG_NAME} in it")
    if not (directory / SCHEMAS_NAME).is_dir():
        raise CatalogError(f"{SETTING}={configured}: no {SCHEMAS_NAME}/ directory of .avsc files in it")
    return directory.resolve()
