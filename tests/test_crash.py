"""kill -9 at random moments: nothing lost, nothing doubled (bench/crash.py, smaller).

The benchmark kills the daemon 200 times over 500 messages; this runs the
same harness with 20 kills over a smaller mixed corpus of mail and FAX.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import crash_test
from tests.postgres import PostgresDatabases

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_twenty_kills_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    verdict = crash_test(mails=36, faxes=3, kills=20, seed=5, workdir=tmp_path)
    report = "\n".join(verdict.lines)
    assert verdict.lost == 0, report
    assert verdict.duplicated == 0, report
    assert verdict.threading_differences == 0, report
    assert verdict.acks_twice == 0, report
    assert verdict.acks_missing == 0, report
    assert verdict.left_behind == 0, report
    assert verdict.store_damage == 0, report
    # At least 20: the kills go on until the whole corpus has been fed.
    assert verdict.kills >= 20, report


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_kills_on_postgresql_lose_nothing_and_double_nothing(
    tmp_path: Path, postgres_databases: PostgresDatabases,
) -> None:
    # On PostgreSQL ticket numbers are taken outside the batch's transaction
    # and claims are held by advisory locks: killed anywhere, still nothing
    # lost or doubled (a number may be skipped, which nothing here counts).
    verdict = crash_test(mails=24, faxes=2, kills=10, seed=8, workdir=tmp_path,
                         database_url=postgres_databases.fresh_database(),
                         reference_url=postgres_databases.fresh_database())
    report = "\n".join(verdict.lines)
    assert verdict.ok, report
    assert verdict.kills >= 10, report
