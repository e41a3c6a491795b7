"""How long until a moment, or how long past it, in the desk's words: "あと3時間", "2時間超過".

Shown beside the absolute time in the queue and on a ticket. The unit is the
largest that fits (days from 48 hours, hours from 90 minutes, else minutes),
rounded down, so "あと1時間" never means 1 h 59 min is shown as 2.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from madoguchi.web.i18n import gettext as _

_HOUR = 3600


def _amount(seconds: float) -> str:
    if seconds >= 48 * _HOUR:
        return _("%(n)s日") % {"n": int(seconds // (24 * _HOUR))}
    if seconds >= 90 * 60:
        return _("%(n)s時間") % {"n": int(seconds // _HOUR)}
    return _("%(n)s分") % {"n": max(int(seconds // 60), 1)}


def time_left(due: datetime | None, now: datetime) -> str:
    """"あと25分", "あと3時間", "あと2日", "15分超過", "2時間超過"; "" when there is no due time."""
    if due is None:
        return ""
    delta: timedelta = due - now
    seconds = delta.total_seconds()
    if seconds >= 0:
        return _("あと%(amount)s") % {"amount": _amount(seconds)}
    return _("%(amount)s超過") % {"amount": _amount(-seconds)}
