"""The one path of an inbound message: parse → identify → entitlement → store.

Sources hand over batches of raw bytes (``Inbound``); the pipeline parses
them, keeps the raw bytes in the blob store, asks the rules in
``ticketing.rules`` what to do, and writes tickets and messages — all of a
batch in one transaction together with the source's own bookkeeping.

Speed: new tickets and messages are kept in the in-memory ``_Batch`` as
plain rows and written chunk by chunk (50 messages), in the batch's
transaction, with one multi-row INSERT per table (SQLAlchemy Core: the ORM's
unit of work cost more main-process CPU than all the rules together). What
the rules need to know about messages of the same batch comes from the
``_Batch``; what they need from the database (known dedupe keys, the tickets
that References name, their participants) is read once per chunk, not once
per message.
Safety: if anything goes wrong in that fast path, the transaction is rolled
back and the batch is run again message by message, each in a savepoint
(its rows written within it), so one bad message is quarantined with its
error and the rest are stored.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from pathlib import Path, PurePath

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import Limits, Settings
from madoguchi.ingest.fax import (
    FaxConfig,
    FaxPrepared,
    fax_config,
    fax_content_type,
    fax_subject,
    read_document,
    read_gateway_mail,
)
from madoguchi.ingest.filenames import safe_filename
from madoguchi.ingest.htmltext import sanitize_html
from madoguchi.ingest.inbound import Inbound, Outcome, OutcomeKind
from madoguchi.ingest.message import ParsedMessage, ParseError
from madoguchi.ingest.parse import parse_message
from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError
from madoguchi.ticketing import store
from madoguchi.ticketing.acknowledgement import (
    ACK_KIND,
    ack_key,
    acknowledgement_due,
    recent_ack_counts,
)
from madoguchi.ticketing.blobstore import BlobStore, StorageUnavailableError
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.models import (
    Attachment,
    Channel,
    Contract,
    Customer,
    Direction,
    Flag,
    Message,
    QuarantineEntry,
    RawMessage,
    Ticket,
    TicketCounter,
    TicketFlag,
    TicketStatus,
)
from madoguchi.ticketing.outbox import insert_outbox, outbox_values
from madoguchi.ticketing.rules.authenticity import sender_fails_authentication
from madoguchi.ticketing.rules.autoreply import classify_auto
from madoguchi.ticketing.rules.entitlement import (
    ContactFacts,
    ContractFacts,
    Entitlement,
    decide_entitlement,
    match_fax_contact,
)
from madoguchi.ticketing.rules.threading import (
    ThreadAction,
    ThreadDecision,
    ThreadEvidence,
    TicketSnapshot,
    body_ticket_numbers,
    decide_fax_thread,
    decide_thread,
    subject_ticket_tags,
)
from madoguchi.ticketing.sla import FirstResponsePolicy, contract_policy, first_response_due
from madoguchi.ticketing.support_number import find_support_number
from madoguchi.ticketing.ticket_number import TicketNumber

log = logging.getLogger("madoguchi.ingest.pipeline")

# Clocks of relays and senders drift; more than this ahead is not believed.
_CLOCK_SKEW = timedelta(hours=1)

# The desk's faults, not a document's (OCR missing, disk full): the batch is
# left at its source for the next poll, never quarantined.
_DESK_FAULTS = (OcrUnavailableError, StorageUnavailableError)
# The database's (locked, connection lost): never a reason to quarantine a message.
_DATABASE_FAULTS = (OperationalError, InterfaceError)

# Below this many messages a batch is prepared in-process: starting work in
# the pool costs more than it saves.
POOL_THRESHOLD = 16


def dedupe_key(parsed: ParsedMessage, raw: bytes) -> str:
    """The same message read twice gets the same key; two different ones don't.

    Message-ID alone is not enough (some senders reuse or omit it), the raw
    bytes alone are too much (each delivery route adds its own Received:
    lines). The key is the Message-ID together with the headers a sender sets
    and the body as sent, so a re-poll, a second copy through Cc, or a
    re-submitted file is recognised, and a message without Message-ID still
    is.
    """
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    body = raw.split(sep, 1)
    digest = hashlib.sha256()
    for part in (
        parsed.message_id or "",
        parsed.from_addr,
        parsed.date.isoformat() if parsed.date else "",
        parsed.subject,
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    digest.update(body[1].replace(b"\r\n", b"\n") if len(body) > 1 else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class _Parsed:
    """A message made ready for the store: parsed, keyed, and its bytes on disk.

    Attachment payloads are dropped once written to the blob store (their
    sha256 and size are kept), so little crosses back from a worker process;
    the HTML part is sanitised there too (``html``; ``message.html`` is None).
    """

    digest: str  # sha256 of the raw bytes, already in the blob store
    message: ParsedMessage | None  # None for a FAX document (and for errors)
    error: ParseError | None
    key: str | None = None
    attachment_blobs: tuple[tuple[str, int], ...] = ()  # (sha256, size) per attachment
    fax: FaxPrepared | None = None  # a FAX document, or a gateway mail's FAX
    html: str | None = None  # the message's HTML part, sanitised


@dataclass(frozen=True)
class _Prepare:
    """What a worker needs to prepare a message (small and picklable)."""

    limits: Limits
    fax: FaxConfig
    blob_root: str


def _prepare_chunk(
    jobs: list[tuple[bytes, str | None, str]], cfg: _Prepare | None
) -> list[_Parsed]:
    assert cfg is not None or not jobs
    return [_prepare(raw, kind, name, cfg) for raw, kind, name in jobs]


@lru_cache(maxsize=8)
def _blob_store(root: str) -> BlobStore:
    # One per process and root: making one creates its tmp/ folder, a
    # system call that costs as much as parsing a short mail.
    return BlobStore(Path(root))


def _prepare(raw: bytes, kind: str | None, name: str, cfg: _Prepare) -> _Parsed:
    """Parse and store the bytes of one message; runs in a worker process."""
    blobs = _blob_store(cfg.blob_root)
    digest = blobs.put(raw, durable=False)
    try:
        if kind == "fax":
            fax = read_document(raw, name, cfg.fax, blobs)
            # A FAX document is its bytes: their sha256 is its dedupe key.
            return _Parsed(digest, None, None, digest, fax=fax)
        msg = parse_message(raw, cfg.limits)
        fax = read_gateway_mail(msg, cfg.fax, blobs)
    except ParseError as exc:
        return _Parsed(digest, None, exc)
    except FaxDocumentError as exc:
        return _Parsed(digest, None, ParseError(exc.reason_code, exc.reason))
    stored = tuple((blobs.put(a.payload, durable=False), len(a.payload)) for a in msg.attachments)
    html = sanitize_html(msg.html) if msg.html else None
    light = replace(
        msg, html=None, attachments=tuple(replace(a, payload=b"") for a in msg.attachments)
    )
    return _Parsed(digest, light, None, dedupe_key(msg, raw), stored, fax, html)


@dataclass(eq=False)
class _NewTicket:
    """A ticket the batch opens, read like a ``Ticket`` by the rules and the acknowledgement.

    Its row is written by ``Pipeline._write_rows`` (with its chunk, or in its
    message's savepoint in the careful pass), which sets ``id``.
    """

    number: str
    channel: Channel
    subject: str
    support_number: str | None
    customer_id: int | None
    contract_id: int | None
    contact_id: int | None
    received_at: datetime
    work_starts_at: datetime | None
    first_response_due: datetime | None
    company: str  # of its customer, "" when none: the acknowledgement names it
    flags: set[Flag] = field(default_factory=set)
    linked_ticket: Ticket | _NewTicket | None = None
    id: int | None = None
    status: TicketStatus = TicketStatus.OPEN
    closed_at: datetime | None = None

    @property
    def flag_names(self) -> list[str]:
        return sorted(f.value for f in self.flags)

    def row(self) -> dict[str, object]:
        linked = self.linked_ticket
        return {
            "number": self.number,
            "status": self.status,
            "channel": self.channel,
            "subject": self.subject,
            "support_number": self.support_number,
            "customer_id": self.customer_id,
            "contract_id": self.contract_id,
            "contact_id": self.contact_id,
            "received_at": self.received_at,
            "work_starts_at": self.work_starts_at,
            "first_response_due": self.first_response_due,
            "first_responded_at": None,
            "closed_at": self.closed_at,
            "escalated_at": None,
            "assignee_id": None,
            "merged_into_id": None,
            # A ticket of the same statement has no id yet: set just after.
            "linked_ticket_id": linked.id if linked is not None else None,
        }


@dataclass(eq=False)
class _NewMessage:
    """An inbound message the batch stores: its row, its raw bytes' row, its attachments'.

    Read like a ``Message`` by the acknowledgement (sender, subject, ...).
    """

    ticket: Ticket | _NewTicket
    values: dict[str, object]  # the messages row, but ticket_id and raw_id
    raw: dict[str, object]  # its raw_messages row
    attachments: list[dict[str, object]]  # attachments rows, but message_id

    @property
    def channel(self) -> Channel:
        return self.values["channel"]  # type: ignore[return-value]

    @property
    def auto_kind(self) -> str | None:
        return self.values["auto_kind"]  # type: ignore[return-value]

    @property
    def sender(self) -> str:
        return self.values["sender"]  # type: ignore[return-value]

    @property
    def sender_name(self) -> str:
        return self.values["sender_name"]  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return self.values["subject"]  # type: ignore[return-value]

    @property
    def message_id(self) -> str | None:
        return self.values["message_id"]  # type: ignore[return-value]

    @property
    def references(self) -> list[str]:
        return self.values["references"]  # type: ignore[return-value]

    @property
    def received_at(self) -> datetime:
        return self.values["received_at"]  # type: ignore[return-value]


@dataclass
class _Batch:
    """What the batch has stored so far, the rows not yet written, and look-up caches."""

    known_keys: set[str] = field(default_factory=set)  # stored by this batch
    stored_keys: set[str] = field(default_factory=set)  # found in the database
    by_message_id: dict[str, Ticket | _NewTicket] = field(default_factory=dict)
    by_number: dict[str, Ticket | _NewTicket] = field(default_factory=dict)
    participants: dict[str, set[str]] = field(default_factory=dict)  # ticket number → addrs
    contacts: dict[str, tuple[ContactFacts, ...]] = field(default_factory=dict)
    contracts: dict[str, ContractFacts | None] = field(default_factory=dict)
    contract_rows: dict[int, Contract] = field(default_factory=dict)
    contact_emails: dict[int | None, frozenset[str]] = field(default_factory=dict)
    counters: dict[int, int] = field(default_factory=dict)  # year → last number handed out
    # PostgreSQL: sequence numbers taken in transactions of their own (shared
    # by the fast and the careful pass of one batch, so neither leaves gaps
    # for the other), and those of them this batch's tickets use.
    reserved: dict[int, list[int]] = field(default_factory=dict)
    used_numbers: set[tuple[int, int]] = field(default_factory=set)
    quarantined: set[tuple[str, str]] = field(default_factory=set)
    new_tickets: list[tuple[_NewTicket, _NewMessage]] = field(default_factory=list)
    # Rows not yet written (``Pipeline._write_rows``), in the order they were made.
    tickets: list[_NewTicket] = field(default_factory=list)
    messages: list[_NewMessage] = field(default_factory=list)
    # Read from the database once per chunk of messages (``Pipeline._read_ahead``):
    # a Message-ID → (id of the newest stored message, or outbox row, with it;
    # its ticket id), None when there is none.
    stored_refs: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    outbox_refs: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    tickets_by_id: dict[int, Ticket] = field(default_factory=dict)  # held: the map is weak
    stored_participants: dict[int, frozenset[str]] = field(default_factory=dict)
    companies: dict[int, str] = field(default_factory=dict)  # customer id → company
    # Acknowledgements: how many of new_tickets were dealt with, and the
    # batch's count per sender (from the outbox, then counted on) at its time.
    acknowledged: int = 0
    ack_counts: Counter[str] | None = None
    ack_now: datetime | None = None


class Pipeline:
    """Implements ``ingest.inbound.Sink``."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        blobs: BlobStore,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        parse_workers: int | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.blobs = blobs
        self.now = now
        self.calendar = BusinessCalendar.from_settings(settings.calendar, settings.tz)
        self.policy = FirstResponsePolicy.from_settings(settings.sla)
        self.fax = fax_config(settings)
        self._workers = parse_workers if parse_workers is not None else (os.cpu_count() or 1)
        self._pool: Executor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # -- the batch -----------------------------------------------------------

    def _prepared(self, items: Sequence[Inbound]) -> Iterator[_Parsed]:
        """Parse and store bytes; in worker processes when that pays.

        Results stream in order while the caller writes the earlier ones to
        the database, so parsing and OCR on one core overlap with the
        database work on the other (bench/ingest.py measures it). A worker
        that dies on a hostile document (or any error escaping it) costs
        only that document, which is quarantined; the pool is renewed.
        """
        cfg = _Prepare(self.settings.limits, self.fax, str(self.blobs.root))
        jobs = [(i.raw, i.kind, i.source_ref) for i in items]
        # A FAX takes about a second to read: worth a worker even alone.
        has_fax = any(kind == "fax" for _, kind, _ in jobs) or bool(self.fax.gateways)
        if self._workers < 1 or not (len(jobs) >= POOL_THRESHOLD or has_fax):
            yield from (_prepare(raw, kind, name, cfg) for raw, kind, name in jobs)
            return
        size = 1 if has_fax else 8
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        futures = [self._submit(_prepare_chunk, chunk, cfg) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                yield from future.result()
            except _DESK_FAULTS:
                raise  # the desk's fault, not the document's: retried at the next poll
            except Exception as exc:  # a worker's failure is one input's fault
                if isinstance(exc, BrokenProcessPool):
                    self.close()
                yield from (self._isolate(job, cfg) for job in chunk)

    def start_workers(self) -> None:
        """Start the worker processes now rather than at the first large batch.

        A worker takes about a second to start (it imports the parsers and
        the OCR stack); a long-running daemon pays that once, at start-up.
        So is this year's business calendar built (national holidays are
        computed day by day, about 0.1 s) rather than by the first ticket.
        """
        futures = (
            [self._submit(_prepare_chunk, [], None) for _ in range(self._workers)]
            if self._workers >= 1 else []
        )
        self.calendar.window(self.now())
        for future in futures:
            future.result()

    def _submit(self, fn: Callable[..., list[_Parsed]], *args: object) -> Future[list[_Parsed]]:
        if self._pool is None:
            # forkserver: workers inherit no database connections or threads.
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=ctx)
        return self._pool.submit(fn, *args)

    def _isolate(self, job: tuple[bytes, str | None, str], cfg: _Prepare) -> _Parsed:
        """Prepare one input of a failed chunk alone, still in a worker."""
        try:
            return self._submit(_prepare_chunk, [job], cfg).result()[0]
        except _DESK_FAULTS:
            raise
        except Exception as exc:
            if isinstance(exc, BrokenProcessPool):
                self.close()
            log.error("%s: preparing it failed: %r", job[2], exc)
            digest = self.blobs.put(job[0], durable=False)
            return _Parsed(digest, None, ParseError(
                "worker_failed", f"reading it stopped the worker: {type(exc).__name__}: {exc}"
            ))

    def ingest_batch(
        self,
        items: Sequence[Inbound],
        *,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> list[Outcome]:
        parsed: list[_Parsed] = []
        stream = self._prepared(items)
        reserved: dict[int, list[int]] = {}
        try:
            outcomes = self._write(items, parsed, stream, in_transaction, reserved,
                                   careful=False)
        except _DESK_FAULTS:
            raise  # it ended the stream too: no careful pass could read the rest
        except Exception:
            # The careful pass finds the culprit and stores the rest.
            log.warning("batch of %d failed in the fast path; retrying one by one", len(items),
                        exc_info=True)
            parsed.extend(stream)  # whatever the fast path had not read yet
            outcomes = self._write(items, [], iter(parsed), in_transaction, reserved,
                                   careful=True)
        for item, result, outcome in zip(items, parsed, outcomes, strict=True):
            log.info(
                "%s %s: %s%s",
                item.source,
                item.source_ref,
                outcome.kind.value,
                f" {outcome.ticket_number}" if outcome.ticket_number else "",
                extra={"source": item.source, "source_ref": item.source_ref,
                       "ticket": outcome.ticket_number, "outcome": outcome.kind.value,
                       "message_id": result.message.message_id if result.message else None,
                       "sha256": result.digest},
            )
        return outcomes

    def ingest(self, item: Inbound) -> Outcome:
        return self.ingest_batch([item])[0]

    def _write(
        self,
        items: Sequence[Inbound],
        seen: list[_Parsed],
        stream: Iterator[_Parsed],
        in_transaction: Callable[[Session], None] | None,
        reserved: dict[int, list[int]],
        *,
        careful: bool,
    ) -> list[Outcome]:
        """Store the batch in one transaction; ``seen`` collects what was read."""
        outcomes: list[Outcome] = []
        with self.factory() as session, session.begin(), session.no_autoflush:
            batch = _Batch(reserved=reserved)
            pairs = zip(items, stream, strict=True)
            while chunk := list(islice(pairs, 50)):
                seen.extend(r for _, r in chunk)  # kept for a careful retry, read once
                # A few queries tell which of the next 50 were stored before,
                # and which stored tickets their References name.
                keys = [r.key for _, r in chunk if r.key]
                batch.stored_keys.update(store.stored_dedupe_keys(session, keys))
                self._read_ahead(session, batch, [r.message for _, r in chunk if r.message])
                for item, result in chunk:
                    if careful:
                        outcomes.append(self._one_careful(session, batch, item, result))
                    else:
                        outcomes.append(self._one(session, batch, item, result))
                # The chunk's rows (the careful pass wrote them one by one) and
                # acknowledgements, still in the batch's transaction: written
                # while the workers read the next chunk, not after the last.
                self._write_rows(session, batch)
                self._acknowledge(session, batch, careful=careful)
            self._save_counters(session, batch)
            session.flush()  # what the ORM holds: quarantine entries, reopened tickets
            if in_transaction is not None:
                in_transaction(session)
            # Raw bytes and attachments reach the disk before the rows that
            # name them are committed: one sync for the whole batch.
            self.blobs.sync()
        return outcomes

    def _write_rows(self, session: Session, batch: _Batch) -> None:
        """Write the tickets and messages made since the last call: an INSERT per table.

        That is a chunk's in the fast path, one message's (in its savepoint)
        in the careful pass. Tickets first (messages name them), then their
        flags, the raw bytes' rows, the messages and their attachments. New
        ids come back with RETURNING, matched by the ticket number and the
        dedupe key (unique: multi-row INSERTs need not keep their order). A
        ticket linked to one of the same statement gets its link just after.
        """
        tickets, messages = batch.tickets, batch.messages
        if not tickets and not messages:
            return
        ids = store.insert_rows(
            session, Ticket.__table__, [t.row() for t in tickets], key="number"
        )
        for ticket, ticket_id in zip(tickets, ids, strict=True):
            ticket.id = ticket_id
        late_links = [
            {"b_id": t.id, "b_linked": t.linked_ticket.id}
            for t in tickets
            if isinstance(t.linked_ticket, _NewTicket) and t.linked_ticket in tickets
        ]
        if late_links:
            table = Ticket.__table__
            session.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(linked_ticket_id=bindparam("b_linked")),
                late_links,
            )
        store.insert_rows(session, TicketFlag.__table__, [
            {"ticket_id": t.id, "flag": flag} for t in tickets for flag in sorted(t.flags)
        ])
        raw_ids = store.insert_rows(
            session, RawMessage.__table__, [m.raw for m in messages], key="sha256"
        )
        message_ids = store.insert_rows(
            session,
            Message.__table__,
            [
                {**m.values, "ticket_id": m.ticket.id, "raw_id": raw_id}
                for m, raw_id in zip(messages, raw_ids, strict=True)
            ],
            key="dedupe_key",
        )
        store.insert_rows(session, Attachment.__table__, [
            {**a, "message_id": message_id}
            for m, message_id in zip(messages, message_ids, strict=True)
            for a in m.attachments
        ])
        batch.tickets, batch.messages = [], []

    def _acknowledge(self, session: Session, batch: _Batch, *, careful: bool) -> None:
        """Queue the acknowledgements of the batch's new tickets in its transaction.

        After their rows are written, because an outbox row names its ticket
        by id; those not queued yet, in the order the tickets were opened. The
        per-sender hourly limit is counted once for the batch. In the careful
        pass each acknowledgement has its own savepoint: a failure there costs
        the acknowledgement, never the ticket.
        """
        due = batch.new_tickets[batch.acknowledged:]
        if not due:
            return
        batch.acknowledged = len(batch.new_tickets)
        if batch.ack_counts is None:
            batch.ack_now = self.now()
            batch.ack_counts = recent_ack_counts(session, batch.ack_now)
        now, counts = batch.ack_now, batch.ack_counts
        assert now is not None
        if not careful:
            self._queue_acks(session, due, now, counts)
            return
        for ticket, message in due:
            try:
                with session.begin_nested():
                    self._queue_acks(session, [(ticket, message)], now, counts)
            except Exception:
                log.exception("%s: acknowledgement not queued", ticket.number)

    def _queue_acks(
        self, session: Session, due: list[tuple[_NewTicket, _NewMessage]], now: datetime,
        counts: Counter[str],
    ) -> None:
        """Queue the acknowledgements ``due`` with one INSERT; ``counts`` (per sender) counts on.

        ``counts`` takes only what was inserted, so a caller whose savepoint
        rolls back after a failure here has counted nothing for it.
        """
        rows: list[dict[str, object]] = []
        to: dict[str, str] = {}  # dedupe key → sender
        pending: Counter[str] = Counter()  # this call's, per sender
        for ticket, message in due:
            sender = message.sender.lower()
            ack = acknowledgement_due(ticket, message, self.settings, now=now,
                                      recent_acks=counts[sender] + pending[sender],
                                      company=ticket.company)
            if ack is not None:
                key = ack_key(ticket)
                rows.append(outbox_values(kind=ACK_KIND, dedupe_key=key,
                                          ticket_id=ticket.id, message=ack, now=now))
                to[key] = sender
                pending[sender] += 1
        inserted = insert_outbox(session, rows)
        for key, sender in to.items():
            if key in inserted:
                counts[sender] += 1
            else:
                log.info("outbox: %s already queued, not again", key)

    def _company(self, session: Session, batch: _Batch, customer_id: int | None) -> str:
        if customer_id is None:
            return ""
        if customer_id not in batch.companies:
            batch.companies[customer_id] = session.get_one(Customer, customer_id).company
        return batch.companies[customer_id]

    def _one(self, session: Session, batch: _Batch, item: Inbound, result: _Parsed) -> Outcome:
        if result.error is not None:
            return self._quarantine(
                session, batch, item, result.digest, result.error.reason_code, result.error.reason
            )
        if result.fax is not None:
            return self._store_fax(session, batch, item, result)
        assert result.message is not None and result.key is not None
        return self._store_mail(session, batch, item, result)

    def _one_careful(
        self, session: Session, batch: _Batch, item: Inbound, result: _Parsed
    ) -> Outcome:
        snapshot = _copy_batch(batch)
        digest = result.digest
        try:
            with session.begin_nested():
                outcome = self._one(session, batch, item, result)
                self._write_rows(session, batch)
                session.flush()
                return outcome
        except _DATABASE_FAULTS:
            raise  # the database's fault, not the message's: the batch waits for the next poll
        except Exception as exc:
            log.exception("%s %s: internal error", item.source, item.source_ref)
            _restore_batch(batch, snapshot)
            with session.begin_nested():
                outcome = self._quarantine(
                    session, batch, item, digest, "internal_error", f"{type(exc).__name__}: {exc}"
                )
                session.flush()
                return outcome

    # -- quarantine ----------------------------------------------------------

    def _quarantine(
        self, session: Session, batch: _Batch, item: Inbound, digest: str, code: str, reason: str
    ) -> Outcome:
        if (digest, code) in batch.quarantined or session.scalar(
            select(QuarantineEntry.id).where(
                QuarantineEntry.sha256 == digest, QuarantineEntry.reason_code == code
            )
        ) is not None:
            return Outcome(OutcomeKind.DUPLICATE, reason=reason)
        batch.quarantined.add((digest, code))
        now = self.now()
        session.add(
            QuarantineEntry(
                source=item.source,
                source_ref=item.source_ref[:500],
                reason_code=code,
                reason=reason,
                sha256=digest,
                size=len(item.raw),
                received_at=item.received_at or now,
                created_at=now,
            )
        )
        return Outcome(OutcomeKind.QUARANTINED, reason=f"{code}: {reason}")

    # -- identify ------------------------------------------------------------

    def _received_at(self, item: Inbound, msg: ParsedMessage) -> datetime:
        """When the desk received it: the source's word, else the headers, else now.

        Headers are the sender's (or a relay's) word: a date in the future
        would give the ticket a due time that never comes, so it is not taken.
        """
        if item.received_at is not None:
            return item.received_at
        now = self.now()
        for stated in (msg.received_date, msg.date):
            if stated is not None and stated <= now + _CLOCK_SKEW:
                return stated
        return now

    @staticmethod
    def _refs(msg: ParsedMessage) -> list[str]:
        refs = [*msg.references, *msg.in_reply_to]
        if msg.bounced_message_id:
            refs.append(msg.bounced_message_id)
        return refs

    def _read_ahead(self, session: Session, batch: _Batch, messages: list[ParsedMessage]) -> None:
        """What the next messages' References need from the database, in a few queries.

        The stored messages (else the desk's own mail) their Message-IDs
        name, those tickets, and the tickets' participants; ``_ticket_by_refs``
        and ``_snapshot`` then find them in the batch. Ids that name a message
        of this batch are not looked up: the batch knows them first.
        """
        refs = [r for m in messages for r in self._refs(m) if r not in batch.by_message_id]
        if not refs:
            return
        self._look_up_refs(session, batch, refs)
        ticket_ids = {
            found[1]
            for r in refs
            for found in (batch.stored_refs.get(r), batch.outbox_refs.get(r))
            if found is not None
        }
        loading = [t for t in ticket_ids if t not in batch.tickets_by_id]
        batch.tickets_by_id.update(store.tickets_by_ids(session, loading))
        asking = [t for t in ticket_ids if t not in batch.stored_participants]
        batch.stored_participants.update(
            store.participants_of(session, asking, self.settings.desk_address)
        )

    def _look_up_refs(self, session: Session, batch: _Batch, refs: list[str]) -> None:
        new = [r for r in refs if r and r not in batch.stored_refs]
        if new:
            found = store.newest_by_message_id(session, new)
            batch.stored_refs.update((r, found.get(r)) for r in new)
        unknown = [
            r for r in refs if r and batch.stored_refs[r] is None and r not in batch.outbox_refs
        ]
        if unknown:
            found = store.newest_outbox_by_message_id(session, unknown)
            batch.outbox_refs.update((r, found.get(r)) for r in unknown)

    def _ticket_by_refs(
        self, session: Session, batch: _Batch, refs: list[str]
    ) -> Ticket | _NewTicket | None:
        for ref in reversed(refs):  # the newest reference is the most specific
            if ref in batch.by_message_id:
                return batch.by_message_id[ref]
        # Else the ticket of the newest stored message among them, as
        # store.ticket_by_message_ids has it (a reply to the desk's own mail:
        # the outbox knows its ticket), from what _read_ahead found.
        self._look_up_refs(session, batch, refs)
        found = [f for r in refs if r and (f := batch.stored_refs[r]) is not None]
        if not found:
            found = [f for r in refs if r and (f := batch.outbox_refs[r]) is not None]
        if not found:
            return None
        ticket_id = max(found)[1]
        if ticket_id not in batch.tickets_by_id:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:
                return None
            batch.tickets_by_id[ticket_id] = ticket
        return batch.tickets_by_id[ticket_id]

    def _ticket_by_number(
        self, session: Session, batch: _Batch, number: str
    ) -> Ticket | _NewTicket | None:
        if number not in batch.by_number:
            found = store.ticket_by_number(session, number)
            if found is None:
                return None
            batch.by_number[number] = found
        return batch.by_number[number]

    def _snapshot(
        self, session: Session, batch: _Batch, ticket: Ticket | _NewTicket
    ) -> TicketSnapshot:
        desk = self.settings.desk_address.lower()
        stored: frozenset[str] = frozenset()
        if ticket.id is not None:
            if ticket.id not in batch.stored_participants:
                batch.stored_participants.update(
                    store.participants_of(session, [ticket.id], self.settings.desk_address)
                )
            stored = batch.stored_participants[ticket.id]
        extra = batch.participants.get(ticket.number, set()) - {desk}
        if ticket.customer_id not in batch.contact_emails:
            batch.contact_emails[ticket.customer_id] = store.contact_emails(
                session, ticket.customer_id
            )
        return TicketSnapshot(
            id=ticket.id or 0,
            number=ticket.number,
            closed_at=ticket.closed_at if ticket.status == TicketStatus.CLOSED else None,
            participants=stored | extra,
            contact_emails=batch.contact_emails[ticket.customer_id],
        )

    def _evidence(
        self, session: Session, batch: _Batch, msg: ParsedMessage
    ) -> tuple[ThreadEvidence, dict[str, Ticket | _NewTicket]]:
        prefix = self.settings.threading.ticket_prefix
        refs = self._refs(msg)
        by_ref = self._ticket_by_refs(session, batch, refs) if refs else None
        by_tag = by_body = None
        if by_ref is None:
            by_tag = self._first_ticket(session, batch, subject_ticket_tags(msg.subject, prefix))
            if by_tag is None:
                by_body = self._first_ticket(session, batch, body_ticket_numbers(msg.text, prefix))
        found = {t.number: t for t in (by_ref, by_tag, by_body) if t is not None}
        return (
            ThreadEvidence(
                by_reference=self._snapshot(session, batch, by_ref) if by_ref else None,
                by_subject_tag=self._snapshot(session, batch, by_tag) if by_tag else None,
                by_body_number=self._snapshot(session, batch, by_body) if by_body else None,
            ),
            found,
        )

    def _first_ticket(
        self, session: Session, batch: _Batch, numbers: Iterable[str]
    ) -> Ticket | _NewTicket | None:
        for number in numbers:
            ticket = self._ticket_by_number(session, batch, number)
            if ticket is not None:
                return ticket
        return None

    # -- mail ----------------------------------------------------------------

    def _is_known(self, session: Session, batch: _Batch, key: str) -> bool:
        return key in batch.known_keys or key in batch.stored_keys

    def _store_mail(
        self, session: Session, batch: _Batch, item: Inbound, prepared: _Parsed
    ) -> Outcome:
        msg, key, digest = prepared.message, prepared.key, prepared.digest
        assert msg is not None and key is not None
        if self._is_known(session, batch, key):
            return Outcome(OutcomeKind.DUPLICATE)

        received_at = self._received_at(item, msg)
        # A sender the desk's own mail server says is forged vouches for nothing.
        sender = "" if self._forged(msg) else msg.from_addr
        evidence, found = self._evidence(session, batch, msg)
        decision = decide_thread(evidence, sender, received_at, self.settings.threading.reopen_days)
        auto = classify_auto(msg, self.settings.desk_address)
        target = found[decision.ticket.number] if decision.ticket is not None else None

        if auto is not None:
            # Machine-written mail joins a ticket it is clearly about, and
            # never reopens, opens or acknowledges anything.
            if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
                assert target is not None
                self._add_message(session, batch, target, item, prepared, received_at, auto)
                return Outcome(OutcomeKind.THREADED, target.number, reason=auto.value)
            return self._quarantine(
                session, batch, item, digest, auto.value,
                f"machine-written mail ({auto.value}) that names no ticket of the desk",
            )

        return self._place(
            session, batch, decision, target, item, prepared, received_at,
            lambda: self._open_mail_ticket(session, batch, msg, sender, received_at),
        )

    def _place(
        self,
        session: Session,
        batch: _Batch,
        decision: ThreadDecision,
        target: Ticket | _NewTicket | None,
        item: Inbound,
        prepared: _Parsed,
        received_at: datetime,
        open_ticket: Callable[[], _NewTicket],
    ) -> Outcome:
        """Carry out a threading decision: join (or reopen) ``target``, or open a ticket."""
        if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
            assert target is not None
            if decision.action is ThreadAction.REOPEN:
                assert isinstance(target, Ticket)  # only a stored ticket can be closed
                store.reopen(target)
            self._add_message(session, batch, target, item, prepared, received_at, None)
            return Outcome(OutcomeKind.THREADED, target.number)
        ticket = open_ticket()
        if decision.action is ThreadAction.NEW_LINKED and target is not None:
            ticket.linked_ticket = target
        if decision.unregistered_sender:
            ticket.flags.add(Flag.UNREGISTERED_SENDER)
        message = self._add_message(session, batch, ticket, item, prepared, received_at, None)
        batch.new_tickets.append((ticket, message))
        return Outcome(OutcomeKind.CREATED, ticket.number)

    def _contacts(self, session: Session, batch: _Batch, address: str) -> tuple[ContactFacts, ...]:
        if address not in batch.contacts:
            batch.contacts[address] = store.contacts_for_address(session, address)
        return batch.contacts[address]

    def _contract(self, session: Session, batch: _Batch, digits: str) -> ContractFacts | None:
        if digits not in batch.contracts:
            batch.contracts[digits] = store.contract_for_number(session, digits)
        return batch.contracts[digits]

    def _contract_row(
        self, session: Session, batch: _Batch, contract_id: int | None
    ) -> Contract | None:
        # Held by the batch: the session's identity map is weak and would
        # otherwise load the same contract again for every ticket.
        if contract_id is None:
            return None
        if contract_id not in batch.contract_rows:
            batch.contract_rows[contract_id] = session.get_one(Contract, contract_id)
        return batch.contract_rows[contract_id]

    def _next_number(self, session: Session, batch: _Batch, year: int) -> str:
        prefix = self.settings.threading.ticket_prefix
        bind = session.get_bind()
        if bind.dialect.name == "postgresql" and isinstance(bind, Engine):
            # Taken outside the batch's transaction: holding the counter row
            # until the batch commits would make concurrent daemons store
            # their batches one after the other. Numbers the batch took but
            # no longer uses (its fast pass failed, a savepoint rolled back)
            # go to its next tickets; only a batch that cannot commit at all
            # (the daemon killed, the database lost) leaves a gap.
            pool = batch.reserved.setdefault(year, [])
            sequence = next((n for n in pool if (year, n) not in batch.used_numbers), None)
            if sequence is None:
                sequence = store.reserve_ticket_sequence(bind, year)
                pool.append(sequence)
            batch.used_numbers.add((year, sequence))
            return str(TicketNumber(prefix, year, sequence))
        # SQLite has one writer at a time anyway: the first number of a year
        # in this batch takes the counter row's lock (store.next_ticket_number);
        # the rest count on in memory and are written back once, before the
        # batch commits, so numbers never have gaps.
        if year not in batch.counters:
            number = store.next_ticket_number(session, prefix, year)
            parsed = TicketNumber.parse(number)
            assert parsed is not None
            batch.counters[year] = parsed.sequence
            return number
        batch.counters[year] += 1
        return str(TicketNumber(prefix, year, batch.counters[year]))

    def _save_counters(self, session: Session, batch: _Batch) -> None:
        for year, last in batch.counters.items():
            session.execute(
                update(TicketCounter).where(TicketCounter.year == year).values(last=last)
            )

    def _forged(self, msg: ParsedMessage) -> bool:
        header = msg.headers.get("authentication-results")
        return bool(header) and sender_fails_authentication(
            [header], self.settings.trusted_authserv_ids
        )

    def _open_mail_ticket(
        self, session: Session, batch: _Batch, msg: ParsedMessage, sender: str,
        received_at: datetime,
    ) -> _NewTicket:
        found = find_support_number(msg.subject, msg.text, self.settings.support_number)
        rights = decide_entitlement(
            support_number=found.number.digits if found.number else None,
            contract_for_number=(
                self._contract(session, batch, found.number.digits) if found.number else None
            ),
            sender_contacts=self._contacts(session, batch, sender) if sender else (),
            received_day=received_at.astimezone(self.settings.tz).date(),
        )
        written = found.number.digits if found.number else (
            found.invalid[0] if found.invalid else None
        )
        return self._open_ticket(session, batch, rights, written, msg.subject, received_at,
                                 Channel.EMAIL)

    def _open_ticket(
        self,
        session: Session,
        batch: _Batch,
        rights: Entitlement,
        written_number: str | None,
        subject: str,
        received_at: datetime,
        channel: Channel,
    ) -> _NewTicket:
        """A new ticket with its contract, flags, number and first-response due time.

        ``written_number`` is the number as the message gave it (kept even
        when it matches no contract, so staff see what was written).
        """
        contract = self._contract_row(session, batch, rights.contract_id)
        if written_number is None and contract is not None:
            # No number in the message, but the contact's only contract is known.
            written_number = contract.support_number
        deadline = first_response_due(received_at, self.calendar, self._policy_for(contract))
        ticket = _NewTicket(
            number=self._next_number(
                session, batch, received_at.astimezone(self.settings.tz).year
            ),
            channel=channel,
            subject=subject,
            support_number=written_number,
            customer_id=rights.customer_id,
            contract_id=rights.contract_id,
            contact_id=rights.contact_id,
            received_at=received_at,
            work_starts_at=deadline.starts_at,
            first_response_due=deadline.due_at,
            company=self._company(session, batch, rights.customer_id),
            flags=set(rights.flags),
        )
        batch.tickets.append(ticket)
        batch.by_number[ticket.number] = ticket
        return ticket

    # -- FAX -----------------------------------------------------------------

    def _store_fax(
        self, session: Session, batch: _Batch, item: Inbound, prepared: _Parsed
    ) -> Outcome:
        fax, msg, key = prepared.fax, prepared.message, prepared.key
        assert fax is not None and key is not None
        if self._is_known(session, batch, key):
            return Outcome(OutcomeKind.DUPLICATE)
        received_at = (
            self._received_at(item, msg) if msg is not None else (item.received_at or self.now())
        )

        target = (
            self._ticket_by_number(session, batch, fax.ticket_number) if fax.ticket_number else None
        )
        decision = decide_fax_thread(
            self._snapshot(session, batch, target) if target is not None else None,
            target is not None and fax.support_digits is not None
            and target.support_number == fax.support_digits,
            received_at,
            self.settings.threading.reopen_days,
        )
        def open_ticket() -> _NewTicket:
            rights = self._fax_rights(session, batch, fax, received_at)
            company = (
                self._company(session, batch, rights.customer_id) if rights.customer_id else None
            )
            subject = fax_subject(fax, msg.subject if msg else "", company)
            return self._open_ticket(
                session, batch, rights, fax.support_digits, subject, received_at, Channel.FAX
            )

        return self._place(
            session, batch, decision, target, item, prepared, received_at, open_ticket
        )

    def _fax_rights(
        self, session: Session, batch: _Batch, fax: FaxPrepared, received_at: datetime
    ) -> Entitlement:
        """Entitlement of a FAX: the number read by OCR, the contact the page names.

        An unreadable number is not guessed: the ticket waits in triage,
        flagged ``unreadable_fax``, for staff to assign it.
        """
        if fax.support_digits is None:
            return Entitlement(None, None, None, frozenset({Flag.UNREADABLE_FAX}))
        contract = self._contract(session, batch, fax.support_digits)
        contacts: tuple[ContactFacts, ...] = ()
        if contract is not None:
            cards = store.contact_cards(session, contract.customer_id)
            named = match_fax_contact(fax.text, cards)
            contacts = tuple(
                c for c in store.contacts_by_ids(session, [named] if named else [])
            )
        return decide_entitlement(
            support_number=fax.support_digits,
            contract_for_number=contract,
            sender_contacts=contacts,
            received_day=received_at.astimezone(self.settings.tz).date(),
        )

    def _policy_for(self, contract: Contract | None) -> FirstResponsePolicy:
        if contract is None:
            return self.policy
        return contract_policy(self.policy, contract.sla_override,
                               contract=contract.support_number)

    def _add_message(
        self,
        session: Session,
        batch: _Batch,
        ticket: Ticket | _NewTicket,
        item: Inbound,
        prepared: _Parsed,
        received_at: datetime,
        auto_kind: str | None,
    ) -> _NewMessage:
        msg, fax = prepared.message, prepared.fax
        assert prepared.key is not None
        text = msg.text if msg is not None else ""
        if fax is not None:
            # The page text is what staff read and search; a gateway's own
            # covering note follows it.
            text = fax.text + (f"\n\n---\n{text}" if text.strip() else "")
        attachments: list[dict[str, object]] = []
        if msg is not None:
            for part, (sha256, size) in zip(
                msg.attachments, prepared.attachment_blobs, strict=True
            ):
                attachments.append(_attachment(
                    sha256, size, part.content_type,
                    safe_filename(part.filename, part.content_type), part.filename,
                ))
        else:
            # A FAX document: the original file is its first attachment.
            name = PurePath(item.source_ref).name or "fax.pdf"
            ctype = fax_content_type(name)
            attachments.append(_attachment(
                prepared.digest, len(item.raw), ctype, safe_filename(name, ctype), name
            ))
        if fax is not None:
            for i, (sha256, size) in enumerate(fax.page_blobs, 1):
                attachments.append(_attachment(
                    sha256, size, "image/png", f"fax-page-{i:03d}.png", ""
                ))
        message = _NewMessage(
            ticket=ticket,
            values={
                "direction": Direction.IN,
                "channel": Channel.FAX if fax is not None else Channel.EMAIL,
                "dedupe_key": prepared.key,
                "message_id": msg.message_id if msg else None,
                "in_reply_to": (" ".join(msg.in_reply_to) or None) if msg else None,
                "references": list(msg.references) if msg else [],
                "sender": msg.from_addr if msg else "",
                "sender_name": msg.from_name if msg else "FAX",
                "recipients": list(msg.to) if msg else [],
                "cc": list(msg.cc) if msg else [],
                "subject": msg.subject if msg else ticket.subject,
                "date": msg.date if msg else None,
                "received_at": received_at,
                "text": text,
                "html": prepared.html,
                "auto_kind": auto_kind,
                "fax_reading": fax.record if fax is not None else None,
                "author_id": None,
            },
            raw={
                "sha256": prepared.digest,
                "size": len(item.raw),
                "source": item.source,
                "source_ref": item.source_ref[:500],
                "received_at": received_at,
            },
            attachments=attachments,
        )
        batch.messages.append(message)
        batch.known_keys.add(prepared.key)
        if msg is not None and msg.message_id:
            batch.by_message_id[msg.message_id] = ticket
        if msg is not None:
            batch.participants.setdefault(ticket.number, set()).update(
                a for a in (msg.from_addr, *msg.to, *msg.cc) if a
            )
        return message


def _attachment(
    sha256: str, size: int, content_type: str, filename: str, original_filename: str
) -> dict[str, object]:
    return {
        "sha256": sha256,
        "size": size,
        "content_type": content_type,
        "filename": filename,
        "original_filename": original_filename,
    }


def _copy_batch(batch: _Batch) -> _Batch:
    return _Batch(
        known_keys=set(batch.known_keys),
        stored_keys=set(batch.stored_keys),
        by_message_id=dict(batch.by_message_id),
        by_number=dict(batch.by_number),
        participants={k: set(v) for k, v in batch.participants.items()},
        contacts=dict(batch.contacts),
        contracts=dict(batch.contracts),
        contract_rows=dict(batch.contract_rows),
        contact_emails=dict(batch.contact_emails),
        counters=dict(batch.counters),
        reserved=batch.reserved,  # shared: what was taken stays taken, and reusable
        used_numbers=set(batch.used_numbers),
        quarantined=set(batch.quarantined),
        new_tickets=list(batch.new_tickets),
        tickets=list(batch.tickets),
        messages=list(batch.messages),
        stored_refs=dict(batch.stored_refs),
        outbox_refs=dict(batch.outbox_refs),
        tickets_by_id=dict(batch.tickets_by_id),
        stored_participants=dict(batch.stored_participants),
        companies=dict(batch.companies),
        acknowledged=batch.acknowledged,
        ack_counts=Counter(batch.ack_counts) if batch.ack_counts is not None else None,
        ack_now=batch.ack_now,
    )


def _restore_batch(batch: _Batch, saved: _Batch) -> None:
    for name in batch.__dataclass_fields__:
        setattr(batch, name, getattr(saved, name))
