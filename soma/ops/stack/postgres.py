"""PostgreSQL from Debian's packages: start the packaged cluster, create the project's role and database.

Debian clusters are started and stopped with `pg_ctlcluster` (which works without systemd
given `--skip-systemctl-redirect`). A marker in the state folder records that *we* started
the cluster, so `soma stack down` stops it only in that case.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from soma.errors import StackError
from soma.ops.processes import run_bounded
from soma.ops.stack.system import apt_install, is_loopback, port_open
from soma.settings import Settings, env_name

CLUSTER = "main"

# Idempotent: creates or updates the role, creates the database when missing.
# Values arrive through psql variables (`:'name'` quotes a literal, `:"name"` an identifier);
# the password through `\getenv`, so it is on no command line.
PROVISION_SQL = r"""
\getenv soma_password SOMA_PG_PASSWORD
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'soma_user') AS soma_create_role \gset
\if :soma_create_role
CREATE ROLE :"soma_user" LOGIN PASSWORD :'soma_password';
\else
ALTER ROLE :"soma_user" LOGIN PASSWORD :'soma_password';
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'soma_db') AS soma_create_db \gset
\if :soma_create_db
CREATE DATABASE :"soma_db" OWNER :"soma_user";
\endif
"""


class LocalPostgres:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url()
        self.host = self.url.host or "127.0.0.1"
        self.port = self.url.port or 5432
        self.marker = settings.stack.state_dir.resolve() / "postgres" / "started-by-soma.json"

    def _installed_version(self) -> str | None:
        versions = sorted(
            (p.name for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "postgres").exists()),
            key=lambda v: int(v) if v.isdigit() else 0,
        )
        return versions[-1] if versions else None

    def _cluster_port(self, version: str) -> int | None:
        conf = Path(f"/etc/postgresql/{version}/{CLUSTER}/postgresql.conf")
        if not conf.exists():
            return None
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port":
                return int(value.split("#")[0].strip())
        return 5432

    def start(self) -> bool:
        """Start the local cluster unless the server already answers; True when we started it."""
        if port_open(self.host, self.port):
            return False
        if not is_loopback(self.host):
            raise StackError(f"postgresql: {env_name('database_url')} points at {self.host}, which is not reachable")
        version = self._installed_version()
        if version is None:
            apt_install("postgresql")
            version = self._installed_version()
            if version is None:
                raise StackError("postgresql: installed, but no server binary under /usr/lib/postgresql")
        cluster_port = self._cluster_port(version)
        if cluster_port is None:
            made = run_bounded(
                ["pg_createcluster", "--port", str(self.port), version, CLUSTER], timeout_s=120
            )
            if made.returncode != 0:
                raise StackError(f"postgresql: pg_createcluster failed: {made.stderr.strip()[-300:]}")
        elif cluster_port != self.port:
            raise StackError(
                f"postgresql: cluster {version}/{CLUSTER} listens on {cluster_port}, "
                f"but {env_name('database_url')} says port {self.port}"
            )
        result = run_bounded(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, "start"], timeout_s=120
        )
        if result.returncode != 0 and "already running" not in result.stderr:
            raise StackError(f"postgresql: pg_ctlcluster start failed: {result.stderr.strip()[-300:]}")
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(json.dumps({"version": version, "cluster": CLUSTER}))
        return True

    def provision(self) -> None:
        """Create the settings' role and database (local servers only, as the `postgres` OS user)."""
        if not is_loopback(self.host) or shutil.which("runuser") is None:
            return
        user, password, database = self.url.username, self.url.password, self.url.database
        if not (user and password and database):
            raise StackError(f"postgresql: {env_name('database_url')} needs a user, a password and a database")
        result = run_bounded(
            [
                "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-p", str(self.port), "-d", "postgres",
                "-v", f"soma_user={user}", "-v", f"soma_db={database}",
                "-f", "-",
            ],
            timeout_s=60,
            input_text=PROVISION_SQL,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SOMA_PG_PASSWORD": str(password)},
        )
        if result.returncode != 0:
            raise StackError(f"postgresql: creating role/database failed: {result.stderr.strip()[-300:]}")

    def stop(self) -> bool:
        """Stop the cluster if (and only if) `start` started it."""
        if not self.marker.exists():
            return False
        started = json.loads(self.marker.read_text())
        result = run_bounded(
            ["pg_ctlcluster", "--skip-systemctl-redirect", started["version"], started["cluster"], "stop",
             "-m", "fast"],
            timeout_s=90,
        )
        if result.returncode != 0 and "not running" not in result.stderr:
            raise StackError(f"postgresql: pg_ctlcluster stop failed: {result.stderr.strip()[-300:]}")
        self.marker.unlink()
        return True
