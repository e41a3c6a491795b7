from __future__ import annotations

from datetime import date

from madoguchi.ticketing.models import Flag
from madoguchi.ticketing.rules.entitlement import (
    ContactFacts,
    ContractFacts,
    decide_entitlement,
)

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
