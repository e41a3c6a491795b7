"""How long until a moment, or how long past it, in the desk's words: "あと3時間", "2時間超過".

Shown beside the absolute time in the queue and on a ticket. The unit is the
largest that fits (days from 48 hours, hours from 90 minutes, else minutes),
rounded down, so "あと1時間" never means 1 h 59 min is shown as 2.
"""

from __future__ import annotations

from datetime import datetime, timedelta

_HOUR = 3600


def _amount(seconds: float) -> str:
    if seconds >= 48 * _HOUR:
        return f"{int(seconds // (24 * _HOUR))}日"
    if seconds >= 90 * 60:
        return f"{int(seconds // _HOUR)}時間"
    return f"{max(int(seconds // 60), 1)}分"


def time_left(due: datetime | None, now: datetime) -> str:
    """"あと25分", "あと3時間", "あと2日", "15分超過", "2時間超過"; "" when there is no due time."""
    if due is None:
        return ""
    delta: timedelta = due - now
    seconds = delta.total_seconds()
    if seconds >= 0:
        return f"あと{_amount(seconds)}"
    return f"{_amount(-seconds)}超過"
