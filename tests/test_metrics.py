"""GET /metrics: Prometheus text format, counted from the database, for loopback or a token."""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from madoguchi.app import Desk
from madoguchi.config import Settings, load_settings
from madoguchi.config.web import WebSettings
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ticketing import store
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import (
    Channel,
    Direction,
    Flag,
    Message,
    PendingMark,
    Ticket,
    TicketFlag,
    TicketStatus,
)
from madoguchi.ticketing.triage import assign_fax_number, read_support_number
from madoguchi.web.metrics import Family, exposition
from madoguchi.web_server import WebServer
from madoguchi.web_server import web_app as desk_web_app
from tests.faxfactory import form_pdf, letter_pdf, send_fax
from tests.mailfactory import make_mail
from tests.test_health import NUMBER, inquiry, register_customer

TOKEN_ENV = "MADOGUCHI_TEST_METRICS_TOKEN"
TOKEN = "s3cret-scrape-token-0123456789"
_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="'
    r'(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (?P<value>-?[0-9.e+-]+|NaN|[+-]Inf)$'
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """The samples of an exposition, checking each line against the 0.0.4 format."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in typed and kind in {"counter", "gauge", "summary"}, line
            typed[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        family = re.sub(r"_(sum|count)$", "", name) if name not in typed else name
        assert family in typed, f"{name} has no TYPE before it"
        labels = frozenset((k, _unescape(v)) for k, v in _LABEL.findall(match["labels"] or ""))
        samples[(name, labels)] = float(match["value"])
    return samples


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def web_app(settings: Settings, desk: Desk, tmp_path: Path, **web: object) -> Starlette:
    return desk_web_app(settings, desk=desk, web=WebSettings(
        secret_key_file=tmp_path / "web-secret", send_outbox_after_reply=False,
        **web,  # type: ignore[arg-type]
    ))


def _fax_ticket(desk: Desk, *readings: dict[str, object], unreadable: bool = False) -> str:
    """A FAX ticket whose messages carry these reading records, as the pipeline writes them."""
    now = datetime.now(UTC)
    with transaction(desk.factory) as session:
        number = store.next_ticket_number(session, "T", now.year)
        ticket = Ticket(number=number, status=TicketStatus.OPEN, channel=Channel.FAX,
                        subject="FAXでのお問い合わせ", received_at=now,
                        first_response_due=now + timedelta(hours=4))
        ticket.flags = [TicketFlag(flag=Flag.UNREADABLE_FAX)] if unreadable else []
        session.add(ticket)
        session.flush()
        session.add_all([
            Message(ticket_id=ticket.id, direction=Direction.IN, channel=Channel.FAX,
                    sender_name="FAX", received_at=now, text="", fax_reading=reading)
            for reading in readings
        ])
    return number


def test_metrics_count_mail_quarantine_faxes_and_the_queue(
    desk: Desk, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_customer(desk)
    now = datetime.now(UTC)
    outcomes = desk.pipeline.ingest_batch([
        Inbound(inquiry("ログインできません", received=now), "mailbox", "1"),
        Inbound(inquiry("十日前の問い合わせ", received=now - timedelta(days=10)), "mailbox", "2"),
        Inbound(make_mail("不在のお知らせ", "ただいま不在です。", date=now, charset="utf-8",
                          extra_headers={"Auto-Submitted": "auto-replied"}), "mailbox", "3"),
        Inbound(b"not a mail\r\n", "mailbox", "4"),
    ])
    assert [o.kind for o in outcomes] == [OutcomeKind.CREATED, OutcomeKind.CREATED,
                                          OutcomeKind.QUARANTINED, OutcomeKind.QUARANTINED]
    # FAX readings of every shape the desk has stored (real OCR: the next test).
    _fax_ticket(desk, {"support_number": NUMBER, "ocr_seconds": 1.5},
                {"support_number": None, "ocr_seconds": 0.25})  # a follow-up, no number
    _fax_ticket(desk, {"support_number": None,  # before ocr_seconds was recorded
                       "timings": {"load": 0.25, "number": 0.5, "text": 0.75}},
                unreadable=True)
    _fax_ticket(desk, {"documents": [{"support_number": None, "ocr_seconds": 1.0},
                                     {"support_number": NUMBER, "ocr_seconds": 2.0}],
                       "ocr_seconds": 3.0})  # a gateway mail with two documents
    _fax_ticket(desk, {"documents": [{"support_number": None, "ocr_seconds": 0.5}],
                       "ocr_seconds": 0.5}, unreadable=True)

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    client = TestClient(web_app(settings, desk, tmp_path, metrics_token_env=TOKEN_ENV),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    m = parse(r.text)
    assert value(m, "madoguchi_messages_ingested_total", channel="email") == 2
    assert value(m, "madoguchi_messages_ingested_total", channel="fax") == 5
    assert value(m, "madoguchi_quarantined_total", reason="auto_reply") == 1
    assert value(m, "madoguchi_quarantined_total", reason="unparseable") == 1
    assert value(m, "madoguchi_ocr_seconds_count") == 5
    assert value(m, "madoguchi_ocr_seconds_sum") == pytest.approx(1.5 + 0.25 + 1.5 + 3.0 + 0.5)
    assert value(m, "madoguchi_fax_tickets_total") == 4
    assert value(m, "madoguchi_fax_tickets_triaged_total") == 2
    assert value(m, "madoguchi_triage_queue", kind="fax") == 2
    assert value(m, "madoguchi_triage_queue", kind="mail") == 0
    assert value(m, "madoguchi_tickets_open") == 6
    assert value(m, "madoguchi_tickets_awaiting_first_response") == 6
    assert value(m, "madoguchi_tickets_overdue") == 1
    assert value(m, "madoguchi_outbox_backlog", status="pending") == 2  # the mails' acks
    assert value(m, "madoguchi_outbox_backlog", status="failed") == 0


def test_metrics_of_real_faxes_read_by_tesseract(database_url: str, tmp_path: Path) -> None:
    from tests.conftest import make_settings

    settings = make_settings(database_url, tmp_path)
    desk = Desk.open(settings)
    try:
        register_customer(desk)
        readable = send_fax(form_pdf(NUMBER), tmp_path / "form.tif")
        letter = letter_pdf(["お問い合わせ", "ライセンスキーの再発行をお願いします。"])
        unreadable = send_fax(letter, tmp_path / "letter.tif", resolution="standard")
        faxes = [desk.pipeline.ingest(Inbound(p.read_bytes(), "fax", p.name, kind="fax"))
                 for p in (readable, unreadable)]
        assert all(f.kind is OutcomeKind.CREATED for f in faxes)
        with desk.factory() as session:
            seconds = [float(s) for s in session.scalars(
                select(Message.fax_reading["ocr_seconds"].as_float())
                .where(Message.channel == Channel.FAX)
            )]
        assert len(seconds) == 2 and all(s > 0 for s in seconds)

        client = TestClient(web_app(settings, desk, tmp_path), client=("127.0.0.1", 40000))
        m = parse(client.get("/metrics").text)
        assert value(m, "madoguchi_messages_ingested_total", channel="fax") == 2
        assert value(m, "madoguchi_ocr_seconds_count") == 2
        assert value(m, "madoguchi_ocr_seconds_sum") == pytest.approx(sum(seconds))
        assert value(m, "madoguchi_fax_tickets_total") == 2
        assert value(m, "madoguchi_fax_tickets_triaged_total") == 1
        assert value(m, "madoguchi_triage_queue", kind="fax") == 1

        # Staff give the unreadable FAX its number: it leaves the triage queue,
        # and still counts among the FAXes that went to triage.
        with transaction(desk.factory) as session:
            fax = ticket_by_number(session, faxes[1].ticket_number or "", follow_merges=True)
            assert fax is not None
            assign_fax_number(session, fax, read_support_number(NUMBER, settings), None,
                              settings, desk.deadlines, datetime.now(UTC))
        m = parse(client.get("/metrics").text)
        assert value(m, "madoguchi_triage_queue", kind="fax") == 0
        assert value(m, "madoguchi_fax_tickets_triaged_total") == 1
    finally:
        desk.close()


def test_metrics_without_a_token_are_served_to_loopback_only(
    sqlite_url: str, tmp_path: Path
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    try:
        app = web_app(settings, desk, tmp_path)
        for client, status in ((("203.0.113.7", 40000), 403), (("testclient", 50000), 403),
                               (("::1", 40000), 200), (("::ffff:127.0.0.1", 40000), 200)):
            r = TestClient(app, client=client).get("/metrics")
            assert r.status_code == status, client
            assert ("madoguchi_tickets_open 0" in r.text) == (status == 200)
        # Over real HTTP from this machine.
        server = WebServer(settings, desk=desk, web=WebSettings(
            secret_key_file=tmp_path / "web-secret"), host="127.0.0.1", port=0).start()
        try:
            with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
                assert r.status == 200
                assert "madoguchi_outbox_backlog{status=\"pending\"} 0" in r.read().decode()
        finally:
            server.stop()
    finally:
        desk.close()


def test_metrics_with_a_token_want_it_from_everyone(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    try:
        token_file = tmp_path / "metrics-token"
        token_file.write_text(f"{TOKEN}\n")
        app = web_app(settings, desk, tmp_path, metrics_token_file=token_file)
        loopback = TestClient(app, client=("127.0.0.1", 40000))
        remote = TestClient(app, client=("203.0.113.7", 40000))
        assert loopback.get("/metrics").status_code == 401  # a token is set: loopback too
        r = remote.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert remote.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
        r = remote.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        assert r.status_code == 200 and "madoguchi_tickets_overdue 0" in r.text
        # A rotated token takes effect at once; the old one is refused.
        token_file.write_text("the-next-token-9876543210\n")
        assert remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                          ).status_code == 401
        assert remote.get("/metrics", headers={
            "Authorization": "Bearer the-next-token-9876543210"}).status_code == 200
        # A token that is configured but missing closes /metrics, never opens it.
        token_file.unlink()
        assert loopback.get("/metrics").status_code == 503
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        unset = TestClient(web_app(settings, desk, tmp_path, metrics_token_env=TOKEN_ENV),
                           client=("127.0.0.1", 40000))
        assert unset.get("/metrics").status_code == 503
    finally:
        desk.close()


def test_exposition_escapes_label_values_and_help_text() -> None:
    text = exposition([
        Family("madoguchi_source_files_waiting", "gauge", "Files\nwaiting \\ here.")
        .add(3, source='fax "main"\\spool\n2'),
        Family("madoguchi_ocr_seconds", "summary", "Seconds.").add(1.25, "_sum").add(2, "_count"),
    ])
    assert text == (
        "# HELP madoguchi_source_files_waiting Files\\nwaiting \\\\ here.\n"
        "# TYPE madoguchi_source_files_waiting gauge\n"
        'madoguchi_source_files_waiting{source="fax \\"main\\"\\\\spool\\n2"} 3\n'
        "# HELP madoguchi_ocr_seconds Seconds.\n"
        "# TYPE madoguchi_ocr_seconds summary\n"
        "madoguchi_ocr_seconds_sum 1.25\n"
        "madoguchi_ocr_seconds_count 2\n"
    )
    samples = parse(text)
    assert value(samples, "madoguchi_source_files_waiting", source='fax "main"\\spool\n2') == 3


def test_metrics_show_what_each_source_has_not_finished(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(
        None, database_url=sqlite_url, storage_dir=tmp_path / "storage",
        sources=[{"name": "fax", "kind": "fax_spool", "path": str(tmp_path / "spool")},
                 {"name": "mailbox", "kind": "imap", "host": "127.0.0.1",
                  "username": "support", "password_env": "UNUSED_IN_METRICS"}],
    )
    (tmp_path / "spool").mkdir()
    for name in ("1.tif", "2.pdf", "3.pdf.part"):
        (tmp_path / "spool" / name).write_bytes(b"II*\x00")
    desk = Desk.open(settings)
    try:
        with transaction(desk.factory) as session:
            session.add_all([PendingMark(source="mailbox", folder="INBOX", uidvalidity=3, uid=u)
                             for u in (8, 9, 10)])
        client = TestClient(web_app(settings, desk, tmp_path), client=("127.0.0.1", 40000))
        m = parse(client.get("/metrics").text)
    finally:
        desk.close()
    assert value(m, "madoguchi_source_files_waiting", source="fax") == 2
    assert value(m, "madoguchi_imap_marks_owed", source="mailbox") == 3
    assert ("madoguchi_source_files_waiting", frozenset({("source", "mailbox")})) not in m


def test_a_web_desk_given_no_collector_serves_no_metrics(sqlite_url: str, tmp_path: Path) -> None:
    from madoguchi.ticketing.storage import Storage
    from madoguchi.web.app import create_app
    from tests.conftest import make_settings

    storage = Storage.open(make_settings(sqlite_url, tmp_path))
    try:
        app = create_app(storage, web=WebSettings(secret_key_file=tmp_path / "web-secret"))
        response = TestClient(app, client=("127.0.0.1", 40000)).get("/metrics")
        assert response.status_code == 404
    finally:
        storage.close()
