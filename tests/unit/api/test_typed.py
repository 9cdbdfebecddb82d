"""Typed events: the committed module is what the schemas generate, and a type checker catches a wrong field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soma.contracts.catalog import load_catalog
from soma.contracts.typedgen import TYPED_MODULE, render
from tests.support.procs import REPO


def test_the_committed_module_matches_the_schemas() -> None:
    assert TYPED_MODULE.read_text() == render(load_catalog()), "run `soma schemas typed` and commit the result"


def test_every_topic_has_its_typed_dict() -> None:
    from soma.contracts import typed

    catalog = load_catalog()
    for name, spec in catalog.topics.items():
        cls = typed.TOPIC_EVENTS[name]
        assert set(cls.__annotations__) == set(catalog.schemas.get(spec.value_schema).field_names)


TYPED_SNIPPET = """
from soma.contracts.typed import ChatMessage

good: ChatMessage = {"session_id": "s1", "sequence": 1, "role": "user", "content": "hi"}
bad: ChatMessage = {"session_id": "s1", "sequense": 1, "role": "user", "content": "hi"}
worse: ChatMessage = {"session_id": "s1", "sequence": 1, "role": "robot", "content": "hi"}
"""
EMIT_SNIPPET = """
from sqlalchemy.orm import Session

from outbox import emit


def handler(session: Session) -> None:
    emit(session, "chat.messages", {"session_id": "s", "sequence": 1, "role": "user", "content": "hi"},
         tenant="t1", dedupe_key="d1")
    emit(session, "chat.messages", {"session_id": "s", "sequense": 1, "role": "user", "content": "hi"},
         tenant="t1", dedupe_key="d2")
    emit(session, "tool.results", {"session_id": "s", "sequence": 1, "role": "user", "content": "hi"},
         tenant="t1", dedupe_key="d3")
"""


@pytest.mark.timeout(400)
def test_mypy_catches_a_wrong_field_of_a_typed_event_and_of_emit(tmp_path: Path) -> None:
    """One bounded mypy run (strict, a cache of its own) over two snippets: a TypedDict built by hand, and emit."""
    (tmp_path / "typed_snippet.py").write_text(TYPED_SNIPPET)
    (tmp_path / "emit_snippet.py").write_text(EMIT_SNIPPET)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         str(tmp_path / "typed_snippet.py"), str(tmp_path / "emit_snippet.py")],
        capture_output=True, text=True, timeout=360, cwd=REPO, check=False,
    )
    report = result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    typed = [(line.split(":")[1], line) for line in errors if line.startswith(str(tmp_path / "typed_snippet.py"))]
    emitted = [line.split(":")[1] for line in errors if line.startswith(str(tmp_path / "emit_snippet.py"))]
    assert sorted({number for number, _ in typed}) == ["5", "6"], report  # not line 4, the good one
    assert any(number == "5" and '"sequense"' in line for number, line in typed), report
    assert any(number == "6" and "'robot'" in line for number, line in typed), report
    assert emitted == ["10", "12"], report  # the misspelt field, and a ChatMessage given to tool.results
