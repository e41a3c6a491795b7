"""How the desk is doing, read from what the desk keeps: ``madoguchi status`` and /metrics.

Nothing here is kept in memory of a process: every number comes from the
database (or the source folders) when asked, so it is the same whichever
daemon, web or command-line process answers, and right after a restart.

"Last poll" is not written down by the pollers; what is known is read:

* the daemon's scheduler keeps ``poll:<source>`` jobs in ``apscheduler_jobs``
  with their next run time; an interval job's next run is set when its run
  starts, so the last start was one interval before it. A next run well in
  the past means no scheduler is running (or the poll is stuck);
* the newest message stored from a source, and the newest quarantined;
* a source whose polls fail has a row in ``source_failures`` (written by
  the daemon's backoff, ``ingest.sources.backoff``) until a poll succeeds;
* each daemon's components beat into ``daemon_heartbeats``
  (``madoguchi.supervision``): LATE once a beat is overdue.

The triage counts use the queues' own definitions (ticketing/queues.py), as the
web desk lists them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    MetaData,
    Table,
    TextClause,
    and_,
    case,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import Session

from madoguchi.config import (
    EmlDirSource,
    FaxSpoolSource,
    ImapSource,
    MaildirSource,
    Settings,
    Source,
)
from madoguchi.ingest.fax import is_fax_filename
from madoguchi.ticketing.heartbeats import Beat, read_beats
from madoguchi.ticketing.models import (
    Channel,
    Direction,
    MailboxState,
    Message,
    OutboxMessage,
    OutboxStatus,
    PendingMark,
    QuarantineEntry,
    RawMessage,
    SourceFailure,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.queues import ACTIVE, FAX_TRIAGE, MAIL_TRIAGE
from madoguchi.ticketing.storage import Storage
from madoguchi.web.metrics import Family

JOBS_TABLE = "apscheduler_jobs"  # APScheduler's SQLAlchemyJobStore default
CLAIMS_TABLE = "ingest_claims"  # migration 0003; read only where it exists
FAILURES_TABLE = "source_failures"  # migration 0004; read only where it exists
# The scheduler starts a due job within moments; a next run older than this
# means nobody is running it.
SCHEDULE_LEEWAY = timedelta(seconds=60)
BACKLOG_STATUSES = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED)
# Counted as `sending`: to an operator both are mail in flight, and the
# backlog's keys (and /metrics labels) stay as they were.
SHOWN_AS = {OutboxStatus.DELIVERING: OutboxStatus.SENDING}


@dataclass(frozen=True)
class Schedule:
    """A source's poll job in the daemon's scheduler."""

    last_at: datetime | None  # when the scheduler last started a poll
    next_at: datetime | None  # None: the job is paused
    late: bool  # next_at is past by more than SCHEDULE_LEEWAY


@dataclass(frozen=True)
class BackingOff:
    """A source whose polls fail: the daemon waits longer before each next one."""

    failures: int  # failed polls in a row
    since: datetime  # the first of them
    last_failed_at: datetime
    next_attempt_at: datetime
    last_error: str  # one line


@dataclass(frozen=True)
class Claims:
    """UID ranges handed out to IMAP pollers and not yet stored (ingest_claims)."""

    claims: int
    uids: int


@dataclass(frozen=True)
class MailboxPosition:
    folder: str
    uidvalidity: int
    last_uid: int


@dataclass
class SourceStatus:
    name: str
    kind: str
    interval_seconds: float
    schedule: Schedule | None = None  # None: no daemon has scheduled it
    backoff: BackingOff | None = None  # None: its last poll went through
    last_message_at: datetime | None = None  # the newest message stored from it
    last_ticket: str | None = None  # ... and the ticket it went to
    last_quarantined_at: datetime | None = None
    last_quarantine_reason: str | None = None
    # Folder sources: files waiting to be taken, and files put in failed/.
    # None with folder_missing when the folder is not there.
    files_waiting: int | None = None
    files_failed: int | None = None
    folder_missing: bool = False
    # IMAP: where each folder's poll left off, marks owed to the server.
    mailboxes: list[MailboxPosition] = field(default_factory=list)
    marks_owed: int | None = None
    claims: Claims | None = None


@dataclass
class DeskStatus:
    at: datetime
    sources: list[SourceStatus]
    awaiting_first_response: int  # not closed, not yet answered
    overdue: int  # ... and past the first-response due time
    by_status: dict[str, int]  # not closed tickets: open, pending
    claims: Claims | None  # all IMAP sources; None when the table is absent
    triage_fax: int  # FAX whose support number could not be read
    triage_mail: int  # stranger, expired contract or unknown number
    quarantine_total: int
    quarantine_by_reason: dict[str, int]
    outbox: dict[str, int]  # pending, sending (delivering too), failed
    components: list[Beat] = field(default_factory=list)  # every daemon's, by daemon

    @property
    def open_tickets(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class Counters:
    """Totals since the database began, for Prometheus counters."""

    ingested_by_channel: dict[str, int]
    quarantined_by_reason: dict[str, int]
    ocr_seconds_sum: float
    ocr_count: int  # FAX messages whose reading time is recorded
    fax_tickets: int  # tickets opened by a FAX
    fax_tickets_triaged: int  # ... whose support number could not be read


# -- reading ------------------------------------------------------------------


def desk_status(
    settings: Settings, session: Session, now: datetime, *, history: bool = True
) -> DeskStatus:
    """The desk as it is at ``now``.

    ``history=False`` leaves out each source's schedule and newest messages:
    table scans that /metrics, scraped every few seconds, has no use for.
    """
    conn = session.connection()
    names = [s.name for s in settings.sources]
    claims = _claims(conn)
    failing = _failing(session)
    sources = [_source_status(s, session) for s in settings.sources]
    jobs = _poll_jobs(conn) if history else {}
    last_msgs = _last_messages(session, names) if history else {}
    last_quar = _last_quarantined(session, names) if history else {}
    for src in sources:
        src.backoff = failing.get(src.name)
        if src.name in jobs:
            src.schedule = _schedule(jobs[src.name], src.interval_seconds, now)
            if src.backoff is not None and src.schedule.next_at is not None:
                # The job was moved to the next try: its last run is the one that failed.
                src.schedule = replace(src.schedule, last_at=src.backoff.last_failed_at)
        src.last_message_at, src.last_ticket = last_msgs.get(src.name, (None, None))
        src.last_quarantined_at, src.last_quarantine_reason = last_quar.get(src.name, (None, None))
        if src.kind == "imap" and claims is not None:
            src.claims = claims.get(src.name, Claims(0, 0))

    awaiting = (
        select(func.count()).select_from(Ticket)
        .where(ACTIVE, Ticket.first_responded_at.is_(None))
    )
    by_status = {
        str(status): n for status, n in session.execute(
            select(Ticket.status, func.count()).where(ACTIVE).group_by(Ticket.status)
        )
    }
    by_reason = _quarantined_by_reason(session)
    outbox = {str(s): 0 for s in BACKLOG_STATUSES}
    for status, n in session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.status.in_([*BACKLOG_STATUSES, *SHOWN_AS]))
        .group_by(OutboxMessage.status)
    ):
        outbox[str(SHOWN_AS.get(status, status))] += n
    return DeskStatus(
        at=now,
        sources=sources,
        awaiting_first_response=session.scalar(awaiting) or 0,
        overdue=session.scalar(awaiting.where(Ticket.first_response_due < now)) or 0,
        by_status={str(s): by_status.get(str(s), 0)
                   for s in (TicketStatus.OPEN, TicketStatus.PENDING)},
        claims=Claims(sum(c.claims for c in claims.values()),
                      sum(c.uids for c in claims.values())) if claims is not None else None,
        triage_fax=_count_tickets(session, *FAX_TRIAGE),
        triage_mail=_count_tickets(session, *MAIL_TRIAGE),
        quarantine_total=sum(by_reason.values()),
        quarantine_by_reason=by_reason,
        outbox=outbox,
        components=read_beats(session),
    )


def counters(session: Session) -> Counters:
    ingested = {str(c): 0 for c in (Channel.EMAIL, Channel.FAX)}
    ingested.update({
        str(channel): n for channel, n in session.execute(
            select(Message.channel, func.count())
            .where(Message.direction == Direction.IN)
            .group_by(Message.channel)
        )
    })
    ocr_sum, ocr_count = session.execute(
        select(func.coalesce(func.sum(_ocr_seconds()), 0.0), func.count(_ocr_seconds()))
        .where(Message.channel == Channel.FAX)
    ).one()
    fax_tickets, triaged = _fax_tickets(session)
    return Counters(
        ingested_by_channel=ingested,
        quarantined_by_reason=_quarantined_by_reason(session),
        ocr_seconds_sum=float(ocr_sum),
        ocr_count=int(ocr_count),
        fax_tickets=fax_tickets,
        fax_tickets_triaged=triaged,
    )


def _count_tickets(session: Session, *where: ColumnElement[bool] | TextClause) -> int:
    return session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0


def _quarantined_by_reason(session: Session) -> dict[str, int]:
    return dict(session.execute(
        select(QuarantineEntry.reason_code, func.count())
        .group_by(QuarantineEntry.reason_code)
        .order_by(QuarantineEntry.reason_code)
    ).all())


def _ocr_seconds() -> ColumnElement[float]:
    # Recorded by ingest/fax.py; readings stored before it was carry only
    # the phase timings, whose sum is nearly the whole read.
    reading = Message.fax_reading
    phases = (reading[("timings", "load")].as_float()
              + reading[("timings", "number")].as_float()
              + reading[("timings", "text")].as_float())
    return func.coalesce(reading["ocr_seconds"].as_float(), phases)


def _fax_tickets(session: Session) -> tuple[int, int]:
    """Tickets opened by a FAX, and how many went to triage on arrival (the opening
    FAX's reading has no number: the flag is gone once staff give it); only gateway
    mails carrying several documents (rare) have their readings looked at here."""
    reading = Message.fax_reading
    number = reading["support_number"].as_string()
    documents = reading["documents"].as_string()
    first = (
        select(func.min(Message.id).label("id"))
        .where(Message.channel == Channel.FAX, Message.direction == Direction.IN)
        .group_by(Message.ticket_id)
        .subquery()
    )
    opening = (
        select(Message.id)
        .join(first, first.c.id == Message.id)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(Ticket.channel == Channel.FAX)
    )
    unread = and_(number.is_(None), documents.is_(None))
    total, triaged = session.execute(opening.with_only_columns(
        func.count(), func.coalesce(func.sum(case((unread, 1), else_=0)), 0)
    )).one()
    for docs in session.scalars(
        opening.with_only_columns(documents).where(documents.is_not(None))
    ):
        triaged += not any(
            isinstance(d, dict) and d.get("support_number") is not None
            for d in json.loads(docs)
        )
    return int(total), int(triaged)


def _poll_jobs(conn: Connection) -> dict[str, float | None]:
    """Next run (epoch seconds, None if paused) of each source's poll job."""
    if not inspect(conn).has_table(JOBS_TABLE):
        return {}
    rows = conn.execute(
        text(f"SELECT id, next_run_time FROM {JOBS_TABLE} WHERE id LIKE 'poll:%'")
    )
    return {job_id.removeprefix("poll:"): when for job_id, when in rows}


def _schedule(next_run: float | None, interval: float, now: datetime) -> Schedule:
    if next_run is None:
        return Schedule(None, None, False)
    next_at = datetime.fromtimestamp(next_run, UTC)
    return Schedule(next_at - timedelta(seconds=interval), next_at,
                    next_at < now - SCHEDULE_LEEWAY)


def _failing(session: Session) -> dict[str, BackingOff]:
    if not inspect(session.connection()).has_table(FAILURES_TABLE):
        return {}
    return {
        f.source: BackingOff(f.failures, f.failing_since, f.last_failed_at, f.next_attempt_at,
                             f.last_error)
        for f in session.scalars(select(SourceFailure))
    }


def _claims(conn: Connection) -> dict[str, Claims] | None:
    if not inspect(conn).has_table(CLAIMS_TABLE):
        return None
    table = Table(CLAIMS_TABLE, MetaData(), autoload_with=conn)
    if not {"source", "first_uid", "last_uid"} <= set(table.c.keys()):
        return None
    c = table.c
    rows = conn.execute(
        select(c.source, func.count(), func.sum(c.last_uid - c.first_uid + 1))
        .group_by(c.source)
    )
    return {source: Claims(int(n), int(uids or 0)) for source, n, uids in rows}


def _last_messages(
    session: Session, names: list[str]
) -> dict[str, tuple[datetime | None, str | None]]:
    newest = (
        select(func.max(RawMessage.id))
        .where(RawMessage.source.in_(names))
        .group_by(RawMessage.source)
    )
    rows = session.execute(
        select(RawMessage.source, RawMessage.received_at, Ticket.number)
        .join(Message, Message.raw_id == RawMessage.id)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(RawMessage.id.in_(newest))
    )
    return {source: (at, number) for source, at, number in rows}


def _last_quarantined(
    session: Session, names: list[str]
) -> dict[str, tuple[datetime | None, str | None]]:
    newest = (
        select(func.max(QuarantineEntry.id))
        .where(QuarantineEntry.source.in_(names))
        .group_by(QuarantineEntry.source)
    )
    rows = session.execute(
        select(QuarantineEntry.source, QuarantineEntry.created_at, QuarantineEntry.reason_code)
        .where(QuarantineEntry.id.in_(newest))
    )
    return {source: (at, code) for source, at, code in rows}


def _source_status(source: Source, session: Session) -> SourceStatus:
    status = SourceStatus(source.name, source.kind, source.interval_seconds)
    if isinstance(source, ImapSource):
        status.mailboxes = [
            MailboxPosition(m.folder, m.uidvalidity, m.last_uid)
            for m in session.scalars(
                select(MailboxState).where(MailboxState.source == source.name)
                .order_by(MailboxState.folder)
            )
        ]
        status.marks_owed = session.scalar(
            select(func.count()).select_from(PendingMark).where(PendingMark.source == source.name)
        ) or 0
        return status
    if not source.path.is_dir():
        status.folder_missing = True
        return status
    status.files_waiting = files_waiting(source)
    if not isinstance(source, MaildirSource):
        # A Maildir marks what it could not take as seen, in place.
        failed = source.path / "failed"
        status.files_failed = (
            sum(1 for p in _files(failed) if not p.name.endswith(".reason"))
            if failed.is_dir() else 0
        )
    return status


def files_waiting(source: MaildirSource | EmlDirSource | FaxSpoolSource) -> int:
    """Files a folder source has not taken yet (the pollers' own tests of a file)."""
    root = source.path
    if isinstance(source, MaildirSource):
        # As MaildirPoller: everything in new/, and what in cur/ lacks the S flag.
        unseen = sum(1 for _ in _files(root / "new"))
        for p in _files(root / "cur"):
            info = p.name.rpartition(":2,")[2] if ":2," in p.name else ""
            unseen += "S" not in info
        return unseen
    if isinstance(source, EmlDirSource):
        return sum(1 for p in _files(root) if p.suffix == ".eml")
    # As FaxSpoolPoller, less the wait for a file to be complete.
    return sum(
        1 for p in _files(root)
        if not p.name.startswith(".") and not p.name.endswith((".part", ".tmp"))
        and is_fax_filename(p.name)
    )


def _files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_file()]
    except FileNotFoundError:
        return []


