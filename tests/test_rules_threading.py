from __future__ import annotations

from datetime import UTC, datetime, timedelta

from madoguchi.config.settings import ThreadingSettings
from madoguchi.ticketing.rules.threading import (
    ThreadAction,
    ThreadEvidence,
    TicketSnapshot,
    decide_thread,
)
from madoguchi.ticketing.ticket_number import quoted_numbers, subject_tags

LABELS = ThreadingSettings().ticket_labels

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def ticket(closed_days_ago: float | None = None, **kw: object) -> TicketSnapshot:
    defaults: dict[str, object] = {
        "id": 1,
        "number": "T-2026-000123",
        "closed_at": NOW - timedelta(days=closed_days_ago) if closed_days_ago is not None else None,
        "participants": frozenset({"yamada@sakura.example.jp", "cc@sakura.example.jp"}),
        "contact_emails": frozenset({"yamada@sakura.example.jp", "takahashi@sakura.example.jp"}),
    }
    defaults.update(kw)
    return TicketSnapshot(**defaults)  # type: ignore[arg-type]


def test_subject_tag_is_found_behind_any_reply_prefix() -> None:
    for subject in (
        "Re: [T-2026-000123] ログインできません",
        "RE: RE: [T-2026-000123] ログイン",
        "Fwd: [T-2026-000123]",
        "返信: [T-2026-000123] ログイン",
        "転送: ［T-2026-000123］ ログイン",
    ):
        assert subject_tags(subject, "T") == ["T-2026-000123"], subject


def test_body_quote_of_the_inquiry_number_is_found() -> None:
    assert quoted_numbers("問合せ番号: T-2026-000123\n", "T", LABELS) == ["T-2026-000123"]
    assert quoted_numbers("> お問い合わせ番号：T-2026-000123", "T", LABELS) == ["T-2026-000123"]
    assert quoted_numbers("T-2026-000123 とは無関係", "T", LABELS) == []


def test_reply_with_references_joins_whoever_sends_it() -> None:
    d = decide_thread(ThreadEvidence(by_reference=ticket()), "someone@else.example", NOW, 14)
    assert d.action is ThreadAction.JOIN and d.rule == "references"


def test_reply_without_references_threads_by_subject_tag() -> None:
    d = decide_thread(ThreadEvidence(by_subject_tag=ticket()), "yamada@sakura.example.jp", NOW, 14)
    assert d.action is ThreadAction.JOIN and d.rule == "subject_tag"


def test_cc_participant_threads_by_tag() -> None:
    d = decide_thread(ThreadEvidence(by_subject_tag=ticket()), "CC@sakura.example.jp", NOW, 14)
    assert d.action is ThreadAction.JOIN


def test_registered_contact_of_the_customer_threads_by_body_number() -> None:
    d = decide_thread(
        ThreadEvidence(by_body_number=ticket()), "takahashi@sakura.example.jp", NOW, 14
    )
    assert d.action is ThreadAction.JOIN and d.rule == "body_number"


def test_stranger_naming_a_ticket_opens_a_new_linked_flagged_ticket() -> None:
    for evidence in (
        ThreadEvidence(by_subject_tag=ticket()),
        ThreadEvidence(by_body_number=ticket()),
    ):
        d = decide_thread(evidence, "attacker@evil.example", NOW, 14)
        assert d.action is ThreadAction.NEW_LINKED
        assert d.unregistered_sender
        assert d.ticket is not None and d.ticket.number == "T-2026-000123"


def test_references_win_over_subject_tag() -> None:
    other = ticket(id=2, number="T-2026-000999")
    d = decide_thread(
        ThreadEvidence(by_reference=ticket(), by_subject_tag=other), "x@y.example", NOW, 14
    )
    assert d.ticket is not None and d.ticket.id == 1


def test_follow_up_to_recently_closed_ticket_reopens_it() -> None:
    d = decide_thread(ThreadEvidence(by_reference=ticket(closed_days_ago=3)), "a@b.c", NOW, 14)
    assert d.action is ThreadAction.REOPEN


def test_follow_up_to_long_closed_ticket_opens_a_linked_one() -> None:
    d = decide_thread(ThreadEvidence(by_reference=ticket(closed_days_ago=30)), "a@b.c", NOW, 14)
    assert d.action is ThreadAction.NEW_LINKED and not d.unregistered_sender


def test_no_evidence_opens_a_new_ticket() -> None:
    assert decide_thread(ThreadEvidence(), "a@b.c", NOW, 14).action is ThreadAction.NEW
