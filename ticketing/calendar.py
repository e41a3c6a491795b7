"""The desk's business calendar: when the desk is open, and business-time arithmetic.

Pure: no clock, no I/O after construction (an .ics file is read once, by the
settings). Every moment given must be timezone-aware, in any zone; every
moment returned is aware, in the calendar's zone.

Boundaries (business hours are half-open intervals ``[opening, close)``):

* ``is_open`` is true at an opening (09:30) and false at a close (12:00, 17:30).
* ``next_opening`` of an open moment is the moment itself; of a closed one,
  the next opening strictly after it (at 12:00 exactly: 13:00).
* ``add_business_time`` starts counting at ``next_opening(moment)``. A result
  that lands exactly on a close is that close (11:00 + 1 h = 12:00, not
  13:00); adding zero gives ``next_opening(moment)``. So a result is always
  open or exactly a close, and ``business_time_between(m, add_business_time(m,
  t)) == t``.
* ``business_time_between(a, b)`` is the business time in ``[a, b)``; it is
  negative when ``b`` is before ``a``.
* The business day of a moment is its local date. ``close_of_business_day``
  of a closed day (or of a moment on one) is the close of the next business
  day; with a ``cutoff``, a moment at or after the cut-off, or at or after
  that day's close, belongs to the next business day.
* Adjacent intervals (``00:00-24:00`` every day, or ``17:00-24:00`` then
  ``00:00-09:00``) join: the close between them is not a close.

How it is fast: instants are integer microseconds since the epoch. Each year
is turned once into its days' open intervals (holidays, closures and the
zone's offsets applied); the years in use are joined into one sorted list of
opening/closing instants with a running total of business time, so every
question is a binary search and a little arithmetic.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jpholiday

from madoguchi.config.business import (
    DEFAULT_HOURS,
    WEEKDAYS,
    AnnualClosure,
    CalendarSettings,
    ClosedDates,
    ClosedPeriod,
    Closure,
    WeeklyHours,
    parse_closure,
    parse_weekly_hours,
)
from madoguchi.ticketing.japanese import format_closed_days_ja

__all__ = ["FIRST_YEAR", "LAST_YEAR", "BusinessCalendar"]

# Years the calendar can work in; a moment outside them is refused.
FIRST_YEAR = 1900
LAST_YEAR = 2199

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_ALL_DAY = ((0, 1440),)

Span = tuple[int, int]  # [start, end) in microseconds since the epoch


class _Year:
    """One year's days as open intervals, in microseconds; from and to local midnight."""

    __slots__ = ("end", "intervals", "start")

    def __init__(self, start: int, intervals: list[tuple[Span, ...]], end: int) -> None:
        self.start = start
        self.intervals = intervals
        self.end = end


class _Horizon:
    """Consecutive years joined; replaced whole when it grows, so a reader holding
    one sees consistent lists (only the ``limits`` cache fills in place)."""

    __slots__ = (
        "bound_dt",
        "bounds",
        "closes",
        "cum",
        "due_close",
        "end",
        "first_year",
        "last_year",
        "limits",
        "next_bday",
        "ord0",
        "start",
    )

    first_year: int
    last_year: int
    start: int  # local midnight of 1 January of first_year
    end: int  # local midnight of 1 January after last_year
    ord0: int  # date ordinal of the first day; day index d = ordinal - ord0
    closes: list[int | None]  # last close of each day; None when closed all day
    next_bday: list[int]  # first business day index >= d, or -1 if none is known yet
    due_close: list[datetime | None]  # close of day next_bday[d]; None if -1
    bounds: list[int]  # opening, close, opening, close, ...
    bound_dt: list[datetime]
    cum: list[int]  # business time before interval k; cum[-1] is the total
    # Per cut-off: the instant on each day from which a moment belongs to the
    # next business day (the cut-off, or the close when earlier); -inf on
    # closed days. Filled on first use.
    limits: dict[time, list[float]]


