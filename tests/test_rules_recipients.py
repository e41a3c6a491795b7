"""Reply-all: the answered mail's writer and recipients, a registered contact first."""

from __future__ import annotations

from madoguchi.ticketing.rules.recipients import MailFacts, reply_recipients

DESK = "support@example.co.jp"
CONTACT = "yamada@sakura.example.jp"
BOSS = "boss@sakura.example.jp"
STRANGER = "x@evil.example"


def test_reply_all_keeps_the_customer_s_cc_and_drops_the_desk() -> None:
    answered = MailFacts(CONTACT, (DESK,), (BOSS, "Support@Example.co.jp"))
    got = reply_recipients(answered, [answered], contacts=[CONTACT], own=[DESK])
    assert got.to == (CONTACT,) and got.cc == (BOSS,)


def test_the_registered_contact_who_took_part_is_to_and_a_colleague_who_answered_is_cc() -> None:
    first = MailFacts(CONTACT, (DESK,), ())
    colleague = MailFacts(BOSS, (DESK,), (CONTACT,))
    got = reply_recipients(colleague, [first, colleague], contacts=[CONTACT], own=[DESK])
    assert got.to == (CONTACT,) and got.cc == (BOSS,)


def test_a_stranger_who_joined_by_a_reference_header_is_neither_to_nor_cc() -> None:
    first = MailFacts(CONTACT, (DESK,), ())
    stranger = MailFacts(STRANGER, (DESK,), (), unverified=True)
    got = reply_recipients(stranger, [first, stranger], contacts=[CONTACT], own=[DESK])
    assert got.to == (CONTACT,) and STRANGER not in got.cc


def test_a_contact_who_never_took_part_is_only_the_fallback() -> None:
    writer = MailFacts("someone@sakura.example.jp", (DESK,), ())
    got = reply_recipients(writer, [writer], contacts=[CONTACT], own=[DESK])
    assert got.to == ("someone@sakura.example.jp",) and got.cc == ()
    unverified = MailFacts(STRANGER, (DESK,), (), unverified=True)
    got = reply_recipients(unverified, [unverified], contacts=[CONTACT], own=[DESK])
    assert got.to == (CONTACT,)  # never the unvouched writer
    assert reply_recipients(unverified, [unverified], contacts=[], own=[DESK]).to == ()
