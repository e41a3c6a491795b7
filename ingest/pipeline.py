"""The one path of an inbound message: parse → identify → entitlement → store.

Sources hand over batches of raw bytes (``Inbound``); the pipeline parses
them (in a process pool when the batch is large enough to pay for it),
keeps the raw bytes in the blob store, asks the rules in
``ticketing.rules`` what to do, and writes tickets and messages — all of a
batch in one transaction together with the source's own bookkeeping.

A bad message never stops a batch: a parse failure or a limit is a
quarantine entry, and an unexpected error inside one message rolls back
only that message's savepoint and quarantines it with the error.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import Settings
from madoguchi.ingest.filenames import safe_filename
from madoguchi.ingest.htmltext import sanitize_html
from madoguchi.ingest.inbound import Inbound, Outcome, OutcomeKind
from madoguchi.ingest.message import ParsedMessage, ParseError
from madoguchi.ingest.parse import parse_message
from madoguchi.ticketing import store
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.models import (
    Attachment,
    Channel,
    Contract,
    Direction,
    Flag,
    Message,
    QuarantineEntry,
    RawMessage,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.rules.autoreply import classify_auto
from madoguchi.ticketing.rules.entitlement import decide_entitlement
from madoguchi.ticketing.rules.threading import (
    ThreadAction,
    ThreadEvidence,
    body_ticket_numbers,
    decide_thread,
    subject_ticket_tags,
)
from madoguchi.ticketing.sla import FirstResponsePolicy, first_response_due
from madoguchi.ticketing.support_number import find_support_number

log = logging.getLogger("madoguchi.ingest.pipeline")

# Below this many messages a batch is parsed in-process: starting work in
# the pool costs more than it saves.
POOL_THRESHOLD = 32


def dedupe_key(parsed: ParsedMessage, raw: bytes) -> str:
    """The same message read twice gets the same key; two different ones don't.

    Message-ID alone is not enough (some senders reuse or omit it), the raw
    bytes alone are too much (each delivery route adds its own Received:
    lines). The key is the Message-ID together with the headers a sender sets
    and the body as sent, so a re-poll, a second copy through Cc, or a
    re-submitted file is recognised, and a message without Message-ID still
    is.
    """
    body = raw.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)
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
    message: ParsedMessage | None
    error: ParseError | None


def _parse(raw: bytes, settings: Settings) -> _Parsed:
    try:
        return _Parsed(parse_message(raw, settings.limits), None)
    except ParseError as exc:
        return _Parsed(None, exc)


class Pipeline:
    """Implements ``ingest.inbound.Sink``."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        blobs: BlobStore,
        *,
        parse_workers: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.blobs = blobs
        self.now = now
        self.calendar = BusinessCalendar.from_settings(settings.calendar, settings.tz)
        self.policy = FirstResponsePolicy.from_settings(settings.sla)
        self._workers = parse_workers if parse_workers is not None else (os.cpu_count() or 1)
        self._pool: Executor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # -- parsing -------------------------------------------------------------

    def _parse_all(self, items: Sequence[Inbound]) -> list[_Parsed]:
        if self._workers > 1 and len(items) >= POOL_THRESHOLD:
            if self._pool is None:
                # forkserver: no inherited database connections or threads.
                ctx = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self._workers, mp_context=ctx)
            raws = [i.raw for i in items]
            chunk = max(1, len(items) // (self._workers * 4))
            return list(
                self._pool.map(_parse, raws, [self.settings] * len(raws), chunksize=chunk)
            )
        return [_parse(i.raw, self.settings) for i in items]

    # -- the batch -----------------------------------------------------------

    def ingest_batch(
        self,
        items: Sequence[Inbound],
        *,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> list[Outcome]:
        parsed = self._parse_all(items)
        digests = [self.blobs.put(item.raw, durable=False) for item in items]

        outcomes: list[Outcome] = []
        with self.factory() as session, session.begin():
            for item, result, digest in zip(items, parsed, digests, strict=True):
                outcomes.append(self._one(session, item, result, digest))
            if in_transaction is not None:
                in_transaction(session)
            # Raw bytes and attachments reach the disk before the rows that
            # name them are committed: one sync for the whole batch.
            self.blobs.sync()
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

    def _one(self, session: Session, item: Inbound, result: _Parsed, digest: str) -> Outcome:
        try:
            with session.begin_nested():
                if result.error is not None:
                    return self._quarantine(
                        session, item, digest, result.error.reason_code, result.error.reason
                    )
                assert result.message is not None
                return self._store_mail(session, item, result.message, digest)
        except Exception as exc:
            log.exception("%s %s: internal error", item.source, item.source_ref)
            with session.begin_nested():
                return self._quarantine(
                    session, item, digest, "internal_error", f"{type(exc).__name__}: {exc}"
                )

    # -- quarantine ----------------------------------------------------------

    def _quarantine(
        self, session: Session, item: Inbound, digest: str, code: str, reason: str
    ) -> Outcome:
        existing = session.scalar(
            select(QuarantineEntry.id).where(
                QuarantineEntry.sha256 == digest, QuarantineEntry.reason_code == code
            )
        )
        if existing is not None:
            return Outcome(OutcomeKind.DUPLICATE, reason=reason)
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
        session.flush()
        return Outcome(OutcomeKind.QUARANTINED, reason=f"{code}: {reason}")

    # -- mail ----------------------------------------------------------------

    def _received_at(self, item: Inbound, msg: ParsedMessage) -> datetime:
        return item.received_at or msg.received_date or msg.date or self.now()

    def _evidence(self, session: Session, msg: ParsedMessage) -> ThreadEvidence:
        prefix = self.settings.threading.ticket_prefix
        desk = self.settings.desk_address
        refs = [*msg.in_reply_to, *msg.references]
        if msg.bounced_message_id:
            refs.append(msg.bounced_message_id)
        by_ref = store.ticket_by_message_ids(session, refs)
        by_tag = by_body = None
        if by_ref is None:
            for number in subject_ticket_tags(msg.subject, prefix):
                by_tag = store.ticket_by_number(session, number)
                if by_tag:
                    break
            if by_tag is None:
                for number in body_ticket_numbers(msg.text, prefix):
                    by_body = store.ticket_by_number(session, number)
                    if by_body:
                        break
        return ThreadEvidence(
            by_reference=store.snapshot(session, by_ref, desk) if by_ref else None,
            by_subject_tag=store.snapshot(session, by_tag, desk) if by_tag else None,
            by_body_number=store.snapshot(session, by_body, desk) if by_body else None,
        )

    def _store_mail(
        self, session: Session, item: Inbound, msg: ParsedMessage, digest: str
    ) -> Outcome:
        key = dedupe_key(msg, item.raw)
        if session.scalar(select(Message.id).where(Message.dedupe_key == key)) is not None:
            return Outcome(OutcomeKind.DUPLICATE)

        received_at = self._received_at(item, msg)
        decision = decide_thread(
            self._evidence(session, msg),
            msg.from_addr,
            received_at,
            self.settings.threading.reopen_days,
        )
        auto = classify_auto(msg, self.settings.desk_address)

        if auto is not None:
            # Machine-written mail joins a ticket it is clearly about, and
            # never reopens, opens or acknowledges anything.
            if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
                assert decision.ticket is not None
                ticket = session.get_one(Ticket, decision.ticket.id)
                self._add_message(session, ticket, item, msg, digest, key, received_at, auto)
                return Outcome(OutcomeKind.THREADED, ticket.number, reason=auto.value)
            return self._quarantine(
                session,
                item,
                digest,
                auto.value,
                f"machine-written mail ({auto.value}) that names no ticket of the desk",
            )

        if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
            assert decision.ticket is not None
            ticket = session.get_one(Ticket, decision.ticket.id)
            if decision.action is ThreadAction.REOPEN:
                store.reopen(ticket)
            self._add_message(session, ticket, item, msg, digest, key, received_at, None)
            return Outcome(OutcomeKind.THREADED, ticket.number)

        ticket = self._open_ticket(session, msg, received_at, Channel.EMAIL)
        if decision.action is ThreadAction.NEW_LINKED and decision.ticket is not None:
            ticket.linked_ticket_id = decision.ticket.id
        if decision.unregistered_sender:
            store.set_flags(ticket, [Flag.UNREGISTERED_SENDER])
        self._add_message(session, ticket, item, msg, digest, key, received_at, None)
        return Outcome(OutcomeKind.CREATED, ticket.number)

    def _open_ticket(
        self, session: Session, msg: ParsedMessage, received_at: datetime, channel: Channel
    ) -> Ticket:
        tz = self.settings.tz
        found = find_support_number(msg.subject, msg.text, self.settings.support_number)
        number = found.number.digits if found.number else None
        rights = decide_entitlement(
            support_number=number,
            contract_for_number=store.contract_for_number(session, number) if number else None,
            sender_contacts=store.contacts_for_address(session, msg.from_addr),
            received_day=received_at.astimezone(tz).date(),
        )
        local = received_at.astimezone(tz)
        if number is None and rights.contract_id is not None:
            # No number in the message, but the contact's only contract is known.
            number = session.get_one(Contract, rights.contract_id).support_number
        ticket = Ticket(
            number=store.next_ticket_number(
                session, self.settings.threading.ticket_prefix, local.year
            ),
            status=TicketStatus.OPEN,
            channel=channel,
            subject=msg.subject,
            support_number=number or (found.invalid[0] if found.invalid else None),
            customer_id=rights.customer_id,
            contract_id=rights.contract_id,
            contact_id=rights.contact_id,
            received_at=received_at,
        )
        contract = session.get(Contract, rights.contract_id) if rights.contract_id else None
        deadline = first_response_due(
            received_at, self.calendar, self._policy_for(contract)
        )
        ticket.work_starts_at, ticket.first_response_due = deadline.starts_at, deadline.due_at
        session.add(ticket)
        store.set_flags(ticket, rights.flags)
        session.flush()
        return ticket

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
        ticket: Ticket,
        item: Inbound,
        msg: ParsedMessage,
        digest: str,
        key: str,
        received_at: datetime,
        auto_kind: str | None,
    ) -> Message:
        raw = RawMessage(
            sha256=digest,
            size=len(item.raw),
            source=item.source,
            source_ref=item.source_ref[:500],
            received_at=received_at,
        )
        message = Message(
            ticket=ticket,
            direction=Direction.IN,
            channel=ticket.channel,
            dedupe_key=key,
            message_id=msg.message_id,
            in_reply_to=" ".join(msg.in_reply_to) or None,
            references=list(msg.references),
            sender=msg.from_addr,
            sender_name=msg.from_name,
            recipients=list(msg.to),
            cc=list(msg.cc),
            subject=msg.subject,
            date=msg.date,
            received_at=received_at,
            text=msg.text,
            html=sanitize_html(msg.html) if msg.html else None,
            auto_kind=auto_kind,
            raw=raw,
        )
        for part in msg.attachments:
            message.attachments.append(
                Attachment(
                    sha256=self.blobs.put(part.payload, durable=False),
                    size=len(part.payload),
                    content_type=part.content_type,
                    filename=safe_filename(part.filename, part.content_type),
                    original_filename=part.filename,
                )
            )
        session.add(message)
        session.flush()
        return message
