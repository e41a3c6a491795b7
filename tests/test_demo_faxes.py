"""The demo's own FAX files (demo/fax, written by scripts/make_demo_faxes.py), as README's
first command ingests them: the handwritten form is read, the letter without a number is
given the customer whose machine sent it (flagged for staff to confirm)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from madoguchi.app import Desk
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ticketing.views import ticket_by_number
from tests.test_fax_pipeline import fax_desk

__all__ = ["fax_desk"]  # the fixture, shared with the FAX pipeline's tests

DEMO_FAX = Path(__file__).resolve().parent.parent / "demo" / "fax"
RECEIVED = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # every demo contract but one in force


def _ingest(desk: Desk, name: str):  # type: ignore[no-untyped-def]
    path = DEMO_FAX / name
    return desk.pipeline.ingest(
        Inbound(path.read_bytes(), "demo", str(path), received_at=RECEIVED, kind="fax"))


def test_the_demos_handwritten_fax_becomes_a_ticket_with_its_number_read(fax_desk: Desk) -> None:
    out = _ingest(fax_desk, "fax0005.tif")
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None and t.support_number == "203100010008"
        assert t.customer is not None and t.customer.company == "株式会社さくら商事"
        reading = t.messages[0].fax_reading
        assert reading is not None and reading["method"] == "boxes", reading
        assert t.flag_names == []


def test_the_demos_fax_without_a_number_is_identified_by_its_sending_machine(
        fax_desk: Desk) -> None:
    out = _ingest(fax_desk, "fax0006.tif")
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None
        assert "unreadable_fax" in t.flag_names  # for staff to confirm
        assert t.customer is not None and t.customer.company == "有限会社みなと製作所"
        assert t.contact is not None and t.contact.name == "佐藤 一郎"
        reading = t.messages[0].fax_reading
        assert reading is not None and reading["sender_fax"]["digits"] == "0456401112"  # type: ignore[index]
