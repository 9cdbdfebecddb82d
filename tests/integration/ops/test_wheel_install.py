"""The wheel, installed like a service would: a fresh venv in a temp folder outside the repository.

Built once per run (module fixture) from a copy of the packages, installed with the constraints
into a venv with nothing of the source tree on its path, then driven from the temp folder: `soma
topics list`, `soma db upgrade` into a schema of its own, and `examples/service.py`, which emits an
event through the outbox and consumes it back from Kafka while the installed `soma outbox relay`
runs. The catalog, schemas and migrations come from the installed package (importlib.resources).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import inspect

from soma.clients import database_engine
from soma.ops import processes
from soma.ops.isolation import isolated_run
from soma.settings import Settings
from tests.support.catalogs import SERVICE_TOPIC, service_catalog
from tests.support.procs import REPO

# Build and install bound the run: the dependency install is the slow part (measured: see below).
BUILD_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 600.0
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 3 * INSTALL_TIMEOUT_S + 300)
PIP = [sys.executable, "-m", "pip"]
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soma-events" / "wheelhouse"




@dataclass(frozen=True)
class Installed:
    """The venv the wheel went into, the folder the commands run in, and the run's isolated settings."""

    venv: Path
    workdir: Path
    settings: Settings
    timings: dict[str, float | str]

    def env(self, **extra: str) -> dict[str, str]:
        env = self.settings.child_env(**extra)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # nothing of the repository's interpreter
            env.pop(name, None)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        return env

    def run(self, *argv: str, timeout_s: float = 120.0, **extra: str) -> subprocess.CompletedProcess[str]:
        return processes.run_bounded(list(argv), timeout_s=timeout_s, env=self.env(**extra), cwd=self.workdir)

    def soma(self, *args: str, timeout_s: float = 120.0, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "soma"), *args, timeout_s=timeout_s, **extra)


