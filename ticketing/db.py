"""Engine, sessions and schema migrations (alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.ticketing import change_feed
from madoguchi.ticketing.dialect import dialect_of

# Beside ticketing/ in the repository and in an installed wheel alike
# (madoguchi/migrations); alembic reads it by path, so it is not imported.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``, configured as its database wants (``ticketing.dialect``)."""
    parsed = make_url(url)
    return dialect_of(parsed).make_engine(parsed)


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """What autogenerate compares: not what migrations add by hand.

    The search index (FTS5 tables, trigram and partial indexes of migration
    0002) and APScheduler's job store live outside the models.
    """
    if type_ == "table" and name and name.startswith(("messages_fts", "apscheduler_jobs")):
        return False
    return not (type_ == "index" and reflected and compare_to is None)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose commits announce the tickets they changed (``ticketing.change_feed``)."""
    factory = sessionmaker(engine, expire_on_commit=False)
    change_feed.track(factory)
    return factory


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default)."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
