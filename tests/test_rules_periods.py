"""Support periods as the vendors' terms define them, on real dates.

Each table cites the sentence of the terms it implements: ChatLuck's
サポートサービス約款 (section 3, サービス提供期間) and All Gather CRM's
クラウドサービスご利用ガイド (section 3, サービスの期間).
"""

from __future__ import annotations

from datetime import date

import pytest

from madoguchi.ticketing.rules.periods import (
    Period,
    PeriodKind,
    Plan,
    PlanError,
    PlanTerms,
    Standing,
    initial_periods,
    merge_periods,
    next_period,
    plan_periods,
    standing_on,
    term_end,
    timeline,
)

D = date
K = PeriodKind


@pytest.mark.parametrize(
    ("start", "years", "months", "last_day"),
    [
        (D(2026, 4, 1), 1, 0, D(2027, 3, 31)),
        (D(2027, 4, 1), 1, 0, D(2028, 3, 31)),
        (D(2026, 1, 1), 1, 0, D(2026, 12, 31)),
        # No 29 February in 2025: the term ends on the last day of that month.
        (D(2024, 2, 29), 1, 0, D(2025, 2, 28)),
        (D(2025, 3, 1), 1, 0, D(2026, 2, 28)),
        (D(2027, 3, 1), 1, 0, D(2028, 2, 29)),
        (D(2026, 2, 1), 0, 1, D(2026, 2, 28)),
        (D(2028, 2, 1), 0, 1, D(2028, 2, 29)),
        (D(2026, 12, 1), 0, 1, D(2026, 12, 31)),
        (D(2026, 1, 31), 0, 1, D(2026, 2, 28)),
        (D(2026, 3, 31), 0, 1, D(2026, 4, 30)),
    ],
)
def test_a_term_of_months_or_years_ends_as_the_civil_code_counts(
    start: date, years: int, months: int, last_day: date
) -> None:
    """民法143条: the day before the same-numbered day, else the last day of that month."""
    assert term_end(start, years=years, months=months) == last_day


@pytest.mark.parametrize(
    ("ordered_on", "purchased_on", "period"),
    [
        (D(2026, 3, 31), None, Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31))),
        (D(2026, 12, 31), None, Period(K.ANNUAL, D(2027, 1, 1), D(2027, 12, 31))),
        (D(2024, 2, 28), None, Period(K.ANNUAL, D(2024, 2, 29), D(2025, 2, 28))),
        (D(2023, 2, 28), None, Period(K.ANNUAL, D(2023, 3, 1), D(2024, 2, 29))),
        # Licences bought before the period starts: support from the purchase.
        (D(2026, 3, 31), D(2026, 3, 10),
         Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31), support_from=D(2026, 3, 10))),
        # Bought on the day the period starts, or during it: the same period.
        (D(2026, 3, 31), D(2026, 4, 1), Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31))),
        (D(2026, 3, 31), D(2026, 9, 14), Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31))),
    ],
)
def test_chatluck_first_year_runs_a_year_from_the_day_after_the_order(
    ordered_on: date, purchased_on: date | None, period: Period
) -> None:
    """ChatLuck 3(1): "初年度のサポートサービスは、お客様の初回ライセンス購入日からご提供
    いたしますが、契約上のサービス期間は、当社ご注文受付日の翌日から1年間を基本期間とします。"
    and 3(3): "追加購入したライセンスのサポートサービスは、お客様が購入した日から提供
    いたしますが、提供期間は追加前ライセンスのサービス期間に準拠するものとします。"
    """
    terms = PlanTerms(Plan.ANNUAL, ordered_on=ordered_on, purchased_on=purchased_on)
    assert initial_periods(terms) == (period,)


