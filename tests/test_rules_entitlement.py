from __future__ import annotations

from datetime import date

import pytest

from madoguchi.ticketing.models import Flag
from madoguchi.ticketing.rules.entitlement import (
    ContactFacts,
    ContractFacts,
    decide_entitlement,
)
from madoguchi.ticketing.rules.periods import Plan, PlanTerms, initial_periods

DAY = date(2026, 11, 24)
CURRENT = ContractFacts(10, 1, "203100010008", date(2026, 4, 1), date(2027, 3, 31))
OTHER = ContractFacts(11, 1, "203100020007", date(2026, 1, 1), date(2026, 12, 31))
EXPIRED = ContractFacts(12, 2, "203100030006", date(2025, 4, 1), date(2026, 3, 31))
YAMADA = ContactFacts(100, 1, (CURRENT,))
SUZUKI = ContactFacts(200, 2, (EXPIRED,))


def test_registered_contact_quoting_a_contract_in_force_has_no_flags() -> None:
    e = decide_entitlement(
        support_number=CURRENT.support_number,
        contract_for_number=CURRENT,
        sender_contacts=(YAMADA,),
        received_day=DAY,
    )
    assert (e.contract_id, e.customer_id, e.contact_id, e.flags) == (10, 1, 100, frozenset())


def test_stranger_quoting_a_valid_number_is_unregistered_sender() -> None:
    e = decide_entitlement(
        support_number=CURRENT.support_number,
        contract_for_number=CURRENT,
        sender_contacts=(),
        received_day=DAY,
    )
    assert e.contract_id == 10 and e.contact_id is None
    assert e.flags == {Flag.UNREGISTERED_SENDER}


def test_contact_of_another_customer_is_unregistered_for_this_one() -> None:
    e = decide_entitlement(
        support_number=CURRENT.support_number,
        contract_for_number=CURRENT,
        sender_contacts=(SUZUKI,),
        received_day=DAY,
    )
    assert e.flags == {Flag.UNREGISTERED_SENDER}


def test_contract_whose_period_has_ended_is_flagged_expired() -> None:
    e = decide_entitlement(
        support_number=EXPIRED.support_number,
        contract_for_number=EXPIRED,
        sender_contacts=(SUZUKI,),
        received_day=DAY,
    )
    assert e.flags == {Flag.CONTRACT_EXPIRED}


def test_contact_without_number_gets_their_only_contract_in_force() -> None:
    e = decide_entitlement(
        support_number=None, contract_for_number=None, sender_contacts=(YAMADA,), received_day=DAY
    )
    assert (e.contract_id, e.flags) == (10, frozenset())


def test_contact_with_two_contracts_in_force_and_no_number_is_ambiguous() -> None:
    both = ContactFacts(100, 1, (CURRENT, OTHER))
    e = decide_entitlement(
        support_number=None, contract_for_number=None, sender_contacts=(both,), received_day=DAY
    )
    assert e.contract_id is None and e.customer_id == 1 and e.contact_id == 100
    assert e.flags == {Flag.UNKNOWN_SUPPORT_NUMBER}


def test_contact_whose_only_contract_has_ended_gets_it_flagged_expired() -> None:
    e = decide_entitlement(
        support_number=None, contract_for_number=None, sender_contacts=(SUZUKI,), received_day=DAY
    )
    assert e.contract_id == 12 and e.flags == {Flag.CONTRACT_EXPIRED}


def test_stranger_without_number_is_unknown_and_unregistered() -> None:
    e = decide_entitlement(
        support_number=None, contract_for_number=None, sender_contacts=(), received_day=DAY
    )
    assert e.flags == {Flag.UNKNOWN_SUPPORT_NUMBER, Flag.UNREGISTERED_SENDER}
    assert e.contract_id is None and e.customer_id is None


def test_valid_number_matching_no_contract_is_unknown_even_from_a_contact() -> None:
    e = decide_entitlement(
        support_number="203100040005",
        contract_for_number=None,
        sender_contacts=(YAMADA,),
        received_day=DAY,
    )
    # The contract is still inferred for staff, but the unknown number is shown.
    assert e.contract_id == 10
    assert e.flags == {Flag.UNKNOWN_SUPPORT_NUMBER}


def test_contract_period_is_inclusive_at_both_ends() -> None:
    for day in (CURRENT.period_start, CURRENT.period_end):
        e = decide_entitlement(
            support_number=CURRENT.support_number,
            contract_for_number=CURRENT,
            sender_contacts=(YAMADA,),
            received_day=day,
        )
        assert e.flags == frozenset()


# --- periods and per-contract contacts -----------------------------------------------

SAKURA_CHAT = ContractFacts(20, 3, "203100050004", date(2026, 4, 1), date(2027, 3, 31))
SAKURA_CRM = ContractFacts(21, 3, "203100060003", date(2026, 1, 1), date(2026, 12, 31))
ONLY_CHAT = ContactFacts(300, 3, (SAKURA_CHAT,))
NO_CONTRACT = ContactFacts(301, 3, ())


