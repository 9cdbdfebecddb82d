"""promtool (Prometheus' rule and config checker), built once with `go install` into the state dir.

Built with the `remove_all_sd` tag: without the cloud service-discovery SDKs (which the scrape
config does not use) a cold build compiles a fraction of the code; with a warm Go build cache
it takes seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from soma.processes import run_bounded
from tests.support.procs import REPO

PROMETHEUS_VERSION = "v0.316.0"  # the Go module version of Prometheus 3.x's cmd/promtool


def promtool_binary(state_dir: Path, build_timeout_s: float = 1200) -> Path | None:
    """The pinned promtool (None when Go is missing or the build fails or times out)."""
    target = (REPO / state_dir if not state_dir.is_absolute() else state_dir) / "promtool" / f"bin-{PROMETHEUS_VERSION}"
    binary = target / "promtool"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        return None
    from soma.settings import load_settings

    env = load_settings().child_env(GOBIN=str(target), GOFLAGS="-mod=mod")
    module = f"github.com/prometheus/prometheus/cmd/promtool@{PROMETHEUS_VERSION}"
    result = run_bounded([go, "install", "-tags", "remove_all_sd", module], timeout_s=build_timeout_s, env=env)
    return binary if result.returncode == 0 and binary.exists() else None