@pytest.mark.parametrize(
    ("last", "renewed"),
    [
        (Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31)),
         Period(K.ANNUAL, D(2027, 4, 1), D(2028, 3, 31))),
        (Period(K.CERTIFICATE, D(2027, 1, 1), D(2027, 12, 31)),
         Period(K.ANNUAL, D(2028, 1, 1), D(2028, 12, 31))),
        (Period(K.ANNUAL, D(2024, 2, 29), D(2025, 2, 28)),
         Period(K.ANNUAL, D(2025, 3, 1), D(2026, 2, 28))),
        (Period(K.ANNUAL, D(2027, 3, 1), D(2028, 2, 29)),
         Period(K.ANNUAL, D(2028, 3, 1), D(2029, 2, 28))),
        # A certificate of odd dates renews from the day after it ends, for a year.
        (Period(K.CERTIFICATE, D(2026, 4, 15), D(2027, 4, 14)),
         Period(K.ANNUAL, D(2027, 4, 15), D(2028, 4, 14))),
    ],
)
def test_chatluck_next_year_starts_the_day_after_the_previous_ends(
    last: Period, renewed: Period
) -> None:
    """ChatLuck 3(2): "次年度以降のサポートサービス期間開始日は、前年度サービス期間満了日の
    翌日からとなります。"
    """
    for plan in (Plan.ANNUAL, Plan.CERTIFICATE):
        assert next_period(PlanTerms(plan, ordered_on=None), last) == renewed


def test_chatluck_certificate_dates_win_over_the_computed_year() -> None:
    """ChatLuck 3(4): "サポートサービス期間は、サポートサービス証書に定めるものとします。"
    The first-year support from the purchase still applies to the certificate's first year.
    """
    terms = PlanTerms(Plan.ANNUAL, ordered_on=D(2026, 3, 31), purchased_on=D(2026, 3, 20))
    cert = Period(K.CERTIFICATE, D(2026, 4, 15), D(2027, 4, 14))
    assert plan_periods(terms, cert) == (
        Period(K.CERTIFICATE, D(2026, 4, 15), D(2027, 4, 14), support_from=D(2026, 3, 20)),
    )
    later = Period(K.CERTIFICATE, D(2027, 4, 1), D(2028, 3, 31))
    assert plan_periods(terms, later) == (
        Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31), support_from=D(2026, 3, 20)), later,
    )
    assert plan_periods(PlanTerms(), cert) == (cert,)


@pytest.mark.parametrize(
    ("day", "standing"),
    [
        (D(2026, 3, 19), Standing.NOT_STARTED),  # before the licences were bought
        (D(2026, 3, 20), Standing.IN_FORCE),  # bought before the period starts
        (D(2026, 3, 31), Standing.IN_FORCE),
        (D(2026, 4, 1), Standing.IN_FORCE),
        (D(2027, 3, 31), Standing.IN_FORCE),
        (D(2027, 4, 1), Standing.EXPIRED),  # not renewed
    ],
)
def test_chatluck_customer_writing_between_purchase_and_period_start_is_in_force(
    day: date, standing: Standing
) -> None:
    """ChatLuck 3(1): "初年度のサポートサービスは、お客様の初回ライセンス購入日からご提供
    いたします" (before the contractual year "当社ご注文受付日の翌日から1年間").
    """
    terms = PlanTerms(Plan.ANNUAL, ordered_on=D(2026, 3, 31), purchased_on=D(2026, 3, 20))
    assert standing_on(day, initial_periods(terms), terms)[0] is standing


def test_a_renewed_chatluck_contract_is_in_force_in_its_second_year() -> None:
    """ChatLuck 3(2): the next year "前年度サービス期間満了日の翌日から"."""
    terms = PlanTerms(Plan.ANNUAL, ordered_on=D(2026, 3, 31))
    (first,) = initial_periods(terms)
    second = next_period(terms, first)
    assert standing_on(D(2027, 4, 1), (first, second), terms) == (Standing.IN_FORCE, second)
    assert standing_on(D(2028, 3, 31), (first, second), terms)[0] is Standing.IN_FORCE
    assert standing_on(D(2028, 4, 1), (first, second), terms)[0] is Standing.EXPIRED