def test_a_contact_registered_only_for_another_contract_of_the_company_is_flagged_with_a_hint(
) -> None:
    """All Gather CRM 4(2)①: "ご質問・お問い合わせができる方は、窓口担当者として登録された方
    のみとなります" — registered for the contract asked about, not for the company."""
    e = decide_entitlement(support_number=SAKURA_CRM.support_number,
                           contract_for_number=SAKURA_CRM, sender_contacts=(ONLY_CHAT,),
                           received_day=DAY)
    assert e.flags == {Flag.UNREGISTERED_SENDER}
    assert (e.contract_id, e.customer_id, e.contact_id) == (21, 3, 300)
    assert e.other_contracts == ("203100050004",)
    assert e.details(lambda n: f"<{n}>") == {
        Flag.UNREGISTERED_SENDER: "送信者は同じ会社の別の契約（<203100050004>）の窓口担当者です。"
                                  "この契約には登録されていません。"}
    # Registered for the one it asks about: nothing to say.
    ok = decide_entitlement(support_number=SAKURA_CHAT.support_number,
                            contract_for_number=SAKURA_CHAT, sender_contacts=(ONLY_CHAT,),
                            received_day=DAY)
    assert ok.flags == frozenset() and ok.details(str) == {}


def test_a_contact_of_the_company_registered_for_no_contract_is_flagged_and_said_so() -> None:
    e = decide_entitlement(support_number=SAKURA_CHAT.support_number,
                           contract_for_number=SAKURA_CHAT, sender_contacts=(NO_CONTRACT,),
                           received_day=DAY)
    assert e.flags == {Flag.UNREGISTERED_SENDER} and e.contact_id == 301
    assert "どの契約にも登録されていません" in e.details(str)[Flag.UNREGISTERED_SENDER]
    stranger = decide_entitlement(support_number=SAKURA_CHAT.support_number,
                                  contract_for_number=SAKURA_CHAT, sender_contacts=(),
                                  received_day=DAY)
    assert stranger.details(str) == {} and stranger.other_contracts is None


def _annual(ordered: date, purchased: date | None) -> ContractFacts:
    terms = PlanTerms(Plan.ANNUAL, ordered_on=ordered, purchased_on=purchased)
    periods = initial_periods(terms)
    return ContractFacts(30, 4, "203100070002", periods[0].starts_on, periods[-1].ends_on,
                         periods=periods, terms=terms)


@pytest.mark.parametrize(
    ("day", "flags"),
    [
        (date(2026, 3, 9), {Flag.CONTRACT_NOT_STARTED}),
        (date(2026, 3, 10), set()),  # licences bought, the contract year not begun
        (date(2027, 3, 31), set()),
        (date(2027, 4, 1), {Flag.CONTRACT_EXPIRED}),
    ],
)
def test_a_new_chatluck_customer_between_purchase_and_period_start_is_entitled(
    day: date, flags: set[Flag]
) -> None:
    """ChatLuck 3(1): "初年度のサポートサービスは、お客様の初回ライセンス購入日からご提供
    いたします"; before it, the contract has not started (not "expired")."""
    contract = _annual(date(2026, 3, 31), date(2026, 3, 10))
    contact = ContactFacts(400, 4, (contract,))
    e = decide_entitlement(support_number=contract.support_number, contract_for_number=contract,
                           sender_contacts=(contact,), received_day=day)
    assert e.flags == flags


def test_a_monthly_cloud_customer_is_in_force_after_the_first_months_end() -> None:
    """All Gather CRM 3 月額: "初月度より更に1ヶ月間自動的に同一内容で契約が更新されます。"""
    terms = PlanTerms(Plan.CLOUD_MONTHLY, notified_on=date(2026, 9, 14))
    periods = initial_periods(terms)
    contract = ContractFacts(40, 5, "203100080001", periods[0].starts_on, periods[-1].ends_on,
                             periods=periods, terms=terms)
    assert contract.period_end == date(2026, 10, 31)
    contact = ContactFacts(500, 5, (contract,))
    for day in (date(2026, 11, 1), DAY, date(2027, 2, 28)):
        e = decide_entitlement(support_number=None, contract_for_number=None,
                               sender_contacts=(contact,), received_day=day)
        assert (e.contract_id, e.flags) == (40, frozenset())


def test_the_only_contract_of_a_contact_not_yet_started_is_flagged_not_started() -> None:
    """All Gather CRM 3: the trial's free period begins on "「無料トライアルご利用開始のご案内」
    を通知した日"."""
    terms = PlanTerms(Plan.CLOUD_TRIAL, notified_on=date(2026, 12, 1))
    periods = initial_periods(terms)
    contract = ContractFacts(50, 6, "203100090000", periods[0].starts_on, periods[0].ends_on,
                             periods=periods, terms=terms)
    e = decide_entitlement(support_number=None, contract_for_number=None,
                           sender_contacts=(ContactFacts(600, 6, (contract,)),),
                           received_day=DAY)
    assert (e.contract_id, e.flags) == (50, {Flag.CONTRACT_NOT_STARTED})
