"""Moments as the desk writes them for Japanese readers: mail, FAX pages, the web desk."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

_WEEKDAYS = "月火水木金土日"


def format_moment_ja(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as a Japanese reader expects it: "11月25日(火) 9:00"."""
    local = moment.astimezone(tz)
    return (
        f"{local.month}月{local.day}日({_WEEKDAYS[local.weekday()]}) "
        f"{local.hour}:{local.minute:02d}"
    )


def format_due_ja(moment: datetime, tz: ZoneInfo) -> str:
    """A deadline in words: "11月25日(火) 17:30まで"."""
    return f"{format_moment_ja(moment, tz)}まで"
