"""Apicurio Registry, a Confluent-compatible schema registry, run from Maven Central (optional).

With ``SOMA_STACK_REGISTRY=apicurio``, `registry-pom.xml` (beside this file) pins the version;
Maven fetches the application's published Quarkus distribution (`apicurio-registry-app`,
classifier `all`, a tar.gz) into the state folder's cache and unpacks it once. The registry
runs its default storage (an embedded H2 database, here in a file under the state folder, so
schemas survive a restart) as a plain `java -jar` child recorded in a pid file: it needs no
other service. Clients use its Confluent API at ``/apis/ccompat/v7``
(``StackSettings.local_registry_url``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from soma.errors import InfrastructureUnavailable, StackError, first_line
from soma.observability.health import Health
from soma.ops.processes import Daemon
from soma.ops.stack.maven import maven_fetch, pom_property
from soma.settings import Settings, env_name, mask_url

POM = "registry-pom.xml"
CHECK_TIMEOUT_S = 5.0


def registry_version() -> str:
    """The Apicurio Registry version pinned in `registry-pom.xml`."""
    return pom_property(POM, "apicurio.version")


def registry_check(url: str, setting: str = "schema_registry_url") -> Health:
    """List the subjects through confluent-kafka's client: the Confluent API itself answers.

    `setting` (a flat name) is the one a failure names: where the URL came from.
    """
    from confluent_kafka.schema_registry import SchemaRegistryClient

    shown = mask_url(url)
    client = SchemaRegistryClient({"url": url, "timeout": CHECK_TIMEOUT_S, "max.retries": 0})
    try:
        subjects = client.get_subjects()
    # Besides SchemaRegistryError, the client lets its HTTP library's transport errors through
    # (httpx or httpx2, whichever it was installed with): any failure is "unreachable", in one line.
    except Exception as exc:
        raise InfrastructureUnavailable(
            f"schema-registry: unreachable at {shown} ({env_name(setting)}): {first_line(exc)}"
        ) from exc
    return Health("schema-registry", shown, f"Confluent API ok, {len(subjects)} subjects")


class LocalRegistry:
    def __init__(self, settings: Settings, run_dir: Path | None = None) -> None:
        """`run_dir` (default: the state folder's `registry/`) holds the pid file, the log and the data."""
        self.settings = settings
        cached = settings.stack.state_dir.resolve() / "registry"
        self.home = run_dir or cached
        self.version = registry_version()
        self.dist = cached / f"apicurio-{self.version}"
        self.data = self.home / "data"
        self.runner = self.dist / f"apicurio-registry-app-{self.version}-runner.jar"
        self.host, self.port = "127.0.0.1", settings.stack.registry_port
        # The runner jar's name marks our process: a recycled pid is never signalled.
        self.daemon = Daemon("schema-registry", self.home / "registry.pid", self.runner.name)

    @property
    def log_file(self) -> Path:
        return self.home / "registry.log"

    @property
    def url(self) -> str:
        return self.settings.stack.local_registry_url

    def fetch(self) -> bool:
        """Fetch and unpack the distribution unless already there; True when it downloaded."""
        cache = self.settings.stack.state_dir.resolve() / "cache" / "m2"
        what = f"schema-registry:apicurio-registry-app:{self.version} (classifier all, tar.gz)"
        # Its "already unpacked" markers go to a throw-away folder, not beside the packaged pom
        # (the default, `target/` there: inside the installed package, and a stale skip later).
        with tempfile.TemporaryDirectory(prefix="soma-mvn-markers-") as markers:
            goal = ["dependency:unpack-dependencies", f"-DmarkersDirectory={markers}"]
            return maven_fetch(POM, goal, self.dist, cache, what, expect=self.runner.name)

    def start(self) -> int:
        """Fetch if needed and start the registry (returns at once; the caller waits for health)."""
        pid = self.daemon.pid()
        if pid is not None:
            return pid
        self.fetch()
        argv = [
            "java", f"-Xmx{self.settings.stack.registry_heap}", "-Xms64m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: starts faster, and a registry is not CPU-bound
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.host={self.host}", f"-Dquarkus.http.port={self.port}",
            # Its default storage (H2) in a file instead of memory: schema ids outlive a restart,
            # as the records framed with them do in the broker.
            f"-Dquarkus.datasource.jdbc.url=jdbc:h2:file:{self.data / 'registry_db'}",
            "-Dquarkus.datasource.jdbc.min-size=1", "-Dquarkus.datasource.jdbc.initial-size=1",
            "-Dquarkus.datasource.jdbc.max-size=8",
            "-jar", str(self.runner),
        ]
        return self.daemon.start(argv, self.log_file)

    def wait_healthy(self, timeout_s: float) -> Health:
        """Poll the Confluent API until it answers, the process dies, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            died = self.exited_early()
            if died:
                raise StackError(f"schema-registry: exited during start-up: {died}")
            try:
                return registry_check(self.url, "stack_registry_port")
            except InfrastructureUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise StackError(f"not healthy after {timeout_s:.0f}s: {exc}") from exc
            time.sleep(0.5)

    def exited_early(self) -> str | None:
        """When the registry we started has died, the last lines of its log."""
        if self.daemon.pid_file.exists() and self.daemon.pid() is None and self.log_file.exists():
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-3:])
        return None

    def stop(self) -> bool:
        return self.daemon.stop(grace_s=15)