# -- /metrics -----------------------------------------------------------------


def metric_families(storage: Storage, now: datetime) -> list[Family]:
    """What /metrics reports (the web desk's collector): the desk at ``now``, and its totals."""
    with storage.factory() as session:
        status = desk_status(storage.settings, session, now, history=False)
        totals = counters(session)
    ingested = Family("madoguchi_messages_ingested_total", "counter",
                      "Inbound messages stored on tickets, by channel.")
    for channel, n in totals.ingested_by_channel.items():
        ingested.add(n, channel=channel)
    quarantined = Family("madoguchi_quarantined_total", "counter",
                         "Inbound input kept in quarantine, by reason code.")
    for reason, n in totals.quarantined_by_reason.items():
        quarantined.add(n, reason=reason)
    outbox = Family("madoguchi_outbox_backlog", "gauge",
                    "Outgoing mail not delivered, by status (sending: in flight, DATA "
                    "included; failed waits for staff).")
    for state, n in status.outbox.items():
        outbox.add(n, status=state)
    triage = Family("madoguchi_triage_queue", "gauge",
                    "Tickets waiting in triage: fax (number unreadable) or mail (flagged).")
    triage.add(status.triage_fax, kind="fax").add(status.triage_mail, kind="mail")
    families = [
        ingested,
        quarantined,
        Family("madoguchi_ocr_seconds", "summary",
               "Wall seconds spent reading FAX documents (OCR), per FAX message.")
        .add(totals.ocr_seconds_sum, "_sum").add(totals.ocr_count, "_count"),
        Family("madoguchi_fax_tickets_total", "counter", "Tickets opened by a FAX.")
        .add(totals.fax_tickets),
        Family("madoguchi_fax_tickets_triaged_total", "counter",
               "Tickets opened by a FAX whose support number could not be read (sent to "
               "triage), including those staff have numbered since.")
        .add(totals.fax_tickets_triaged),
        triage,
        outbox,
        Family("madoguchi_tickets_open", "gauge", "Tickets not closed (open or pending).")
        .add(status.open_tickets),
        Family("madoguchi_tickets_awaiting_first_response", "gauge",
               "Tickets not closed and not yet answered.")
        .add(status.awaiting_first_response),
        Family("madoguchi_tickets_overdue", "gauge",
               "Tickets not closed, not answered, past their first-response due time.")
        .add(status.overdue),
    ]
    waiting = Family("madoguchi_source_files_waiting", "gauge",
                     "Files a folder source (Maildir, .eml folder, FAX spool) has not taken.")
    owed = Family("madoguchi_imap_marks_owed", "gauge",
                  "Messages stored but not yet moved or flagged on the IMAP server.")
    claimed = Family("madoguchi_imap_claimed_uids", "gauge",
                     "UIDs handed out to an IMAP poller and not yet stored (ingest_claims).")
    for s in status.sources:
        if s.files_waiting is not None:
            waiting.add(s.files_waiting, source=s.name)
        if s.marks_owed is not None:
            owed.add(s.marks_owed, source=s.name)
        if s.claims is not None:
            claimed.add(s.claims.uids, source=s.name)
    beat = Family("madoguchi_component_last_beat_timestamp_seconds", "gauge",
                  "When each daemon's component (scheduler, lease, poll:<source>, outbox, "
                  "workers) last beat, in Unix time.")
    late = Family("madoguchi_component_late", "gauge",
                  "1 while a daemon's component is LATE: its next beat is overdue.")
    for b in status.components:
        beat.add(b.beat_at.timestamp(), daemon=b.daemon, component=b.component)
        late.add(int(b.late(now)), daemon=b.daemon, component=b.component)
    families += [f for f in (waiting, owed, claimed, beat, late) if f.samples]
    return families


