"""The platform's components, their readiness URLs and dependencies, and the order they start in.

A component starts once every component it depends on is ready; the declared list order breaks
ties. Dependencies say what a component needs to do its job: the conversation worker needs the
tools stream (its tool calls) and the replicator (its memory writes), the segmenter the
integrator (its input). Everything needs the infrastructure, which `soma up` brings up, migrates
and provisions (topics) before any component starts. Stopping goes the other way: dependents
first (by level), so nothing loses what it needs while it is still working.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from soma.errors import SomaError
from soma.settings import Settings


@dataclass(frozen=True)
class StreamTopology:
    """One stream process: its module (`faust -A streams.<name> worker`), web port and needs.

    The one declaration of the stream topology: the streams, the supervisor, the demo and the
    compose tests all read it from here.
    """

    name: str
    port_offset: int  # from SOMA_STREAMS_WEB_PORT_BASE
    sources: tuple[str, ...]  # catalog topics it reads; the first fixes its tables' partitions
    tables: tuple[str, ...] = ()  # its Faust tables: each has a changelog topic `soma topics ensure` provisions
    depends_on: tuple[str, ...] = ()  # component names

    @property
    def component(self) -> str:
        return f"stream-{self.name}"

    def web_port(self, settings: Settings) -> int:
        return settings.streams.web_port_base + self.port_offset

    def base_url(self, settings: Settings) -> str:
        return _http(settings.streams.web_host, self.web_port(settings))


# In start order: the worker needs the tools stream (its tool calls) and the replicator (its
# memory writes); the segmenter needs the integrator (its input).
STREAMS: tuple[StreamTopology, ...] = (
    StreamTopology("replicator", 4, ("memory.writes",)),
    StreamTopology("tools", 1, ("tool.requests",)),
    StreamTopology("worker", 0, ("chat.messages", "tool.results"), ("sessions",),
                   ("stream-tools", "stream-replicator")),
    StreamTopology("integrator", 2, ("cog.predictor_updates", "cog.sleep_requests"), ("tenants",)),
    StreamTopology("segmenter", 3, ("cog.global_frame",), ("segmenter_tenants",), ("stream-integrator",)),
)


def stream_topology(name: str) -> StreamTopology:
    """The declared stream `name`; `SpecError` naming the known ones otherwise."""
    for stream in STREAMS:
        if stream.name == name:
            return stream
    raise SpecError(f"unknown stream {name!r} (known: {', '.join(s.name for s in STREAMS)})")


class SpecError(SomaError):
    """The declared components are inconsistent (unknown dependency, cycle, duplicate)."""


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    argv: tuple[str, ...]
    base_url: str  # where /healthz and /readyz are served
    marker: str  # a substring of the child's command line: signals go only to a pid that shows it
    depends_on: tuple[str, ...] = ()
    disabled: str = ""  # why the component does not run ("" = it runs)

    @property
    def ready_url(self) -> str:
        return f"{self.base_url}/readyz"

    @property
    def health_url(self) -> str:
        return f"{self.base_url}/healthz"


def _http(host: str, port: int) -> str:
    # A wildcard listen address is reached on loopback.
    reach = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - compared, not bound
    return f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"


def _tool(bin_dir: Path, script: str, module: str) -> tuple[str, ...]:
    path = bin_dir / script
    return (str(path),) if path.exists() else (sys.executable, "-m", module)


def stream_argv(name: str, bin_dir: Path | None = None) -> tuple[str, ...]:
    """The command line of stream `name`'s worker."""
    faust = _tool(bin_dir or Path(sys.executable).parent, "faust", "faust")
    # --quiet: no banner on stdout, so the stream's log is JSON lines only (soma.observability.logs)
    return (*faust, "-A", f"streams.{name}", "--quiet", "worker", "-l", "info")


def platform_components(settings: Settings, bin_dir: Path | None = None) -> list[ComponentSpec]:
    """Every component of the platform, in declared order (paths relative to this interpreter)."""
    bin_dir = bin_dir or Path(sys.executable).parent
    soma = _tool(bin_dir, "soma", "soma")
    specs = [
        ComponentSpec(
            "relay", (*soma, "outbox", "relay"),
            _http(settings.relay.metrics_host, settings.relay.metrics_port), "outbox relay",
        ),
        ComponentSpec(
            "admin-api", (*soma, "admin", "serve"), _http(settings.admin.host, settings.admin.port), "admin serve",
            disabled="" if settings.admin.tokens is not None else "SOMA_ADMIN_TOKENS is not set",
        ),
    ]
    for stream in STREAMS:
        specs.append(ComponentSpec(
            stream.component, stream_argv(stream.name, bin_dir),
            stream.base_url(settings), f"streams.{stream.name}", depends_on=stream.depends_on,
        ))
    return specs


def resolve(specs: Sequence[ComponentSpec]) -> list[ComponentSpec]:
    """The start order: each after what it depends on, else in declared order.

    Raises `SpecError` for a duplicate name, an unknown dependency or a cycle. A component that
    depends on a disabled one is disabled too (saying which).
    """
    by_name: dict[str, ComponentSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            raise SpecError(f"component {spec.name!r} is declared twice")
        by_name[spec.name] = spec
    for spec in specs:
        for dep in spec.depends_on:
            if dep not in by_name:
                raise SpecError(f"component {spec.name!r} depends on unknown component {dep!r}")
    ordered: list[ComponentSpec] = []
    done: set[str] = set()
    remaining = list(specs)
    while remaining:
        ready = next((s for s in remaining if all(d in done for d in s.depends_on)), None)
        if ready is None:
            raise SpecError(f"dependency cycle among {', '.join(s.name for s in remaining)}")
        off = [d for d in ready.depends_on if by_name[d].disabled]
        if off and not ready.disabled:
            ready = replace(ready, disabled=f"needs {', '.join(off)}, which is disabled")
            by_name[ready.name] = ready
        ordered.append(ready)
        done.add(ready.name)
        remaining.remove(next(s for s in remaining if s.name == ready.name))
    return ordered


def levels(specs: Sequence[ComponentSpec]) -> dict[str, int]:
    """0 for a component without dependencies, else 1 + the highest level of its dependencies."""
    level: dict[str, int] = {}
    for spec in resolve(specs):
        level[spec.name] = 1 + max((level[d] for d in spec.depends_on), default=-1)
    return level


def stop_waves(specs: Sequence[ComponentSpec]) -> list[list[str]]:
    """Names to stop together, highest level first (the reverse of the start order)."""
    level = levels(specs)
    waves: dict[int, list[str]] = {}
    for spec in reversed(resolve(specs)):
        waves.setdefault(level[spec.name], []).append(spec.name)
    return [waves[k] for k in sorted(waves, reverse=True)]
