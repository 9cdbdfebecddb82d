"""A private run: a topic prefix and a PostgreSQL schema of its own, removed when the run ends.

Tests and benchmarks share the local stack; each run works under `<name>.<run>.` topics and the
`<name>_<run>` schema, so runs never see each other's data, and leaves nothing behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from soma.settings import Settings, load_settings


@contextmanager
def isolated_run(base: Settings, name: str, run: str, **overrides: Any) -> Iterator[Settings]:
    """Settings with topic prefix `<name>.<run>.` and schema `<name>_<run>` (created here, through `base`).

    At exit the schema is dropped (cascade), every topic under the prefix deleted, and the
    streams' Faust data directories of the prefix (under the state dir) removed.
    """
    from sqlalchemy.schema import CreateSchema, DropSchema

    from soma.clients import database_engine, kafka_admin

    schema = f"{name}_{run}"
    isolated = load_settings(topic_prefix=f"{name}.{run}.", database_schema=schema, **overrides)
    engine = database_engine(base)
    with engine.begin() as conn:
        conn.execute(CreateSchema(schema))
    try:
        yield isolated
    finally:
        with engine.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()
        for data in (isolated.stack.state_dir / "streams").glob(f"{isolated.kafka.topic_prefix}soma-*-data"):
            shutil.rmtree(data, ignore_errors=True)
        admin = kafka_admin(base)
        ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(isolated.kafka.topic_prefix)]
        if ours:
            for future in admin.delete_topics(ours, operation_timeout=30).values():
                future.result(timeout=30)
