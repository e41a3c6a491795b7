"""Fixtures shared by the suite: settings, databases (SQLite and PostgreSQL), the desk."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
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

# -- the three lanes (README, "Tests") -------------------------------------------------
# unit         pure: no database, server or external program; seconds for all of them
# integration  a real database (SQLite file, PostgreSQL), Dovecot, an SMTP listener,
#              Tesseract, poppler, zxing: everything a single desk process meets
# slow         the system lane: whole processes killed, faults injected, the daemon,
#              scale-out, the browser, fuzzing. Its modules mark themselves `slow`.
# Integration is found from the fixtures a test uses (a module that runs external
# programs without them marks itself `integration`); the rest is unit, and a unit
# test that starts a program or opens a connection fails, so the lane stays honest.
SERVER_FIXTURES = frozenset({
    "database_url", "sqlite_url", "postgres_databases", "dovecot_server", "smtp_server",
    "smtp_tempfail_server", "smtp_permfail_server", "smtp_dropping_server",
    "smtp_hangup_server", "smtp_closed_port", "smtp_starttls_server", "smtp_ssl_server",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("integration"):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.integration if fixtures & SERVER_FIXTURES
                        else pytest.mark.unit)


def _refused(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a unit test opens no database or connection and starts no "
                         "program: mark its module `integration`, or give it a server fixture")


@pytest.fixture(autouse=True)
def _unit_tests_stay_pure(request: pytest.FixtureRequest,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit"):
        monkeypatch.setattr(subprocess.Popen, "__init__", _refused)
        monkeypatch.setattr(socket.socket, "connect", _refused)
        monkeypatch.setattr(sqlite3, "connect", _refused)
        monkeypatch.setattr(sqlite3.dbapi2, "connect", _refused)


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
