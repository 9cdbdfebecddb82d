"""The Alembic migrations of the platform's tables, shipped in the wheel (run them with `soma db upgrade`).

A package of its own because its `env.py` joins the table metadata of outbox and streams,
which the core (`soma`) never imports; `soma.ops.migrations` finds this directory with
`importlib.resources` and builds the Alembic configuration in code (no alembic.ini).
"""
