"""What became of the desk's mail, and what supervisors do about it: the desk actions.

Every outgoing mail is an outbox row (``ticketing.outbox``); its delivery
state is ``rules.delivery.delivery_state`` of the row. This module lists the
rows (the ticket page, the outbox page, ``madoguchi outbox list``), sends a
failed one again or takes a waiting one back (``retry``, ``cancel``: the web
desk and the command line both call them), attaches a bounce to the mail it
returns (``record_bounce``, from the intake), and keeps the ticket's
``undelivered`` mark true (``delivery_changed``, after every change).

A FAX reply is a file in the gateway's outbound folder; the gateway reports
its result in ``<document>.result.json`` beside it (``fax_result``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.history import record
from madoguchi.ticketing.history_line import say
from madoguchi.ticketing.models import (
    Flag,
    OutboxMessage,
    OutboxStatus,
    StaffUser,
    Ticket,
    TicketFlag,
    table_of,
)
from madoguchi.ticketing.rules.delivery import (
    CANCELLABLE,
    INTERRUPTED,
    RETRYABLE,
    UNCONFIRMED,
    UNDELIVERED,
    DeliveryReport,
    DeliveryState,
    delivery_state,
)
from madoguchi.ticketing.rules.marks import N_

log = logging.getLogger("madoguchi.delivery")

# The mail that goes to the customer: when it does not arrive, the ticket is marked.
CUSTOMER_KINDS = ("ack", "reply")
_UNKNOWN = or_(OutboxMessage.last_error.startswith(INTERRUPTED, autoescape=True),
               OutboxMessage.last_error.startswith(UNCONFIRMED, autoescape=True))
# Each state as a condition on the outbox's columns (the outbox page's filter).
STATE_WHERE: dict[DeliveryState, ColumnElement[bool]] = {
    DeliveryState.QUEUED: and_(OutboxMessage.status == OutboxStatus.PENDING,
                               OutboxMessage.attempts == 0),
    DeliveryState.RETRYING: and_(OutboxMessage.status == OutboxStatus.PENDING,
                                 OutboxMessage.attempts > 0),
    DeliveryState.SENDING: OutboxMessage.status.in_([OutboxStatus.SENDING,
                                                     OutboxStatus.DELIVERING]),
    DeliveryState.SENT: and_(OutboxMessage.status == OutboxStatus.SENT,
                             OutboxMessage.bounced_at.is_(None)),
    DeliveryState.BOUNCED: and_(OutboxMessage.status == OutboxStatus.SENT,
                                OutboxMessage.bounced_at.is_not(None)),
    DeliveryState.FAILED: and_(OutboxMessage.status == OutboxStatus.FAILED,
                               or_(OutboxMessage.last_error.is_(None), ~_UNKNOWN)),
    DeliveryState.UNKNOWN: and_(OutboxMessage.status == OutboxStatus.FAILED, _UNKNOWN),
    DeliveryState.CANCELLED: OutboxMessage.status == OutboxStatus.CANCELLED,
}


@dataclass(frozen=True)
class Delivery:
    """One outgoing mail as staff see it."""

    id: int
    ticket_number: str | None
    kind: str
    message_id: str  # without <>
    recipients: tuple[str, ...]
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None  # only while it waits for another attempt
    sent_at: datetime | None
    last_error: str | None
    server_reply: str | None
    bounced_at: datetime | None
    bounce_detail: str | None
    bounce_message_id: str | None

    @property
    def undelivered(self) -> bool:
        return self.state in UNDELIVERED

    @property
    def retryable(self) -> bool:
        return self.state in RETRYABLE

    @property
    def cancellable(self) -> bool:
        return self.state in CANCELLABLE


def state_of(row: OutboxMessage) -> DeliveryState:
    return delivery_state(row.status.value, row.attempts, row.last_error,
                          row.bounced_at is not None)


def _delivery(row: OutboxMessage, number: str | None) -> Delivery:
    state = state_of(row)
    return Delivery(
        id=row.id, ticket_number=number, kind=row.kind, message_id=row.message_id.strip("<>"),
        recipients=tuple(row.rcpt_to), state=state, attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if state in (DeliveryState.QUEUED,
                                                         DeliveryState.RETRYING) else None,
        sent_at=row.sent_at, last_error=row.last_error, server_reply=row.server_reply,
        bounced_at=row.bounced_at, bounce_detail=row.bounce_detail,
        bounce_message_id=row.bounce_message_id,
    )


def parse_state(value: str) -> DeliveryState | None:
    """The state a filter names ("" or "all": none); ActionError for an unknown one."""
    if value in ("", "all"):
        return None
    try:
        return DeliveryState(value)
    except ValueError:
        names = ", ".join(s.value for s in DeliveryState)
        raise ActionError(N_("送信状態 %(value)s はありません（%(names)s）"),
                          value=repr(value), names=names) from None


def ticket_deliveries(session: Session, ticket_id: int) -> list[Delivery]:
    """The ticket's outgoing mail, oldest first."""
    rows = session.execute(select(OutboxMessage, Ticket.number)
                           .join(Ticket, Ticket.id == OutboxMessage.ticket_id)
                           .where(OutboxMessage.ticket_id == ticket_id)
                           .order_by(OutboxMessage.id)).all()
    return [_delivery(r, number) for r, number in rows]


