"""Outgoing mail through a transactional outbox.

The change that causes a mail (a new ticket, a reply) writes the complete
message into the ``outbox`` table in its own transaction (``enqueue``): a
rolled-back change never sends anything, a committed one is always sent.
``OutboxSender.send_due`` delivers the rows afterwards over SMTP.

The life of a row::

    pending ──claim──▶ sending ──MAIL, RCPT accepted──▶ delivering ──DATA accepted──▶ sent
     ▲  ▲                 │                                 │
     │  └── lease over ───┘ (died before DATA:              └── lease over ──▶ failed, INTERRUPTED
     │                       the server has nothing)        └── no answer to the final dot
     │                                                              ──▶ failed, UNCONFIRMED
     └── temporary failure in sending or delivering (refused, dropped, 4xx), attempts < max:
         next_attempt_at = now + backoff with jitter.
         Permanent refusal (5xx) or attempts used up ──▶ failed

A supervisor may take a ``pending`` row back (``cancelled``, never claimed) or
put a ``failed`` one back to ``pending`` (``ticketing.delivery``); what the
rows mean to staff is ``rules.delivery.delivery_state``.

Never lost and never sent twice after a crash. Each status is COMMITTED
before the SMTP step it allows, and while a row is ``sending`` or
``delivering`` its ``next_attempt_at`` holds the end of its sender's lease
(``lease_for``):

- ``sending``, before connecting. Until DATA the server holds nothing it
  could deliver, so a row still ``sending`` after its lease goes back to
  ``pending``, due at once, its attempt counted. The lease is long (every
  step up to RCPT may take a timeout) so a live sender is not overtaken.
- ``delivering``, right before the DATA command, in its own short
  transaction, and only while the row is still this sender's: ``sending``
  with the attempt number of its claim. A sender that was overtaken anyway
  finds the row changed, resets the SMTP transaction and sends nothing.
  From DATA on the server may have the message and nobody can tell: a row
  still ``delivering`` after its lease (a few timeouts: DATA, the content,
  the reply) is marked ``failed`` with ``INTERRUPTED`` for staff, who check
  the recipient's mailbox before they resend.
- ``sent``, in a new transaction after the server accepted.

A reply refusing the DATA (or a refusal of the message once sent) is a
failure like any other: by SMTP's rules the server has not taken the message;
so is a connection lost before the whole message was sent. Once its end (the
final dot) is sent, the reply is awaited ``smtp.data_timeout_seconds`` (10
minutes, RFC 5321 4.5.3.2.6: a slow server is not a failed one); if none
comes, timed out or the connection dropped, the server may have the message
and deliver it: the row is failed with ``UNCONFIRMED`` for staff, like a
crash during DATA, and never sent again. Nothing is ever sent twice; the
price is a mail staff must check by hand when a server hangs up at that
moment.

A leader's sender is fenced (``ticketing.leadership``): each claim checks,
in its transaction, that its daemon still leads, and a sender whose daemon
lost the lead stops at its next claim.

Several senders may run at once: on PostgreSQL a row is claimed with
``SELECT ... FOR UPDATE SKIP LOCKED``, so two workers never take the same row
and never wait for each other; SQLite serialises writers, and the claim's
conditional UPDATE (``WHERE status = 'pending'``) holds on both.

A temporary failure that concerns the connection (refused, dropped, TLS,
login, 421) ends the round: the server is unwell, the other rows wait for the
next round rather than each spending an attempt on it. The SMTP conversation
and what its failures mean are ``ticketing.smtp_client``'s.
"""

from __future__ import annotations

import logging
import random
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import getaddresses, parseaddr
from functools import partial

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import ConfigError, Settings
from madoguchi.config.mail import SmtpSettings
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.delivery import delivery_changed
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.dkim_sign import DkimSigner
from madoguchi.ticketing.leadership import Fence, LeadershipLost
from madoguchi.ticketing.models import OutboxMessage, OutboxStatus, Ticket, table_of
from madoguchi.ticketing.rules.delivery import INTERRUPTED as INTERRUPTED
from madoguchi.ticketing.rules.delivery import UNCONFIRMED as UNCONFIRMED
from madoguchi.ticketing.smtp_client import SmtpFailure, classify, open_smtp, reply_text, transact

