"""Who is storing which claim right now: a lock per ``IngestClaim``, freed on death.

The claim row is the record (deleted in the transaction that stores its
messages, so a claim is stored at most once whatever happens); the lock
only keeps two live pollers from fetching and parsing the same claim at the
same time, and is freed by the operating system or the database server when
its holder dies, so that a dead poller's claim is taken over at once.

- PostgreSQL: a session advisory lock per claim id on a connection of its
  own, taken with ``pg_try_advisory_lock``: a held claim is skipped, never
  waited for (the equivalent of ``SELECT ... FOR UPDATE SKIP LOCKED`` for a
  lock that must outlive several transactions).
- SQLite: a POSIX record lock on byte ``id`` of a file beside the database.
"""

from __future__ import annotations

import fcntl
import os
import threading
from typing import Protocol

from sqlalchemy import Connection, Engine, text

# The class half of the two-key advisory lock: "Clai".
_ADVISORY_CLASS = 0x436C6169


class ClaimLocks(Protocol):
    def try_lock(self, claim_id: int) -> bool: ...

    def unlock(self, claim_id: int) -> None: ...

    def close(self) -> None: ...


class _Held:
    """Claims held by this process: record locks are per process, not per thread."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.ids: set[int] = set()


class PostgresClaimLocks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held = _Held()
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            # Autocommit: the locks belong to the session, not to a transaction.
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def try_lock(self, claim_id: int) -> bool:
        with self._held.mutex:
            if claim_id in self._held.ids:
                return False
            got = self._connection().execute(
                text("SELECT pg_try_advisory_lock(:cls, :id)"),
                {"cls": _ADVISORY_CLASS, "id": claim_id},
            ).scalar()
            if got:
                self._held.ids.add(claim_id)
            return bool(got)

    def unlock(self, claim_id: int) -> None:
        with self._held.mutex:
            if claim_id not in self._held.ids:
                return
            self._held.ids.discard(claim_id)
            conn = self._conn
            if conn is None or conn.closed or conn.invalidated:
                return  # the server freed it with the session
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:cls, :id)"),
                             {"cls": _ADVISORY_CLASS, "id": claim_id})
            except Exception:
                # The connection is gone, and the lock with it.
                conn.invalidate()

    def close(self) -> None:
        with self._held.mutex:
            self._held.ids.clear()
            if self._conn is not None:
                self._conn.close()  # ends the session: its advisory locks go
                self._conn = None


class FileClaimLocks:
    def __init__(self, path: str) -> None:
        self.path = path
        self._held = _Held()
        self._fd: int | None = None

    def try_lock(self, claim_id: int) -> bool:
        with self._held.mutex:
            if claim_id in self._held.ids:
                return False
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, claim_id)
            except OSError:
                return False
            self._held.ids.add(claim_id)
            return True

    def unlock(self, claim_id: int) -> None:
        with self._held.mutex:
            if claim_id in self._held.ids and self._fd is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, claim_id)
            self._held.ids.discard(claim_id)

    def close(self) -> None:
        with self._held.mutex:
            self._held.ids.clear()
            if self._fd is not None:
                os.close(self._fd)  # frees every record lock of the file
                self._fd = None


class ProcessClaimLocks:
    """For a database only this process sees (SQLite in memory)."""

    def __init__(self) -> None:
        self._held = _Held()

    def try_lock(self, claim_id: int) -> bool:
        with self._held.mutex:
            if claim_id in self._held.ids:
                return False
            self._held.ids.add(claim_id)
            return True

    def unlock(self, claim_id: int) -> None:
        with self._held.mutex:
            self._held.ids.discard(claim_id)

    def close(self) -> None:
        with self._held.mutex:
            self._held.ids.clear()


def claim_locks(engine: Engine) -> ClaimLocks:
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return ProcessClaimLocks()
        return FileClaimLocks(f"{url.database}.claims.lock")
    return PostgresClaimLocks(engine)