class BusinessCalendar:
    """Weekly hours in a zone, minus national holidays and company closures."""

    def __init__(
        self,
        hours: Sequence[str] | Mapping[str, Sequence[str]] | WeeklyHours = DEFAULT_HOURS,
        *,
        tz: str | ZoneInfo = "Asia/Tokyo",
        national_holidays: bool = True,
        closures: Iterable[str | Closure] = (),
    ) -> None:
        """``hours``: intervals for Monday to Friday (``["09:30-12:00", ...]``), a
        table ``{"mon": [...], ..., "sun": [...]}``, or seven tuples of minute pairs.
        ``closures``: ``closures`` entries of the settings or closure objects.
        """
        if isinstance(tz, str):
            try:
                tz = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {tz!r}") from None
        self._tz = tz
        self._weekly = _weekly(hours)
        self._national_holidays = national_holidays
        rules = [parse_closure(c) if isinstance(c, str) else c for c in closures]
        self._date_rules = [r for r in rules if isinstance(r, ClosedDates | AnnualClosure)]
        self._periods = sorted(
            (self._instant(r.start), self._instant(r.end))
            for r in rules
            if isinstance(r, ClosedPeriod)
        )
        self._years: dict[int, _Year] = {}
        self._horizon: _Horizon | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: CalendarSettings, tz: str | ZoneInfo) -> BusinessCalendar:
        """The desk's calendar: ``BusinessCalendar.from_settings(s.calendar, s.timezone)``."""
        return cls(
            settings.weekly_hours(),
            tz=tz,
            national_holidays=settings.national_holidays,
            closures=settings.closure_rules(),
        )

    @classmethod
    def always_open(cls, tz: str | ZoneInfo = "Asia/Tokyo") -> BusinessCalendar:
        """Round the clock, every day (a contract's "24x7"); shared per zone."""
        return _always_open(ZoneInfo(tz) if isinstance(tz, str) else tz)

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    @property
    def weekly_hours(self) -> WeeklyHours:
        """The hours of each weekday, Monday first, in minutes (before closures)."""
        return self._weekly

    def closed_days_ja(self) -> str:
        """The days it is closed, as a FAX form prints them: "土日祝・年末年始"."""
        annual = [(r.first, r.last) for r in self._date_rules if isinstance(r, AnnualClosure)]
        other = bool(self._periods) or any(isinstance(r, ClosedDates) for r in self._date_rules)
        return format_closed_days_ja(self._weekly, self._national_holidays, annual, other)

    def __repr__(self) -> str:
        week = ", ".join(
            f"{name} {' '.join(f'{_clock(s)}-{_clock(e)}' for s, e in day)}"
            for name, day in zip(WEEKDAYS, self._weekly, strict=True)
            if day
        )
        return f"<BusinessCalendar {self._tz.key}: {week}>"

    # -- questions about moments -------------------------------------------------

    def is_open(self, moment: datetime) -> bool:
        """Inside business hours: at an opening yes, at a close no."""
        return self._locate(moment)[2] & 1 == 1

    def next_opening(self, moment: datetime) -> datetime:
        """When work can start: the moment itself if open, else the next opening."""
        h, _, i = self._locate(moment)
        return moment.astimezone(self._tz) if i & 1 else h.bound_dt[i]

    def add_business_time(self, moment: datetime, amount: timedelta) -> datetime:
        """The moment ``amount`` of business time after ``moment`` (see module doc)."""
        h, us, i = self._locate(moment)
        return self._after(h, us, i, moment, amount // _US)

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in ``[start, end)``; negative when ``end`` is earlier."""
        a, b = self._us(start), self._us(end)
        self._cover(a)
        h = self._cover(b)
        return timedelta(microseconds=_position(h, b) - _position(h, a))

    def window(
        self,
        moment: datetime,
        *,
        within: timedelta | None = None,
        cutoff: time | None = None,
    ) -> tuple[datetime, datetime, datetime]:
        """``(moment, next_opening(moment), due)`` in one pass, all in our zone.

        ``due`` is ``add_business_time(moment, within)`` when ``within`` is
        given, else ``close_of_business_day(moment, cutoff=cutoff)``. This is
        the deadline arithmetic of a ticket, done once per inquiry, so it
        converts the moment once and searches once.
        """
        try:
            us = (moment - _EPOCH) // _US
        except TypeError:
            us = self._us(moment)  # raises the error that names the problem
        h = self._horizon
        if h is None or not h.start <= us < h.end:
            h = self._cover(us)
        bounds = h.bounds
        i = bisect_right(bounds, us)
        if i == len(bounds):
            h, us, i = self._locate(moment)
        local = moment.astimezone(self._tz)
        starts = local if i & 1 else h.bound_dt[i]
        if within is not None:
            return local, starts, self._after(h, us, i, moment, within // _US)
        d = local.toordinal() - h.ord0
        if cutoff is not None:
            limits = h.limits.get(cutoff) or self._limits(h, cutoff)
            if us >= limits[d]:
                d += 1
        due_close = h.due_close
        if d < len(due_close):
            due = due_close[d]
            if due is not None:
                return local, starts, due
        return local, starts, self._close_from(h, d)

    # -- questions about days -------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        """The date has business hours (local date in the calendar's zone)."""
        h, d = self._day_index(day)
        return h.closes[d] is not None

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        h, d = self._day_index(day)
        h, d = self._business_day_from(h, d + 1)
        return date.fromordinal(h.ord0 + d)

    def close_of_business_day(
        self, when: datetime | date, *, cutoff: time | None = None
    ) -> datetime:
        """The close of the business day of a moment or a date.

        A closed day's business day is the next business day. With ``cutoff``
        (a moment only), a moment at or after the cut-off on its day, or at or
        after that day's close, belongs to the next business day.
        """
        if isinstance(when, datetime):
            us = self._us(when)
            h = self._cover(us)
            d = when.astimezone(self._tz).toordinal() - h.ord0
            if cutoff is not None and us >= self._limits(h, cutoff)[d]:
                d += 1
        else:
            if cutoff is not None:
                raise ValueError("a cut-off applies to a moment, not to a date")
            h, d = self._day_index(when)
        return self._close_from(h, d)

    # -- internals --------------------------------------------------------------------

    def _us(self, moment: datetime) -> int:
        try:
            return (moment - _EPOCH) // _US
        except TypeError:
            if isinstance(moment, datetime):
                raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone") from None
            raise TypeError(f"expected an aware datetime, got {moment!r}") from None

    def _instant(self, moment: datetime) -> int:
        """Microseconds of a moment; a naive one is wall-clock time in our zone."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._tz)
        return self._us(moment)

    def _datetime(self, us: int) -> datetime:
        # Exact: between FIRST_YEAR and LAST_YEAR, us / 1e6 is within 0.2 µs of
        # the true value and fromtimestamp rounds to the nearest microsecond.
        return datetime.fromtimestamp(us / 1e6, self._tz)

    def _locate(self, moment: datetime) -> tuple[_Horizon, int, int]:
        """The horizon, the instant, and the index in ``bounds`` after it.

        The index is odd when the desk is open at ``us``, else it is the next
        opening's; the horizon is grown until there is a next opening.
        """
        us = self._us(moment)
        h = self._cover(us)
        i = bisect_right(h.bounds, us)
        while i == len(h.bounds):
            h = self._grow_forward(h)
            i = bisect_right(h.bounds, us)
        return h, us, i

    def _after(self, h: _Horizon, us: int, i: int, moment: datetime, step: int) -> datetime:
        """``step`` microseconds of business time after ``us`` (at ``bounds`` index i)."""
        if step <= 0:
            if step < 0:
                raise ValueError(
                    f"business time to add is negative: {timedelta(microseconds=step)}"
                )
            return moment.astimezone(self._tz) if i & 1 else h.bound_dt[i]
        bounds, cum = h.bounds, h.cum
        target = cum[i >> 1] + (us - bounds[i - 1] if i & 1 else 0) + step
        while target > cum[-1]:
            h = self._grow_forward(h)
            bounds, cum = h.bounds, h.cum
            target = _position(h, us) + step
        k = bisect_left(cum, target) - 1
        result = bounds[2 * k] + target - cum[k]
        if result == bounds[2 * k + 1]:
            return h.bound_dt[2 * k + 1]
        return datetime.fromtimestamp(result / 1e6, self._tz)  # exact: see _datetime

    def _cover(self, us: int) -> _Horizon:
        h = self._horizon
        if h is not None and h.start <= us < h.end:
            return h
        try:
            year = self._datetime(us).year
        except (OverflowError, ValueError, OSError):  # beyond what datetime can show
            year = LAST_YEAR + 1 if us > 0 else FIRST_YEAR - 1
        return self._grow(year, year)

    def _day_index(self, day: date) -> tuple[_Horizon, int]:
        if isinstance(day, datetime):
            raise TypeError(f"expected a date, got a datetime {day.isoformat()}")
        h = self._horizon
        if h is None or not h.first_year <= day.year <= h.last_year:
            h = self._grow(day.year, day.year)
        return h, day.toordinal() - h.ord0

    def _business_day_from(self, h: _Horizon, d: int) -> tuple[_Horizon, int]:
        """The first business day index >= d, growing the horizon as needed."""
        while d >= len(h.next_bday) or h.next_bday[d] < 0:
            h = self._grow_forward(h)  # forward growth keeps day indices
        return h, h.next_bday[d]

    def _close_from(self, h: _Horizon, d: int) -> datetime:
        """The close of the first business day at index >= d."""
        while d >= len(h.due_close) or h.due_close[d] is None:
            h = self._grow_forward(h)  # forward growth keeps day indices
        due = h.due_close[d]
        assert due is not None
        return due

    def _limits(self, h: _Horizon, cutoff: time) -> list[float]:
        limits = h.limits.get(cutoff)
        if limits is None:
            minute = cutoff.hour * 60 + cutoff.minute
            extra = timedelta(seconds=cutoff.second, microseconds=cutoff.microsecond) // _US
            limits = [
                -math.inf
                if close is None
                else min(close, self._wall(date.fromordinal(h.ord0 + d), minute) + extra)
                for d, close in enumerate(h.closes)
            ]
            h.limits[cutoff] = limits
        return limits

    def _wall(self, day: date, minute: int) -> int:
        """Microseconds of a wall-clock time (minutes after midnight, up to 24:00)."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self._tz)
        return self._us(midnight + timedelta(minutes=minute))

    def _grow_forward(self, h: _Horizon) -> _Horizon:
        if h.last_year >= LAST_YEAR:
            raise ValueError(f"no business hours found before the year {LAST_YEAR + 1}")
        span = h.last_year - h.first_year + 1
        return self._grow(h.first_year, min(LAST_YEAR, h.last_year + span))

    def _grow(self, first: int, last: int) -> _Horizon:
        if first < FIRST_YEAR or last > LAST_YEAR:
            raise ValueError(
                f"year {first if first < FIRST_YEAR else last} is outside the calendar's "
                f"years {FIRST_YEAR}-{LAST_YEAR}"
            )
        with self._lock:
            h = self._horizon
            if h is not None:
                first, last = min(first, h.first_year), max(last, h.last_year)
                if (first, last) == (h.first_year, h.last_year):
                    return h
            h = self._join([self._year(y) for y in range(first, last + 1)], first, last)
            self._horizon = h
            return h

    def _year(self, year: int) -> _Year:
        built = self._years.get(year)
        if built is not None:
            return built
        closed: set[date] = set()
        if self._national_holidays:
            closed.update(_national_holidays(year))
        for rule in self._date_rules:
            closed.update(rule.dates_in(year))
        intervals: list[tuple[Span, ...]] = []
        day = date(year, 1, 1)
        start = midnight = self._wall(day, 0)
        while day.year == year:
            next_midnight = self._wall(day + timedelta(days=1), 0)
            spans: tuple[Span, ...] = ()
            if day not in closed:
                spans = tuple(
                    (self._wall(day, s), self._wall(day, e)) for s, e in self._weekly[day.weekday()]
                )
                periods = [p for p in self._periods if p[0] < next_midnight and p[1] > midnight]
                spans = tuple(s for s in _subtract(spans, periods) if s[0] < s[1])
            intervals.append(spans)
            day, midnight = day + timedelta(days=1), next_midnight
        built = _Year(start, intervals, midnight)
        self._years[year] = built
        return built

    def _join(self, years: list[_Year], first: int, last: int) -> _Horizon:
        h = _Horizon()
        h.first_year, h.last_year = first, last
        h.start, h.end = years[0].start, years[-1].end
        h.ord0 = date(first, 1, 1).toordinal()
        h.closes, h.bounds = [], []
        bounds = h.bounds
        for year in years:
            for spans in year.intervals:
                h.closes.append(spans[-1][1] if spans else None)
                for opening, close in spans:
                    if bounds and bounds[-1] >= opening:
                        bounds[-1] = max(bounds[-1], close)
                    else:
                        bounds += (opening, close)
        h.next_bday = [-1] * len(h.closes)
        h.due_close = [None] * len(h.closes)
        following: int = -1
        following_close: datetime | None = None
        for d in range(len(h.closes) - 1, -1, -1):
            day_close = h.closes[d]
            if day_close is not None:
                following, following_close = d, self._datetime(day_close)
            h.next_bday[d] = following
            h.due_close[d] = following_close
        h.bound_dt = [self._datetime(b) for b in bounds]
        h.cum = [0]
        for k in range(0, len(bounds), 2):
            h.cum.append(h.cum[-1] + bounds[k + 1] - bounds[k])
        h.limits = {}
        return h


def _position(h: _Horizon, us: int) -> int:
    """Business time from the horizon's start to ``us``."""
    i = bisect_right(h.bounds, us)
    if i & 1:
        return h.cum[i >> 1] + us - h.bounds[i - 1]
    return h.cum[i >> 1]


def _clock(minute: int) -> str:
    return f"{minute // 60:02}:{minute % 60:02}"


def _subtract(spans: tuple[Span, ...], periods: list[Span]) -> list[Span]:
    pieces = list(spans)
    for start, end in periods:
        kept: list[Span] = []
        for opening, close in pieces:
            if end <= opening or start >= close:
                kept.append((opening, close))
                continue
            if opening < start:
                kept.append((opening, start))
            if end < close:
                kept.append((end, close))
        pieces = kept
    return pieces


def _weekly(hours: Sequence[str] | Mapping[str, Sequence[str]] | WeeklyHours) -> WeeklyHours:
    if isinstance(hours, Mapping):
        return parse_weekly_hours({k: list(v) for k, v in hours.items()})
    if all(isinstance(item, str) for item in hours):
        return parse_weekly_hours([str(item) for item in hours])
    days = cast(WeeklyHours, hours)  # not strings: seven days of (start, end) minute pairs
    weekly = tuple(tuple((int(s), int(e)) for s, e in day) for day in days)
    in_order = all(0 <= s < e <= 1440 for day in weekly for s, e in day) and all(
        earlier[1] <= later[0] for day in weekly for earlier, later in pairwise(day)
    )
    if len(weekly) != 7 or not in_order or not any(weekly):
        raise ValueError(f"weekly hours {hours!r}: need seven days of sorted (start, end) minutes")
    return weekly


@cache
def _national_holidays(year: int) -> frozenset[date]:
    # jpholiday tests every day of the year (~75 ms); every calendar shares this.
    return frozenset(day for day, _name in jpholiday.year_holidays(year))


@lru_cache(maxsize=16)
def _always_open(zone: ZoneInfo) -> BusinessCalendar:
    # Keyed by the zone object: ZoneInfo("Asia/Tokyo") always returns the same one.
    return BusinessCalendar((_ALL_DAY,) * 7, tz=zone, national_holidays=False)
