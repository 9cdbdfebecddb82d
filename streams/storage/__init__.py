"""Database tables owned by the streams (migrated by Alembic, revision 0004+)."""
