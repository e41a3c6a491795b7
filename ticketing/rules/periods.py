"""A contract's support periods, computed from the vendors' terms: pure date arithmetic.

The two vendors define their periods differently (the lines quoted are the
terms themselves):

* ChatLuck (``annual``), サポートサービス約款 3:
  "初年度のサポートサービスは、お客様の初回ライセンス購入日からご提供いたしますが、
  契約上のサービス期間は、当社ご注文受付日の翌日から1年間を基本期間とします。"
  "次年度以降のサポートサービス期間開始日は、前年度サービス期間満了日の翌日からとなります。"
  "サポートサービス期間途中に、お客様が追加ライセンス等を購入された場合、… 提供期間は
  追加前ライセンスのサービス期間に準拠するものとします。"
  "サポートサービス期間は、サポートサービス証書に定めるものとします。"
* All Gather CRM (``cloud_trial``, ``cloud_monthly``, ``cloud_yearly``), ご利用ガイド 3:
  "「無料トライアルご利用開始のご案内」を通知した日から 30 日間を無償期間とします。"
  "「ご利用開始のご案内」を通知した日から当該月末日までを無償期間とします。"
  "基準日付(※1)から1ヶ月をサービス期間とします。" "初月度より更に1ヶ月間自動的に同一内容で
  契約が更新されます。" "基準日付(※1)から起算して1年間" "前年のサービス期間終了日の翌日から
  起算して1年間。" "※1：基準日付は、無償期間を終了した翌月1日となります。"
  "基準日付はいったん設定されますと変更はできません。"

A term of N months or years runs as the Civil Code counts it (民法143条): it
ends the day before the day of the same number N months later, or, when that
month has no such day, on its last day (2024-02-29 + 1 year ends 2025-02-28).
"30 日間" from the day of the notice counts that day: a trial notified on
2026-01-31 runs to 2026-03-01.

Periods are a history: stored periods are never dropped by a computation;
the cloud plans renew by themselves, so their later periods are computed
(``auto``) rather than stored. A cancellation (``cancelled_on``) ends the
renewals: the period it falls in is the last one, and no period starting
after it counts.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

__all__ = [
    "AUTO_RENEWING",
    "Period",
    "PeriodKind",
    "Plan",
    "PlanError",
    "PlanTerms",
    "Standing",
    "initial_periods",
    "merge_periods",
    "next_period",
    "plan_periods",
    "standing_on",
    "term_end",
    "timeline",
]

TRIAL_DAYS = 30
# Automatic renewals computed at most this far (a monthly plan over 200 years).
_MAX_RENEWALS = 2400


class Plan(enum.StrEnum):
    """How a contract's periods are set."""

    CERTIFICATE = "certificate"  # the dates printed on the certificate, nothing computed
    ANNUAL = "annual"  # ChatLuck: a year from the day after the order was accepted
    CLOUD_TRIAL = "cloud_trial"  # All Gather CRM free trial: 30 days from the notice
    CLOUD_MONTHLY = "cloud_monthly"  # free to month end, then monthly from the base date
    CLOUD_YEARLY = "cloud_yearly"  # free to month end, then yearly from the base date


class PeriodKind(enum.StrEnum):
    CERTIFICATE = "certificate"  # dates given explicitly (a certificate, an existing contract)
    ANNUAL = "annual"  # one support year
    TRIAL = "trial"  # the free trial
    FREE = "free"  # 無償期間: from the start notice to the end of that month
    MONTHLY = "monthly"
    YEARLY = "yearly"


class Standing(enum.StrEnum):
    IN_FORCE = "in_force"
    NOT_STARTED = "not_started"  # before the first day support is given
    EXPIRED = "expired"  # after a period ended, and no later one covers the day


AUTO_RENEWING = frozenset({Plan.CLOUD_MONTHLY, Plan.CLOUD_YEARLY})

# The dates each plan reads (the others must be empty).
PLAN_DATES: dict[Plan, tuple[str, ...]] = {
    Plan.CERTIFICATE: (),
    Plan.ANNUAL: ("ordered_on", "purchased_on"),
    Plan.CLOUD_TRIAL: ("notified_on", "cancelled_on"),
    Plan.CLOUD_MONTHLY: ("notified_on", "cancelled_on"),
    Plan.CLOUD_YEARLY: ("notified_on", "cancelled_on"),
}
# The date a plan cannot compute its first period without.
PLAN_START: dict[Plan, str] = {
    Plan.ANNUAL: "ordered_on",
    Plan.CLOUD_TRIAL: "notified_on",
    Plan.CLOUD_MONTHLY: "notified_on",
    Plan.CLOUD_YEARLY: "notified_on",
}


