"""First-response deadlines: the default policy, business hours, contract overrides."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from madoguchi.config import Settings
from madoguchi.config.business import CalendarSettings, SlaSettings
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.sla import (
    Deadline,
    FirstResponsePolicy,
    contract_policy,
    first_response_due,
)

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
DESK = BusinessCalendar.from_settings(CalendarSettings(), "Asia/Tokyo")
DEFAULT = FirstResponsePolicy.from_settings(SlaSettings())
FOUR_HOURS = FirstResponsePolicy.from_override({"policy": "business_hours", "hours": 4}, DEFAULT)
ROUND_THE_CLOCK = FirstResponsePolicy.from_override(
    {"calendar": "24x7", "policy": "business_hours", "hours": 4}, DEFAULT
)


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


@pytest.mark.parametrize(
    ("received", "starts", "due"),
    [
        # a business day, before the cut-off: that day's close
        (jst(2026, 4, 28, 8, 0), jst(2026, 4, 28, 9, 30), jst(2026, 4, 28, 17, 30)),
        (jst(2026, 4, 28, 10, 0), jst(2026, 4, 28, 10, 0), jst(2026, 4, 28, 17, 30)),
        (jst(2026, 4, 28, 12, 30), jst(2026, 4, 28, 13, 0), jst(2026, 4, 28, 17, 30)),
        (jst(2026, 4, 28, 16, 59, 59), jst(2026, 4, 28, 16, 59, 59), jst(2026, 4, 28, 17, 30)),
        # at or after the cut-off: the next business day's close (4/29 is 昭和の日)
        (jst(2026, 4, 28, 17, 0), jst(2026, 4, 28, 17, 0), jst(2026, 4, 30, 17, 30)),
        (jst(2026, 4, 28, 17, 45), jst(2026, 4, 30, 9, 30), jst(2026, 4, 30, 17, 30)),
        # closed days: the next business day's close
        (jst(2026, 4, 29, 10, 0), jst(2026, 4, 30, 9, 30), jst(2026, 4, 30, 17, 30)),
        (jst(2026, 5, 2, 10, 0), jst(2026, 5, 7, 9, 30), jst(2026, 5, 7, 17, 30)),
        (jst(2026, 5, 6, 10, 0), jst(2026, 5, 7, 9, 30), jst(2026, 5, 7, 17, 30)),  # 振替休日
        (jst(2026, 9, 22, 10, 0), jst(2026, 9, 24, 9, 30), jst(2026, 9, 24, 17, 30)),
        (jst(2025, 11, 24, 9, 0), jst(2025, 11, 25, 9, 30), jst(2025, 11, 25, 17, 30)),
        (jst(2027, 3, 19, 17, 5), jst(2027, 3, 19, 17, 5), jst(2027, 3, 23, 17, 30)),
        # the year end
        (jst(2026, 12, 28, 17, 10), jst(2026, 12, 28, 17, 10), jst(2027, 1, 4, 17, 30)),
        (jst(2026, 12, 30, 11, 0), jst(2027, 1, 4, 9, 30), jst(2027, 1, 4, 17, 30)),
        (jst(2025, 12, 31, 23, 59), jst(2026, 1, 5, 9, 30), jst(2026, 1, 5, 17, 30)),
        # other zones: the cut-off and the day are Tokyo's
        (datetime(2026, 4, 28, 7, 59, 59, tzinfo=UTC), None, jst(2026, 4, 28, 17, 30)),
        (datetime(2026, 4, 28, 8, 0, tzinfo=UTC), None, jst(2026, 4, 30, 17, 30)),
        (datetime(2026, 4, 28, 3, 0, tzinfo=NEW_YORK), None, jst(2026, 4, 28, 17, 30)),
        (datetime(2026, 4, 27, 23, 0, tzinfo=UTC), None, jst(2026, 4, 28, 17, 30)),
    ],
)
def test_default_policy_is_the_close_of_the_answering_day(
    received: datetime, starts: datetime | None, due: datetime
) -> None:
    deadline = first_response_due(received, DESK, DEFAULT)
    assert deadline.received_at == received
    assert deadline.received_at.tzinfo is TOKYO
    if starts is not None:
        assert deadline.starts_at == starts
    assert deadline.due_at == due
    assert deadline.due_at.tzinfo is TOKYO


@pytest.mark.parametrize(
    ("received", "starts", "due"),
    [
        (jst(2026, 4, 28, 10, 0), jst(2026, 4, 28, 10, 0), jst(2026, 4, 28, 15, 0)),  # lunch
        (jst(2026, 4, 28, 15, 0), jst(2026, 4, 28, 15, 0), jst(2026, 4, 30, 11, 0)),
        (jst(2026, 5, 1, 16, 0), jst(2026, 5, 1, 16, 0), jst(2026, 5, 7, 12, 0)),  # a close
        (jst(2026, 5, 3, 3, 0), jst(2026, 5, 7, 9, 30), jst(2026, 5, 7, 14, 30)),
        (jst(2026, 9, 18, 17, 0), jst(2026, 9, 18, 17, 0), jst(2026, 9, 24, 14, 0)),
        (jst(2026, 12, 28, 16, 0), jst(2026, 12, 28, 16, 0), jst(2027, 1, 4, 12, 0)),
        (datetime(2026, 4, 28, 1, 0, tzinfo=UTC), jst(2026, 4, 28, 10), jst(2026, 4, 28, 15)),
    ],
)
def test_business_hours_policy_counts_from_the_next_opening(
    received: datetime, starts: datetime, due: datetime
) -> None:
    assert first_response_due(received, DESK, FOUR_HOURS) == Deadline(received, starts, due)


def test_a_24x7_contract_counts_round_the_clock() -> None:
    received = jst(2026, 12, 31, 22, 0)  # a holiday night, in the year-end break
    deadline = first_response_due(received, DESK, ROUND_THE_CLOCK)
    assert deadline == Deadline(received, received, jst(2027, 1, 1, 2, 0))
    assert deadline.due_at.tzinfo is TOKYO


def test_a_contract_cutoff_moves_the_answering_day() -> None:
    early = FirstResponsePolicy.from_override({"cutoff": "15:00"}, DEFAULT)
    assert first_response_due(jst(2026, 4, 28, 15, 0), DESK, early).due_at == jst(
        2026, 4, 30, 17, 30
    )
    assert first_response_due(jst(2026, 4, 28, 14, 59), DESK, early).due_at == jst(
        2026, 4, 28, 17, 30
    )


def test_naive_receipt_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        first_response_due(datetime(2026, 4, 28, 10, 0), DESK, DEFAULT)


# -- policies from settings and from a contract's override ---------------------------


def test_policy_from_default_settings() -> None:
    assert Settings().sla == SlaSettings()
    assert (
        FirstResponsePolicy(kind="next_business_day_close", cutoff=time(17, 0), calendar="desk")
        == DEFAULT
    )


def test_policy_from_business_hours_settings() -> None:
    policy = FirstResponsePolicy.from_settings(
        SlaSettings(policy="business_hours", business_hours=2.5, cutoff="16:30")
    )
    assert policy.kind == "business_hours"
    assert policy.business_time == timedelta(hours=2, minutes=30)
    assert policy.cutoff == time(16, 30)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cutoff": "17:60"}, "'17:60'"),
        ({"cutoff": "24:00"}, "'24:00'"),
        ({"policy": "best_effort"}, "best_effort"),
        ({"business_hours": 0}, "greater than 0"),
        ({"timezone": "Asia/Tokyo"}, "timezone"),
    ],
)
def test_bad_sla_settings_name_the_value(fields: dict, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SlaSettings(**fields)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, DEFAULT),
        ({}, DEFAULT),
        (
            {"policy": "business_hours", "hours": 4},
            FirstResponsePolicy(kind="business_hours", business_time=timedelta(hours=4)),
        ),
        (
            {"hours": 8},  # hours alone mean business hours
            FirstResponsePolicy(kind="business_hours", business_time=timedelta(hours=8)),
        ),
        (
            {"calendar": "24x7", "policy": "business_hours", "hours": 4},
            FirstResponsePolicy(
                kind="business_hours", business_time=timedelta(hours=4), calendar="24x7"
            ),
        ),
        ({"cutoff": "16:00"}, FirstResponsePolicy(cutoff=time(16, 0))),
        ({"calendar": "desk"}, DEFAULT),
    ],
)
def test_override_shapes(override: dict | None, expected: FirstResponsePolicy) -> None:
    assert FirstResponsePolicy.from_override(override, DEFAULT) == expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"hourz": 4}, "unknown key 'hourz'; accepted: calendar, cutoff, hours, policy"),
        ({"policy": "asap"}, "sla_override.policy: 'asap' is not one of"),
        ({"hours": 0}, "sla_override.hours: 0 is not between 0 and"),
        ({"hours": -2}, "sla_override.hours: -2"),
        ({"hours": "4"}, "sla_override.hours: '4' is not a number"),
        ({"hours": True}, "sla_override.hours: True is not a number"),
        ({"hours": float("nan")}, "sla_override.hours: nan is not a number"),
        ({"cutoff": "5pm"}, "sla_override.cutoff: '5pm'"),
        ({"calendar": "24/7"}, "sla_override.calendar: '24/7' is not one of desk, 24x7"),
        ({"policy": "next_business_day_close", "hours": 4}, "only for policy 'business_hours'"),
        (["business_hours"], "must be an object"),
    ],
)
def test_bad_overrides_are_refused_clearly(override: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        FirstResponsePolicy.from_override(override, DEFAULT)  # type: ignore[arg-type]
    assert message in str(caught.value)


# -- invariants ----------------------------------------------------------------------------

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
RECEIVED = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.sampled_from([TOKYO, UTC, NEW_YORK]),
    allow_imaginary=False,
)


@PROPERTY
@given(RECEIVED)
def test_default_deadline_is_a_close_after_work_can_start(received: datetime) -> None:
    deadline = first_response_due(received, DESK, DEFAULT)
    assert received <= deadline.starts_at < deadline.due_at
    assert DESK.is_open(deadline.starts_at)
    assert not DESK.is_open(deadline.due_at)
    assert deadline.due_at == DESK.close_of_business_day(deadline.due_at)
    local = received.astimezone(TOKYO)
    same_day = DESK.is_business_day(local.date()) and local.time() < time(17, 0)
    assert (deadline.due_at.date() == local.date()) is same_day


@PROPERTY
@given(RECEIVED, st.sampled_from([FOUR_HOURS, ROUND_THE_CLOCK]))
def test_business_hours_deadline_is_that_much_business_time_away(received, policy) -> None:
    deadline = first_response_due(received, DESK, policy)
    calendar = policy.calendar_for(DESK)
    assert calendar.business_time_between(received, deadline.due_at) == policy.business_time
    assert calendar.business_time_between(deadline.starts_at, deadline.due_at) == (
        policy.business_time
    )
    assert received <= deadline.starts_at < deadline.due_at


def test_a_contract_s_terms_win_and_a_mistyped_override_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    default = FirstResponsePolicy.from_settings(SlaSettings())
    two_hours = contract_policy(default, {"policy": "business_hours", "hours": 2},
                                contract="2031-0001-0008")
    assert (two_hours.kind, two_hours.business_time) == ("business_hours", timedelta(hours=2))
    assert default.kind == "next_business_day_close"
    assert contract_policy(default, None) is default
    assert contract_policy(default, {}) is default

    assert contract_policy(default, {"hour": 4}, contract="2031-0002-0007") is default
    assert "contract 2031-0002-0007: sla_override: unknown key 'hour'" in caplog.text
