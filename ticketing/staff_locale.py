"""A staff user's language for the web desk: set by the user, or by a supervisor for them."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.models import StaffUser


def set_staff_locale(session: Session, staff_id: int | None, locale: str,
                     known: Collection[str]) -> StaffUser:
    """Give the user ``staff_id`` the language ``locale`` (one of ``known``); not committed."""
    if locale not in known:
        raise ActionError(f"unknown language {locale[:20]!r}")
    staff = session.get(StaffUser, staff_id) if staff_id is not None else None
    if staff is None:
        raise ActionError("no such staff user")
    staff.locale = locale
    return staff