@pytest.mark.parametrize(
    ("notified_on", "last_free_day"),
    [
        (D(2026, 11, 2), D(2026, 12, 1)),
        # Notified on the 31st: the 30 days cross February.
        (D(2026, 1, 31), D(2026, 3, 1)),
        (D(2028, 1, 31), D(2028, 2, 29)),  # leap year
        (D(2026, 12, 31), D(2027, 1, 29)),
        (D(2026, 3, 31), D(2026, 4, 29)),
    ],
)
def test_agcrm_trial_is_free_for_30_days_from_the_notice(
    notified_on: date, last_free_day: date
) -> None:
    """All Gather CRM 3 無料トライアル利用時: "「無料トライアルご利用開始のご案内」を通知した日
    から 30 日間を無償期間とします。" (the day of the notice is the first of the 30).
    """
    terms = PlanTerms(Plan.CLOUD_TRIAL, notified_on=notified_on)
    assert initial_periods(terms) == (Period(K.TRIAL, notified_on, last_free_day),)
    assert (last_free_day - notified_on).days + 1 == 30
    assert standing_on(last_free_day, initial_periods(terms), terms)[0] is Standing.IN_FORCE
    after = date.fromordinal(last_free_day.toordinal() + 1)
    before = date.fromordinal(notified_on.toordinal() - 1)
    assert standing_on(after, initial_periods(terms), terms)[0] is Standing.EXPIRED
    assert standing_on(before, initial_periods(terms), terms)[0] is Standing.NOT_STARTED
    with pytest.raises(PlanError, match="not renewed"):
        next_period(terms, initial_periods(terms)[0])


@pytest.mark.parametrize(
    ("notified_on", "free", "first_month"),
    [
        (D(2026, 11, 16), (D(2026, 11, 16), D(2026, 11, 30)), (D(2026, 12, 1), D(2026, 12, 31))),
        (D(2027, 1, 31), (D(2027, 1, 31), D(2027, 1, 31)), (D(2027, 2, 1), D(2027, 2, 28))),
        (D(2028, 1, 1), (D(2028, 1, 1), D(2028, 1, 31)), (D(2028, 2, 1), D(2028, 2, 29))),
        (D(2026, 12, 31), (D(2026, 12, 31), D(2026, 12, 31)), (D(2027, 1, 1), D(2027, 1, 31))),
    ],
)
def test_agcrm_paid_plan_is_free_to_month_end_then_monthly_from_the_base_date(
    notified_on: date, free: tuple[date, date], first_month: tuple[date, date]
) -> None:
    """All Gather CRM 3 有償利用時: "「ご利用開始のご案内」を通知した日から当該月末日までを
    無償期間とします。" "※1：基準日付は、無償期間を終了した翌月1日となります。"
    月額 初月度: "基準日付(※1)から1ヶ月をサービス期間とします。"
    """
    terms = PlanTerms(Plan.CLOUD_MONTHLY, notified_on=notified_on)
    assert initial_periods(terms) == (Period(K.FREE, *free), Period(K.MONTHLY, *first_month))


def test_agcrm_monthly_plan_renews_itself_month_by_month() -> None:
    """All Gather CRM 3 月額 次月度以降: "初月度より更に1ヶ月間自動的に同一内容で契約が
    更新されます。（翌月以降も同様とします。）"
    """
    terms = PlanTerms(Plan.CLOUD_MONTHLY, notified_on=D(2027, 11, 20))
    stored = initial_periods(terms)
    periods = timeline(stored, terms, D(2028, 3, 10))
    assert [(p.kind, p.starts_on, p.ends_on, p.auto) for p in periods] == [
        (K.FREE, D(2027, 11, 20), D(2027, 11, 30), False),
        (K.MONTHLY, D(2027, 12, 1), D(2027, 12, 31), False),
        (K.MONTHLY, D(2028, 1, 1), D(2028, 1, 31), True),
        (K.MONTHLY, D(2028, 2, 1), D(2028, 2, 29), True),
        (K.MONTHLY, D(2028, 3, 1), D(2028, 3, 31), True),
    ]
    # The day after the typed "end" of the first month is still in force.
    standing, period = standing_on(D(2028, 1, 1), stored, terms)
    assert standing is Standing.IN_FORCE and period is not None and period.auto


