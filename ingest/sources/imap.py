"""The incremental IMAP poller: new mail from one folder into the pipeline.

Per source and folder the desk remembers the folder's UIDVALIDITY and the
highest UID handed out (``MailboxState``). One poll:

1. connects (ssl, starttls or plain), logs in, selects the folder
   (``ingest.sources.mailbox``, the IMAP side);
2. if UIDVALIDITY changed, starts again from UID 1 (the pipeline's dedupe
   on Message-ID and content hash makes the re-read harmless) and forgets
   the claims and marks still owed under the old UIDVALIDITY;
3. finishes the marks owed by an earlier poll that committed but never
   reached the server (``PendingMark`` rows);
4. searches the UIDs above the last one handed out and writes them as
   claims, batches bounded by count and bytes (``IngestClaim``), in one
   transaction with the new last UID;
5. takes claims one by one (its own, or any left by a poller that died,
   skipping those another live poller holds: ``ingest.sources.claims``),
   fetches each and has the pipeline store it; the claim is deleted in the
   same transaction as its messages and the marks owed for them;
6. only then moves or flags the batch on the server and forgets its marks.

Nothing is marked on the server before it is committed, and no claim is
stored twice, so a crash or a dropped connection at any point loses
nothing; it costs at most a re-read (deduplicated) or a mark made twice
(harmless). Several daemons can poll one mailbox at once: they share the
work claim by claim. Folder names in the configuration use "/" as the
hierarchy separator, whatever the server's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config.settings import ConfigError, ImapSource
from madoguchi.ingest.inbound import Inbound, Outcome, OutcomeKind, Sink
from madoguchi.ingest.parse import message_ids
from madoguchi.ingest.sources.claims import ClaimLocks, claim_locks
from madoguchi.ingest.sources.mailbox import (
    Fetched,
    ImapCommandFailed,
    ImapSourceError,
    Mailbox,
    uid_set,
)
from madoguchi.ticketing import store
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import IngestClaim, MailboxState, PendingMark

log = logging.getLogger("madoguchi.ingest.imap")

# UIDs per command when finishing marks: keeps command lines short even when
# many marks are owed after a long outage.
MARK_CHUNK = 500
DEFAULT_MAX_BATCH_BYTES = 32 * 1024 * 1024


class ClaimTaken(ImapSourceError):
    """Another poller stored this claim first (it took over after our lock was lost)."""


@dataclass
class PollReport:
    """What one poll did: messages fetched, their outcomes, marks made."""

    fetched: int = 0
    created: int = 0
    threaded: int = 0
    duplicate: int = 0
    quarantined: int = 0
    marked: int = 0
    mark_failed: int = 0  # refused by the server; still owed (PendingMark)
    uidvalidity_reset: bool = False

    def count(self, outcomes: Sequence[Outcome]) -> None:
        kinds = Counter(outcome.kind for outcome in outcomes)
        self.created += kinds[OutcomeKind.CREATED]
        self.threaded += kinds[OutcomeKind.THREADED]
        self.duplicate += kinds[OutcomeKind.DUPLICATE]
        self.quarantined += kinds[OutcomeKind.QUARANTINED]


@dataclass(frozen=True)
class _Take:
    """The claims one poller stores in one transaction: one claim, or held-back replies."""

    claims: list[IngestClaim]

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.claims]

    @property
    def deferred(self) -> bool:
        return self.claims[0].deferred

    @property
    def uids(self) -> list[int]:
        return [uid for c in self.claims for uid in range(c.first_uid, c.last_uid + 1)]

    def describe(self) -> str:
        first = self.claims[0]
        if len(self.claims) == 1:
            return f"{first.first_uid}:{first.last_uid}"
        return uid_set(self.uids)

    def unlock(self, locks: ClaimLocks) -> None:
        for claim in self.claims:
            locks.unlock(claim.id)


def _headers(raw: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


def _thread_refs(head: Message) -> set[str]:
    """The Message-IDs a mail replies to."""
    return {ref for name in ("in-reply-to", "references")
            for ref in message_ids(str(head.get(name, "")))}


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ImapPoller:
    """Polls one IMAP source into a ``Sink``; see the module docstring for the steps."""

    def __init__(
        self,
        source: ImapSource,
        sink: Sink,
        session_factory: sessionmaker[Session],
        batch_size: int,
        *,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        clock: Callable[[], float] = time.monotonic,
        locks: ClaimLocks | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if source.after_commit == "move" and source.move_to == source.folder:
            raise ConfigError(f"sources.{source.name}.move_to: must differ from folder")
        self.source = source
        self.sink = sink
        self.sessions = session_factory
        self.batch_size = batch_size
        # A batch holds at most this many bytes of mail; a bigger message is
        # fetched on its own (the pipeline quarantines what exceeds its limit).
        self.max_batch_bytes = max_batch_bytes
        self._clock = clock
        self.locks = locks if locks is not None else claim_locks(session_factory.kw["bind"])

    # -- one poll ---------------------------------------------------------

    def poll_once(self) -> PollReport:
        """Take every new message once; raise ``ImapSourceError`` if the server fails."""
        started = self._clock()
        report = PollReport()
        mailbox = Mailbox(self.source)
        try:
            mailbox.open()
            last_uid, owed = self._load_position(mailbox.uidvalidity, report)
            if owed:
                self._finish_marks(mailbox, owed, report)
            new = mailbox.uids_after(last_uid)
            if new:
                log.info("%s: %d new message(s) in %s after UID %d",
                         self.source.name, len(new), self.source.folder, last_uid)
                batches = [
                    batch
                    for chunk in _chunks(new, self.batch_size)
                    for batch in self._plan(mailbox.sizes(chunk))
                ]
                self._claim(mailbox.uidvalidity, batches)
            self._take_claims(mailbox, report)
        finally:
            mailbox.close()
        elapsed = self._clock() - started
        if report.fetched or report.marked or report.mark_failed or report.uidvalidity_reset:
            log.info(
                "%s: fetched %d (created %d, threaded %d, duplicate %d, quarantined %d), "
                "marked %d (%d refused), in %.2f s",
                self.source.name, report.fetched, report.created, report.threaded,
                report.duplicate, report.quarantined, report.marked, report.mark_failed,
                elapsed,
            )
        else:
            log.debug("%s: no new mail (%.2f s)", self.source.name, elapsed)
        return report

    def _key(self) -> tuple[str, str]:
        return self.source.name, self.source.folder

    def _load_position(self, uidvalidity: int, report: PollReport) -> tuple[int, list[int]]:
        """The last UID taken under ``uidvalidity``, and the UIDs still to mark."""
        name, folder = self._key()
        with transaction(self.sessions) as session:
            state = session.get(MailboxState, (name, folder))
            if state is None:
                state = MailboxState(source=name, folder=folder,
                                     uidvalidity=uidvalidity, last_uid=0)
                session.add(state)
            elif state.uidvalidity != uidvalidity:
                log.warning(
                    "%s: UIDVALIDITY of %s changed from %d to %d: reading the folder "
                    "again from the start (known messages come back as duplicates)",
                    name, folder, state.uidvalidity, uidvalidity,
                )
                state.uidvalidity = uidvalidity
                state.last_uid = 0
                report.uidvalidity_reset = True
            # UIDs of an older UIDVALIDITY name nothing any more.
            session.execute(delete(IngestClaim).where(
                IngestClaim.source == name, IngestClaim.folder == folder,
                IngestClaim.uidvalidity != uidvalidity,
            ))
            session.execute(delete(PendingMark).where(
                PendingMark.source == name, PendingMark.folder == folder,
                PendingMark.uidvalidity != uidvalidity,
            ))
            owed = list(session.scalars(select(PendingMark.uid).where(
                PendingMark.source == name, PendingMark.folder == folder,
                PendingMark.uidvalidity == uidvalidity,
            ).order_by(PendingMark.uid)))
            return state.last_uid, owed

    def _plan(self, sizes: dict[int, int]) -> Iterator[list[int]]:
        """Split UIDs (ascending) into batches bounded by count and by bytes."""
        batch: list[int] = []
        total = 0
        for uid in sorted(sizes):
            size = sizes[uid]
            if batch and total + size > self.max_batch_bytes:
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
            if size > self.max_batch_bytes:
                log.info("%s: UID %d is large (%d bytes): fetched on its own",
                         self.source.name, uid, size)
        if batch:
            yield batch

    def _claim(self, uidvalidity: int, batches: list[list[int]]) -> None:
        """Write ``batches`` as claims and advance the last UID handed out.

        The state row is locked for the moment it takes (PostgreSQL), and
        UIDs another poller claimed since this one searched are left out.
        """
        name, folder = self._key()
        now = datetime.now(UTC)
        with transaction(self.sessions) as session:
            state = session.get(MailboxState, (name, folder), with_for_update=True)
            if state is None or state.uidvalidity != uidvalidity:
                raise ImapSourceError(f"{name}: mailbox state of {folder} changed under us")
            floor = state.last_uid
            for batch in batches:
                uids = [uid for uid in batch if uid > floor]
                if uids:
                    session.add(IngestClaim(
                        source=name, folder=folder, uidvalidity=uidvalidity,
                        first_uid=uids[0], last_uid=uids[-1], created_at=now,
                    ))
            state.last_uid = max(floor, batches[-1][-1])

    def _next_claim(self, mailbox: Mailbox) -> tuple[_Take, list[Fetched]] | None:
        """Lock the oldest claim nobody holds and fetch its messages; None when none is left.

        Held-back replies (deferred claims, one UID each) are taken together,
        up to a batch, once no older claim is left: one transaction for them
        all rather than one each.
        """
        name, folder = self._key()
        with self.sessions() as session:
            waiting = list(session.scalars(
                select(IngestClaim).where(
                    IngestClaim.source == name, IngestClaim.folder == folder,
                    IngestClaim.uidvalidity == mailbox.uidvalidity,
                ).order_by(IngestClaim.id)
            ))
        for position, claim in enumerate(waiting):
            if claim.deferred and position > 0:
                continue  # held-back replies wait until every older claim is stored
            if not self.locks.try_lock(claim.id):
                continue  # a live poller is storing it
            take = [claim]
            try:
                if claim.deferred:
                    take += self._lock_deferred(waiting[position + 1 :])
                with self.sessions() as session:
                    # Stored by their holders between the look and the lock?
                    there = set(session.scalars(select(IngestClaim.id).where(
                        IngestClaim.id.in_([c.id for c in take]))))
                for gone in [c for c in take if c.id not in there]:
                    self.locks.unlock(gone.id)
                take = [c for c in take if c.id in there]
                if take:
                    found = _Take(take)
                    if len(take) == 1:
                        return found, mailbox.fetch_range(take[0].first_uid, take[0].last_uid)
                    mailbox.sync()
                    return found, mailbox.fetch(found.uids)
            except BaseException:
                for held in take:
                    self.locks.unlock(held.id)
                raise
        return None

    def _lock_deferred(self, following: list[IngestClaim]) -> list[IngestClaim]:
        """Lock the deferred claims after the oldest one, up to a batch; those locked."""
        locked: list[IngestClaim] = []
        for claim in following:
            if len(locked) + 1 >= self.batch_size or not claim.deferred:
                break
            if self.locks.try_lock(claim.id):
                locked.append(claim)
        return locked

    def _take_claims(self, mailbox: Mailbox, report: PollReport) -> None:
        """Fetch, store and mark claim after claim, fetching the next during the store.

        The connection is used by one thread at a time: while the pipeline
        stores claim k (database work), a helper thread locks and fetches the
        next one; claim k is marked once that fetch is back. Its marks are
        owed in the database from its commit on, so a failure anywhere loses
        nothing.
        """
        marking = self.source.after_commit != "none"
        with ThreadPoolExecutor(1, thread_name_prefix="imap-prefetch") as prefetch:
            current = self._next_claim(mailbox)
            while current is not None:
                claim, fetched = current
                ahead = prefetch.submit(self._next_claim, mailbox)
                try:
                    taken = self._store_claim(mailbox, claim, fetched, report)
                except BaseException:
                    # Never leave the helper thread on the connection, nor its lock held.
                    with suppress(Exception):
                        following = ahead.result()
                        if following is not None:
                            following[0].unlock(self.locks)
                    raise
                finally:
                    claim.unlock(self.locks)
                # The look-ahead ran before this claim was stored: replies held
                # back behind it may be free to take now.
                current = ahead.result() or self._next_claim(mailbox)
                if marking and taken:
                    try:
                        self._finish_marks(mailbox, taken, report)
                    except BaseException:
                        # The claim fetched ahead is not stored now: free it, or this
                        # poller would skip it as held by a live poller until it restarts.
                        if current is not None:
                            current[0].unlock(self.locks)
                        raise

    def _store_claim(
        self, mailbox: Mailbox, claim: _Take, fetched: list[Fetched], report: PollReport
    ) -> list[int]:
        """Hand one take's messages to the pipeline; the UIDs committed."""
        name, folder = self._key()
        validity = mailbox.uidvalidity
        marking = self.source.after_commit != "none"
        held = self._replies_to_hold(claim, fetched)
        if held:
            log.info("%s: UIDs %s reply to mail not stored yet: held until the older "
                     "claims are stored", name, uid_set(held))
            fetched = [item for item in fetched if item.uid not in held]
        taken = [item.uid for item in fetched]
        now = datetime.now(UTC)

        def settle_claim(session: Session) -> None:
            # Deleting the claim is what makes the store happen once: a
            # second poller storing it too finds it gone and rolls back.
            # A DELETE's result is a CursorResult, which has the row count.
            gone = cast("CursorResult[Any]", session.execute(
                delete(IngestClaim).where(IngestClaim.id.in_(claim.ids))
            ))
            if gone.rowcount != len(claim.ids):
                raise ClaimTaken(f"{name}: UIDs {claim.describe()} were stored by another poller")
            session.add_all(
                IngestClaim(source=name, folder=folder, uidvalidity=validity, first_uid=uid,
                            last_uid=uid, created_at=now, deferred=True)
                for uid in held
            )
            if marking and taken:
                # Core, not ORM objects: a claim may owe hundreds of marks.
                session.execute(insert(PendingMark), [
                    {"source": name, "folder": folder, "uidvalidity": validity, "uid": uid}
                    for uid in taken
                ])

        if not fetched:
            if not held:
                log.warning("%s: UIDs %s vanished before they could be fetched",
                            name, claim.describe())
            with transaction(self.sessions) as session:
                settle_claim(session)
            return []
        items = [
            Inbound(
                raw=item.raw,
                source=name,
                source_ref=f"{folder};uidvalidity={validity};uid={item.uid}",
                received_at=item.internaldate,
            )
            for item in fetched
        ]
        outcomes = self.sink.ingest_batch(items, in_transaction=settle_claim)
        report.fetched += len(items)
        report.count(outcomes)
        log.debug("%s: committed UIDs %d..%d", name, taken[0], taken[-1])
        return taken

    def _replies_to_hold(self, take: _Take, fetched: list[Fetched]) -> list[int]:
        """UIDs of replies whose original may be in an older claim another poller holds.

        With several pollers, claim k+1 can be stored while claim k still is
        being stored elsewhere; a reply in k+1 to a mail in k would then open
        a ticket of its own (and be acknowledged). Such a reply is held back in
        a deferred claim, taken once every older claim is stored; by then its
        original is in the desk, or never will be. One poller alone takes the
        claims in order and never holds anything back.
        """
        if take.deferred or not fetched:
            return []
        claim = take.claims[0]  # a take of claims not deferred has one claim
        name, folder = self._key()
        with self.sessions() as session:
            older = session.scalar(select(IngestClaim.id).where(
                IngestClaim.source == name, IngestClaim.folder == folder,
                IngestClaim.uidvalidity == claim.uidvalidity, IngestClaim.id < claim.id,
            ).limit(1))
            if older is None:
                return []
            heads = {item.uid: _headers(item.raw) for item in fetched}
            own = {uid: set(message_ids(str(h.get("message-id", "")))) for uid, h in heads.items()}
            refs = {uid: _thread_refs(h) for uid, h in heads.items()}
            in_batch = set().union(*own.values())
            held = {
                uid for uid, ids in refs.items()
                if ids and not ids & in_batch
                and store.ticket_by_message_ids(session, sorted(ids)) is None
            }
        # A reply to a reply held back waits with it.
        while True:
            waiting = set().union(*(own[uid] for uid in held)) if held else set()
            more = {uid for uid, ids in refs.items() if uid not in held and ids & waiting}
            if not more:
                return sorted(held)
            held |= more

    def _finish_marks(self, mailbox: Mailbox, uids: list[int], report: PollReport) -> None:
        """Mark the committed ``uids`` on the server, then forget they were owed.

        A mark the server refuses (quota, a bad flag) is logged and left owed:
        it must not stop new mail from being taken. A lost connection stops
        the poll like any other.
        """
        name, folder = self._key()
        if self.source.after_commit == "none":
            log.info("%s: after_commit is none: dropping %d mark(s) owed from before",
                     name, len(uids))
        for chunk in _chunks(uids, MARK_CHUNK):
            if self.source.after_commit != "none":
                # Gone already (moved before a crash, or by someone else): nothing to do.
                present = mailbox.present(chunk)
                if present:
                    try:
                        mailbox.mark(present)
                    except ImapCommandFailed as exc:
                        log.error("%s: could not mark UIDs %s (%s); will retry next poll",
                                  name, uid_set(present), exc)
                        report.mark_failed += len(present)
                        continue
                    report.marked += len(present)
            with transaction(self.sessions) as session:
                session.execute(delete(PendingMark).where(
                    PendingMark.source == name, PendingMark.folder == folder,
                    PendingMark.uidvalidity == mailbox.uidvalidity,
                    PendingMark.uid.in_(chunk),
                ))