def _copy_sources(target: Path) -> None:
    """What the wheel is built from (the packages, pyproject.toml, README.md), without caches or venvs."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for init in sorted(REPO.glob("*/__init__.py")):
        if init.parent.name != "tests":
            shutil.copytree(init.parent, target / init.parent.name, ignore=ignore)


def _install(python: Path, wheel: Path, cwd: Path) -> str:
    """Install `wheel` and its pinned dependencies into the venv of `python`; says where they came from.

    Resolving ~80 pinned packages against the index takes pip ~100 s here (one index page each,
    even with its HTTP cache), against ~20 s from a local folder of wheels. So the dependencies'
    wheels are kept in WHEELHOUSE (like pip's own cache, outside the repository), filled through the
    index the first time and again whenever a pin is missing from it.
    """
    # --no-compile: byte-compiling every dependency took half the install; imports compile what they use.
    constrained = [*PIP, "--python", str(python), "install", "-q", "--no-compile", "-c", str(REPO / "constraints.txt")]
    local = [*constrained, "--no-index", "--find-links", str(WHEELHOUSE), str(wheel)]
    if processes.run_bounded(local, timeout_s=INSTALL_TIMEOUT_S, cwd=cwd).returncode == 0:
        return "wheelhouse"
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    _checked(processes.run_bounded(
        [*PIP, "wheel", "-q", "-c", str(REPO / "constraints.txt"), "--find-links", str(WHEELHOUSE),
         "-w", str(WHEELHOUSE), str(wheel)],
        timeout_s=INSTALL_TIMEOUT_S, cwd=cwd,
    ), "pip wheel of the dependencies")
    for built in WHEELHOUSE.glob("soma_events-*.whl"):  # the platform's own wheel is built fresh every run
        built.unlink()
    _checked(processes.run_bounded(local, timeout_s=INSTALL_TIMEOUT_S, cwd=cwd), "pip install of the wheel")
    return "index, then wheelhouse"


def _checked(result: subprocess.CompletedProcess[str], what: str) -> str:
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{output}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel-install")
    assert not root.resolve().is_relative_to(REPO.resolve()), "the temp folder must be outside the repository"
    timings: dict[str, float | str] = {}

    started = time.monotonic()
    _copy_sources(root / "src")
    _checked(processes.run_bounded([*PIP, "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(root / "src")],
                                   timeout_s=BUILD_TIMEOUT_S, cwd=root), "pip wheel")
    wheels = sorted((root / "dist").glob("soma_events-*.whl"))
    assert len(wheels) == 1, wheels
    timings["build_s"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    venv = root / "venv"
    # No pip inside: the outer pip installs into it (--python), which saves the ensurepip step.
    _checked(processes.run_bounded([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout_s=120),
             "python -m venv")
    timings["install_source"] = _install(venv / "bin" / "python", wheels[0], root)
    timings["install_s"] = round(time.monotonic() - started, 1)

    workdir = root / "service"
    workdir.mkdir()
    shutil.copy2(REPO / "examples" / "service.py", workdir / "service.py")
    with isolated_run(stack, "wheel", uuid.uuid4().hex[:8], kafka_timeout_s=stack.kafka.timeout_s) as isolated:
        yield Installed(venv, workdir, isolated, timings)
    print(f"wheel install timings: {json.dumps(timings)}")


def test_the_installed_package_is_the_wheel_not_the_source_tree(installed: Installed) -> None:
    code = ("import json, sys, soma, soma_migrations; from soma.contracts.location import PACKAGED_DIR;"
            "print(json.dumps([soma.__file__, soma_migrations.__file__, str(PACKAGED_DIR), sys.path]))")
    files = json.loads(_checked(installed.run(str(installed.venv / "bin" / "python"), "-c", code), "python -c"))
    site = (installed.venv / "lib").resolve()
    for path in files[:3]:
        assert Path(path).resolve().is_relative_to(site), path
    assert not any(entry and Path(entry).resolve().is_relative_to(REPO.resolve()) for entry in files[3]), files[3]


def test_topics_list_reads_the_packaged_catalog(installed: Installed) -> None:
    out = _checked(installed.soma("topics", "list"), "soma topics list")
    for topic in ("chat.messages", "tool.requests", "outbox.audit", "dlq"):
        assert topic in out


def test_a_missing_catalog_dir_is_one_line_naming_the_setting(installed: Installed) -> None:
    missing = installed.workdir / "no-such-catalog"
    result = installed.soma("topics", "list", SOMA_CATALOG_DIR=str(missing))
    assert result.returncode == 1
    assert result.stderr.strip() == f"soma: error: SOMA_CATALOG_DIR={missing}: no such directory"


def test_a_service_catalog_dir_is_used_instead_of_the_packaged_one(installed: Installed) -> None:
    code = "from soma.contracts.location import PACKAGED_DIR; print(PACKAGED_DIR)"
    packaged = Path(_checked(installed.run(str(installed.venv / "bin" / "python"), "-c", code), "python -c").strip())
    own = service_catalog(packaged, installed.workdir / "catalog")  # the installed copy, plus a topic of its own
    out = _checked(installed.soma("topics", "list", SOMA_CATALOG_DIR=str(own)), "soma topics list (own catalog)")
    assert SERVICE_TOPIC in out


def test_db_upgrade_then_a_service_emits_and_consumes(installed: Installed) -> None:
    schema = installed.settings.database.database_schema
    assert _checked(installed.soma("db", "upgrade", timeout_s=180), "soma db upgrade").strip() == "database at head"
    engine = database_engine(installed.settings)
    try:
        assert {"outbox_events", "admin_audit", "alembic_version"} <= set(inspect(engine).get_table_names(schema))
    finally:
        engine.dispose()
    _checked(installed.soma("topics", "ensure"), "soma topics ensure")
    relay_log = installed.workdir / "relay.log"
    relay = [str(installed.venv / "bin" / "soma"), "outbox", "relay", "--no-metrics", "--quiet"]
    with processes.background(relay, relay_log, installed.env(), max_lifetime_s=300, grace_s=10,
                              cwd=installed.workdir):
        result = installed.run(str(installed.venv / "bin" / "python"), "service.py", "--timeout", "90",
                               timeout_s=150)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nrelay:\n{relay_log.read_text()[-3000:]}"
    assert result.stdout.startswith("example service: tenant 'example' emitted event ")
    assert " and consumed it back from " in result.stdout
