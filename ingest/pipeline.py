"""The one path of an inbound message: parse → identify → entitlement → store.

Sources hand over batches of raw bytes (``Inbound``); the pipeline parses
them, keeps the raw bytes in the blob store, asks the rules in
``ticketing.rules`` what to do, and writes tickets and messages — all of a
batch in one transaction together with the source's own bookkeeping.

Speed: a batch is written with a single flush at its end (the ORM then
batches the INSERTs per table); what the rules need to know about messages
of the same batch comes from the in-memory ``_Batch``, not from queries.
Safety: if anything goes wrong in that fast path, the transaction is rolled
back and the batch is run again message by message, each in a savepoint, so
one bad message is quarantined with its error and the rest are stored.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path, PurePath

from sqlalchemy import select, update
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
from madoguchi.ticketing.acknowledgement import acknowledge_new_ticket, recent_ack_counts
from madoguchi.ticketing.blobstore import BlobStore
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
    TicketStatus,
)
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
from madoguchi.ticketing.sla import FirstResponsePolicy, first_response_due
from madoguchi.ticketing.support_number import find_support_number

log = logging.getLogger("madoguchi.ingest.pipeline")

# Clocks of relays and senders drift; more than this ahead is not believed.
_CLOCK_SKEW = timedelta(hours=1)

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
    sha256 and size are kept), so little crosses back from a worker process.
    """

    digest: str  # sha256 of the raw bytes, already in the blob store
    message: ParsedMessage | None  # None for a FAX document (and for errors)
    error: ParseError | None
    key: str | None = None
    attachment_blobs: tuple[tuple[str, int], ...] = ()  # (sha256, size) per attachment
    fax: FaxPrepared | None = None  # a FAX document, or a gateway mail's FAX


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


def _prepare(raw: bytes, kind: str | None, name: str, cfg: _Prepare) -> _Parsed:
    """Parse and store the bytes of one message; runs in a worker process."""
    blobs = BlobStore(Path(cfg.blob_root))
    digest = blobs.put(raw, durable=False)
    try:
        if kind == "fax":
            fax = read_document(raw, name, cfg.fax, blobs)
            return _Parsed(digest, None, None, f"fax:{digest}", fax=fax)
        msg = parse_message(raw, cfg.limits)
        fax = read_gateway_mail(msg, cfg.fax, blobs)
    except ParseError as exc:
        return _Parsed(digest, None, exc)
    except FaxDocumentError as exc:
        return _Parsed(digest, None, ParseError(exc.reason_code, exc.reason))
    stored = tuple((blobs.put(a.payload, durable=False), len(a.payload)) for a in msg.attachments)
    light = replace(msg, attachments=tuple(replace(a, payload=b"") for a in msg.attachments))
    return _Parsed(digest, light, None, dedupe_key(msg, raw), stored, fax)


