"""The migration scripts (Alembic loads them by file; an __init__ keeps the directory a package of the wheel)."""