__all__ = [
    "INTERRUPTED",
    "STOPPED_BEFORE_DATA",
    "UNCONFIRMED",
    "OutboxSender",
    "SendReport",
    "claim_next",
    "enqueue",
    "insert_outbox",
    "lease_for",
    "outbox_values",
]

log = logging.getLogger("madoguchi.outbox")


# Leases in SMTP timeouts. `sending`: connect, EHLO, STARTTLS, EHLO, AUTH,
# MAIL and each RCPT wait at most one; generous, as overtaking a live sender
# costs an attempt (never a duplicate: see _start_delivering).
_SENDING_TIMEOUTS = 20
# `delivering`: the DATA command, the content and the final reply wait at most
# one each; the rest is margin for committing `sent`.
_DELIVERING_TIMEOUTS = 5

# Why a row left `sending` by a dead sender went back to pending.
STOPPED_BEFORE_DATA = "the sender stopped before DATA; nothing was sent"


def enqueue(
    session: Session,
    *,
    kind: str,
    dedupe_key: str,
    ticket: Ticket | None,
    message: EmailMessage,
    now: datetime,
    mail_from: str | None = None,
) -> OutboxMessage | None:
    """Write ``message`` into the outbox in the caller's transaction.

    Envelope recipients are the To, Cc and Bcc addresses (Bcc is removed from
    the stored bytes); the envelope sender is ``mail_from``, by default the
    From address. Returns None, and writes nothing, when a row with
    ``dedupe_key`` exists already (also one inserted concurrently).
    """
    if ticket is not None and ticket.id is None:
        session.flush()
    values = outbox_values(kind=kind, dedupe_key=dedupe_key,
                           ticket_id=ticket.id if ticket is not None else None,
                           message=message, now=now, mail_from=mail_from)
    if not insert_outbox(session, [values]):
        log.info("outbox: %s already queued, not again", dedupe_key)
        return None
    return session.scalars(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key)
    ).one()


def outbox_values(
    *,
    kind: str,
    dedupe_key: str,
    ticket_id: int | None,
    message: EmailMessage,
    now: datetime,
    mail_from: str | None = None,
) -> dict[str, object]:
    """The outbox row that sends ``message``, checked; ValueError when it must not be sent.

    As ``enqueue`` describes; for callers that insert many rows at once
    (``insert_outbox``).
    """
    message_id = message.get("Message-ID", "").strip()
    if not message_id:
        raise ValueError("the message has no Message-ID")
    for name, value in message.raw_items():
        # Python before 3.11.10 / 3.12.5 writes such a value out verbatim:
        # a header injection. The builders strip line breaks; this is the net.
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} contains a line break")
    rcpt_to = [
        addr
        for _name, addr in getaddresses(
            [str(v) for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])]
        )
        if addr
    ]
    sender = mail_from if mail_from is not None else parseaddr(str(message["From"]))[1]
    if not rcpt_to:
        raise ValueError("the message has no recipient")
    if not sender or not all(a.isascii() for a in [sender, *rcpt_to]):
        raise ValueError("envelope addresses must be present and ASCII")
    del message["Bcc"]
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "message_id": message_id,
        "mail_from": sender,
        "rcpt_to": rcpt_to,
        "raw": _checked_bytes(message),
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }


def insert_outbox(session: Session, rows: list[dict[str, object]]) -> set[str]:
    """Insert ``outbox_values`` rows in one statement; the dedupe keys it inserted.

    A row whose dedupe key is queued already (also concurrently) is skipped.
    """
    if not rows:
        return set()
    dialect = dialect_of(session)
    stmt = dialect.insert_skipping_conflicts(table_of(OutboxMessage), rows, ["dedupe_key"])
    inserted = set(session.scalars(stmt.returning(OutboxMessage.dedupe_key)))
    if inserted:
        dialect.announce_queued_mail(session)  # the leader sends at once (outbox_signal)
    return inserted


