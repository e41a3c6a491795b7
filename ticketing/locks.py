"""Locks shared by the processes of one desk, freed when their holder dies.

Two uses: the daemon that schedules (one per database: ``ExclusiveLock``),
and the IMAP claims being stored (one holder per claim: ``KeyedLocks``). A
lock is never waited for: a held one is reported held, and the asker does
something else. The operating system or the database server frees a dead
process's locks, so its work is taken over at once.

- PostgreSQL: session advisory locks (``pg_try_advisory_lock``) on a
  connection of their own, in autocommit: the locks belong to the session,
  not to a transaction, and end with it.
- SQLite: ``flock`` on a file beside the database (the leader), or POSIX
  record locks on byte ``id`` of such a file (claims).
- A database only this process sees (SQLite in memory): a lock in memory.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text


class ExclusiveLock(Protocol):
    def acquire(self) -> bool:
        """Take the lock if nobody holds it; False when another process does."""
        ...

    def alive(self) -> bool:
        """Whether this process still holds the lock (asked on the lock's own connection).

        False once the lock is gone for sure or cannot be confirmed (its
        connection was terminated or cannot be reached); never raises.
        """
        ...

    def release(self) -> None:
        """Let the lock go; never raises (a lock whose connection is gone is gone)."""
        ...


class KeyedLocks(Protocol):
    def try_lock(self, key: int) -> bool:
        """Take the lock on ``key`` if nobody holds it (this process included)."""
        ...

    def unlock(self, key: int) -> None: ...

    def close(self) -> None:
        """Free every lock this object holds."""
        ...


class _Held:
    """Keys held by this process: record locks are per process, not per thread."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.keys: set[int] = set()


class AdvisoryLock:
    """PostgreSQL: one advisory lock, held on a connection of its own."""

    def __init__(self, engine: Engine, key: int) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        self.release()
        # Autocommit: the lock belongs to the session, not to a transaction.
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            return False
        try:
            held = conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid = 0 AND objid = :k"
            ), {"k": self.key}).scalar()
        except Exception:
            self._drop()
            return False
        if not held:
            self._drop()
        return bool(held)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # The session is gone or unreachable, and its lock with it.
            conn.invalidate()
            conn.close()

    def release(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:
            self._drop()  # its session ended: the server freed the lock with it
            return
        self._conn = None
        conn.close()


class AdvisoryLocks:
    """PostgreSQL: an advisory lock per key (two-key form: ``key_class``, key)."""

    def __init__(self, engine: Engine, key_class: int) -> None:
        self.engine = engine
        self.key_class = key_class
        self._held = _Held()
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            # Autocommit: the locks belong to the session, not to a transaction.
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def try_lock(self, key: int) -> bool:
        with self._held.mutex:
            if key in self._held.keys:
                return False
            got = self._connection().execute(
                text("SELECT pg_try_advisory_lock(:cls, :id)"),
                {"cls": self.key_class, "id": key},
            ).scalar()
            if got:
                self._held.keys.add(key)
            return bool(got)

    def unlock(self, key: int) -> None:
        with self._held.mutex:
            if key not in self._held.keys:
                return
            self._held.keys.discard(key)
            conn = self._conn
            if conn is None or conn.closed or conn.invalidated:
                return  # the server freed it with the session
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:cls, :id)"),
                             {"cls": self.key_class, "id": key})
            except Exception:
                # The connection is gone, and the lock with it.
                conn.invalidate()

    def close(self) -> None:
        with self._held.mutex:
            self._held.keys.clear()
            if self._conn is not None:
                self._conn.close()  # ends the session: its advisory locks go
                self._conn = None


class FileLock:
    """SQLite: ``flock`` on a file beside the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None  # an flock lasts as long as its descriptor

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # frees the flock


class FileRecordLocks:
    """SQLite: a POSIX record lock on byte ``key`` of a file beside the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held = _Held()
        self._fd: int | None = None

    def try_lock(self, key: int) -> bool:
        with self._held.mutex:
            if key in self._held.keys:
                return False
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
            except OSError:
                return False
            self._held.keys.add(key)
            return True

    def unlock(self, key: int) -> None:
        with self._held.mutex:
            if key in self._held.keys and self._fd is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, key)
            self._held.keys.discard(key)

    def close(self) -> None:
        with self._held.mutex:
            self._held.keys.clear()
            if self._fd is not None:
                os.close(self._fd)  # frees every record lock of the file
                self._fd = None


class ProcessLocks:
    """For a database only this process sees (SQLite in memory)."""

    def __init__(self) -> None:
        self._held = _Held()

    def try_lock(self, key: int) -> bool:
        with self._held.mutex:
            if key in self._held.keys:
                return False
            self._held.keys.add(key)
            return True

    def unlock(self, key: int) -> None:
        with self._held.mutex:
            self._held.keys.discard(key)

    def close(self) -> None:
        with self._held.mutex:
            self._held.keys.clear()

    def single(self, key: int) -> ExclusiveLock:
        return _OneKey(self, key)


class _OneKey:
    def __init__(self, locks: ProcessLocks, key: int) -> None:
        self.locks, self.key = locks, key

    def acquire(self) -> bool:
        return self.locks.try_lock(self.key)

    def alive(self) -> bool:
        return self.key in self.locks._held.keys

    def release(self) -> None:
        self.locks.unlock(self.key)
