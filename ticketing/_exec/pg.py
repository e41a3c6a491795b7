"""PostgreSQL's client programs, ``pg_dump`` and ``pg_restore``: the one place that runs them.

Each is looked for once (its version read from ``--version``); a missing
program or a failed run becomes ``PostgresToolError`` with the program's own
words, never a traceback. The database URL is handed over in libpq's form
(``postgresql://``), password included, as the programs' argument: they are
run without a shell and the argument is not logged.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

from sqlalchemy.engine import make_url

# A dump or restore of a large desk takes minutes; an hour means it hangs.
TIMEOUT_SECONDS = 3600
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)")


class PostgresToolError(Exception):
    """A PostgreSQL client program is missing or failed; the message says which and why."""


@cache
def version(program: str) -> str:
    """The program's version (e.g. "15.19"), checked once per process."""
    try:
        proc = subprocess.run([program, "--version"], capture_output=True, text=True,
                              timeout=30, check=True)
    except FileNotFoundError as exc:
        raise PostgresToolError(f"{program} not found: install postgresql-client") from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise PostgresToolError(f"{program} --version failed: {exc}") from exc
    m = _VERSION.search(proc.stdout)
    if m is None:
        raise PostgresToolError(f"{program}: unexpected version output {proc.stdout.strip()!r}")
    return m.group(1)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as libpq programs take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(program: str, *args: str) -> None:
    version(program)
    try:
        subprocess.run([program, *args], check=True, capture_output=True, text=True,
                       timeout=TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as exc:
        raise PostgresToolError(f"{program} failed: {exc.stderr.strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PostgresToolError(f"{program} took more than {TIMEOUT_SECONDS} s") from exc


def dump(url: str, file: Path) -> None:
    """One consistent snapshot of the database (a single transaction), custom format."""
    _run("pg_dump", "--format=custom", "--no-owner", f"--file={file}", libpq_url(url))


def restore(url: str, file: Path) -> None:
    """Replace the database's objects by the dump's, all or nothing."""
    _run("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
         f"--dbname={libpq_url(url)}", str(file))
