"""The business calendar: table tests on real 2025-2027 dates, then invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from madoguchi.config import ConfigError, load_settings
from madoguchi.config.business import CalendarSettings
from madoguchi.ticketing.calendar import BusinessCalendar

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
US = timedelta(microseconds=1)

# The desk's default: Mon-Fri 09:30-12:00 and 13:00-17:30, national holidays,
# the year-end break 12-29..01-03.
DESK = BusinessCalendar.from_settings(CalendarSettings(), "Asia/Tokyo")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


# -- is_open: hours, lunch, weekends, holidays, year end ------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (jst(2026, 4, 28, 9, 29, 59, 999999), False),
        (jst(2026, 4, 28, 9, 30), True),  # an opening is open
        (jst(2026, 4, 28, 11, 59, 59, 999999), True),
        (jst(2026, 4, 28, 12, 0), False),  # a close is closed
        (jst(2026, 4, 28, 12, 30), False),  # lunch
        (jst(2026, 4, 28, 13, 0), True),
        (jst(2026, 4, 28, 17, 29, 59), True),
        (jst(2026, 4, 28, 17, 30), False),
        (jst(2026, 4, 28, 22, 0), False),
        (jst(2026, 6, 6, 10, 0), False),  # Saturday
        (jst(2026, 6, 7, 10, 0), False),  # Sunday
        # Golden Week 2026
        (jst(2026, 4, 29, 10, 0), False),  # Wed 昭和の日
        (jst(2026, 4, 30, 10, 0), True),
        (jst(2026, 5, 1, 10, 0), True),
        (jst(2026, 5, 4, 10, 0), False),  # Mon みどりの日
        (jst(2026, 5, 5, 10, 0), False),  # Tue こどもの日
        (jst(2026, 5, 6, 10, 0), False),  # Wed 振替休日 for Sun 5/3 憲法記念日
        (jst(2026, 5, 7, 10, 0), True),
        # Silver Week 2026: 敬老の日, 国民の休日, 秋分の日
        (jst(2026, 9, 21, 10, 0), False),
        (jst(2026, 9, 22, 10, 0), False),  # citizens' holiday
        (jst(2026, 9, 23, 10, 0), False),
        (jst(2026, 9, 24, 10, 0), True),
        # substitute holidays
        (jst(2025, 2, 24, 10, 0), False),  # 天皇誕生日 fell on Sunday
        (jst(2025, 5, 6, 10, 0), False),  # みどりの日 fell on Sunday
        (jst(2025, 11, 24, 10, 0), False),  # 勤労感謝の日 fell on Sunday
        (jst(2027, 3, 22, 10, 0), False),  # 春分の日 fell on Sunday
        # year end 12-29..01-03, on weekdays
        (jst(2025, 12, 26, 17, 29), True),
        (jst(2025, 12, 29, 10, 0), False),
        (jst(2026, 1, 2, 10, 0), False),
        (jst(2026, 1, 5, 9, 30), True),
        (jst(2026, 12, 28, 10, 0), True),
        (jst(2026, 12, 29, 10, 0), False),
        (jst(2026, 12, 31, 10, 0), False),
        (jst(2027, 1, 1, 10, 0), False),
        (jst(2027, 1, 4, 10, 0), True),
        # other zones: the same instants
        (datetime(2026, 4, 28, 0, 30, tzinfo=UTC), True),  # 09:30 JST
        (datetime(2026, 4, 28, 3, 0, tzinfo=UTC), False),  # 12:00 JST
        (datetime(2026, 4, 28, 8, 30, tzinfo=UTC), False),  # 17:30 JST
        (datetime(2026, 4, 27, 20, 30, tzinfo=NEW_YORK), True),  # EDT: Tue 09:30 JST
        (datetime(2026, 1, 6, 19, 30, tzinfo=NEW_YORK), True),  # EST: Wed 09:30 JST
        (datetime(2026, 4, 28, 20, 30, tzinfo=NEW_YORK), False),  # 4/29 09:30 JST: holiday
    ],
)
def test_is_open_on_named_days(moment: datetime, expected: bool) -> None:
    assert DESK.is_open(moment) is expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 4, 28), date(2026, 4, 30)),  # over 昭和の日
        (date(2026, 5, 1), date(2026, 5, 7)),  # over Golden Week and its 振替休日
        (date(2026, 9, 18), date(2026, 9, 24)),  # over Silver Week and 国民の休日
        (date(2026, 12, 28), date(2027, 1, 4)),  # over the year-end break
        (date(2025, 12, 26), date(2026, 1, 5)),
        (date(2027, 3, 19), date(2027, 3, 23)),  # over 春分の日 and its 振替休日
        (date(2026, 6, 6), date(2026, 6, 8)),  # from a Saturday
        (date(2026, 6, 8), date(2026, 6, 9)),
    ],
)
def test_next_business_day_skips_closed_days(day: date, expected: date) -> None:
    assert DESK.next_business_day(day) == expected


def test_is_business_day_knows_holidays_and_closures() -> None:
    assert DESK.is_business_day(date(2026, 4, 30))
    assert not DESK.is_business_day(date(2026, 5, 6))
    assert not DESK.is_business_day(date(2026, 9, 22))
    assert not DESK.is_business_day(date(2026, 12, 29))
    assert not DESK.is_business_day(date(2026, 6, 6))


# -- next_opening ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (jst(2026, 4, 28, 11, 0), jst(2026, 4, 28, 11, 0)),  # open: itself
        (jst(2026, 4, 28, 9, 30), jst(2026, 4, 28, 9, 30)),
        (jst(2026, 4, 28, 7, 0), jst(2026, 4, 28, 9, 30)),
        (jst(2026, 4, 28, 12, 0), jst(2026, 4, 28, 13, 0)),  # lunch
        (jst(2026, 4, 28, 17, 30), jst(2026, 4, 30, 9, 30)),
        (jst(2026, 5, 1, 17, 30), jst(2026, 5, 7, 9, 30)),
        (jst(2026, 9, 19, 10, 0), jst(2026, 9, 24, 9, 30)),
        (jst(2026, 12, 28, 17, 45), jst(2027, 1, 4, 9, 30)),
        (datetime(2026, 5, 1, 8, 30, tzinfo=UTC), jst(2026, 5, 7, 9, 30)),
        (datetime(2026, 5, 1, 4, 30, tzinfo=NEW_YORK), jst(2026, 5, 7, 9, 30)),
    ],
)
def test_next_opening(moment: datetime, expected: datetime) -> None:
    result = DESK.next_opening(moment)
    assert result == expected
    assert result.tzinfo is TOKYO


# -- add_business_time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "amount", "expected"),
    [
        (jst(2026, 4, 28, 11, 0), timedelta(hours=1), jst(2026, 4, 28, 12, 0)),  # the close
        (jst(2026, 4, 28, 11, 0), timedelta(hours=1, minutes=1), jst(2026, 4, 28, 13, 1)),
        (jst(2026, 4, 28, 12, 15), timedelta(minutes=30), jst(2026, 4, 28, 13, 30)),
        (jst(2026, 4, 28, 9, 30), timedelta(hours=7), jst(2026, 4, 28, 17, 30)),
        (jst(2026, 4, 28, 17, 0), timedelta(hours=1), jst(2026, 4, 30, 10, 0)),
        (jst(2026, 5, 1, 16, 0), timedelta(hours=4), jst(2026, 5, 7, 12, 0)),
        (jst(2026, 9, 18, 17, 0), timedelta(hours=1), jst(2026, 9, 24, 10, 0)),
        (jst(2026, 12, 28, 17, 0), timedelta(minutes=30), jst(2026, 12, 28, 17, 30)),
        (jst(2026, 12, 28, 17, 0), timedelta(minutes=31), jst(2027, 1, 4, 9, 31)),
        (jst(2026, 4, 28, 12, 0), timedelta(0), jst(2026, 4, 28, 13, 0)),
        (jst(2026, 4, 28, 10, 0), timedelta(0), jst(2026, 4, 28, 10, 0)),
        (jst(2026, 4, 28, 9, 30), timedelta(hours=14), jst(2026, 4, 30, 17, 30)),
        (datetime(2026, 4, 27, 22, 0, tzinfo=NEW_YORK), timedelta(hours=1), jst(2026, 4, 28, 12)),
        (datetime(2026, 4, 28, 2, 0, tzinfo=UTC), timedelta(hours=2), jst(2026, 4, 28, 14, 0)),
    ],
)
def test_add_business_time(moment: datetime, amount: timedelta, expected: datetime) -> None:
    result = DESK.add_business_time(moment, amount)
    assert result == expected
    assert result.tzinfo is TOKYO


def test_add_business_time_refuses_negative_amounts() -> None:
    with pytest.raises(ValueError, match="negative"):
        DESK.add_business_time(jst(2026, 4, 28, 10), timedelta(minutes=-1))


# -- business_time_between --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (jst(2026, 4, 28, 11, 30), jst(2026, 4, 28, 13, 30), timedelta(hours=1)),
        (jst(2026, 4, 28, 12, 0), jst(2026, 4, 28, 13, 0), timedelta(0)),
        (jst(2026, 5, 1, 17, 0), jst(2026, 5, 7, 10, 0), timedelta(hours=1)),
        (jst(2026, 4, 28, 9, 30), jst(2026, 5, 7, 9, 30), timedelta(hours=21)),
        (jst(2026, 12, 28, 9, 30), jst(2027, 1, 4, 9, 30), timedelta(hours=7)),
        (jst(2026, 9, 18, 0, 0), jst(2026, 9, 25, 0, 0), timedelta(hours=14)),
        (jst(2026, 4, 28, 13, 30), jst(2026, 4, 28, 11, 30), -timedelta(hours=1)),
        (
            datetime(2026, 4, 28, 2, 30, tzinfo=UTC),  # 11:30 JST
            datetime(2026, 4, 28, 0, 30, tzinfo=NEW_YORK),  # 13:30 JST
            timedelta(hours=1),
        ),
    ],
)
def test_business_time_between(start: datetime, end: datetime, expected: timedelta) -> None:
    assert DESK.business_time_between(start, end) == expected


# -- close_of_business_day --------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (date(2026, 4, 28), jst(2026, 4, 28, 17, 30)),
        (date(2026, 4, 29), jst(2026, 4, 30, 17, 30)),  # closed day: the next one's
        (date(2026, 12, 30), jst(2027, 1, 4, 17, 30)),
        (jst(2026, 4, 28, 7, 0), jst(2026, 4, 28, 17, 30)),
        (jst(2026, 4, 28, 18, 0), jst(2026, 4, 28, 17, 30)),  # its own day, even after
        (jst(2026, 5, 3, 10, 0), jst(2026, 5, 7, 17, 30)),
        # 15:30 UTC on 4/28 is 00:30 on 4/29 (a holiday) in Tokyo: the local day counts.
        (datetime(2026, 4, 28, 15, 30, tzinfo=UTC), jst(2026, 4, 30, 17, 30)),
    ],
)
def test_close_of_business_day(when: datetime | date, expected: datetime) -> None:
    assert DESK.close_of_business_day(when) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (jst(2026, 4, 28, 16, 59, 59, 999999), jst(2026, 4, 28, 17, 30)),
        (jst(2026, 4, 28, 17, 0), jst(2026, 4, 30, 17, 30)),  # at the cut-off: next day
        (jst(2026, 4, 28, 17, 45), jst(2026, 4, 30, 17, 30)),
        (jst(2026, 4, 29, 10, 0), jst(2026, 4, 30, 17, 30)),
    ],
)
def test_close_of_business_day_with_a_cutoff(moment: datetime, expected: datetime) -> None:
    assert DESK.close_of_business_day(moment, cutoff=time(17, 0)) == expected


def test_a_cutoff_needs_a_moment() -> None:
    with pytest.raises(ValueError, match="cut-off"):
        DESK.close_of_business_day(date(2026, 4, 28), cutoff=time(17))


# -- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: DESK.is_open(m),
        lambda m: DESK.next_opening(m),
        lambda m: DESK.add_business_time(m, timedelta(hours=1)),
        lambda m: DESK.business_time_between(m, jst(2026, 4, 28)),
        lambda m: DESK.close_of_business_day(m),
        lambda m: DESK.window(m),
    ],
)
def test_naive_moments_are_refused(call) -> None:
    with pytest.raises(ValueError, match="naive"):
        call(datetime(2026, 4, 28, 10, 0))


def test_moments_outside_the_supported_years_are_refused() -> None:
    with pytest.raises(ValueError, match="2300"):
        DESK.is_open(datetime(2300, 1, 5, 10, tzinfo=TOKYO))


def test_a_calendar_that_never_opens_says_so() -> None:
    never = BusinessCalendar(closures=["01-01..12-31"], national_holidays=False)
    with pytest.raises(ValueError, match="no business hours"):
        never.next_opening(jst(2190, 1, 1))


# -- configuration: presets, weekly tables, closures, iCalendar ----------------------------


def test_presets_follow_the_seeds() -> None:
    chatluck = BusinessCalendar.from_settings(CalendarSettings(preset="chatluck"), "Asia/Tokyo")
    agcrm = BusinessCalendar.from_settings(CalendarSettings(preset="agcrm"), "Asia/Tokyo")
    assert chatluck.is_open(jst(2026, 4, 28, 9, 0))
    assert not agcrm.is_open(jst(2026, 4, 28, 9, 0))
    for calendar in (chatluck, agcrm):
        assert calendar.is_open(jst(2026, 4, 28, 17, 29))
        assert not calendar.is_open(jst(2026, 4, 28, 12, 30))
        assert not calendar.is_business_day(date(2026, 6, 6))  # Saturday
        assert not calendar.is_business_day(date(2026, 5, 6))  # 振替休日


def test_hours_per_weekday() -> None:
    calendar = BusinessCalendar(
        {"mon": ["09:00-12:00", "13:00-18:00"], "sat": ["10:00-12:00"]}, national_holidays=False
    )
    assert calendar.is_open(jst(2026, 6, 6, 11, 0))  # Saturday
    assert not calendar.is_open(jst(2026, 6, 9, 11, 0))  # Tuesday: not listed, closed
    assert calendar.close_of_business_day(date(2026, 6, 8)) == jst(2026, 6, 8, 18, 0)
    assert calendar.next_business_day(date(2026, 6, 8)) == date(2026, 6, 13)


def test_closures_single_days_ranges_and_yearly() -> None:
    calendar = BusinessCalendar(
        closures=["2026-10-30", "2026-08-13..2026-08-14", "12-29..01-03", "02-29"]
    )
    assert not calendar.is_business_day(date(2026, 10, 30))
    assert calendar.is_business_day(date(2027, 10, 29))
    assert not calendar.is_business_day(date(2026, 8, 13))
    assert not calendar.is_business_day(date(2026, 8, 14))
    assert not calendar.is_business_day(date(2025, 12, 30))
    assert not calendar.is_business_day(date(2027, 1, 1))
    assert not calendar.is_business_day(date(2028, 2, 29))  # leap years only
    assert calendar.is_business_day(date(2027, 3, 1))


def test_national_holidays_can_be_switched_off() -> None:
    calendar = BusinessCalendar(national_holidays=False)
    assert calendar.is_open(jst(2026, 4, 29, 10, 0))
    assert calendar.is_open(jst(2026, 12, 29, 10, 0))  # no default closures here


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Madoguchi tests//closures//EN
BEGIN:VEVENT
UID:summer-2026@example.co.jp
SUMMARY:夏期休暇
DTSTART;VALUE=DATE:20260812
DTEND;VALUE=DATE:20260815
END:VEVENT
BEGIN:VEVENT
UID:cleanup-2026@example.co.jp
SUMMARY:大掃除
DTSTART;TZID=Asia/Tokyo:20261225T150000
DTEND;TZID=Asia/Tokyo:20261225T180000
END:VEVENT
BEGIN:VEVENT
UID:cancelled@example.co.jp
SUMMARY:取りやめ
STATUS:CANCELLED
DTSTART;VALUE=DATE:20261028
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def closures_ics(tmp_path: Path) -> Path:
    path = tmp_path / "closures.ics"
    path.write_text(ICS.replace("\n", "\r\n"), encoding="utf-8")
    return path


def test_ical_file_closes_whole_days_and_afternoons(closures_ics: Path) -> None:
    calendar = BusinessCalendar.from_settings(
        CalendarSettings(ical_file=closures_ics), "Asia/Tokyo"
    )
    assert not calendar.is_business_day(date(2026, 8, 11))  # 山の日
    assert not calendar.is_business_day(date(2026, 8, 12))
    assert not calendar.is_business_day(date(2026, 8, 14))
    assert calendar.is_business_day(date(2026, 8, 17))  # DTEND is excluded (8/15 is Sat)
    assert calendar.is_business_day(date(2026, 10, 28))  # cancelled event
    assert calendar.is_open(jst(2026, 12, 25, 14, 59))
    assert not calendar.is_open(jst(2026, 12, 25, 15, 0))
    assert calendar.close_of_business_day(date(2026, 12, 25)) == jst(2026, 12, 25, 15, 0)
    # After that day's early close, before the cut-off: the next business day's.
    assert calendar.close_of_business_day(jst(2026, 12, 25, 15, 30), cutoff=time(17)) == jst(
        2026, 12, 28, 17, 30
    )
    assert calendar.add_business_time(jst(2026, 12, 25, 14, 0), timedelta(hours=2)) == jst(
        2026, 12, 28, 10, 30
    )


def test_repeating_ical_events_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "yearly.ics"
    path.write_text(
        ICS.replace("DTEND;VALUE=DATE:20260815", "DTEND;VALUE=DATE:20260815\r\nRRULE:FREQ=YEARLY"),
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match=r"夏期休暇.*RRULE"):
        CalendarSettings(ical_file=path)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"hours": ["09:30-25:00"]}, "'09:30-25:00'"),
        ({"hours": ["9.30-12:00"]}, "'9.30'"),
        ({"hours": ["13:00-12:00"]}, "'13:00-12:00' ends before it starts"),
        ({"hours": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"hours": {"monday": ["09:00-12:00"]}}, "'monday'"),
        ({"hours": []}, "no business hours"),
        ({"hours": "09:30-17:30"}, "give a list"),
        ({"hours": {"sat": ["10:00-12:00", "11:00-13:00"]}}, "sat: intervals"),
        ({"closures": ["2026-13-01"]}, "'2026-13-01'"),
        ({"closures": ["2026-08-20..2026-08-13"]}, "ends on 2026-08-13 before"),
        ({"closures": ["2026-12-29..01-03"]}, "'2026-12-29..01-03'"),
        ({"closures": ["02-30"]}, "'02-30'"),
        ({"preset": "desknets"}, "desknets"),
        ({"preset": "agcrm", "hours": ["09:00-17:00"]}, "either preset"),
        ({"ical_file": "/nonexistent/closures.ics"}, "/nonexistent/closures.ics"),
        ({"holidays": True}, "holidays"),
    ],
)
def test_bad_calendar_settings_name_the_value(fields: dict, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CalendarSettings(**fields)
    assert named in str(caught.value)


def test_calendar_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "madoguchi.toml"
    path.write_text(
        '[calendar]\npreset = "chatluck"\nclosures = [2026-08-13, "12-29..01-03"]\n'
        '[sla]\ncutoff = "16:00"\n',
        encoding="utf-8",
    )
    loaded = load_settings(path)
    assert loaded.calendar.closures == ["2026-08-13", "12-29..01-03"]
    calendar = BusinessCalendar.from_settings(loaded.calendar, loaded.timezone)
    assert calendar.is_open(jst(2026, 8, 12, 9, 0))
    assert not calendar.is_business_day(date(2026, 8, 13))


def test_a_bad_toml_calendar_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "madoguchi.toml"
    path.write_text('[calendar]\nhours = ["09:30-12:60"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"calendar\.hours.*'09:30-12:60'"):
        load_settings(path)


# -- other calendars: round the clock, and a zone with summer time -------------------------


def test_always_open_counts_wall_clock_time() -> None:
    always = BusinessCalendar.always_open("Asia/Tokyo")
    assert always is BusinessCalendar.always_open(TOKYO)
    assert always.is_open(jst(2026, 5, 3, 3, 0))  # Sunday night, a holiday
    assert always.is_open(jst(2027, 1, 1, 0, 0))  # midnight joins two days
    assert always.add_business_time(jst(2026, 12, 31, 22), timedelta(hours=4)) == jst(2027, 1, 1, 2)
    assert always.business_time_between(jst(2026, 1, 1), jst(2027, 1, 1)) == timedelta(days=365)
    assert always.close_of_business_day(jst(2026, 5, 3, 3)) == jst(2026, 5, 4, 0, 0)


def test_summer_time_is_counted_in_real_hours() -> None:
    new_york = BusinessCalendar(["09:00-17:00"], tz="America/New_York", national_holidays=False)
    friday = datetime(2026, 3, 6, 16, 0, tzinfo=NEW_YORK)
    monday = datetime(2026, 3, 9, 10, 0, tzinfo=NEW_YORK)  # clocks moved on Sunday 3/8
    assert new_york.business_time_between(friday, monday) == timedelta(hours=2)
    assert new_york.add_business_time(friday, timedelta(hours=2)) == monday
    always = BusinessCalendar.always_open("America/New_York")
    assert always.business_time_between(
        datetime(2026, 3, 8, tzinfo=NEW_YORK), datetime(2026, 3, 9, tzinfo=NEW_YORK)
    ) == timedelta(hours=23)


# -- invariants ------------------------------------------------------------------------------

# Bounded and derandomized: the same examples on every run, in a few seconds.
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None)

NEW_YORK_DESK = BusinessCalendar(
    {"mon": ["08:00-12:00", "13:00-17:00"], "sat": ["22:00-24:00"], "sun": ["00:00-02:00"]},
    tz="America/New_York",
    closures=["12-24..12-26", "2026-03-09"],
)
CALENDARS = st.sampled_from([DESK, BusinessCalendar.always_open("Asia/Tokyo"), NEW_YORK_DESK])
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.sampled_from([TOKYO, UTC, NEW_YORK]),
    allow_imaginary=False,
)
AMOUNTS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


def at_close(calendar: BusinessCalendar, moment: datetime) -> bool:
    return not calendar.is_open(moment) and calendar.is_open(moment - US)


@PROPERTY
@given(CALENDARS, MOMENTS, AMOUNTS)
def test_adding_then_measuring_gives_the_same_business_time(calendar, moment, amount) -> None:
    result = calendar.add_business_time(moment, amount)
    assert calendar.business_time_between(moment, result) == amount


@PROPERTY
@given(CALENDARS, MOMENTS, AMOUNTS)
def test_added_time_lands_inside_hours_or_exactly_at_a_close(calendar, moment, amount) -> None:
    result = calendar.add_business_time(moment, amount)
    assert result >= moment
    assert result.tzinfo is calendar.tz
    assert calendar.is_open(result) or (amount and at_close(calendar, result))


@PROPERTY
@given(CALENDARS, MOMENTS, MOMENTS, AMOUNTS, AMOUNTS)
def test_adding_is_monotonic(calendar, m1, m2, t1, t2) -> None:
    m1, m2 = sorted((m1, m2))
    t1, t2 = sorted((t1, t2))
    assert calendar.add_business_time(m1, t1) <= calendar.add_business_time(m1, t2)
    assert calendar.add_business_time(m1, t1) <= calendar.add_business_time(m2, t1)


@PROPERTY
@given(CALENDARS, MOMENTS, MOMENTS, MOMENTS)
def test_measuring_is_additive_and_bounded(calendar, a, b, c) -> None:
    between = calendar.business_time_between
    assert between(a, b) + between(b, c) == between(a, c)
    assert between(a, b) == -between(b, a)
    lo, hi = sorted((a, b))
    # (Through UTC: Python subtracts two moments of one zone as wall-clock times.)
    assert timedelta(0) <= between(lo, hi) <= hi.astimezone(UTC) - lo.astimezone(UTC)


@PROPERTY
@given(CALENDARS, MOMENTS)
def test_next_opening_is_open_and_adds_no_business_time(calendar, moment) -> None:
    opening = calendar.next_opening(moment)
    assert opening >= moment
    assert calendar.is_open(opening)
    assert (opening == moment) is calendar.is_open(moment)
    assert calendar.business_time_between(moment, opening) == timedelta(0)
    assert calendar.add_business_time(moment, timedelta(0)) == opening


@PROPERTY
@given(CALENDARS, MOMENTS)
def test_the_close_of_a_business_day_ends_business_hours(calendar, moment) -> None:
    close = calendar.close_of_business_day(moment, cutoff=time(17, 0))
    assert close > moment
    assert calendar.is_open(close - US)
    assert calendar.is_business_day((close - US).date())
    # A close, unless the next day's hours begin at that midnight (they join).
    assert at_close(calendar, close) or close.time() == time(0)


@PROPERTY
@given(CALENDARS, MOMENTS, AMOUNTS, st.sampled_from([TOKYO, UTC, NEW_YORK]))
def test_the_zone_of_the_moment_does_not_matter(calendar, moment, amount, zone) -> None:
    elsewhere = moment.astimezone(zone)
    assert calendar.add_business_time(elsewhere, amount) == calendar.add_business_time(
        moment, amount
    )
    assert calendar.close_of_business_day(elsewhere) == calendar.close_of_business_day(moment)


@PROPERTY
@given(CALENDARS, MOMENTS, AMOUNTS)
def test_window_agrees_with_the_single_questions(calendar, moment, amount) -> None:
    received, starts, due = calendar.window(moment, cutoff=time(17))
    assert received == moment
    assert starts == calendar.next_opening(moment)
    assert due == calendar.close_of_business_day(moment, cutoff=time(17))
    _, _, due = calendar.window(moment, within=amount)
    assert due == calendar.add_business_time(moment, amount)