@pytest.mark.parametrize(
    ("day", "standing"),
    [
        (D(2027, 2, 14), Standing.IN_FORCE),  # the day of the cancellation
        (D(2027, 2, 28), Standing.IN_FORCE),  # the month it fell in runs to its end
        (D(2027, 3, 1), Standing.EXPIRED),  # no renewal after it
        (D(2027, 6, 1), Standing.EXPIRED),
    ],
)
def test_agcrm_monthly_plan_cancelled_mid_month_ends_with_that_month(
    day: date, standing: Standing
) -> None:
    """All Gather CRM 3 月額: renewed "自動的に" each month; a cancellation stops the renewals
    (the guide sets no other end: the month paid for is the last one).
    """
    terms = PlanTerms(Plan.CLOUD_MONTHLY, notified_on=D(2026, 10, 5), cancelled_on=D(2027, 2, 14))
    assert standing_on(day, initial_periods(terms), terms)[0] is standing
    last = timeline(initial_periods(terms), terms, D(2027, 12, 31))[-1]
    assert (last.starts_on, last.ends_on) == (D(2027, 2, 1), D(2027, 2, 28))


def test_agcrm_plan_cancelled_in_its_free_period_has_no_paid_period() -> None:
    """All Gather CRM 3: the free period "当該月末日まで"; the base date follows it only if
    the contract goes on."""
    terms = PlanTerms(Plan.CLOUD_MONTHLY, notified_on=D(2026, 10, 5), cancelled_on=D(2026, 10, 20))
    assert initial_periods(terms) == (Period(K.FREE, D(2026, 10, 5), D(2026, 10, 31)),)
    assert standing_on(D(2026, 11, 1), initial_periods(terms), terms)[0] is Standing.EXPIRED
    with pytest.raises(PlanError, match="cancelled on 2026-10-20"):
        next_period(terms, initial_periods(terms)[0])


def test_agcrm_yearly_plan_runs_a_year_from_the_base_date_which_never_moves() -> None:
    """All Gather CRM 3 年額: 初年度 "基準日付(※1)から起算して1年間"; 次年度以降
    "前年のサービス期間終了日の翌日から起算して1年間。つまり、初年度基準日付の1年後の同月日が
    翌年の基準日付となります。" "基準日付はいったん設定されますと変更はできません。"
    """
    terms = PlanTerms(Plan.CLOUD_YEARLY, notified_on=D(2026, 12, 15))
    stored = initial_periods(terms)
    assert stored == (
        Period(K.FREE, D(2026, 12, 15), D(2026, 12, 31)),
        Period(K.YEARLY, D(2027, 1, 1), D(2027, 12, 31)),
    )
    periods = timeline(stored, terms, D(2029, 6, 30))
    assert [(p.starts_on, p.ends_on) for p in periods[1:]] == [
        (D(2027, 1, 1), D(2027, 12, 31)),
        (D(2028, 1, 1), D(2028, 12, 31)),
        (D(2029, 1, 1), D(2029, 12, 31)),
    ]
    leap = PlanTerms(Plan.CLOUD_YEARLY, notified_on=D(2028, 2, 10))
    renewals = timeline(initial_periods(leap), leap, D(2030, 3, 5))
    assert [(p.starts_on, p.ends_on) for p in renewals[1:]] == [
        (D(2028, 3, 1), D(2029, 2, 28)),
        (D(2029, 3, 1), D(2030, 2, 28)),
        (D(2030, 3, 1), D(2031, 2, 28)),
    ]


