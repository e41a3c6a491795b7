"""A ticket's history: the one helper every desk action calls to record a change.

    record(session, ticket_id, by, say("担当者: %(name)s", name=...), kind="assignee", at=now)

``what`` is a ``Line`` (``ticketing.history_line``: kept in Japanese, shown in
each reader's language) or, for a text no reader translates, a plain string.
``by`` is the staff user who acted (a ``StaffUser``), a name (the command
line's, a gateway's), or None for the desk itself (its jobs and its intake).
The row is written in the caller's transaction: a change rolled back leaves
no history, a committed one always has its line. ``once_key`` makes a record
happen at most once (a job that acts once per due time); ``record`` then
says whether it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from madoguchi.ticketing.conversation_models import TicketEvent
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.history_line import Line
from madoguchi.ticketing.models import StaffUser, table_of

__all__ = ["DESK", "Entry", "events_of", "export_history", "record", "record_all"]

# The name on what the desk does by itself (intake, the daemon's jobs).
DESK = "madoguchi"
MAX_WHAT = 2_000


def _who(by: StaffUser | str | None) -> tuple[int | None, str]:
    if isinstance(by, StaffUser):
        return by.id, by.name
    return None, (by or DESK)[:200]


def _stored(what: Line | str, detail: dict[str, Any] | None,
            tz: ZoneInfo | None) -> tuple[str, dict[str, Any] | None]:
    """The Japanese text and the detail to store (a line's parts under "line")."""
    if isinstance(what, str):
        return what[:MAX_WHAT], detail
    return what.text(tz=tz)[:MAX_WHAT], {**(detail or {}), "line": what.to_json()}


def record(session: Session, ticket_id: int, by: StaffUser | str | None, what: Line | str, *,
           at: datetime, kind: str, detail: dict[str, Any] | None = None,
           once_key: str | None = None, tz: ZoneInfo | None = None) -> bool:
    """Record one change of ticket ``ticket_id``; False when ``once_key`` was recorded before.
    ``tz``: the zone of the moments in the stored Japanese text (default Japan's)."""
    by_id, name = _who(by)
    text, detail = _stored(what, detail, tz)
    values: dict[str, Any] = {"ticket_id": ticket_id, "at": at, "by_id": by_id, "by": name,
                              "kind": kind[:40], "what": text, "detail": detail,
                              "once_key": once_key}
    if once_key is None:
        session.add(TicketEvent(**values))
        return True
    stmt = dialect_of(session).insert_skipping_conflicts(
        table_of(TicketEvent), [values], ["once_key"])
    return bool(session.scalars(stmt.returning(TicketEvent.id)).first())


def record_all(session: Session, ticket_ids: list[int], by: StaffUser | str | None,
               what: Line | str, *, at: datetime, kind: str,
               detail: dict[str, Any] | None = None) -> None:
    """The same change of many tickets (the intake's, for a chunk): one INSERT."""
    if not ticket_ids:
        return
    by_id, name = _who(by)
    text, detail = _stored(what, detail, None)
    session.execute(insert(TicketEvent), [
        {"ticket_id": t, "at": at, "by_id": by_id, "by": name, "kind": kind[:40],
         "what": text, "detail": detail, "once_key": None} for t in ticket_ids])


def recorded(session: Session, once_key: str) -> bool:
    return session.scalar(select(TicketEvent.id).where(TicketEvent.once_key == once_key)) \
        is not None


@dataclass(frozen=True)
class Entry:
    at: datetime
    by: str
    kind: str
    what: str
    line: Line | None = None  # the same in the catalogue's words (None: older or plain text)


def events_of(session: Session, ticket_ids: list[int]) -> dict[int, list[Entry]]:
    """The history of each ticket, oldest first (also the ORM's pending rows)."""
    if not ticket_ids:
        return {}
    session.flush()
    found: dict[int, list[Entry]] = {t: [] for t in ticket_ids}
    rows = session.execute(
        select(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.by, TicketEvent.kind,
               TicketEvent.what, TicketEvent.detail)
        .where(TicketEvent.ticket_id.in_(ticket_ids))
        .order_by(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.id)
    )
    for ticket_id, at, by, kind, what, detail in rows:
        line = Line.from_json(detail.get("line")) if isinstance(detail, dict) else None
        found[ticket_id].append(Entry(at, by, kind, what, line))
    return found


def export_history(entries: list[Entry], tz: ZoneInfo) -> list[dict[str, str]]:
    """The history as ``madoguchi export`` writes it: ``at`` (ISO 8601), ``by``, ``what``."""
    return [{"at": e.at.astimezone(tz).isoformat(), "by": e.by, "what": e.what}
            for e in entries]


def erase_mentions(session: Session, ticket_ids: list[int], words: set[str],
                   erased: str) -> int:
    """Replace the history lines of these tickets that name any of ``words`` (a person's
    name or address, for ``privacy.erase``); how many were replaced."""
    wanted = [w for w in words if len(w.strip()) >= 2]
    if not ticket_ids or not wanted:
        return 0
    events = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids)))
    count = 0
    for e in events:
        if any(w in e.what or w in e.by for w in wanted):
            e.what, e.detail, count = erased, None, count + 1
            if any(w in e.by for w in wanted):
                e.by = erased
    return count