@dataclass
class _Batch:
    """What the batch has written so far but not yet flushed, and look-up caches."""

    known_keys: set[str] = field(default_factory=set)  # written by this batch
    stored_keys: set[str] = field(default_factory=set)  # found in the database
    by_message_id: dict[str, Ticket] = field(default_factory=dict)
    by_number: dict[str, Ticket] = field(default_factory=dict)
    participants: dict[str, set[str]] = field(default_factory=dict)  # ticket number → addrs
    contacts: dict[str, tuple[ContactFacts, ...]] = field(default_factory=dict)
    contracts: dict[str, ContractFacts | None] = field(default_factory=dict)
    contract_rows: dict[int, Contract] = field(default_factory=dict)
    contact_emails: dict[int | None, frozenset[str]] = field(default_factory=dict)
    counters: dict[int, int] = field(default_factory=dict)  # year → last number handed out
    quarantined: set[tuple[str, str]] = field(default_factory=set)
    new_tickets: list[tuple[Ticket, Message]] = field(default_factory=list)


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
            except OcrUnavailableError:
                raise  # the desk's fault, not the document's: retried at the next poll
            except Exception as exc:  # a worker's failure is one input's fault
                if isinstance(exc, BrokenProcessPool):
                    self.close()
                yield from (self._isolate(job, cfg) for job in chunk)

    def start_workers(self) -> None:
        """Start the worker processes now rather than at the first large batch.

        A worker takes about a second to start (it imports the parsers and
        the OCR stack); a long-running daemon pays that once, at start-up.
        """
        if self._workers >= 1:
            for future in [self._submit(_prepare_chunk, [], None) for _ in range(self._workers)]:
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
        except OcrUnavailableError:
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
        try:
            outcomes = self._write(items, parsed, stream, in_transaction, careful=False)
        except Exception:
            # The careful pass finds the culprit and stores the rest.
            log.warning("batch of %d failed in the fast path; retrying one by one", len(items),
                        exc_info=True)
            parsed.extend(stream)  # whatever the fast path had not read yet
            outcomes = self._write(items, [], iter(parsed), in_transaction, careful=True)
        for item, outcome in zip(items, outcomes, strict=True):
            log.info(
                "%s %s: %s%s",
                item.source,
                item.source_ref,
                outcome.kind.value,
                f" {outcome.ticket_number}" if outcome.ticket_number else "",
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
        *,
        careful: bool,
    ) -> list[Outcome]:
        """Store the batch in one transaction; ``seen`` collects what was read."""
        outcomes: list[Outcome] = []
        with self.factory() as session, session.begin(), session.no_autoflush:
            batch = _Batch()
            pairs = zip(items, stream, strict=True)
            while chunk := list(islice(pairs, 50)):
                # One query tells which of the next 50 were stored before.
                seen.extend(r for _, r in chunk)  # kept for a careful retry, read once
                keys = [r.key for _, r in chunk if r.key]
                batch.stored_keys.update(store.stored_dedupe_keys(session, keys))
                for item, result in chunk:
                    if careful:
                        outcomes.append(self._one_careful(session, batch, item, result))
                    else:
                        outcomes.append(self._one(session, batch, item, result))
            self._save_counters(session, batch)
            session.flush()
            self._acknowledge(session, batch, careful=careful)
            if in_transaction is not None:
                in_transaction(session)
            # Raw bytes and attachments reach the disk before the rows that
            # name them are committed: one sync for the whole batch.
            self.blobs.sync()
        return outcomes

    def _acknowledge(self, session: Session, batch: _Batch, *, careful: bool) -> None:
        """Queue the acknowledgements of the batch's new tickets in its transaction.

        After the flush, because an outbox row names its ticket by id. The
        per-sender hourly limit is counted once for the batch. In the careful
        pass each acknowledgement has its own savepoint: a failure there costs
        the acknowledgement, never the ticket.
        """
        if not batch.new_tickets:
            return
        now = self.now()
        counts = recent_ack_counts(session, now)
        for ticket, message in batch.new_tickets:
            sender = message.sender.lower()
            if not careful:
                queued = acknowledge_new_ticket(
                    session, ticket, message, self.settings, now=now, recent_acks=counts[sender]
                )
                counts[sender] += queued is not None
                continue
            try:
                with session.begin_nested():
                    queued = acknowledge_new_ticket(
                        session, ticket, message, self.settings, now=now,
                        recent_acks=counts[sender],
                    )
                    counts[sender] += queued is not None
            except Exception:
                log.exception("%s: acknowledgement not queued", ticket.number)

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
                session.flush()
                return outcome
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

    def _ticket_by_refs(self, session: Session, batch: _Batch, refs: list[str]) -> Ticket | None:
        for ref in reversed(refs):  # the newest reference is the most specific
            if ref in batch.by_message_id:
                return batch.by_message_id[ref]
        return store.ticket_by_message_ids(session, refs)

    def _ticket_by_number(self, session: Session, batch: _Batch, number: str) -> Ticket | None:
        if number not in batch.by_number:
            found = store.ticket_by_number(session, number)
            if found is None:
                return None
            batch.by_number[number] = found
        return batch.by_number[number]

    def _snapshot(self, session: Session, batch: _Batch, ticket: Ticket) -> TicketSnapshot:
        desk = self.settings.desk_address.lower()
        stored = (
            store.participants(session, ticket.id, desk) if ticket.id is not None else frozenset()
        )
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
    ) -> tuple[ThreadEvidence, dict[str, Ticket]]:
        prefix = self.settings.threading.ticket_prefix
        refs = [*msg.references, *msg.in_reply_to]
        if msg.bounced_message_id:
            refs.append(msg.bounced_message_id)
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
    ) -> Ticket | None:
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
        target: Ticket | None,
        item: Inbound,
        prepared: _Parsed,
        received_at: datetime,
        open_ticket: Callable[[], Ticket],
    ) -> Outcome:
        """Carry out a threading decision: join (or reopen) ``target``, or open a ticket."""
        if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
            assert target is not None
            if decision.action is ThreadAction.REOPEN:
                store.reopen(target)
            self._add_message(session, batch, target, item, prepared, received_at, None)
            return Outcome(OutcomeKind.THREADED, target.number)
        ticket = open_ticket()
        if decision.action is ThreadAction.NEW_LINKED and target is not None:
            ticket.linked_ticket = target
        if decision.unregistered_sender:
            store.set_flags(ticket, [Flag.UNREGISTERED_SENDER])
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
        # The first number of a year in this batch takes the counter row's
        # lock (store.next_ticket_number); the rest count on in memory and
        # are written back once, before the batch commits.
        prefix = self.settings.threading.ticket_prefix
        if year not in batch.counters:
            number = store.next_ticket_number(session, prefix, year)
            batch.counters[year] = int(number.rsplit("-", 1)[1])
            return number
        batch.counters[year] += 1
        return store.format_ticket_number(prefix, year, batch.counters[year])

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
    ) -> Ticket:
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
    ) -> Ticket:
        """A new ticket with its contract, flags, number and first-response due time.

        ``written_number`` is the number as the message gave it (kept even
        when it matches no contract, so staff see what was written).
        """
        contract = self._contract_row(session, batch, rights.contract_id)
        if written_number is None and contract is not None:
            # No number in the message, but the contact's only contract is known.
            written_number = contract.support_number
        deadline = first_response_due(received_at, self.calendar, self._policy_for(contract))
        ticket = Ticket(
            number=self._next_number(
                session, batch, received_at.astimezone(self.settings.tz).year
            ),
            status=TicketStatus.OPEN,
            channel=channel,
            subject=subject,
            support_number=written_number,
            customer_id=rights.customer_id,
            contract_id=rights.contract_id,
            contact_id=rights.contact_id,
            received_at=received_at,
            work_starts_at=deadline.starts_at,
            first_response_due=deadline.due_at,
        )
        session.add(ticket)
        store.set_flags(ticket, rights.flags)
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
        def open_ticket() -> Ticket:
            rights = self._fax_rights(session, batch, fax, received_at)
            customer = session.get(Customer, rights.customer_id) if rights.customer_id else None
            subject = fax_subject(fax, msg.subject if msg else "", customer and customer.company)
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
        """The contract's own terms win over the desk's default."""
        if contract is None or not contract.sla_override:
            return self.policy
        try:
            return FirstResponsePolicy.from_override(contract.sla_override, self.policy)
        except ValueError as exc:
            log.error("contract %s: %s; the default policy applies", contract.support_number, exc)
            return self.policy

    def _add_message(
        self,
        session: Session,
        batch: _Batch,
        ticket: Ticket,
        item: Inbound,
        prepared: _Parsed,
        received_at: datetime,
        auto_kind: str | None,
    ) -> Message:
        msg, fax = prepared.message, prepared.fax
        assert prepared.key is not None
        text = msg.text if msg is not None else ""
        if fax is not None:
            # The page text is what staff read and search; a gateway's own
            # covering note follows it.
            text = fax.text + (f"\n\n---\n{text}" if text.strip() else "")
        message = Message(
            ticket=ticket,
            direction=Direction.IN,
            channel=Channel.FAX if fax is not None else Channel.EMAIL,
            dedupe_key=prepared.key,
            message_id=msg.message_id if msg else None,
            in_reply_to=(" ".join(msg.in_reply_to) or None) if msg else None,
            references=list(msg.references) if msg else [],
            sender=msg.from_addr if msg else "",
            sender_name=msg.from_name if msg else "FAX",
            recipients=list(msg.to) if msg else [],
            cc=list(msg.cc) if msg else [],
            subject=msg.subject if msg else ticket.subject,
            date=msg.date if msg else None,
            received_at=received_at,
            text=text,
            html=sanitize_html(msg.html) if msg and msg.html else None,
            auto_kind=auto_kind,
            fax_reading=fax.record if fax is not None else None,
            raw=RawMessage(
                sha256=prepared.digest,
                size=len(item.raw),
                source=item.source,
                source_ref=item.source_ref[:500],
                received_at=received_at,
            ),
        )
        if msg is not None:
            for part, (sha256, size) in zip(
                msg.attachments, prepared.attachment_blobs, strict=True
            ):
                message.attachments.append(Attachment(
                    sha256=sha256, size=size, content_type=part.content_type,
                    filename=safe_filename(part.filename, part.content_type),
                    original_filename=part.filename,
                ))
        else:
            # A FAX document: the original file is its first attachment.
            name = PurePath(item.source_ref).name or "fax.pdf"
            ctype = fax_content_type(name)
            message.attachments.append(Attachment(
                sha256=prepared.digest, size=len(item.raw), content_type=ctype,
                filename=safe_filename(name, ctype), original_filename=name,
            ))
        if fax is not None:
            for i, (sha256, size) in enumerate(fax.page_blobs, 1):
                message.attachments.append(Attachment(
                    sha256=sha256, size=size, content_type="image/png",
                    filename=f"fax-page-{i:03d}.png", original_filename="",
                ))
        session.add(message)
        batch.known_keys.add(prepared.key)
        if msg is not None and msg.message_id:
            batch.by_message_id[msg.message_id] = ticket
        if msg is not None:
            batch.participants.setdefault(ticket.number, set()).update(
                a for a in (msg.from_addr, *msg.to, *msg.cc) if a
            )
        return message


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
        quarantined=set(batch.quarantined),
        new_tickets=list(batch.new_tickets),
    )


def _restore_batch(batch: _Batch, saved: _Batch) -> None:
    for name in batch.__dataclass_fields__:
        setattr(batch, name, getattr(saved, name))
