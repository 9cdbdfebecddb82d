"""Debian packages and loopback probes the local stack relies on."""

from __future__ import annotations

import os
import shutil
import socket

from soma.errors import StackError
from soma.ops.processes import run_bounded

LOOPBACK = {"127.0.0.1", "localhost", "::1", ""}
_updated = False


def is_loopback(host: str | None) -> bool:
    return (host or "") in LOOPBACK or (host or "").startswith("127.")


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def apt_install(*packages: str) -> None:
    """Install Debian packages (runs `apt-get update` once per process first)."""
    global _updated
    if shutil.which("apt-get") is None:
        raise StackError(f"cannot install {', '.join(packages)}: no apt-get; install them and retry")
    if os.geteuid() != 0:
        names = " ".join(packages)
        raise StackError(f"installing {names} needs root: run `sudo apt-get install {names}`")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if not _updated:
        run_bounded(["apt-get", "update", "-qq"], timeout_s=600, env=env)
        _updated = True
    result = run_bounded(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], timeout_s=900, env=env
    )
    if result.returncode != 0:
        raise StackError(f"apt-get install {' '.join(packages)} failed: {result.stderr.strip()[-300:]}")
