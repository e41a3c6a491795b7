"""The first-response deadline (一次対応の期限) of an inquiry: a pure rule.

Default policy, ``next_business_day_close`` (the seeds: an inquiry outside
business hours gets its first response within the next business hours; a
request received before 17:00 on a business day is answered that day):

* received on a business day before the cut-off (before opening and in the
  lunch break included): due by that day's close;
* received at or after the cut-off (or after that day's close), or on a
  closed day: due by the close of the next business day.

``next_business_hours`` (All Gather CRM: "弊社営業時間外にメールを頂いた場合、原則として
翌営業時間内の一次対応となります"): due by the close of the business hours in which
work can start; received on a business day before its close (before opening
and at lunch included), that day's close; after it, or on a closed day, the
next business day's close. The cut-off rule above is then the licence-key
rule (ChatLuck: "当社営業日17時までの申請受理分につきましてはその当日中に").

Alternative, ``business_hours``: due a number of business hours after receipt,
counted from the next opening.

A contract's ``sla_override`` (JSON on the contract) wins over the default;
see ``FirstResponsePolicy.from_override`` for its shape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Literal, NamedTuple

from madoguchi.config.business import SlaSettings, parse_clock
from madoguchi.ticketing.calendar import BusinessCalendar

log = logging.getLogger("madoguchi.sla")

__all__ = ["Deadline", "FirstResponsePolicy", "first_response_due"]

PolicyKind = Literal["next_business_day_close", "next_business_hours", "business_hours"]
CalendarChoice = Literal["desk", "24x7"]

_POLICIES = ("next_business_day_close", "next_business_hours", "business_hours")
_BY_CLOSE = ("next_business_day_close", "next_business_hours")
_CALENDARS = ("desk", "24x7")
_OVERRIDE_KEYS = ("calendar", "cutoff", "hours", "policy", "next_response")
_MAX_HOURS = 10_000


class Deadline(NamedTuple):
    """When an inquiry came in, when work on it can start, and when it is due.

    All three are in the calendar's zone. ``starts_at`` is the next opening at
    or after receipt (the receipt itself when the desk is open).
    """

    received_at: datetime
    starts_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class FirstResponsePolicy:
    """How a first-response deadline is set.

    ``kind``: ``next_business_day_close`` (uses ``cutoff``),
    ``next_business_hours`` (the day's close is the cut-off) or
    ``business_hours`` (uses ``business_time``). ``calendar``: ``desk`` (the
    desk's calendar) or ``24x7`` (round the clock, every day, same zone).
    """

    kind: PolicyKind = "next_business_day_close"
    cutoff: time = time(17, 0)
    business_time: timedelta = timedelta(hours=4)
    calendar: CalendarChoice = "desk"

    @classmethod
    def from_settings(cls, settings: SlaSettings) -> FirstResponsePolicy:
        return cls(
            kind=settings.policy,
            cutoff=settings.cutoff_time(),
            business_time=_hours(settings.business_hours),
        )

    @classmethod
    def from_override(
        cls, override: Mapping[str, object] | None, default: FirstResponsePolicy
    ) -> FirstResponsePolicy:
        """The policy of a contract whose ``sla_override`` is ``override``.

        Accepted keys, all optional (``None`` or ``{}``: the default applies)::

            {"policy": "business_hours" | "next_business_day_close" | "next_business_hours",
             "hours": 4,               # business hours; alone it means "business_hours"
             "cutoff": "17:00",        # for next_business_day_close
             "calendar": "desk" | "24x7",
             "next_response": {...}}   # the same keys, for the next response's due

        e.g. ``{"policy": "business_hours", "hours": 4}`` or
        ``{"calendar": "24x7", "policy": "business_hours", "hours": 4}``.
        Keys not given come from ``default``. Anything else raises ValueError.
        """
        if override is None:
            return default
        if not isinstance(override, Mapping):
            raise ValueError(f"sla_override must be an object, got {override!r}")
        unknown = sorted(str(key) for key in override if key not in _OVERRIDE_KEYS)
        if unknown:
            raise ValueError(
                f"sla_override: unknown key {unknown[0]!r}; accepted: {', '.join(_OVERRIDE_KEYS)}"
            )
        nested = override.get("next_response")
        if nested is not None:  # the next response's own terms (deadlines.next_response)
            if not isinstance(nested, Mapping) or "next_response" in nested:
                raise ValueError("sla_override.next_response must be an object of "
                                 "policy, hours, cutoff, calendar")
            cls.from_override(nested, default)
        changes: dict[str, object] = {}
        kind = override.get("policy")
        if kind is not None:
            if kind not in _POLICIES:
                raise ValueError(
                    f"sla_override.policy: {kind!r} is not one of {', '.join(_POLICIES)}"
                )
            changes["kind"] = kind
        hours = override.get("hours")
        if hours is not None:
            if kind in _BY_CLOSE:
                raise ValueError(
                    f"sla_override.hours: only for policy 'business_hours', not {kind!r}"
                )
            changes["business_time"] = _hours(hours, "sla_override.hours")
            changes["kind"] = "business_hours"
        cutoff = override.get("cutoff")
        if cutoff is not None:
            try:
                minutes = parse_clock(cutoff)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ValueError(f"sla_override.cutoff: {exc}") from None
            changes["cutoff"] = time(minutes // 60, minutes % 60)
        calendar = override.get("calendar")
        if calendar is not None:
            if calendar not in _CALENDARS:
                raise ValueError(
                    f"sla_override.calendar: {calendar!r} is not one of {', '.join(_CALENDARS)}"
                )
            changes["calendar"] = calendar
        return replace(default, **changes)  # type: ignore[arg-type]

    def calendar_for(self, desk: BusinessCalendar) -> BusinessCalendar:
        """The calendar this policy counts in, given the desk's."""
        if self.calendar == "24x7":
            return BusinessCalendar.always_open(desk.tz)
        return desk


def contract_policy(
    default: FirstResponsePolicy, override: Mapping[str, object] | None, *, contract: str = ""
) -> FirstResponsePolicy:
    """The contract's own terms (its ``sla_override``) win over the desk's default.

    An override that cannot be read is logged and the default applies: a
    ticket must get a due time even when its contract was mistyped.
    """
    if not override:
        return default
    try:
        return FirstResponsePolicy.from_override(override, default)
    except ValueError as exc:
        log.error("contract %s: %s; the default policy applies", contract or "?", exc)
        return default


def first_response_due(
    received_at: datetime, calendar: BusinessCalendar, policy: FirstResponsePolicy
) -> Deadline:
    """The deadline of an inquiry received at ``received_at`` (aware, any zone).

    ``calendar`` is the desk's; a ``24x7`` policy counts round the clock in the
    same zone instead.
    """
    if policy.calendar != "desk":
        calendar = policy.calendar_for(calendar)
    if policy.kind == "business_hours":
        return Deadline._make(calendar.window(received_at, within=policy.business_time))
    if policy.kind == "next_business_hours":
        # No cut-off but the close itself: from the close on, the next business day.
        return Deadline._make(calendar.window(received_at, cutoff=time.max))
    return Deadline._make(calendar.window(received_at, cutoff=policy.cutoff))


def _hours(value: object, name: str = "business_hours") -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} is not a number of hours")
    if not 0 < value <= _MAX_HOURS:
        raise ValueError(f"{name}: {value!r} is not between 0 and {_MAX_HOURS} hours")
    return timedelta(hours=value)
