"""The PostgreSQL dedupe store: table `soma_dedupe`, one row per (scope, event id) handled.

`claim` inserts the row in the caller's session, so the mark commits (or rolls back) with the
handler's own writes; a second transaction claiming the same id waits for the first to end, then
sees it as handled (committed) or claims it itself (rolled back). A row older than the TTL counts
as forgotten: a claim takes it over, `prune` deletes such rows in small batches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.errors import UndefinedTable
from sqlalchemy import DateTime, Engine, Index, MetaData, String, bindparam, create_engine, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from soma.dedupe import DedupeStore
from soma.errors import ConsumeError, InfrastructureUnavailable, first_line
from soma.settings import mask_url

PRUNE_BATCH = 5000


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})


class DedupeMark(Base):
    """One event id a consumer scope (group) has handled."""

    __tablename__ = "soma_dedupe"
    __table_args__ = (Index(None, "seen_at"),)

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


metadata = Base.metadata


def sqlalchemy_url(url: str) -> str:
    """postgresql:// and postgres:// through psycopg 3, the platform's driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class PostgresStore(DedupeStore):
    transactional = True

    def __init__(self, url: str, scope: str, ttl_s: float, engine_options: dict[str, Any] | None = None) -> None:
        super().__init__(scope, ttl_s)
        self._url, self._where = sqlalchemy_url(url), mask_url(url)
        self._options = engine_options or {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
        self._engine: Engine | None = None
        expired = DedupeMark.seen_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self.ttl_s)
        self._claim = (
            insert(DedupeMark).values(scope=self.scope, event_id=bindparam("event_id"))
            .on_conflict_do_update(index_elements=["scope", "event_id"], set_={"seen_at": func.now()},
                                   where=expired)
            .returning(DedupeMark.event_id)
        )

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self._url, **self._options)
        return self._engine

    def _fail(self, exc: SQLAlchemyError) -> InfrastructureUnavailable:
        if isinstance(getattr(exc, "orig", None), UndefinedTable):
            return InfrastructureUnavailable(
                f"postgresql dedupe store {self._where}: table soma_dedupe is missing: run `soma db upgrade`"
            )
        return InfrastructureUnavailable(f"postgresql dedupe store {self._where}: {first_line(exc)}")

    def claim(self, event_id: str, session: Any = None) -> bool:
        if not isinstance(session, Session):
            raise ConsumeError(
                "dedupe: the postgresql store marks in the handler's own transaction: pass session= (a Session)"
            )
        try:
            return session.execute(self._claim, {"event_id": event_id}).first() is not None
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc

    def mark(self, event_id: str) -> None:
        with self.engine().begin() as connection:
            connection.execute(self._claim, {"event_id": event_id})

    def seen(self, event_id: str) -> bool:
        expired = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self.ttl_s)
        query = select(DedupeMark.event_id).where(
            DedupeMark.scope == self.scope, DedupeMark.event_id == event_id, DedupeMark.seen_at >= expired
        )
        try:
            with self.engine().connect() as connection:
                return connection.execute(query).first() is not None
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc

    def prune(self) -> int:
        """Delete this scope's expired marks, PRUNE_BATCH rows per transaction (short locks)."""
        statement = text(
            "DELETE FROM soma_dedupe WHERE ctid IN (SELECT ctid FROM soma_dedupe WHERE scope = :scope"
            " AND seen_at < now() - make_interval(secs => :ttl) LIMIT :batch)"
        )
        removed = 0
        try:
            while True:
                with self.engine().begin() as connection:
                    count = connection.execute(
                        statement, {"scope": self.scope, "ttl": self.ttl_s, "batch": PRUNE_BATCH}
                    ).rowcount
                removed += count
                if count < PRUNE_BATCH:
                    return removed
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc

    async def _claim_async(self, event_id: str, session: Any) -> bool:
        from sqlalchemy.ext.asyncio import AsyncSession

        if not isinstance(session, AsyncSession):
            raise ConsumeError(
                "dedupe: the postgresql store marks in the handler's own transaction: pass session= (an AsyncSession)"
            )
        claimed: bool = await session.run_sync(lambda sync: self.claim(event_id, sync))
        return claimed

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
