"""What PostgreSQL itself allows the relay: pgbench running the relay's own claim and mark statements.

One pgbench transaction is one relay batch without Kafka and without Python: the claim
(`outbox.relay.claim.CLAIM_SQL`, its rows aggregated into the literals the next statements
take, payload bytes summed so the values are read), the fresh-snapshot key check
(`KEY_BLOCKERS`), the set-based mark
(`MARK_SENT`), commit. The statement texts are imported, so the ceiling follows the relay's
SQL. Rows/s = batches/s x rows per batch, over a fixed number of batches (the pending rows
loaded for it), bounded by a timeout. pgbench is looked for on PATH and in the Debian
PostgreSQL directories; without it the caller gets a clear message instead of a number.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from outbox.relay.claim import CLAIM_SQL, KEY_BLOCKERS, KEY_LOCK_CLASS, MARK_SENT
from outbox.relay.policy import FairShare
from soma.settings import Settings

MISSING = "pgbench not found (PATH, /usr/lib/postgresql/*/bin): install the PostgreSQL client tools for the ceiling"


def find_pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)
    return candidates[0] if candidates else None


def _literal(expr: str, name: str) -> str:
    """A claimed column as one quoted literal pgbench substitutes raw: a comma list."""
    return f"COALESCE(quote_literal(string_agg(({expr})::text, ',' ORDER BY ord)), quote_literal('')) AS {name}"


def script() -> str:
    """The pgbench script of one relay batch (pgbench variables are the statements' own :names)."""
    claim = " ".join(CLAIM_SQL.split())
    columns = [_literal("id", "ids"), _literal("0", "partitions"), _literal("7", "offsets"),
               _literal("extract(epoch FROM clock_timestamp())::float8", "acked_at")]
    select = f"SELECT {', '.join(columns)}, COALESCE(sum(octet_length(payload)), 0) AS payload_bytes"
    claimed = f"{select} FROM (SELECT *, row_number() OVER () AS ord FROM ({claim}) b) c WHERE id IS NOT NULL \\gset"  # noqa: S608
    blockers = " ".join(str(KEY_BLOCKERS).split())  # its :ids are the claimed ids, as MARK_SENT's
    mark = " ".join(str(MARK_SENT).split())
    return "\n".join(["BEGIN;", claimed, f"{blockers};", f"{mark};", "COMMIT;", ""])


@dataclass(frozen=True)
class Ceiling:
    rows_per_s: float
    batches_per_s: float
    latency_ms: float
    clients: int
    statements: dict[str, float]  # pgbench -r: average ms per batch of each statement


STATEMENT_NAMES = {"SELECT COALESCE": "claim", "WITH c AS": "key check",
                   "UPDATE": "mark sent", "COMMIT": "commit"}


def _statements(stdout: str) -> dict[str, float]:
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"\s+([0-9.]+)\s+\d+\s+(.*)", line)
        if match:
            for prefix, name in STATEMENT_NAMES.items():
                if match.group(2).startswith(prefix):
                    found[name] = float(match.group(1))
    return found


def sent_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox_events WHERE status = 'sent'")).scalar() or 0)


def run(settings: Settings, engine: Engine, batches: int, clients: int, timeout_s: float) -> Ceiling | str:
    """Run `batches` relay batches (split over `clients` connections) on the pending rows loaded
    in `engine`'s schema; a Ceiling (rows/s from the rows actually marked sent), or why not."""
    pgbench = find_pgbench()
    if pgbench is None:
        return MISSING
    relay = settings.relay
    plan = FairShare(relay.batch_size, relay.tenant_quota, relay.tenant_quotas).plan({})
    defines = {
        "after": "''", "tenants": "'{}'", "quotas": "'{}'", "limits": "'{}'", "quota": str(plan.quota),
        "max_tenants": str(plan.max_tenants), "batch_size": str(plan.batch_size), "key_lock": str(KEY_LOCK_CLASS),
    }
    url = settings.sqlalchemy_url()
    path = Path(f"/tmp/relay-ceiling-{os.getpid()}.sql")  # noqa: S108 - a throwaway script
    path.write_text(script())
    options = f"-c search_path={settings.database.database_schema} -c jit=off -c synchronous_commit=off"
    env = dict(os.environ, PGPASSWORD=url.password or "", PGOPTIONS=options)
    command = [pgbench, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "",
               "-n", "-r", "-M", "simple", "-c", str(clients), "-j", str(clients),
               "-t", str(max(1, batches // clients)), "-f", str(path)]
    for name, value in defines.items():
        command += ["-D", f"{name}={value}"]
    before = sent_rows(engine)
    try:
        result = subprocess.run([*command, url.database or ""], capture_output=True, text=True, env=env,
                                timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return f"pgbench did not finish {batches} batches within {timeout_s:.0f} s"
    finally:
        path.unlink()
    tps = re.search(r"tps = ([0-9.]+)", result.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", result.stdout)
    if result.returncode != 0 or tps is None:
        return f"pgbench failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}"
    per_s = float(tps.group(1))
    done = re.search(r"actually processed: ([0-9]+)", result.stdout)
    seconds = int(done.group(1)) / per_s if done and per_s > 0 else 0.0
    rows = sent_rows(engine) - before
    return Ceiling(rows / seconds if seconds else 0.0, per_s, float(latency.group(1)) if latency else 0.0, clients,
                   _statements(result.stdout))
