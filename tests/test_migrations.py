"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from madoguchi.ticketing.db import current_revision, include_object, upgrade
from madoguchi.ticketing.models import Base
from tests.postgres import PostgresDatabases

# Migrations run against real SQLite and PostgreSQL databases (tests/conftest.py).
pytestmark = pytest.mark.integration


def _drift(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    return diff


def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert current_revision(url) is not None
    assert _drift(url) == []


def test_postgresql_schema_matches_the_models(postgres_databases: PostgresDatabases) -> None:
    url = postgres_databases.fresh_database()
    upgrade(url)
    assert _drift(url) == []