def delivery_states(session: Session, ticket_ids: Sequence[int]) -> dict[str, str]:
    """The delivery state of the tickets' mail by Message-ID (without <>), for the export."""
    if not ticket_ids:
        return {}
    rows = session.execute(select(
        OutboxMessage.message_id, OutboxMessage.status, OutboxMessage.attempts,
        OutboxMessage.last_error, OutboxMessage.bounced_at,
    ).where(OutboxMessage.ticket_id.in_(list(ticket_ids)))).all()
    return {mid.strip("<>"): delivery_state(status.value, attempts, error,
                                            bounced is not None).value
            for mid, status, attempts, error, bounced in rows}


def outbox_list(session: Session, state: DeliveryState | None = None, *,
                before: int | None = None, limit: int = 100) -> list[Delivery]:
    """The outbox, newest first (``before``: ids below it, for paging)."""
    query = (select(OutboxMessage, Ticket.number)
             .outerjoin(Ticket, Ticket.id == OutboxMessage.ticket_id)
             .order_by(OutboxMessage.id.desc()).limit(limit))
    if state is not None:
        query = query.where(STATE_WHERE[state])
    if before is not None:
        query = query.where(OutboxMessage.id < before)
    return [_delivery(row, number) for row, number in session.execute(query).all()]


@dataclass(frozen=True)
class Outcome:
    id: int
    done: bool
    text: str  # what happened, in Japanese, for the page and the command line


def _rows(session: Session, ids: Sequence[int]) -> dict[int, OutboxMessage]:
    if not ids:
        raise ActionError(N_("送信IDを指定してください"))
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(list(ids)))
                           .with_for_update())
    return {r.id: r for r in rows}


def _allowed(session: Session, ids: Sequence[int], states: Collection[DeliveryState],
             refused: str, outcomes: list[Outcome],
             ) -> Iterator[tuple[int, OutboxMessage, DeliveryState]]:
    """The rows of ``ids`` in one of ``states``; the others are told in ``outcomes``."""
    found = _rows(session, ids)
    for row_id in ids:
        row = found.get(row_id)
        if row is None:
            outcomes.append(Outcome(row_id, False, f"送信 {row_id} はありません"))
            continue
        state = state_of(row)
        if state not in states:
            outcomes.append(Outcome(row_id, False, f"送信 {row_id} は{_JA[state]}のため{refused}"))
            continue
        yield row_id, row, state


def retry(session: Session, ids: Sequence[int], user: StaffUser | None,
          now: datetime) -> list[Outcome]:
    """Send failed (or cancelled, or unknown) mail again, due now with fresh attempts.

    An unknown one may be in the recipient's mailbox already: staff check first.
    """
    outcomes: list[Outcome] = []
    for row_id, row, state in _allowed(session, ids, RETRYABLE, "再送できません", outcomes):
        # Conditional, as the sender's claims are: a row that moved meanwhile is left alone.
        done = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == row.status)
            .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now,
                    handled_by=user.id if user else None,
                    last_error=f"再送指示: {user.name if user else 'コマンド'} "
                               f"(前回: {row.last_error or _JA[state]})"[:2000])
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if done:
            delivery_changed(session, row_id, "retry", user, now)
            dialect_of(session).announce_queued_mail(session)  # sent at once, not next round
        outcomes.append(Outcome(row_id, bool(done), f"送信 {row_id} を再送キューに入れました"
                                if done else f"送信 {row_id} は変更されていたため再送しません"))
    return outcomes


def cancel(session: Session, ids: Sequence[int], user: StaffUser | None,
           now: datetime) -> list[Outcome]:
    """Take back mail that has not gone yet (queued or waiting to retry): never sent."""
    outcomes: list[Outcome] = []
    for row_id, _row, _state in _allowed(session, ids, CANCELLABLE, "取り消せません", outcomes):
        # Only while pending: a sender that claimed it meanwhile goes on, and says so.
        done = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.CANCELLED, handled_by=user.id if user else None)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if done:
            delivery_changed(session, row_id, "cancel", user, now)
        outcomes.append(Outcome(row_id, bool(done), f"送信 {row_id} を取り消しました" if done
                                else f"送信 {row_id} は送信が始まっていたため取り消せません"))
    return outcomes


