"""Where the platform's processes answer (relay metrics, admin API, each stream), and whether they do."""

from __future__ import annotations

import urllib.request

from bench.demo.hops import INFO, MISSED, SEEN, Hop
from soma.ops.supervisor.spec import STREAMS
from soma.settings import Settings, env_name


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 (a listen address, not a bind)


def endpoints(settings: Settings) -> dict[str, str]:
    """Base URLs of the platform's processes (relay metrics, admin API, each stream's web port)."""
    urls = {}
    if settings.relay.metrics_port:
        urls["relay"] = f"http://{_local(settings.relay.metrics_host)}:{settings.relay.metrics_port}"
    urls["admin"] = f"http://{_local(settings.admin.host)}:{settings.admin.port}"
    for stream in STREAMS:
        urls[stream.component] = stream.base_url(settings)
    return urls


def _get_ok(url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http to our own processes)
            return 200 <= int(response.status) < 300
    except (OSError, ValueError):
        return False


def preflight(settings: Settings) -> list[Hop]:
    """One row per platform process: does it answer its health/readiness URL?"""
    probes = {"relay": ("/readyz", "/healthz"), "admin": ("/readyz", "/healthz")}
    hops = []
    for name, base in endpoints(settings).items():
        paths = probes.get(name, ("/readyz", "/ready"))
        ok_path = next((p for p in paths if _get_ok(base + p)), None)
        hops.append(Hop("platform", f"{name} answers", base + (ok_path or paths[-1]), "-",
                        status=SEEN if ok_path else MISSED, note="" if ok_path else "not reachable or not ready"))
    if not settings.relay.metrics_port:
        hops.append(Hop("platform", "relay answers", "-", "-", status=INFO,
                        note=f"{env_name('outbox_relay_metrics_port')}=0: address unknown, not checked"))
    return hops


def where_to_look(settings: Settings, acme: str, globex: str) -> list[str]:
    urls = endpoints(settings)
    lines = [f"metrics ({name}): {url}/metrics" for name, url in urls.items() if name != "admin"]
    lines += [
        f"admin API: {urls['admin']}/docs (OpenAPI at /openapi.json)",
        "health of every process: soma health;  processes: soma ps",
        f"the demo's rows: soma outbox list --tenant {globex};  its live settings: soma config show --tenant {acme}",
        f"its events: soma consume chat.messages --from-beginning --tenant {acme} --max-messages 10",
    ]
    return lines