def _checked_bytes(message: EmailMessage) -> bytes:
    """The bytes to send, read back: they must carry exactly the headers we set.

    Python before 3.11.10 can write a header value's hidden line break out raw
    (CVE-2024-6923); this is the last net against a header we did not mean.
    """
    raw = message.as_bytes(policy=SMTP_POLICY)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    written = [line.split(":", 1)[0].strip().lower()
               for line in head.split("\r\n") if line and line[0] not in " \t"]
    meant = [name.lower() for name, _ in message.raw_items()]
    if sorted(written) != sorted(meant):
        raise ValueError(f"outgoing headers {written} differ from the ones set {meant}")
    return raw


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def lease_for(smtp: SmtpSettings, status: OutboxStatus = OutboxStatus.SENDING) -> timedelta:
    """How long a row may stay ``sending`` (or ``delivering``) before its sender counts as dead.

    ``delivering`` includes the wait for the answer to the final dot, so a
    live sender waiting for a slow server is never taken for a dead one.
    """
    if status is OutboxStatus.DELIVERING:
        return timedelta(seconds=smtp.timeout_seconds * _DELIVERING_TIMEOUTS
                         + smtp.data_timeout_seconds)
    return timedelta(seconds=smtp.timeout_seconds * _SENDING_TIMEOUTS)


def _ticket_numbers(session: Session, row_ids: list[int]) -> dict[int, str]:
    """The ticket numbers of outbox rows (those that have a ticket), for their log lines."""
    if not row_ids:
        return {}
    return dict(session.execute(
        select(OutboxMessage.id, Ticket.number)
        .join(Ticket, Ticket.id == OutboxMessage.ticket_id)
        .where(OutboxMessage.id.in_(row_ids))
    ).all())


