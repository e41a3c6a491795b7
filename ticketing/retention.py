"""The retention policy applied: what is older than ``[retention]`` allows goes.

Per kind (``config.retention.RetentionSettings``, 0: kept for good):

- raw mail: the original bytes of mail and FAX documents received longer
  ago than ``raw_mail_days`` (the message's text and attachments stay);
- attachments of tickets closed longer ago than ``attachments_days``;
- quarantined input set aside longer ago than ``quarantine_days``;
- tickets closed longer ago than ``closed_tickets_days``: their messages
  anonymised in place (``privacy.anonymise_messages``), the ticket kept as a
  number, a status and its times;
- the ticket access log and sign-in attempts older than ``access_log_days``,
  web sessions ended longer ago than ``sessions_days``.

At most ``BATCH`` rows of each kind per run, so that a first run on an old
desk is many short transactions rather than one long one; the daemon's job
runs it daily (and again at once while a run found a full batch). Each run
that removed anything is written to ``privacy_actions``; blobs go after the
commit, once nothing names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from madoguchi.config.retention import RetentionSettings
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Attachment, Message, QuarantineEntry, RawMessage, Ticket
from madoguchi.ticketing.privacy import anonymise_messages, record, sweep_blobs
from madoguchi.ticketing.security_models import SignInAttempt, TicketAccess, WebSession
from madoguchi.ticketing.storage import Storage
from madoguchi.ticketing.vocabulary import TicketStatus

BATCH = 1000
ANONYMISED = "（保存期間経過により匿名化）"


@dataclass
class RetentionReport:
    raw_mail: int = 0
    attachments: int = 0
    quarantine: int = 0
    tickets: int = 0
    access_log: int = 0
    sign_in_attempts: int = 0
    sessions: int = 0
    blobs_removed: int = 0
    full: bool = False  # a kind filled its batch: run again for the rest
    _blobs: set[str] = field(default_factory=set, repr=False)

    def counts(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "full"}

    @property
    def removed_anything(self) -> bool:
        return any(v for k, v in self.counts().items() if k != "blobs_removed")


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _raw_mail(db: Session, report: RetentionReport, before: datetime) -> None:
    rows = db.execute(select(RawMessage.id, RawMessage.sha256)
                      .where(RawMessage.received_at < before).limit(BATCH)).all()
    if not rows:
        return
    ids = [r.id for r in rows]
    db.execute(update(Message).where(Message.raw_id.in_(ids)).values(raw_id=None))
    db.execute(delete(RawMessage).where(RawMessage.id.in_(ids)))
    report.raw_mail, report.full = len(rows), report.full or len(rows) == BATCH
    report._blobs.update(r.sha256 for r in rows)


def apply_retention(storage: Storage, policy: RetentionSettings, now: datetime,
                    operator: str = "retention") -> RetentionReport:
    """One run of the policy; returns what it removed."""
    report = RetentionReport()
    with transaction(storage.factory) as db:
        if (before := _cutoff(now, policy.raw_mail_days)) is not None:
            _raw_mail(db, report, before)
        if (before := _cutoff(now, policy.attachments_days)) is not None:
            found = db.scalars(select(Attachment).join(Message).join(Ticket).where(
                Ticket.status == TicketStatus.CLOSED, Ticket.closed_at < before).limit(BATCH)
            ).all()
            for a in found:
                report._blobs.add(a.sha256)
                db.delete(a)
            report.attachments, report.full = len(found), report.full or len(found) == BATCH
        if (before := _cutoff(now, policy.quarantine_days)) is not None:
            entries = db.scalars(select(QuarantineEntry)
                                 .where(QuarantineEntry.created_at < before).limit(BATCH)).all()
            for q in entries:
                report._blobs.add(q.sha256)
                db.delete(q)
            report.quarantine, report.full = len(entries), report.full or len(entries) == BATCH
        if (before := _cutoff(now, policy.closed_tickets_days)) is not None:
            tickets = db.scalars(select(Ticket).where(
                Ticket.status == TicketStatus.CLOSED, Ticket.closed_at < before,
                Ticket.subject != ANONYMISED).limit(BATCH // 10)).all()
            for t in tickets:
                report._blobs |= anonymise_messages(db, t.messages)
                t.subject = ANONYMISED
            report.tickets, report.full = len(tickets), report.full or len(tickets) == BATCH // 10
        _logs(db, report, policy, now)
        if report.removed_anything:
            record(db, "retention", "", now, operator, report.counts())
    report.blobs_removed = sweep_blobs(storage.factory, storage.blobs, report._blobs)
    return report


def _logs(db: Session, report: RetentionReport, policy: RetentionSettings,
          now: datetime) -> None:
    if (before := _cutoff(now, policy.access_log_days)) is not None:
        report.access_log = _count(db.execute(delete(TicketAccess).where(TicketAccess.at < before)))
        report.sign_in_attempts = _count(db.execute(
            delete(SignInAttempt).where(SignInAttempt.at < before)))
    if (before := _cutoff(now, policy.sessions_days)) is not None:
        report.sessions = _count(db.execute(delete(WebSession).where(or_(
            WebSession.revoked_at < before, WebSession.last_seen_at < before))))


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)

