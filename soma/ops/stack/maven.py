"""Fetching from Maven Central with the packaged poms beside this file (the broker, the registry).

A fetch runs one `maven-dependency-plugin` goal into a staging folder and renames it into place
with a `.complete` marker, so an interrupted download is never taken for a finished one;
Maven's own cache lives in the state folder (`cache/m2`).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from importlib.resources import as_file, files
from pathlib import Path

from soma.errors import StackError
from soma.ops.processes import run_bounded

FETCH_TIMEOUT_S = 900.0


def pom_property(pom: str, name: str) -> str:
    """A `<properties>` value of a packaged pom (e.g. the pinned version)."""
    # Our own packaged file, not untrusted input.
    root = ET.fromstring(files("soma.ops.stack").joinpath(pom).read_text())  # noqa: S314
    node = root.find(f"m:properties/m:{name}", {"m": "http://maven.apache.org/POM/4.0.0"})
    if node is None or not node.text:
        raise StackError(f"{pom} has no <{name}> property")
    return node.text.strip()


def maven_fetch(pom: str, goal: list[str], dest: Path, cache: Path, what: str, expect: str | None = None) -> bool:
    """Run `goal` of the packaged `pom` into `dest` unless already complete; True when it ran.

    `what` names the service and artifact in errors; `expect` is a file the result must hold.
    """
    done = dest / ".complete"
    if done.exists():
        return False
    service = what.split(":", 1)[0]
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise StackError(f"{service}: needs `java` (17+) and `mvn` on PATH to fetch it from Maven Central")
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with as_file(files("soma.ops.stack").joinpath(pom)) as path:
        argv = ["mvn", "-q", "-B", "-f", str(path), *goal,
                f"-DoutputDirectory={staging}", f"-Dmaven.repo.local={cache}"]
        result = run_bounded(argv, timeout_s=FETCH_TIMEOUT_S)
    if result.returncode != 0 or (expect is not None and not (staging / expect).exists()):
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise StackError(f"{service}: Maven could not resolve {what.split(':', 1)[1]}: {' | '.join(tail)}")
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    done.touch()
    return True
