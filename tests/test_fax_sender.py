"""Handwritten FAXes and the sender's FAX number through the real pipeline (SQLite and PostgreSQL).

The pages are the corpus generator's (fixed seeds), read by real Tesseract
and PP-OCR; the contacts are the demo's (demo/customers.csv).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from madoguchi.app import Desk
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ticketing.triage import fax_triage
from madoguchi.ticketing.views import ticket_by_number
from tests.faxfactory import letter_pdf, send_fax
from tests.test_fax_pipeline import fax_desk

__all__ = ["fax_desk"]  # the fixture, shared with the FAX pipeline's tests

SAKURA_FAX = "03-1234-5679"  # both さくら商事 contacts' machine
MINATO_FAX = "045-640-1112"  # みなと製作所's 佐藤 一郎
RECEIVED = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # every demo contract but one in force


def _ingest(desk: Desk, path: Path):  # type: ignore[no-untyped-def]
    return desk.pipeline.ingest(
        Inbound(path.read_bytes(), "test", str(path), received_at=RECEIVED, kind="fax")
    )


def test_a_handwritten_form_becomes_a_ticket_with_its_number_read(
    fax_desk: Desk, tmp_path: Path
) -> None:
    from bench.fax_corpus import handwritten_form

    # Seed 26 (the demo's fax0005.tif): a quick hand whose boxes cannot be read alone;
    # PP-OCR box by box and the registered numbers can.
    item = handwritten_form("203100010008", tmp_path / "hw.tif", seed=26, sender_fax=SAKURA_FAX)
    out = _ingest(fax_desk, item.path)
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None and t.support_number == "203100010008"
        assert t.customer is not None and t.customer.company == "株式会社さくら商事"
        reading = t.messages[0].fax_reading
        assert reading is not None and reading["method"] == "boxes"
        assert reading["boxes_choice"]["digits"] == "203100010008"  # type: ignore[index]
        assert not any("support number boxes" in p for p in reading["problems"])  # type: ignore[attr-defined]
        # The page names nobody; the contact whose machine sent it is the sender.
        assert reading["sender_fax"]["digits"] == "0312345679", reading["sender_fax"]  # type: ignore[index]
        assert t.contact is not None and t.contact.fax == SAKURA_FAX
        assert t.flag_names == []


def test_triage_says_why_the_registered_numbers_did_not_settle_handwritten_boxes(
    fax_desk: Desk, tmp_path: Path
) -> None:
    from bench.fax_corpus import handwritten_form
    from madoguchi.ticketing.support_number import luhn_check_digit

    # The demo's quick hand again, writing a valid number no contract has.
    stranger = "20319999000" + luhn_check_digit("20319999000")
    item = handwritten_form(stranger, tmp_path / "hw.tif", seed=26, sender_fax="045-640-1119")
    out = _ingest(fax_desk, item.path)
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None and "unreadable_fax" in t.flag_names
        reading = t.messages[0].fax_reading
        assert reading is not None and reading["boxes_choice"]["digits"] is None  # type: ignore[index]
        why = reading["boxes_choice"]["reason"]  # type: ignore[index]
        assert "is no registered number" in why
        # What triage shows: the decision's reason, not the line read's note on the boxes.
        assert reading["problems"][0] == (  # type: ignore[index]
            f"page 1: the support number boxes cannot be decided ({why})")
        assert not any("cannot be read" in p for p in reading["problems"])  # type: ignore[attr-defined]


def test_an_unreadable_fax_is_given_the_customer_its_sending_machine_belongs_to(
    fax_desk: Desk, tmp_path: Path
) -> None:
    page = letter_pdf(["お世話になっております。", "番号が分からないのですが質問です。"])
    path = send_fax(page, tmp_path / "nonum.tif", seed=4, sender_fax=MINATO_FAX)
    out = _ingest(fax_desk, path)
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None
        # Identified, for staff to confirm: still in FAX triage.
        assert "unreadable_fax" in t.flag_names
        assert t.customer is not None and t.customer.company == "有限会社みなと製作所"
        assert t.contact is not None and t.contact.name == "佐藤 一郎"
        # Its one contract in force, as a mail from that contact would get.
        assert t.support_number == "203100020007"
        [item] = [i for i in fax_triage(s) if i.ticket.id == t.id]
        assert item.sender is not None
        assert item.sender.fax == "0456401112" and item.sender.source == "header"
        assert item.sender.companies == ("有限会社みなと製作所",)
        assert item.sender.support_numbers == ("203100020007",)


def test_a_fax_from_an_unknown_machine_suggests_nobody(fax_desk: Desk, tmp_path: Path) -> None:
    page = letter_pdf(["お世話になっております。", "番号が分からないのですが質問です。"])
    path = send_fax(page, tmp_path / "stranger.tif", seed=4, sender_fax="045-640-1119")
    out = _ingest(fax_desk, path)
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None and t.customer is None and t.flag_names == ["unreadable_fax"]
        [item] = [i for i in fax_triage(s) if i.ticket.id == t.id]
        assert item.sender is not None and item.sender.companies == ()
