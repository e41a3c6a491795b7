"""Staff sessions of the web desk, kept on the server: opened, checked, revoked, listed.

A browser holds a random token (in its signed cookie); the ``web_sessions``
row holds only the token's sha256, so a copy of the database gives no live
session. A session is over when its row is revoked — sign-out, a new
password, deactivation, a supervisor's revocation — or when it has been idle
or alive longer than the ``[web]`` limits, whatever cookie a browser keeps.
The web desk and the command line (``madoguchi users``) call these.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from madoguchi.ticketing.models import StaffUser
from madoguchi.ticketing.security_models import WebSession

# last_seen_at is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class Limits:
    idle: timedelta
    lifetime: timedelta


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(db: Session, user: StaffUser, now: datetime, *, client: str = "",
                 user_agent: str = "") -> str:
    """A new session of ``user``; returns the token for the browser (the row keeps its hash)."""
    token = secrets.token_urlsafe(32)
    db.add(WebSession(id=token_id(token), staff_id=user.id, created_at=now, last_seen_at=now,
                      client=client[:64], user_agent=user_agent[:200]))
    return token


def _over(last_seen_at: datetime, created_at: datetime, now: datetime,
          limits: Limits) -> bool:
    """Past its idle or its absolute time (the one rule, for one session or many)."""
    return now - last_seen_at > limits.idle or now - created_at > limits.lifetime


def live_session(db: Session, token: str, now: datetime, limits: Limits) -> WebSession | None:
    """The session this token opened, if it is still live (its user active); else None.

    A session found past its idle or absolute time is marked expired. The
    caller commits (``last_seen_at`` is moved on at most every ``TOUCH_EVERY``).
    """
    if not token or len(token) > 100:
        return None
    # The user comes in the same statement, and stays referenced by the row (the
    # identity map is weak: a second ``get`` would read it again).
    row = db.get(WebSession, token_id(token), options=[joinedload(WebSession.staff)])
    if row is None or row.revoked_at is not None:
        return None
    if _over(row.last_seen_at, row.created_at, now, limits):
        row.revoked_at, row.revoked_reason = now, "expired"
        return None
    user = row.staff
    if user is None or not user.active:
        row.revoked_at, row.revoked_reason = now, "disabled"
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def live_tokens(db: Session, tokens: Iterable[str], now: datetime, limits: Limits) -> set[str]:
    """Which of ``tokens`` still open a live session, in one statement, writing nothing
    (the live desk's open streams: an open page is no activity, and the next request
    settles an expiry)."""
    by_id = {token_id(t): t for t in tokens if t and len(t) <= 100}
    if not by_id:
        return set()
    rows = db.execute(
        select(WebSession.id, WebSession.last_seen_at, WebSession.created_at)
        .join(StaffUser, StaffUser.id == WebSession.staff_id)
        .where(WebSession.id.in_(by_id), WebSession.revoked_at.is_(None), StaffUser.active)
    ).all()
    return {by_id[sid] for sid, seen, created in rows if not _over(seen, created, now, limits)}


def revoke(db: Session, token: str, now: datetime, reason: str = "sign_out") -> None:
    db.execute(update(WebSession).where(WebSession.id == token_id(token),
                                        WebSession.revoked_at.is_(None))
               .values(revoked_at=now, revoked_reason=reason))


def revoke_session(db: Session, session_id: str, now: datetime, reason: str = "revoked") -> bool:
    """Revoke one session by its id (the hash a supervisor sees); True if it was live."""
    result = db.execute(update(WebSession).where(WebSession.id == session_id,
                                                 WebSession.revoked_at.is_(None))
                        .values(revoked_at=now, revoked_reason=reason))
    return bool(getattr(result, "rowcount", 0))


def revoke_all(db: Session, staff_id: int, now: datetime, reason: str) -> int:
    """End every live session of one member of staff; how many were ended."""
    result = db.execute(update(WebSession).where(WebSession.staff_id == staff_id,
                                                 WebSession.revoked_at.is_(None))
                        .values(revoked_at=now, revoked_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


def sessions_of(db: Session, staff_id: int, now: datetime, limits: Limits) -> list[WebSession]:
    """The live sessions of one member of staff, newest first."""
    rows = db.scalars(select(WebSession).where(WebSession.staff_id == staff_id,
                                               WebSession.revoked_at.is_(None))
                      .order_by(WebSession.created_at.desc())).all()
    return [r for r in rows
            if now - r.last_seen_at <= limits.idle and now - r.created_at <= limits.lifetime]
