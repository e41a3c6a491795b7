"""A PostgreSQL server for the tests.

Uses the one running at 127.0.0.1:5432 when there is one (as on the
developers' machines), else starts a throwaway server from Debian's
``postgresql`` package in a temp dir, as the ``postgres`` user (initdb
refuses root). Each test gets a fresh database cloned from a migrated
template, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL (``postgresql://user@host:port``) of a server to use."""
    url = os.environ.get("MADOGUCHI_TEST_POSTGRES")
    if url:
        yield url
        return
    if _port_open("127.0.0.1", 5432):
        for user in ("postgres", "root"):
            try:
                with psycopg.connect(f"postgresql://{user}@127.0.0.1:5432/postgres",
                                     connect_timeout=3):
                    pass
            except psycopg.Error:
                continue
            yield f"postgresql://{user}@127.0.0.1:5432"
            return
    yield from _throwaway()


def _throwaway() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(
            "no PostgreSQL at 127.0.0.1:5432 and no /usr/lib/postgresql/15/bin/initdb: "
            "install Debian's postgresql package (scripts/test.sh does)"
        )
    base = Path(tempfile.mkdtemp(prefix="madoguchi-pg-"))
    base.chmod(0o777)
    data, port = base / "data", _free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True)
    proc = subprocess.Popen(
        [*as_user, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
         "-k", str(base), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("throwaway PostgreSQL did not start")
            time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


class PostgresDatabases:
    """One migrated database for the session, emptied before each test.

    Emptying takes milliseconds where CREATE DATABASE ... TEMPLATE takes
    seconds; ``new()`` still gives every test an empty database.
    """

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template = f"madoguchi_test_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def _admin(self, sql: str) -> None:
        with psycopg.connect(f"{self.admin_url}/postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def sqlalchemy_url(self, name: str) -> str:
        return self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name

    def prepare_template(self) -> None:
        from madoguchi.ticketing.db import upgrade

        self._admin(f'CREATE DATABASE "{self.template}"')
        upgrade(self.sqlalchemy_url(self.template))

    def new(self) -> str:
        from madoguchi.ticketing.models import Base

        url = self.admin_url + "/" + self.template
        # DELETE, children first: for a few rows it is far quicker than TRUNCATE.
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(f'DELETE FROM "{table.name}"')  # type: ignore[arg-type]
            # Not ours but APScheduler's: a daemon run by an earlier test made it.
            jobs = conn.execute("SELECT to_regclass('apscheduler_jobs')").fetchone()
            if jobs is not None and jobs[0] is not None:
                conn.execute("DELETE FROM apscheduler_jobs")
        return self.sqlalchemy_url(self.template)

    def fresh_database(self) -> str:
        """A database of its own, for tests that need one (e.g. two schemas)."""
        name = f"madoguchi_t_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.sqlalchemy_url(name)

    def drop_all(self) -> None:
        for name in [*self.created, self.template]:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


class PostgresCluster:
    """A throwaway PostgreSQL server of one's own, to stop, start and restart at will.

    For the fault tests: never the shared server at 127.0.0.1:5432, which
    other tests (and other people) are using. Created with ``initdb`` in a
    temp dir and driven with ``pg_ctl`` as the ``postgres`` user when run as
    root (initdb refuses root), on a free loopback port that stays the same
    across restarts, so the desk's URL stays valid.
    """

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(
                "no /usr/lib/postgresql/15/bin/initdb: install Debian's postgresql package "
                "(scripts/test.sh does)"
            )
        self.base = Path(tempfile.mkdtemp(prefix="madoguchi-pgcluster-"))
        self.base.chmod(0o777)
        self.data = self.base / "data"
        self.log_file = self.base / "postgres.log"
        self.port = _free_port()
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*self._as_user, str(PG_BIN / "initdb"), "-D", str(self.data),
                        "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=120)

    @property
    def admin_url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT``, as ``postgres_server()`` yields."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            check=check, capture_output=True, timeout=120,
        )

    def _options(self) -> list[str]:
        # -l: the server's output goes to a file, never to pg_ctl's pipe (which
        # the server would otherwise hold open, and the caller wait on forever).
        return ["-l", str(self.log_file), "-o",
                f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"]

    def start(self) -> None:
        """Start and return once it accepts connections (``pg_ctl start -w``)."""
        self._pg_ctl("start", "-w", *self._options())

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: fast ends every session, rolling back its transaction."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m MODE``: down and up again on the same port."""
        self._pg_ctl("restart", "-w", "-m", mode, *self._options())

    @property
    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def close(self) -> None:
        if self.running:
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
