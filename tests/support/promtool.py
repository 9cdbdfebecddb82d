"""promtool (Prometheus' rule and config checker), built once with `go install` into the state dir.

Built with the `remove_all_sd` tag: without the cloud service-discovery SDKs (which the scrape
config does not use) a cold build compiles a fraction of the code; with a warm Go build cache
it takes seconds.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.go_tools import go_installed

PROMETHEUS_VERSION = "v0.316.0"  # the Go module version of Prometheus 3.x's cmd/promtool


def promtool_binary(state_dir: Path, build_timeout_s: float = 1200) -> Path | None:
    """The pinned promtool (None when Go is missing or the build fails or times out)."""
    return go_installed(state_dir, "promtool", "github.com/prometheus/prometheus/cmd/promtool", PROMETHEUS_VERSION,
                        tags=("remove_all_sd",), timeout_s=build_timeout_s)
