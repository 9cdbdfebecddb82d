"""The optional local schema registry: its pinned version, where it lives, and `stack status` rows."""

from __future__ import annotations

from pathlib import Path

from soma.ops.stack import status
from soma.ops.stack.registry import LocalRegistry, registry_version
from soma.settings import Settings, load_settings


def test_the_pom_pins_an_apicurio_version_that_runs_on_java_17() -> None:
    # 3.x is compiled for Java 21 (class file 65): the stack's Java is 17.
    assert registry_version().startswith("2.")


def test_the_download_is_cached_in_the_state_folder_and_the_run_files_may_live_elsewhere(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, state_dir=str(tmp_path / "state"), stack_registry_port="18999")
    default = LocalRegistry(settings)
    elsewhere = LocalRegistry(settings, run_dir=tmp_path / "run")
    assert default.dist == elsewhere.dist == (tmp_path / "state" / "registry" / f"apicurio-{registry_version()}")
    assert default.daemon.pid_file == tmp_path / "state" / "registry" / "registry.pid"
    assert elsewhere.daemon.pid_file == tmp_path / "run" / "registry.pid"
    assert default.url == "http://127.0.0.1:18999/apis/ccompat/v7"
    assert default.daemon.pid() is None  # nothing started: no pid file
    assert default.stop() is False


def _down(tmp_path: Path, **flat: str) -> Settings:
    """Settings where nothing answers (each backend at port 1, short deadlines)."""
    return load_settings(_env_file=None, state_dir=str(tmp_path), kafka_bootstrap="127.0.0.1:1",
                         kafka_timeout_s="1", database_url="postgresql+psycopg://u:p@127.0.0.1:1/db",
                         database_timeout_s="1", redis_url="redis://127.0.0.1:1/0", redis_timeout_s="1", **flat)


def test_unreachable_registry_is_a_status_row_naming_the_setting(tmp_path: Path) -> None:
    settings = _down(tmp_path, schema_registry_url="http://u:hunter2@127.0.0.1:1/apis/ccompat/v7")
    row = next(row for row in status(settings) if row.service == "schema-registry")
    assert not row.healthy
    assert row.managed_by == "external"
    assert row.detail.startswith("schema-registry: unreachable at http://u:***@127.0.0.1:1/apis/ccompat/v7 "
                                 "(SOMA_SCHEMA_REGISTRY_URL): ")
    assert "hunter2" not in row.detail


def test_the_local_registrys_row_names_its_port_setting(tmp_path: Path) -> None:
    row = next(row for row in status(_down(tmp_path, stack_registry="apicurio", stack_registry_port="1"))
               if row.service == "schema-registry")
    assert not row.healthy
    assert row.detail.startswith("schema-registry: unreachable at http://127.0.0.1:1/apis/ccompat/v7 "
                                 "(SOMA_STACK_REGISTRY_PORT): ")


def test_no_registry_or_mock_has_no_status_row(tmp_path: Path) -> None:
    for settings in (_down(tmp_path), _down(tmp_path, schema_registry_url="mock://x")):
        assert "schema-registry" not in {row.service for row in status(settings)}
