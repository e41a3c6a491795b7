"""Moments as the desk writes them for Japanese readers: mail, FAX pages, the web desk."""

from __future__ import annotations

from collections.abc import Sequence
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


def _clock(minute: int) -> str:
    return f"{minute // 60}:{minute % 60:02d}"


def format_hours_ja(weekly: Sequence[Sequence[tuple[int, int]]]) -> str:
    """Weekly hours as a FAX form prints them: "平日 9:00〜12:00、13:00〜17:30".

    Monday to Friday alike and the weekend closed: "平日"; otherwise each
    weekday's hours, days with the same hours joined ("月〜金 … / 土 …").
    """
    def day_text(day: Sequence[tuple[int, int]]) -> str:
        return "、".join(f"{_clock(s)}〜{_clock(e)}" for s, e in day)

    if all(list(d) == list(weekly[0]) for d in weekly[:5]) and not any(weekly[5:]) and weekly[0]:
        return f"平日 {day_text(weekly[0])}"
    parts: list[str] = []
    start = 0
    while start < 7:
        end = start
        while end + 1 < 7 and list(weekly[end + 1]) == list(weekly[start]):
            end += 1
        if weekly[start]:
            days = _WEEKDAYS[start] if end == start else f"{_WEEKDAYS[start]}〜{_WEEKDAYS[end]}"
            parts.append(f"{days} {day_text(weekly[start])}")
        start = end + 1
    return " / ".join(parts)


def format_closed_days_ja(weekly: Sequence[Sequence[tuple[int, int]]], national_holidays: bool,
                          annual: Sequence[tuple[tuple[int, int], tuple[int, int]]],
                          other: bool) -> str:
    """The days a calendar is closed, as a FAX form prints them: "土日祝・年末年始".

    Weekdays without hours ("土日"), "祝" for national holidays, "年末年始" for an
    annual closure that wraps the new year, other annual closures by their
    dates ("8/13〜8/16"), and "弊社休業日" for closures on given dates.
    """
    days = "".join(_WEEKDAYS[i] for i, hours in enumerate(weekly) if not hours)
    if national_holidays:
        days += "祝"
    parts = [days] if days else []
    for first, last in annual:
        if last < first:
            parts.append("年末年始")
        elif first == last:
            parts.append(f"{first[0]}/{first[1]}")
        else:
            parts.append(f"{first[0]}/{first[1]}〜{last[0]}/{last[1]}")
    if other:
        parts.append("弊社休業日")
    return "・".join(dict.fromkeys(parts))


def format_open_hours_ja(weekly: Sequence[Sequence[tuple[int, int]]], closed: str) -> str:
    """The hours line of a FAX form: "受付時間 平日 9:00〜17:30（土日祝・年末年始を除く）"."""
    text = f"受付時間 {format_hours_ja(weekly)}"
    return f"{text}（{closed}を除く）" if closed else text
