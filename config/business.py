"""Settings of the business calendar and the first-response policy.

Both seeds publish the desk's hours as two blocks a day, Monday to Friday,
Japan time, closed on national holidays and on days the company announces
(summer break, year-end and new-year break). The hours differ between the two
products, so they are configuration; the two published ones are presets.

This module only turns configuration into plain data (weekly intervals in
minutes, closure rules); ``madoguchi.ticketing.calendar`` does the arithmetic.

TOML, all keys optional::

    [calendar]
    preset = "agcrm"                    # or "chatluck"; or give hours instead
    hours = ["09:30-12:00", "13:00-17:30"]     # Monday to Friday
    # hours = { mon = ["09:00-12:00", "13:00-17:30"], sat = ["10:00-12:00"] }
    national_holidays = true            # Japanese national holidays (jpholiday)
    closures = [
        "12-29..01-03",                 # every year, wraps the new year
        "2026-08-13..2026-08-16",       # one summer break
        "2026-10-30",                   # one announced day
    ]
    ical_file = "/etc/madoguchi/closures.ics"   # more closures, from an .ics

    [sla]
    policy = "next_business_day_close"  # or "next_business_hours", "business_hours"
    cutoff = "17:00"
    business_hours = 4                  # used by policy = "business_hours"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Literal, TypeAlias

import icalendar
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Minutes after local midnight; a day's last interval may end at 1440 (24:00).
Interval: TypeAlias = tuple[int, int]
# Seven tuples of intervals, Monday first (``date.weekday()`` order).
WeeklyHours: TypeAlias = tuple[tuple[Interval, ...], ...]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS = ("09:30-12:00", "13:00-17:30")


@dataclass(frozen=True)
class Preset:
    """Hours published in a seed; closures stay in ``closures`` (they change yearly)."""

    hours: tuple[str, ...]
    source: str


PRESETS: dict[str, Preset] = {
    # ChatLuck サポートサービス約款: 午前9:00~12:00 および 午後1:00~5:30,
    # 土曜日祝日および別途通知する当社休業日（夏期休暇、年末年始休暇）を除く,
    # 対応時間 月～金曜日.
    "chatluck": Preset(
        hours=("09:00-12:00", "13:00-17:30"),
        source="ChatLuck: Mon-Fri 9:00-12:00, 13:00-17:30; closed Saturdays, Sundays, "
        "national holidays, summer and year-end breaks (announced dates: closures)",
    ),
    # All Gather CRM ご利用ガイド: 9:30～12:00、13:00～17:30
    # ※土日祝日、弊社指定日を除く.
    "agcrm": Preset(
        hours=("09:30-12:00", "13:00-17:30"),
        source="All Gather CRM: Mon-Fri 9:30-12:00, 13:00-17:30; closed Saturdays, "
        "Sundays, national holidays and company-designated days (弊社指定日: closures)",
    ),
}

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


def parse_clock(text: str, *, allow_24: bool = False) -> int:
    """``"HH:MM"`` as minutes after midnight; ``"24:00"`` only when allowed."""
    match = _CLOCK.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    hour, minute = int(match[1]), int(match[2])
    if minute > 59 or hour > 24 or (hour == 24 and (minute or not allow_24)):
        limit = "00:00-24:00" if allow_24 else "00:00-23:59"
        raise ValueError(f"{text!r} is not a time of day in {limit}")
    return hour * 60 + minute


def parse_intervals(texts: Iterable[str]) -> tuple[Interval, ...]:
    """``["09:30-12:00", "13:00-17:30"]`` as sorted, non-overlapping minute pairs."""
    if isinstance(texts, str):
        raise ValueError(f'{texts!r}: give a list of intervals, e.g. ["09:30-12:00"]')
    intervals: list[Interval] = []
    for text in texts:
        if not isinstance(text, str) or text.count("-") != 1:
            raise ValueError(f"{text!r} is not an interval HH:MM-HH:MM")
        start_text, end_text = text.split("-")
        try:
            start = parse_clock(start_text)
            end = parse_clock(end_text, allow_24=True)
        except ValueError as exc:
            raise ValueError(f"interval {text!r}: {exc}") from None
        if start >= end:
            raise ValueError(f"interval {text!r} ends before it starts")
        intervals.append((start, end))
    intervals.sort()
    for (_, end), (start, _) in pairwise(intervals):
        if start < end:
            raise ValueError(f"intervals {list(texts)!r} overlap")
    return tuple(intervals)


def parse_weekly_hours(value: Iterable[str] | dict[str, Iterable[str]]) -> WeeklyHours:
    """A list of intervals for Monday to Friday, or a table weekday -> intervals.

    In the table form, weekdays are ``mon`` .. ``sun`` and a missing weekday is
    closed.
    """
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
        days = []
        for name in WEEKDAYS:
            try:
                days.append(parse_intervals(value.get(name, ())))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        weekly = tuple(days)
    else:
        workday = parse_intervals(value)
        weekly = (workday,) * 5 + ((), ())
    if not any(weekly):
        raise ValueError("the week has no business hours at all")
    return weekly


@dataclass(frozen=True)
class ClosedDates:
    """Closed on every date from ``first`` to ``last``, both included."""

    first: date
    last: date

    def dates_in(self, year: int) -> Iterator[date]:
        day = max(self.first, date(year, 1, 1))
        last = min(self.last, date(year, 12, 31))
        while day <= last:
            yield day
            day += timedelta(days=1)


@dataclass(frozen=True)
class AnnualClosure:
    """Closed every year from month-day ``first`` to ``last``, both included.

    When ``last`` comes before ``first`` the closure wraps the new year
    (``12-29..01-03``): in any one year it closes the first days of January and
    the last days of December. 02-29 only exists in leap years.
    """

    first: tuple[int, int]
    last: tuple[int, int]

    def dates_in(self, year: int) -> Iterator[date]:
        first, last = self.first, self.last
        day, end = date(year, 1, 1), date(year, 12, 31)
        while day <= end:
            key = (day.month, day.day)
            if (first <= key <= last) if first <= last else (key >= first or key <= last):
                yield day
            day += timedelta(days=1)


@dataclass(frozen=True)
class ClosedPeriod:
    """Closed from ``start`` (included) to ``end`` (excluded), to the minute.

    A naive datetime is wall-clock time in the calendar's zone (an .ics
    "floating" time).
    """

    start: datetime
    end: datetime


Closure: TypeAlias = ClosedDates | AnnualClosure | ClosedPeriod


def _parse_date(text: str) -> date:
    if not _ISO_DATE.match(text):
        raise ValueError(f"{text!r} is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date YYYY-MM-DD") from None


def _parse_month_day(text: str) -> tuple[int, int]:
    match = _MONTH_DAY.match(text)
    try:
        if match is None:
            raise ValueError
        date(2000, int(match[1]), int(match[2]))  # 2000 is leap: 02-29 is allowed
    except ValueError:
        raise ValueError(f"{text!r} is not a month-day MM-DD") from None
    return int(match[1]), int(match[2])


def parse_closure(text: str) -> ClosedDates | AnnualClosure:
    """One ``closures`` entry.

    ``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD``: those dates, once.
    ``MM-DD`` or ``MM-DD..MM-DD``: those dates every year; a range may wrap the
    new year (``12-29..01-03``). Ranges include both ends.
    """
    if not isinstance(text, str):
        raise ValueError(f"closure {text!r} is not text")
    parts = [part.strip() for part in text.split("..")]
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"closure {text!r}: write DATE or DATE..DATE")
    try:
        if all(_ISO_DATE.match(part) for part in parts):
            first, last = _parse_date(parts[0]), _parse_date(parts[-1])
            if last < first:
                raise ValueError(f"range ends on {last} before it starts on {first}")
            return ClosedDates(first, last)
        if all(_MONTH_DAY.match(part) for part in parts):
            return AnnualClosure(_parse_month_day(parts[0]), _parse_month_day(parts[-1]))
        raise ValueError("use YYYY-MM-DD or MM-DD (every year) on both ends")
    except ValueError as exc:
        raise ValueError(f"closure {text!r}: {exc}") from None


def read_ical_closures(path: Path) -> list[ClosedDates | ClosedPeriod]:
    """The events of an .ics file as closures.

    All-day events close whole dates (DTEND excluded, as RFC 5545 says); timed
    events close that stretch of time. Cancelled events are skipped. Repeating
    events (RRULE/RDATE) are refused rather than half-read: list each closure.
    """
    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} is not an iCalendar file: {exc}") from None
    closures: list[ClosedDates | ClosedPeriod] = []
    for event in calendar.walk("VEVENT"):
        assert isinstance(event, icalendar.Event)  # walk("VEVENT") yields events
        name = f"{str(path)!r}: event {str(event.get('SUMMARY', event.get('UID', '?')))!r}"
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        if "RRULE" in event or "RDATE" in event:
            raise ValueError(f"{name} repeats (RRULE/RDATE); list each closure instead")
        try:
            start, end = event.start, event.end
        except Exception as exc:  # icalendar raises its own errors for broken DTSTART
            raise ValueError(f"{name}: {exc}") from None
        if isinstance(start, datetime) and isinstance(end, datetime):
            if (start.tzinfo is None) != (end.tzinfo is None):
                raise ValueError(f"{name} mixes floating and zoned times")
            if start < end:
                closures.append(ClosedPeriod(start, end))
        elif isinstance(start, datetime) or isinstance(end, datetime):
            raise ValueError(f"{name} mixes a date and a date-time")
        elif start < end:
            closures.append(ClosedDates(start, end - timedelta(days=1)))
    return closures


class CalendarSettings(BaseModel):
    """When the desk is open.

    ``hours`` (or a ``preset``) gives the weekly hours; a day is closed when it
    is a Japanese national holiday (``national_holidays``, including substitute
    and citizens' holidays, from jpholiday), matches an entry of ``closures``,
    or is closed by an event of ``ical_file``. The default ``closures`` is the
    customary year-end break 12-29..01-03; a summer break changes every year, so
    it has no default.
    """

    model_config = ConfigDict(extra="forbid")

    # Published hours of a product (see PRESETS); not together with ``hours``.
    preset: Literal["chatluck", "agcrm"] | None = None
    # ["HH:MM-HH:MM", ...] for Monday to Friday, or {mon = [...], ..., sun = [...]}
    # (a missing weekday is closed); "24:00" may end a day. Neither this nor a
    # preset: 09:30-12:00 and 13:00-17:30, Monday to Friday.
    hours: list[str] | dict[str, list[str]] | None = None
    # Closed on Japanese national holidays, substitute (振替休日) and citizens'
    # (国民の休日) holidays included, as the jpholiday package knows them.
    national_holidays: bool = True
    # "YYYY-MM-DD", "YYYY-MM-DD..YYYY-MM-DD" (once), "MM-DD", "MM-DD..MM-DD"
    # (every year; may wrap the new year). Ranges include both ends.
    closures: list[str] = Field(default_factory=lambda: ["12-29..01-03"])
    # An .ics file of further closures: all-day events close whole days, timed
    # events close those hours. Read at start-up.
    ical_file: Path | None = None

    @field_validator("hours", mode="before")
    @classmethod
    def _hours_are_a_list(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(f'{value!r}: give a list of intervals, e.g. ["09:30-12:00"]')
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(
        cls, value: list[str] | dict[str, list[str]] | None
    ) -> list[str] | dict[str, list[str]] | None:
        if value is not None:
            parse_weekly_hours(value)
        return value

    @field_validator("closures", mode="before")
    @classmethod
    def _dates_as_text(cls, value: object) -> object:
        # TOML has date literals: closures = [2026-08-13] arrives as a date.
        if isinstance(value, list):
            return [item.isoformat() if isinstance(item, date) else item for item in value]
        return value

    @field_validator("closures")
    @classmethod
    def _valid_closures(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_closure(text)
        return value

    @field_validator("ical_file")
    @classmethod
    def _readable_ical(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_ical_closures(value)
        return value

    @model_validator(mode="after")
    def _preset_or_hours(self) -> CalendarSettings:
        if self.preset is not None and self.hours is not None:
            raise ValueError(f"give either preset ({self.preset!r}) or hours, not both")
        return self

    def weekly_hours(self) -> WeeklyHours:
        if self.hours is not None:
            return parse_weekly_hours(self.hours)
        if self.preset is not None:
            return parse_weekly_hours(PRESETS[self.preset].hours)
        return parse_weekly_hours(DEFAULT_HOURS)

    def closure_rules(self) -> list[Closure]:
        rules: list[Closure] = [parse_closure(text) for text in self.closures]
        if self.ical_file is not None:
            rules.extend(read_ical_closures(self.ical_file))
        return rules


class CutoffSettings(BaseModel):
    """A cut-off time of day ``"HH:MM"``: received at or after it, the next business day."""

    model_config = ConfigDict(extra="forbid")

    cutoff: str = "17:00"

    @field_validator("cutoff")
    @classmethod
    def _valid_cutoff(cls, value: str) -> str:
        parse_clock(value)
        return value

    def cutoff_time(self) -> time:
        minutes = parse_clock(self.cutoff)
        return time(minutes // 60, minutes % 60)


class SlaSettings(CutoffSettings):
    """The default first-response policy; a contract's ``sla_override`` wins.

    ``next_business_day_close``: a message received on a business day before
    ``cutoff`` (also before opening or in the lunch break) is due by that day's
    close; one received at or after the cut-off, or on a closed day, is due by
    the close of the next business day.
    ``next_business_hours``: due by the close of the business hours in which
    work can start (received after a day's close or on a closed day: the next
    business day's close); the cut-off is not used.
    ``business_hours``: due ``business_hours`` business hours after receipt.
    The time zone is the top-level ``timezone``.
    """

    model_config = ConfigDict(extra="forbid")

    policy: Literal["next_business_day_close", "next_business_hours", "business_hours"] = (
        "next_business_day_close"
    )
    # "HH:MM": received at or after it on a business day, due the next business day.
    cutoff: str = "17:00"
    # N for policy "business_hours"; fractions allowed (1.5 = 1 h 30 min).
    business_hours: float = Field(4, gt=0, le=10_000)