class PlanError(ValueError):
    """The plan's dates do not make periods, or a period cannot follow.

    ``code`` says which rule (``not_used``, ``needs``, ``cancel_before``,
    ``trial_not_renewed``, ``cancelled``) and ``field`` which date, for
    callers that word it in their own language.
    """

    def __init__(self, message: str, code: str = "", field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Period:
    """``starts_on`` to ``ends_on``, both included.

    ``support_from`` is set when support is given before the period starts
    (ChatLuck's first year, from the first licence purchase). ``auto`` marks
    a renewal computed from the plan, not stored.
    """

    kind: PeriodKind
    starts_on: date
    ends_on: date
    support_from: date | None = None
    auto: bool = False

    @property
    def covers_from(self) -> date:
        return self.support_from if self.support_from is not None else self.starts_on

    def covers(self, day: date) -> bool:
        return self.covers_from <= day <= self.ends_on

    def overlaps(self, other: Period) -> bool:
        return self.starts_on <= other.ends_on and other.starts_on <= self.ends_on


@dataclass(frozen=True)
class PlanTerms:
    """What a contract's periods are computed from."""

    plan: Plan = Plan.CERTIFICATE
    ordered_on: date | None = None  # ご注文受付日 (annual)
    purchased_on: date | None = None  # 初回ライセンス購入日 (annual)
    notified_on: date | None = None  # ご利用開始のご案内 / 無料トライアルご利用開始のご案内
    cancelled_on: date | None = None  # the cloud plan's cancellation: no renewal after it

    def check(self) -> None:
        """Raise PlanError when a date the plan needs is missing or out of order."""
        for name in ("ordered_on", "purchased_on", "notified_on", "cancelled_on"):
            if getattr(self, name) is not None and name not in PLAN_DATES[self.plan]:
                raise PlanError(f"{name} is not used by plan {self.plan.value}", "not_used",
                                name)
        start = self.notified_on or self.ordered_on
        if self.cancelled_on is not None and start is not None and self.cancelled_on < start:
            raise PlanError(f"cancelled_on {self.cancelled_on} is before notified_on {start}",
                            "cancel_before", "cancelled_on")


def term_end(start: date, *, years: int = 0, months: int = 0) -> date:
    """The last day of a term of ``years`` and ``months`` that starts on ``start`` (民法143条)."""
    total = start.month - 1 + months + 12 * years
    year, month = start.year + total // 12, total % 12 + 1
    last = calendar.monthrange(year, month)[1]
    if start.day > last:
        return date(year, month, last)
    return date(year, month, start.day) - timedelta(days=1)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _needed(terms: PlanTerms, name: str) -> date:
    value = getattr(terms, name)
    if value is None:
        raise PlanError(f"plan {terms.plan.value} needs {name}", "needs", name)
    assert isinstance(value, date)
    return value


def initial_periods(terms: PlanTerms) -> tuple[Period, ...]:
    """The periods a contract starts with, as its plan defines them.

    ``annual``: the first support year, from the day after the order was
    accepted, support given from the first licence purchase when that came
    before (a purchase later in the year shares the period).
    ``cloud_trial``: the 30 days from the notice. ``cloud_monthly`` and
    ``cloud_yearly``: the free period to the end of the notice's month, then
    the first month or year from the base date, the 1st of the next month.
    ``certificate`` computes nothing: its dates are given.
    """
    terms.check()
    plan = terms.plan
    if plan is Plan.CERTIFICATE:
        return ()
    if plan is Plan.ANNUAL:
        starts = _needed(terms, "ordered_on") + timedelta(days=1)
        purchased = terms.purchased_on
        early = purchased if purchased is not None and purchased < starts else None
        return (Period(PeriodKind.ANNUAL, starts, term_end(starts, years=1), early),)
    notified = _needed(terms, "notified_on")
    if plan is Plan.CLOUD_TRIAL:
        ends = notified + timedelta(days=TRIAL_DAYS - 1)
        return (Period(PeriodKind.TRIAL, notified, ends),)
    free = Period(PeriodKind.FREE, notified, _month_end(notified))
    base = free.ends_on + timedelta(days=1)
    if terms.cancelled_on is not None and terms.cancelled_on <= free.ends_on:
        return (free,)  # cancelled in the free period: no paid period follows
    if plan is Plan.CLOUD_MONTHLY:
        return free, Period(PeriodKind.MONTHLY, base, term_end(base, months=1))
    return free, Period(PeriodKind.YEARLY, base, term_end(base, years=1))


_RENEWED_AS = {
    Plan.CERTIFICATE: (PeriodKind.ANNUAL, 12),
    Plan.ANNUAL: (PeriodKind.ANNUAL, 12),
    Plan.CLOUD_MONTHLY: (PeriodKind.MONTHLY, 1),
    Plan.CLOUD_YEARLY: (PeriodKind.YEARLY, 12),
}


def next_period(terms: PlanTerms, last: Period) -> Period:
    """The period after ``last``: from the day after it ends, one more term of the plan.

    A certificate or annual contract renews for a year; a monthly plan for a
    month, a yearly plan for a year (so the base date never moves). A trial
    is not renewed, and a cancelled plan is not renewed past its cancellation.
    """
    if terms.plan is Plan.CLOUD_TRIAL:
        raise PlanError("a cloud_trial is not renewed: import the paid plan instead",
                        "trial_not_renewed")
    starts = last.ends_on + timedelta(days=1)
    if terms.cancelled_on is not None and terms.cancelled_on < starts:
        raise PlanError(f"cancelled on {terms.cancelled_on}: no period after {last.ends_on}",
                        "cancelled", "cancelled_on")
    kind, months = _RENEWED_AS[terms.plan]
    return Period(kind, starts, term_end(starts, months=months))


def plan_periods(terms: PlanTerms, certificate: Period | None = None) -> tuple[Period, ...]:
    """The periods the plan's dates give, the certificate's period winning where it is given.

    "サポートサービス期間は、サポートサービス証書に定めるものとします": a computed
    period overlapping the certificate's gives way to it. When the certificate
    is for the first year of an annual plan, support from the first licence
    purchase still applies.
    """
    computed = initial_periods(terms)
    if certificate is None:
        return computed
    cert = certificate
    first = computed[0] if computed else None
    early = first.support_from if first is not None and cert.overlaps(first) else None
    if early is not None and early < cert.starts_on:
        cert = replace(cert, support_from=early)
    kept = tuple(p for p in computed if not p.overlaps(cert))
    return tuple(sorted((*kept, cert), key=lambda p: p.starts_on))


def _counted(stored: Iterable[Period], terms: PlanTerms) -> list[Period]:
    """The stored periods that count: none starting after the cancellation, in order."""
    cancelled = terms.cancelled_on
    return sorted(
        (p for p in stored if cancelled is None or p.starts_on <= cancelled),
        key=lambda p: (p.starts_on, p.ends_on),
    )


def timeline(stored: Sequence[Period], terms: PlanTerms, through: date) -> tuple[Period, ...]:
    """The stored periods that count, then a cloud plan's automatic renewals through ``through``.

    Renewals continue from the last stored period until one reaches
    ``through`` or the plan is cancelled.
    """
    periods = _counted(stored, terms)
    if terms.plan not in AUTO_RENEWING or not periods:
        return tuple(periods)
    last = periods[-1]
    if last.kind not in (PeriodKind.MONTHLY, PeriodKind.YEARLY):
        return tuple(periods)
    for _ in range(_MAX_RENEWALS):
        if last.ends_on >= through:
            break
        try:
            last = replace(next_period(terms, last), auto=True)
        except PlanError:
            break  # cancelled
        periods.append(last)
    return tuple(periods)


def standing_on(
    day: date, stored: Sequence[Period], terms: PlanTerms
) -> tuple[Standing, Period | None]:
    """Whether support is given on ``day``, and the period that gives it.

    Not started: every period that counts begins (support included) after
    ``day``, or there is none. Expired: a period ended before ``day`` and none
    covers it (a contract not yet renewed, or a gap between two periods).
    """
    periods = timeline(stored, terms, day)
    covering = [p for p in periods if p.covers(day)]
    if covering:
        return Standing.IN_FORCE, covering[-1]
    if all(p.covers_from > day for p in periods):
        return Standing.NOT_STARTED, None
    return Standing.EXPIRED, None


def merge_periods(
    stored: Sequence[Period], incoming: Iterable[Period]
) -> list[tuple[int | None, Period]]:
    """What importing ``incoming`` changes in ``stored``: (index to replace, or None to add).

    Nothing stored is dropped. A period starting on the day a stored one
    starts corrects it (its end, kind and support start; support is never
    moved later), except that a computed period never overrides a
    certificate's; any other period is added.
    """
    changes: list[tuple[int | None, Period]] = []
    by_start = {p.starts_on: i for i, p in enumerate(stored)}
    seen: set[date] = set()
    for period in incoming:
        if period.starts_on in seen:
            continue  # the same start twice in one import: the first counts
        seen.add(period.starts_on)
        i = by_start.get(period.starts_on)
        if i is None:
            changes.append((None, replace(period, auto=False)))
            continue
        old = stored[i]
        if old.kind is PeriodKind.CERTIFICATE and period.kind is not PeriodKind.CERTIFICATE:
            continue
        support = min((d for d in (old.support_from, period.support_from) if d), default=None)
        new = replace(period, support_from=support, auto=False)
        if new != replace(old, auto=False):
            changes.append((i, new))
    return changes
