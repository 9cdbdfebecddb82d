"""Where the catalog and the migrations come from: package data found with importlib.resources, or SOMA_CATALOG_DIR."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from soma.contracts.catalog import load_catalog
from soma.contracts.location import CATALOG_FILE, PACKAGED_DIR, SCHEMA_DIR, catalog_dir
from soma.errors import CatalogError
from soma.ops.migrations import alembic_config, script_location
from soma.settings import load_settings
from tests.support.catalogs import SERVICE_TOPIC, service_catalog


@pytest.fixture
def own_catalog(tmp_path: Path) -> Path:
    """A service's catalog directory: a copy of the packaged one plus a topic of its own."""
    return service_catalog(PACKAGED_DIR, tmp_path / "catalog")


def test_the_packaged_catalog_is_package_data_of_soma() -> None:
    assert Path(str(resources.files("soma") / "catalog")) == PACKAGED_DIR
    assert CATALOG_FILE == PACKAGED_DIR / "topics.yaml"
    assert CATALOG_FILE.is_file()
    assert SCHEMA_DIR == PACKAGED_DIR / "schemas"
    assert sorted(SCHEMA_DIR.glob("*.avsc"))
    assert catalog_dir(load_settings(_env_file=None, catalog_dir=None)) == PACKAGED_DIR
    assert catalog_dir(load_settings(_env_file=None, catalog_dir=" ")) == PACKAGED_DIR  # empty: unset


def test_the_setting_points_every_default_load_at_a_service_catalog(
    own_catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = load_catalog(settings=load_settings(catalog_dir=own_catalog))
    assert catalog.path == own_catalog.resolve() / "topics.yaml"
    assert catalog.schemas.directory == own_catalog.resolve() / "schemas"
    assert catalog.topic(SERVICE_TOPIC).value_schema == "soma.events.ChatMessage"
    # Without settings given, load_catalog reads them (the environment), as the CLI and the streams do.
    monkeypatch.setenv("SOMA_CATALOG_DIR", str(own_catalog))
    assert load_catalog() is catalog  # loaded once per directory
    monkeypatch.delenv("SOMA_CATALOG_DIR")
    assert SERVICE_TOPIC not in load_catalog().topics


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("missing", "no such directory"),
        ("file", "not a directory"),
        ("no-topics", "no topics.yaml in it"),
        ("no-schemas", "no schemas/ directory of .avsc files in it"),
    ],
)
def test_a_wrong_catalog_dir_is_one_line_naming_the_setting(own_catalog: Path, breakage: str, problem: str) -> None:
    target = own_catalog
    if breakage == "missing":
        target = own_catalog.parent / "nowhere"
    elif breakage == "file":
        target = own_catalog / "topics.yaml"
    elif breakage == "no-topics":
        (own_catalog / "topics.yaml").unlink()
    else:
        shutil.rmtree(own_catalog / "schemas")
    with pytest.raises(CatalogError) as caught:
        load_catalog(settings=load_settings(catalog_dir=target))
    assert str(caught.value) == f"SOMA_CATALOG_DIR={target}: {problem}"


def test_a_service_catalog_with_a_bad_topic_names_its_own_file_and_line(own_catalog: Path) -> None:
    text = (own_catalog / "topics.yaml").read_text()
    head, _, own = text.rpartition(f"- name: {SERVICE_TOPIC}")
    own = own.replace("soma.events.ChatMessage", "soma.events.Order")
    (own_catalog / "topics.yaml").write_text(f"{head}- name: {SERVICE_TOPIC}{own}")
    with pytest.raises(CatalogError, match=rf"^topics.yaml:\d+: topic '{SERVICE_TOPIC}': unknown value_schema"):
        load_catalog(settings=load_settings(catalog_dir=own_catalog))


def test_the_cli_reads_the_setting_from_any_working_directory(own_catalog: Path, tmp_path: Path) -> None:
    env = load_settings().child_env(SOMA_CATALOG_DIR=str(own_catalog))
    ok = subprocess.run([sys.executable, "-m", "soma", "topics", "docs", "--output", "topics.md"], cwd=tmp_path,
                        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert SERVICE_TOPIC in (tmp_path / "topics.md").read_text()
    env["SOMA_CATALOG_DIR"] = str(tmp_path / "nowhere")
    bad = subprocess.run([sys.executable, "-m", "soma", "schemas", "check"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        1, "", f"soma: error: SOMA_CATALOG_DIR={tmp_path / 'nowhere'}: no such directory\n"
    )


def test_the_migrations_are_package_data_found_without_alembic_ini() -> None:
    location = script_location()
    assert location == Path(str(resources.files("soma_migrations")))
    config = alembic_config()
    assert config.config_file_name is None  # built in code
    scripts = ScriptDirectory.from_config(config)
    assert len(scripts.get_heads()) == 1
    revisions = list(scripts.walk_revisions())
    assert all(Path(str(rev.path)).parent == location / "versions" for rev in revisions)
    assert revisions[-1].down_revision is None  # the chain reaches the first migration