def claim_next(session: Session, *, now: datetime, lease: timedelta) -> OutboxMessage | None:
    """Take the most overdue pending row for this session's transaction, or None.

    The row is set to ``sending`` (its attempt counted, its lease until
    ``now + lease``); the caller commits before talking to the server.
    """
    while True:
        row_id = session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
            # Rendered on PostgreSQL only; SQLite has no row locks.
            .with_for_update(skip_locked=True)
        )
        if row_id is None:
            return None
        claimed = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == OutboxStatus.PENDING)
            .values(
                status=OutboxStatus.SENDING,
                attempts=OutboxMessage.attempts + 1,
                next_attempt_at=now + lease,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return session.get_one(OutboxMessage, row_id, populate_existing=True)
        # Another sender took it between our read and our write: look again.


@dataclass
class SendReport:
    """What one ``send_due`` round did, by outbox row id."""

    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    # Left to staff, never resent: found still ``delivering`` after their lease
    # (INTERRUPTED), or sent whole with no answer to the final dot (UNCONFIRMED).
    interrupted: list[int] = field(default_factory=list)
    # Found still ``sending`` after their lease: nothing was sent, pending again.
    requeued: list[int] = field(default_factory=list)


class OutboxSender:
    """Delivers due outbox rows over SMTP. One instance per worker process."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        smtp_factory: Callable[[SmtpSettings], smtplib.SMTP] = open_smtp,
        rng: random.Random | None = None,
        fence: Fence | None = None,
    ) -> None:
        """``fence``: a leader's check that it still leads, run in each claim's transaction."""
        self.smtp = settings.smtp
        # Mail from a product's address goes through that product's server, if it has one.
        self.routes = {p.acknowledgement.from_address.lower(): p.smtp
                       for p in settings.products
                       if p.smtp is not None and p.acknowledgement.from_address}
        self.signer = DkimSigner(settings.dkim)
        self._sessions = session_factory
        self._now = now
        self._smtp_factory = smtp_factory
        self._rng = rng or random.Random()
        self._fence = fence

    def send_due(self, limit: int = 100) -> SendReport:
        """Recover rows of dead senders, then deliver up to ``limit`` due rows, one at a time."""
        report = SendReport()
        try:
            self.recover_expired(report)
        except LeadershipLost as exc:
            log.warning("outbox: not sending: %s", exc)
            return report
        conn: smtplib.SMTP | None = None
        server = self.smtp  # the settings ``conn`` is connected with
        try:
            for _ in range(limit):
                with self._sessions() as session, session.begin():
                    if self._fence is not None and not self._fenced(session):
                        break
                    row = claim_next(session, now=self._now(), lease=lease_for(self.smtp))
                    if row is None:
                        break
                    row_id, attempt = row.id, row.attempts
                    mail_from, rcpt_to, raw = row.mail_from, row.rcpt_to, row.raw
                # Committed as `sending`: until DATA a crash only delays the row.
                route = self.routes.get(mail_from.lower(), self.smtp)
                try:
                    raw = self.signer.sign(raw)
                except (ValueError, ConfigError) as exc:  # the key: the desk's setup
                    self._record_failure(row_id, attempt, SmtpFailure(
                        f"not signed: {exc}", permanent=False, connection=False), report)
                    continue
                try:
                    if conn is not None and route is not server:
                        _quit(conn)
                        conn = None
                    if conn is None:
                        conn, server = self._smtp_factory(route), route
                    accepted = transact(conn, mail_from, rcpt_to, raw,
                                       partial(self._start_delivering, row_id, attempt),
                                       data_timeout=route.data_timeout_seconds)
                except Exception as exc:
                    failure = classify(exc)
                    self._record_failure(row_id, attempt, failure, report)
                    if failure.connection:
                        if conn is not None:
                            conn.close()
                        conn = None
                        break
                    continue
                if accepted is None:
                    log.warning("outbox %s: taken back from this sender before DATA; "
                                "not sent by it", row_id, extra={"outbox_id": row_id})
                    try:
                        conn.rset()
                    except (OSError, smtplib.SMTPException):
                        conn.close()
                        conn = None
                    continue
                self._record_sent(row_id, *accepted, report)
        finally:
            if conn is not None:
                _quit(conn)
        return report

    def _fenced(self, session: Session) -> bool:
        """Whether this sender's daemon still leads (checked in ``session``'s transaction)."""
        assert self._fence is not None
        try:
            self._fence(session)
        except LeadershipLost as exc:
            log.warning("outbox: stopped claiming: %s", exc)
            return False
        return True

    def recover_expired(self, report: SendReport) -> None:
        """Rows whose sender's lease is over: sent again if DATA had not begun, else failed.

        A row still ``sending`` goes back to ``pending``, due now (or fails when
        its attempts are used up: a row that kills its sender must not loop);
        one still ``delivering`` is failed with ``INTERRUPTED``, never resent.
        """
        now = self._now()
        with self._sessions() as session, session.begin():
            if self._fence is not None:
                self._fence(session)
            expired = session.execute(
                select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts)
                .where(
                    OutboxMessage.status.in_([OutboxStatus.SENDING, OutboxStatus.DELIVERING]),
                    OutboxMessage.next_attempt_at <= now,
                )
                .order_by(OutboxMessage.id)
                .with_for_update(skip_locked=True)
            ).all()
            outcomes: list[tuple[int, str]] = []
            for row_id, status, attempts in expired:
                if status == OutboxStatus.DELIVERING:
                    values: dict[str, object] = {"status": OutboxStatus.FAILED,
                                                 "last_error": INTERRUPTED}
                    outcome = "interrupted"
                elif attempts >= self.smtp.max_attempts:
                    values = {"status": OutboxStatus.FAILED, "last_error":
                              f"gave up after {attempts} attempts: {STOPPED_BEFORE_DATA}"}
                    outcome = "failed"
                else:
                    values = {"status": OutboxStatus.PENDING, "next_attempt_at": now,
                              "last_error": STOPPED_BEFORE_DATA}
                    outcome = "requeued"
                # Only as read: SQLite has no row locks, another sender may have
                # recovered it, or its live sender moved on, meanwhile.
                done = session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row_id, OutboxMessage.status == status,
                           OutboxMessage.attempts == attempts,
                           OutboxMessage.next_attempt_at <= now)
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    outcomes.append((row_id, outcome))
                    if outcome != "requeued":
                        delivery_changed(session, row_id, outcome, None, now)
            numbers = _ticket_numbers(session, [row_id for row_id, _ in outcomes])
        for row_id, outcome in outcomes:
            extra = {"ticket": numbers.get(row_id), "outbox_id": row_id}
            if outcome == "requeued":
                report.requeued.append(row_id)
                log.warning("outbox %s: %s; sending it again", row_id, STOPPED_BEFORE_DATA,
                            extra=extra)
            elif outcome == "failed":
                report.failed.append(row_id)
                log.error("outbox %s: failed: gave up, %s", row_id, STOPPED_BEFORE_DATA,
                          extra=extra)
            else:
                report.interrupted.append(row_id)
                log.error("outbox %s: %s", row_id, INTERRUPTED, extra=extra)

    def _start_delivering(self, row_id: int, attempt: int) -> bool:
        """Commit ``delivering`` before DATA; False when the row is no longer this sender's.

        The attempt number is the fence: a row taken back after the lease and
        claimed again carries a higher one.
        """
        with self._sessions() as session, session.begin():
            done = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id, OutboxMessage.status == OutboxStatus.SENDING,
                       OutboxMessage.attempts == attempt)
                .values(status=OutboxStatus.DELIVERING,
                        next_attempt_at=self._now() + lease_for(self.smtp,
                                                                OutboxStatus.DELIVERING))
                .execution_options(synchronize_session=False)
            )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def _record_sent(self, row_id: int, refused: dict[str, tuple[int, bytes]],
                     answer: str, report: SendReport) -> None:
        # Some recipients refused, others took it: sent, for resending would
        # duplicate it to the others; the refusals are kept for staff.
        note = (
            "; ".join(f"refused {a}: {reply_text(c, r)}" for a, (c, r) in refused.items())
            if refused
            else None
        )
        with self._sessions() as session, session.begin():
            # By id alone: the server has the message, whatever a sender that
            # took this row for interrupted wrote meanwhile.
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(status=OutboxStatus.SENT, sent_at=self._now(), last_error=note,
                        server_reply=answer)
                .execution_options(synchronize_session=False)
            )
            delivery_changed(session, row_id, "sent", None, self._now())
            number = _ticket_numbers(session, [row_id]).get(row_id)
        report.sent.append(row_id)
        log.info("outbox %s: sent%s", row_id, f" ({note})" if note else "",
                 extra={"ticket": number, "outbox_id": row_id})

    def _record_failure(self, row_id: int, attempt: int, failure: SmtpFailure,
                        report: SendReport) -> None:
        now = self._now()
        with self._sessions() as session, session.begin():
            row = session.get_one(OutboxMessage, row_id, populate_existing=True,
                                  with_for_update=True)
            if (row.status not in (OutboxStatus.SENDING, OutboxStatus.DELIVERING)
                    or row.attempts != attempt):
                return  # recovered after the lease meanwhile; that verdict stands
            row.last_error = str(failure)
            extra = {"ticket": _ticket_numbers(session, [row_id]).get(row_id), "outbox_id": row_id}
            if failure.unconfirmed:
                row.status = OutboxStatus.FAILED
                row.last_error = (f"{UNCONFIRMED} ({failure}); check the recipient's mailbox "
                                  "before resending")
                report.interrupted.append(row_id)
                log.error("outbox %s: %s", row_id, row.last_error, extra=extra)
                delivery_changed(session, row_id, "unknown", None, now)
            elif failure.permanent or row.attempts >= self.smtp.max_attempts:
                row.status = OutboxStatus.FAILED
                if not failure.permanent:
                    row.last_error = f"gave up after {row.attempts} attempts: {failure}"
                report.failed.append(row_id)
                log.error("outbox %s: failed: %s", row_id, row.last_error, extra=extra)
                delivery_changed(session, row_id, "failed", None, now)
            else:
                row.status = OutboxStatus.PENDING
                row.next_attempt_at = now + backoff_delay(
                    row.attempts, base_seconds=self.smtp.backoff_base_seconds,
                    max_seconds=self.smtp.backoff_max_seconds, rng=self._rng,
                )
                report.retrying.append(row_id)
                log.warning("outbox %s: attempt %s failed, retry at %s: %s",
                            row_id, row.attempts, row.next_attempt_at, failure, extra=extra)

