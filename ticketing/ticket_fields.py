"""What staff set on a ticket beside its status: priority, tags, subject."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from madoguchi.ticketing.actions import (
    ActionError,
    ensure_workable,
    record_note,
    required_text,
)
from madoguchi.ticketing.models import StaffUser, Ticket
from madoguchi.ticketing.rules.marks import N_

# Stored value → the desk's word, lowest first.
PRIORITIES: dict[str, str] = {"low": N_("低"), "normal": N_("通常"), "high": N_("高"),
                              "urgent": N_("至急")}
MAX_TAGS = 20
MAX_TAG = 40


def set_priority(ticket: Ticket, priority: str) -> None:
    ensure_workable(ticket)
    if priority not in PRIORITIES:
        raise ActionError(N_("優先度が正しくありません"))
    ticket.priority = priority


def read_tags(chosen: Iterable[str], free: str) -> list[str]:
    """The ticked categories and the free tags typed (separated by 、 , or blanks)."""
    typed = free.replace("、", ",").replace("，", ",").replace("\u3000", " ")
    tags: list[str] = []
    for tag in [*chosen, *(t for part in typed.split(",") for t in [part.strip()])]:
        tag = " ".join(tag.split())
        if not tag or tag in tags:
            continue
        if len(tag) > MAX_TAG:
            raise ActionError(N_("タグは%(n)s文字以内にしてください: %(tag)s…"),
                              n=MAX_TAG, tag=tag[:MAX_TAG])
        tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ActionError(N_("タグは%(n)s個までです"), n=MAX_TAGS)
    return tags


def set_tags(ticket: Ticket, tags: list[str]) -> None:
    ensure_workable(ticket)
    ticket.tags = tags


def set_subject(session: Session, ticket: Ticket, subject: str, user: StaffUser | None,
                now: datetime) -> bool:
    """Rename the ticket (a FAX's 「FAXでのお問い合わせ」); a note keeps the old subject."""
    ensure_workable(ticket)
    new = " ".join(required_text(subject, N_("件名"), 200).split())
    if new == ticket.subject:
        return False
    record_note(session, ticket, user, f"件名を変更しました（旧: {ticket.subject}）", now)
    ticket.subject = new
    return True