def record_bounce(session: Session, returned_message_id: str, report: DeliveryReport,
                  bounce_message_id: str | None, now: datetime) -> int | None:
    """Attach a bounce to the outbox row of the mail it returns; that row's id, or None.

    A report of delay or success is no bounce: nothing is marked.
    """
    if not report.undelivered:
        return None
    row = session.scalar(select(OutboxMessage).where(
        OutboxMessage.message_id == f"<{returned_message_id}>").with_for_update())
    if row is None:
        return None
    row.bounced_at = now
    row.bounce_detail = report.summary()
    row.bounce_message_id = bounce_message_id
    session.flush()
    delivery_changed(session, row.id, "bounce", None, now)
    return row.id


_KIND_LABELS = {"reply": N_("返信"), "ack": N_("受付通知"), "reminder": N_("担当者への催促"),
                "escalation": N_("エスカレーション")}
_CHANGE_LABELS = {"sent": N_("を送信しました"), "failed": N_("の送信に失敗しました"),
                  "unknown": N_("の送信結果が不明です（中断）"),
                  "bounce": N_("が届かなかったと通知されました"),
                  "retry": N_("の再送を指示しました"), "cancel": N_("の送信を取り消しました")}


def delivery_changed(session: Session, outbox_id: int, what: str, by: StaffUser | None,
                     now: datetime) -> None:
    """After every change of a delivery (sent, failed, unknown, bounce, retry, cancel).

    The one place a delivery's change is taken note of: the ticket's mark, and a
    line of its history (``what``, by ``by``, at ``now``).
    """
    row = session.execute(select(OutboxMessage.ticket_id, OutboxMessage.kind,
                                 OutboxMessage.rcpt_to)
                          .where(OutboxMessage.id == outbox_id)).first()
    if row is not None and row.ticket_id is not None:
        refresh_undelivered(session, row.ticket_id)
        mail = _KIND_LABELS.get(row.kind, row.kind)
        to = "、".join(row.rcpt_to or [])
        record(session, row.ticket_id, by or "送信処理",
               say("送信状況: %(mail)s（%(to)s）", mail=mail, to=to)
               + say(_CHANGE_LABELS.get(what, what)), at=now,
               kind="delivery", detail={"outbox_id": outbox_id, "change": what})
    log.info("outbox %s: %s%s", outbox_id, what, f" by {by.login}" if by else "",
             extra={"outbox_id": outbox_id})


def refresh_undelivered(session: Session, ticket_id: int) -> bool:
    """Mark the ticket ``undelivered`` while mail of ours to the customer did not arrive."""
    bad = or_(*(STATE_WHERE[s] for s in sorted(UNDELIVERED)))
    undelivered = session.scalar(select(exists().where(
        OutboxMessage.ticket_id == ticket_id, OutboxMessage.kind.in_(CUSTOMER_KINDS), bad)))
    if undelivered:
        session.execute(dialect_of(session).insert_skipping_conflicts(
            table_of(TicketFlag),
            [{"ticket_id": ticket_id, "flag": Flag.UNDELIVERED,
              "detail": "お客様へのメールが届いていません（送信状況を確認してください）"}],
            ["ticket_id", "flag"]))
    else:
        session.execute(delete(TicketFlag).where(TicketFlag.ticket_id == ticket_id,
                                                 TicketFlag.flag == Flag.UNDELIVERED))
    return bool(undelivered)


_JA = {
    DeliveryState.QUEUED: N_("送信待ち"), DeliveryState.SENDING: N_("送信中"),
    DeliveryState.SENT: N_("送信済み"), DeliveryState.RETRYING: N_("再試行待ち"),
    DeliveryState.FAILED: N_("送信失敗"), DeliveryState.UNKNOWN: N_("送信結果不明"),
    DeliveryState.BOUNCED: N_("不達"), DeliveryState.CANCELLED: N_("取り消し済み"),
}
# The states in the desk's words (the web desk shows these).
STATE_LABELS = {s.value: label for s, label in _JA.items()}


# -- FAX ---------------------------------------------------------------------


@dataclass(frozen=True)
class FaxResult:
    status: str  # "sent", "failed", or "unreadable" (a result file we cannot read)
    detail: str


def fax_result(outbound_dir: Path, document: str) -> FaxResult | None:
    """What the gateway reported for the FAX ``document`` (a PDF's name), or None (not yet).

    The gateway writes ``<name>.result.json`` beside it: ``{"status": "sent" | "failed",
    "detail": "…"}``.
    """
    if not document.endswith(".pdf") or "/" in document or document.startswith("."):
        return None
    path = Path(outbound_dir) / (document[:-4] + ".result.json")
    try:
        data = json.loads(path.read_bytes()[:10_000])
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return FaxResult("unreadable", "ゲートウェイの結果ファイルを読めません")
    if not isinstance(data, dict) or data.get("status") not in ("sent", "failed"):
        return FaxResult("unreadable", "ゲートウェイの結果ファイルの形式が正しくありません")
    return FaxResult(str(data["status"]), " ".join(str(data.get("detail", "")).split())[:500])
