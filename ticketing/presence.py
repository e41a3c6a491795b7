"""Who has a ticket open, and who is typing a reply on it: rows that beat, then expire.

A ticket page's live connection (``web.live``) writes its row when it opens,
its web process beats every open one's row together every ``BEAT``
(``beat_all``), and the connection deletes it when it closes; a row
not written for ``EXPIRES`` (its process died, the network went) counts for
nothing and is removed by the next beat. Typing is a
deadline on the row (``typing_until``), moved on while the person types.
The rows are in the database, so every web process sees every viewer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from madoguchi.ticketing import change_feed
from madoguchi.ticketing.live_models import Presence
from madoguchi.ticketing.models import StaffUser

BEAT = timedelta(seconds=15)
EXPIRES = BEAT * 3
TYPING = timedelta(seconds=20)


@dataclass(frozen=True)
class Viewer:
    staff_id: int
    name: str
    typing: bool


def beat(db: Session, view_key: str, ticket_id: int, staff_id: int, now: datetime) -> bool:
    """This page is still open; True when it was not yet known (a viewer arrived)."""
    return view_key in beat_all(db, [(view_key, ticket_id, staff_id)], now)


def leave(db: Session, view_key: str) -> None:
    row = db.get(Presence, view_key)
    if row is not None:
        db.delete(row)
        change_feed.note(db, [row.ticket_id], change_feed.PRESENCE)


def typing(db: Session, ticket_id: int, staff_id: int, now: datetime) -> bool:
    """``staff_id`` is typing on this ticket (all their open pages of it); True when they
    were not typing a moment ago (worth telling the others)."""
    rows = list(db.scalars(select(Presence).where(Presence.ticket_id == ticket_id,
                                                  Presence.staff_id == staff_id,
                                                  Presence.seen_at >= now - EXPIRES)))
    if not rows:
        return False
    news = all(r.typing_until is None or r.typing_until < now for r in rows)
    db.execute(update(Presence).where(Presence.view_key.in_([r.view_key for r in rows]))
               .values(typing_until=now + TYPING))
    if news:
        change_feed.note(db, [ticket_id], change_feed.PRESENCE)
    return news


def beat_all(db: Session, views: Sequence[tuple[str, int, int]], now: datetime) -> set[str]:
    """Pages still open, ``(view_key, ticket_id, staff_id)`` each, in a few statements
    however many (a web process beats all of its own at once); the view keys that were
    not known (a viewer arrived, or a row that expired while its process stalled), whose
    arrival is told. Rows not beaten for ``EXPIRES`` go."""
    arrived: set[str] = set()
    if views:
        keys = [key for key, _, _ in views]
        db.execute(update(Presence).where(Presence.view_key.in_(keys)).values(seen_at=now))
        present = set(db.scalars(select(Presence.view_key).where(Presence.view_key.in_(keys))))
        back = [(k, t, s) for k, t, s in views if k not in present]
        for key, ticket_id, staff_id in back:
            db.add(Presence(view_key=key, ticket_id=ticket_id, staff_id=staff_id, seen_at=now))
            arrived.add(key)
        if back:
            change_feed.note(db, sorted({t for _, t, _ in back}), change_feed.PRESENCE)
    db.execute(delete(Presence).where(Presence.seen_at < now - EXPIRES))
    return arrived


def viewers(db: Session, ticket_id: int, now: datetime) -> list[Viewer]:
    """Everyone with the ticket open now, one line each, by name."""
    return viewers_by_ticket(db, [ticket_id], now).get(ticket_id, [])


def viewers_by_ticket(db: Session, ticket_ids: Iterable[int],
                      now: datetime) -> dict[int, list[Viewer]]:
    """``viewers`` of each of ``ticket_ids`` (those nobody has open are left out)."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    rows = db.execute(
        select(Presence.ticket_id, StaffUser.id, StaffUser.name, Presence.typing_until)
        .join(StaffUser, StaffUser.id == Presence.staff_id)
        .where(Presence.ticket_id.in_(ids), Presence.seen_at >= now - EXPIRES)
    ).all()
    people: dict[int, dict[int, Viewer]] = {}
    for ticket_id, staff_id, name, until in rows:
        on = people.setdefault(ticket_id, {})
        was = on.get(staff_id)
        typing_now = until is not None and until >= now
        on[staff_id] = Viewer(staff_id, name, typing_now or (was is not None and was.typing))
    return {t: sorted(on.values(), key=lambda v: (v.name, v.staff_id))
            for t, on in people.items()}


def viewers_of(db: Session, ticket_ids: list[int], now: datetime) -> dict[int, list[str]]:
    """For a queue page: the names of those who have each of these tickets open."""
    if not ticket_ids:
        return {}
    rows = db.execute(
        select(Presence.ticket_id, StaffUser.name)
        .join(StaffUser, StaffUser.id == Presence.staff_id)
        .where(Presence.ticket_id.in_(ticket_ids), Presence.seen_at >= now - EXPIRES)
        .distinct()
    ).all()
    found: dict[int, list[str]] = {}
    for ticket_id, name in rows:
        found.setdefault(ticket_id, []).append(name)
    return {k: sorted(v) for k, v in found.items()}