# -- showing ------------------------------------------------------------------


def status_record(status: DeskStatus, tz: ZoneInfo) -> dict[str, object]:
    """The status as JSON-ready data; moments in ISO 8601 in the desk's time zone."""

    def moments(value: object) -> object:
        if isinstance(value, datetime):
            return value.astimezone(tz).isoformat()
        if isinstance(value, dict):
            return {k: moments(v) for k, v in value.items()}
        if isinstance(value, list):
            return [moments(v) for v in value]
        return value

    record = asdict(status)
    record["open_tickets"] = status.open_tickets
    return moments(record)  # type: ignore[return-value]


def render_status(status: DeskStatus, tz: ZoneInfo) -> str:
    def at(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"

    lines = [f"status at {at(status.at)}", "", "sources:"]
    if not status.sources:
        lines.append("  (none configured)")
    for s in status.sources:
        lines.append(f"  {s.name} ({s.kind}, every {s.interval_seconds:g} s)")
        if s.schedule is None:
            lines.append("    poll:        not scheduled by a daemon")
        elif s.schedule.next_at is None:
            lines.append("    poll:        paused")
        else:
            late = "  LATE: is the daemon running?" if s.schedule.late else ""
            lines.append(f"    poll:        last started {at(s.schedule.last_at)}, "
                         f"next {at(s.schedule.next_at)}{late}")
        if s.backoff is not None:
            b = s.backoff
            lines.append(f"    BACKING OFF: {b.failures} failure{'s' if b.failures > 1 else ''} "
                         f"since {at(b.since)}, next try {at(b.next_attempt_at)}: {b.last_error}")
        lines.append(f"    last stored: {at(s.last_message_at)} {s.last_ticket or ''}".rstrip())
        if s.last_quarantined_at is not None:
            lines.append(f"    last quarantined: {at(s.last_quarantined_at)} "
                         f"[{s.last_quarantine_reason}]")
        if s.folder_missing:
            lines.append("    folder:      MISSING")
        elif s.files_waiting is not None:
            failed = f", {s.files_failed} in failed/" if s.files_failed is not None else ""
            lines.append(f"    files:       {s.files_waiting} waiting{failed}")
        for m in s.mailboxes:
            lines.append(f"    mailbox:     {m.folder} uidvalidity {m.uidvalidity} "
                         f"last uid {m.last_uid}")
        if s.marks_owed is not None:
            lines.append(f"    marks owed:  {s.marks_owed}")
        if s.claims is not None:
            lines.append(f"    claims:      {s.claims.claims} ({s.claims.uids} UIDs)")
    lines += ["", "daemons:"] + [
        f"  {b.daemon} {b.component:<14} {b.state} {b.detail}".rstrip()
        + f", last beat {at(b.beat_at)}" + ("  LATE" if b.late(status.at) else "")
        for b in status.components] if status.components else ["", "daemons:     none running"]
    reasons = ", ".join(f"{k} {v}" for k, v in status.quarantine_by_reason.items())
    lines += [
        "",
        f"queue:       {status.awaiting_first_response} awaiting first response, "
        f"{status.overdue} overdue",
        f"open:        {status.by_status.get('open', 0)} open, "
        f"{status.by_status.get('pending', 0)} pending",
    ]
    if status.claims is not None:
        lines.append(f"claims:      {status.claims.claims} inbound claims "
                     f"({status.claims.uids} UIDs) not yet stored")
    lines += [
        f"triage:      {status.triage_fax} FAX, {status.triage_mail} mail",
        f"quarantine:  {status.quarantine_total}" + (f" ({reasons})" if reasons else ""),
        "outbox:      " + ", ".join(f"{k} {v}" for k, v in status.outbox.items()),
    ]
    return "\n".join(lines)