@pytest.mark.parametrize(
    ("terms", "complaint"),
    [
        (PlanTerms(Plan.ANNUAL), "needs ordered_on"),
        (PlanTerms(Plan.CLOUD_TRIAL), "needs notified_on"),
        (PlanTerms(Plan.CLOUD_MONTHLY, ordered_on=D(2026, 1, 1), notified_on=D(2026, 1, 1)),
         "ordered_on is not used by plan cloud_monthly"),
        (PlanTerms(Plan.ANNUAL, ordered_on=D(2026, 1, 1), cancelled_on=D(2026, 5, 1)),
         "cancelled_on is not used by plan annual"),
        (PlanTerms(Plan.CLOUD_YEARLY, notified_on=D(2026, 5, 1), cancelled_on=D(2026, 4, 1)),
         "before notified_on"),
    ],
)
def test_a_plan_without_the_dates_it_needs_is_refused_with_the_reason(
    terms: PlanTerms, complaint: str
) -> None:
    with pytest.raises(PlanError, match=complaint):
        initial_periods(terms)


def test_periods_starting_after_the_cancellation_do_not_count() -> None:
    terms = PlanTerms(Plan.CLOUD_YEARLY, notified_on=D(2026, 12, 15), cancelled_on=D(2027, 6, 1))
    stored = (*initial_periods(terms), Period(K.YEARLY, D(2028, 1, 1), D(2028, 12, 31)))
    assert standing_on(D(2028, 3, 1), stored, terms)[0] is Standing.EXPIRED
    assert standing_on(D(2027, 12, 31), stored, terms)[0] is Standing.IN_FORCE


def test_a_day_between_two_periods_is_expired_not_not_started() -> None:
    terms = PlanTerms()
    stored = (Period(K.CERTIFICATE, D(2025, 4, 1), D(2026, 3, 31)),
              Period(K.CERTIFICATE, D(2026, 6, 1), D(2027, 5, 31)))
    assert standing_on(D(2026, 4, 15), stored, terms)[0] is Standing.EXPIRED
    assert standing_on(D(2025, 3, 31), stored, terms)[0] is Standing.NOT_STARTED
    assert standing_on(D(2026, 6, 1), stored, terms) == (Standing.IN_FORCE, stored[1])
    assert standing_on(D(2026, 6, 1), (), terms)[0] is Standing.NOT_STARTED


CERT = Period(K.CERTIFICATE, D(2026, 4, 1), D(2027, 3, 31))
YEAR = Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31), support_from=D(2026, 3, 20))


@pytest.mark.parametrize(
    ("stored", "incoming", "changes"),
    [
        # The same again: nothing changes.
        ((CERT,), (CERT,), []),
        # A corrected end date on the same start: that period is corrected.
        ((CERT,), (Period(K.CERTIFICATE, D(2026, 4, 1), D(2028, 3, 31)),),
         [(0, Period(K.CERTIFICATE, D(2026, 4, 1), D(2028, 3, 31)))]),
        # Next year's certificate: added, the earlier period kept.
        ((CERT,), (Period(K.CERTIFICATE, D(2027, 4, 1), D(2028, 3, 31)),),
         [(None, Period(K.CERTIFICATE, D(2027, 4, 1), D(2028, 3, 31)))]),
        # A computed year never overrides the certificate's dates...
        ((CERT,), (Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31)),), []),
        # ... and the certificate's win over a computed year (support from the purchase kept).
        ((YEAR,), (Period(K.CERTIFICATE, D(2026, 4, 1), D(2027, 4, 30)),),
         [(0, Period(K.CERTIFICATE, D(2026, 4, 1), D(2027, 4, 30), D(2026, 3, 20)))]),
        # A purchase date given later never shortens the support already given.
        ((YEAR,), (Period(K.ANNUAL, D(2026, 4, 1), D(2027, 3, 31)),), []),
        # Twice the same start in one import: the first counts.
        ((), (CERT, Period(K.CERTIFICATE, D(2026, 4, 1), D(2026, 9, 30))), [(None, CERT)]),
    ],
)
def test_importing_periods_corrects_or_adds_and_never_drops(
    stored: tuple[Period, ...], incoming: tuple[Period, ...],
    changes: list[tuple[int | None, Period]],
) -> None:
    """ChatLuck 3(4) (the certificate's dates win) and 3(2) (each year follows the last):
    a re-import corrects or adds; the history stays."""
    assert merge_periods(stored, incoming) == changes
