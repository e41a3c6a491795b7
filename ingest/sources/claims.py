"""Who is storing which claim right now: a lock per ``IngestClaim``, freed on death.

The claim row is the record (deleted in the transaction that stores its
messages, so a claim is stored at most once whatever happens); the lock
only keeps two live pollers from fetching and parsing the same claim at the
same time, and is freed by the operating system or the database server when
its holder dies, so that a dead poller's claim is taken over at once. A
held claim is skipped, never waited for (the equivalent of ``SELECT ... FOR
UPDATE SKIP LOCKED`` for a lock that must outlive several transactions).
The locks themselves are the database's (``ticketing.dialect``, ``ticketing.locks``).
"""

from __future__ import annotations

from sqlalchemy import Engine

from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.locks import KeyedLocks as ClaimLocks

__all__ = ["ClaimLocks", "claim_locks"]

# The class half of the two-key advisory lock: "Clai".
_ADVISORY_CLASS = 0x436C6169


def claim_locks(engine: Engine) -> ClaimLocks:
    """Locks on claim ids, shared by every process polling this database."""
    return dialect_of(engine).keyed_locks(engine, "claims", _ADVISORY_CLASS)
