"""Fixtures shared by the suite: settings, databases (SQLite and PostgreSQL), the desk."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from madoguchi.config import Settings, load_settings

if TYPE_CHECKING:
    from madoguchi.app import Desk
from tests.postgres import PostgresDatabases, postgres_server

# Real servers started by the suite itself.
pytest_plugins = ["tests.servers.dovecot", "tests.smtp_server"]

SQLITE_TEMPLATE: dict[str, Path] = {}


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    with postgres_server() as admin_url:
        dbs = PostgresDatabases(admin_url)
        dbs.prepare_template()
        try:
            yield dbs
        finally:
            dbs.drop_all()


def _sqlite_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    # Migrate once per session, copy the file per test: fast and isolated.
    if "path" not in SQLITE_TEMPLATE:
        from madoguchi.ticketing.db import upgrade

        template = tmp_path_factory.mktemp("sqlite-template") / "template.db"
        upgrade(f"sqlite:///{template}")
        SQLITE_TEMPLATE["path"] = template
    target = tmp_path / "desk.db"
    shutil.copyfile(SQLITE_TEMPLATE["path"], target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated, empty database: every test using it runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return _sqlite_url(tmp_path, tmp_path_factory)
    return request.getfixturevalue("postgres_databases").new()


@pytest.fixture
def sqlite_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty SQLite database, for tests about sources rather than storage."""
    return _sqlite_url(tmp_path, tmp_path_factory)


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(
        None,
        database_url=database_url,
        storage_dir=tmp_path / "storage",
        sources=[],
        **overrides,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def desk(settings: Settings) -> Iterator[Desk]:
    from madoguchi.app import Desk

    d = Desk.open(settings)
    yield d
    d.close()
