"""FAX end to end: real TIFF/PDF files, real Tesseract, through the real pipeline."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from madoguchi.app import Desk
from madoguchi.cli import app
from madoguchi.config import FaxSpoolSource, Settings
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ingest.sources.fax_spool import FaxSpoolPoller
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Message, QuarantineEntry
from madoguchi.ticketing.triage import assign_fax_number, read_support_number, triage_queue
from madoguchi.ticketing.views import ticket_by_number
from tests.conftest import make_settings
from tests.faxfactory import form_pdf, letter_pdf, send_fax
from tests.mailfactory import make_mail

DEMO = Path(__file__).resolve().parent.parent / "demo"
LETTER = [
    "サポートサービス番号：2031-0001-0008",
    "株式会社さくら商事 情報システム部",
    "山田 太郎  TEL 03-1234-5678",
    "ライセンスキーの再発行をお願いします。",
]


@pytest.fixture
def fax_desk(database_url: str, tmp_path: Path) -> Desk:
    settings = make_settings(database_url, tmp_path,
                             fax={"gateway_addresses": ["fax@gw.example.jp"]})
    desk = Desk.open(settings)
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     settings.support_number)
    with transaction(desk.factory) as session:
        import_rows(session, rows)
    yield desk
    desk.close()


def ingest_file(desk: Desk, path: Path):  # type: ignore[no-untyped-def]
    return desk.pipeline.ingest(Inbound(path.read_bytes(), "test", str(path), kind="fax"))


def test_free_form_fax_from_a_registered_contact_becomes_a_searchable_ticket(
    fax_desk: Desk, tmp_path: Path
) -> None:
    path = send_fax(letter_pdf(LETTER), tmp_path / "fax1.tif", resolution="standard")
    out = ingest_file(fax_desk, path)
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None
        assert t.channel.value == "fax"
        assert t.support_number == "203100010008"
        assert t.customer is not None and t.customer.company == "株式会社さくら商事"
        assert t.flag_names == []  # the page names a registered contact
        m = t.messages[0]
        assert "ライセンス" in m.text
        assert m.fax_reading is not None and m.fax_reading["method"] == "fullpage"
        names = [a.filename for a in m.attachments]
        assert names[0] == "fax1.tif" and names[1] == "fax-page-001.png"
        assert m.attachments[0].sha256 == m.raw.sha256  # type: ignore[union-attr]
    # The same file again is recognised.
    assert ingest_file(fax_desk, path).kind is OutcomeKind.DUPLICATE


def test_printed_form_follow_up_quoting_the_ticket_joins_it(
    fax_desk: Desk, tmp_path: Path
) -> None:
    first = ingest_file(fax_desk, send_fax(form_pdf("2031-0001-0008"), tmp_path / "a.tif"))
    assert first.kind is OutcomeKind.CREATED
    follow = send_fax(form_pdf("2031-0001-0008", ticket=first.ticket_number),
                      tmp_path / "b.pdf", container="pdf", seed=2)
    out = ingest_file(fax_desk, follow)
    assert (out.kind, out.ticket_number) == (OutcomeKind.THREADED, first.ticket_number)


def test_follow_up_fax_with_another_support_number_opens_a_linked_flagged_ticket(
    fax_desk: Desk, tmp_path: Path
) -> None:
    first = ingest_file(fax_desk, send_fax(form_pdf("2031-0001-0008"), tmp_path / "a.tif"))
    other = send_fax(form_pdf("2031-0002-0007", ticket=first.ticket_number), tmp_path / "b.tif")
    out = ingest_file(fax_desk, other)
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None and t.linked_ticket is not None
        assert t.linked_ticket.number == first.ticket_number
        assert "unregistered_sender" in t.flag_names


def test_fax_without_a_readable_number_waits_in_triage_until_staff_assign_it(
    fax_desk: Desk, tmp_path: Path
) -> None:
    path = send_fax(letter_pdf(["お世話になっております。", "番号が分からないのですが質問です。"]),
                    tmp_path / "nonum.tif")
    out = ingest_file(fax_desk, path)
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        queue = triage_queue(s)
        assert [t.number for t, _ in queue] == [out.ticket_number]
        assert len(queue[0][1]) == 1 and fax_desk.blobs.exists(queue[0][1][0])
        assert queue[0][0].flag_names == ["unreadable_fax"]
    settings = fax_desk.settings
    with pytest.raises(ActionError, match="チェックディジット"):
        read_support_number("2031-0001-0009", settings)
    with transaction(fax_desk.factory) as s:
        fax = ticket_by_number(s, out.ticket_number or "")
        assert fax is not None
        t = assign_fax_number(s, fax, read_support_number("2031 0001 0008", settings), None,
                              settings, fax_desk.deadlines, datetime.now(UTC))
        # The page names no registered contact: flagged as the pipeline would have.
        assert t.contract_id is not None and t.flag_names == ["unregistered_sender"]
    with fax_desk.factory() as s:
        assert triage_queue(s) == []


def test_corrupt_and_encrypted_pdfs_are_quarantined_with_their_reason(
    fax_desk: Desk, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF garbage")
    out = ingest_file(fax_desk, corrupt)
    assert out.kind is OutcomeKind.QUARANTINED
    assert (out.reason or "").startswith(("corrupt_pdf", "empty_document"))
    with fax_desk.factory() as s:
        entry = s.scalars(select(QuarantineEntry)).one()
        assert fax_desk.blobs.get(entry.sha256) == corrupt.read_bytes()


def test_fax_to_email_gateway_mail_becomes_a_fax_ticket(fax_desk: Desk, tmp_path: Path) -> None:
    pdf_path = send_fax(letter_pdf(LETTER), tmp_path / "gw.pdf", container="pdf")
    raw = make_mail(
        subject="FAX受信 03-1234-5679",
        body="FAXを受信しました。",
        from_=("FAX", "fax@gw.example.jp"),
        attachments=[("fax-0001.pdf", "application/pdf", pdf_path.read_bytes())],
    )
    out = fax_desk.pipeline.ingest(Inbound(raw, "mailbox", "1"))
    assert out.kind is OutcomeKind.CREATED
    with fax_desk.factory() as s:
        t = ticket_by_number(s, out.ticket_number or "")
        assert t is not None and t.channel.value == "fax" and t.support_number == "203100010008"
        m = t.messages[0]
        assert "ライセンス" in m.text and "FAXを受信しました" in m.text
        assert [a.content_type for a in m.attachments] == ["application/pdf", "image/png"]


def test_spool_takes_a_file_only_when_complete_and_moves_it_after_commit(
    fax_desk: Desk, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    clock = [1000.0]
    poller = FaxSpoolPoller(
        FaxSpoolSource(kind="fax_spool", name="fax", path=spool, stable_seconds=5),
        fax_desk.pipeline, clock=lambda: clock[0],
    )
    doc = send_fax(letter_pdf(LETTER), tmp_path / "in.tif")
    (spool / "fax0001.tif.part").write_bytes(doc.read_bytes())
    assert poller.poll_once().taken == 0  # still being written under its temporary name
    os.replace(spool / "fax0001.tif.part", spool / "fax0001.tif")
    assert poller.poll_once().taken == 0  # just appeared: not yet stable
    clock[0] += 6
    report = poller.poll_once()
    assert (report.taken, report.created) == (1, 1)
    assert (spool / "done" / "fax0001.tif").exists() and not (spool / "fax0001.tif").exists()

    (spool / "broken.pdf").write_bytes(b"not a pdf at all")
    poller.poll_once()
    clock[0] += 6
    assert poller.poll_once().quarantined == 1
    assert (spool / "failed" / "broken.pdf").exists()
    assert (spool / "failed" / "broken.pdf.reason").read_text(encoding="utf-8").strip()


def test_cli_ingests_a_fax_file_and_export_lists_the_original_with_its_sha256(
    fax_desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = fax_desk.settings
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(settings.storage_dir))
    path = send_fax(letter_pdf(LETTER), tmp_path / "scan.tiff", container="g3-2d")
    result = CliRunner().invoke(app, ["ingest", str(path)])
    assert result.exit_code == 0 and "created" in result.output, result.output
    result = CliRunner().invoke(app, ["export", "--format", "jsonl"])
    [record] = [json.loads(line) for line in result.output.splitlines()]
    first = record["messages"][0]["attachments"][0]
    assert record["channel"] == "fax" and first["filename"] == "scan.tiff"
    import hashlib

    assert first["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with fax_desk.factory() as s:
        assert s.scalars(select(Message)).one().channel.value == "fax"


def test_form_command_writes_a_pdf_with_the_number_and_refuses_a_bad_one(tmp_path: Path) -> None:
    out = tmp_path / "form.pdf"
    result = CliRunner().invoke(app, ["form", str(out), "--support-number", "2031-0001-0008"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    bad = CliRunner().invoke(
        app, ["form", str(tmp_path / "x.pdf"), "--support-number", "2031-0001-0009"]
    )
    assert bad.exit_code == 2

