"""The spine end to end: raw mail → parsed → threaded tickets, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Message, QuarantineEntry, RawMessage, Ticket, TicketStatus
from madoguchi.ticketing.views import ticket_by_number
from tests.conftest import make_settings
from tests.postgres import PostgresDatabases

DEMO = Path(__file__).resolve().parent.parent / "demo"
DESK = "support@example.co.jp"


def jis(text: str) -> str:
    return "=?ISO-2022-JP?B?" + base64.b64encode(text.encode("iso2022_jp_ext")).decode() + "?="


def mail(
    *,
    sender: str = "yamada@sakura-shoji.example.jp",
    subject: str = "ログインできません",
    body: str = "サポートサービス番号: 2031-0001-0008\nログインできません。",
    message_id: str | None = "m1@sakura-shoji.example.jp",
    date: str = "Tue, 24 Nov 2026 10:00:00 +0900",
    received: str | None = None,
    cc: str | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    headers = []
    if received:
        headers.append(f"Received: from mx by desk; {received}")
    headers += [f"From: {sender}", f"To: {DESK}", f"Subject: {jis(subject)}", f"Date: {date}"]
    if cc:
        headers.append(f"Cc: {cc}")
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    headers += [f"{k}: {v}" for k, v in (extra or {}).items()]
    headers += [
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="ISO-2022-JP"',
        "Content-Transfer-Encoding: 7bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body.replace("\n", "\r\n").encode(
        "iso2022_jp_ext"
    )


def register_demo_customers(desk: Desk) -> Desk:
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     desk.settings.support_number)
    with transaction(desk.factory) as session:
        import_rows(session, rows)
    return desk


@pytest.fixture
def registered(desk: Desk) -> Desk:
    return register_demo_customers(desk)


def ingest(desk: Desk, raw: bytes, received_at: datetime | None = None, ref: str = "t"):
    return desk.pipeline.ingest(Inbound(raw, "test", ref, received_at=received_at))


def ticket(desk: Desk, number: str) -> Ticket:
    with desk.factory() as s:
        t = ticket_by_number(s, number)
        assert t is not None
        return t


def test_mail_from_registered_contact_opens_a_clean_ticket(registered: Desk) -> None:
    out = ingest(registered, mail())
    assert out.kind is OutcomeKind.CREATED
    t = ticket(registered, out.ticket_number or "")
    assert t.number == "T-2026-000001"
    assert t.support_number == "203100010008"
    assert t.customer is not None and t.customer.company == "株式会社さくら商事"
    assert t.contract is not None and t.contact is not None
    assert t.flag_names == []
    assert t.status is TicketStatus.OPEN
    assert t.subject == "ログインできません"
    assert "ログインできません。" in t.messages[0].text


def test_raw_bytes_are_kept_unaltered(registered: Desk) -> None:
    raw = mail()
    ingest(registered, raw)
    with registered.factory() as s:
        kept = s.scalars(select(RawMessage)).one()
    assert registered.blobs.get(kept.sha256) == raw


def test_reply_with_in_reply_to_joins_the_ticket(registered: Desk) -> None:
    first = ingest(registered, mail())
    reply = mail(
        sender="takahashi@sakura-shoji.example.jp",
        subject="Re: ログインできません",
        body="追加情報です。",
        message_id="m2@sakura-shoji.example.jp",
        extra={"In-Reply-To": "<m1@sakura-shoji.example.jp>"},
    )
    out = ingest(registered, reply)
    assert (out.kind, out.ticket_number) == (OutcomeKind.THREADED, first.ticket_number)
    assert len(ticket(registered, first.ticket_number or "").messages) == 2


def test_reply_naming_only_an_old_reference_joins(registered: Desk) -> None:
    first = ingest(registered, mail())
    out = ingest(registered, mail(
        sender="someone-cced@partner.example.jp", message_id="m3@p.example.jp", body="x",
        extra={"References": "<unknown@x> <m1@sakura-shoji.example.jp>"},
    ))
    assert out.ticket_number == first.ticket_number


def test_reply_by_subject_tag_from_a_contact_joins(registered: Desk) -> None:
    first = ingest(registered, mail())
    out = ingest(registered, mail(
        subject=f"RE: [{first.ticket_number}] ログインできません", body="続報です。",
        message_id="m4@sakura-shoji.example.jp",
    ))
    assert (out.kind, out.ticket_number) == (OutcomeKind.THREADED, first.ticket_number)


def test_body_quoting_the_inquiry_number_from_a_colleague_joins(registered: Desk) -> None:
    first = ingest(registered, mail())
    out = ingest(registered, mail(
        sender="Takahashi@Sakura-Shoji.example.jp", subject="先日の件",
        body=f"お問い合わせ番号：{first.ticket_number}\nその後いかがでしょうか。",
        message_id="m5@sakura-shoji.example.jp",
    ))
    assert out.ticket_number == first.ticket_number


def test_stranger_quoting_a_ticket_gets_a_new_linked_flagged_ticket(registered: Desk) -> None:
    first = ingest(registered, mail())
    out = ingest(registered, mail(
        sender="info@unknown.example.net", subject=f"[{first.ticket_number}] 進捗",
        body="進捗を教えてください。", message_id="s1@unknown.example.net",
    ))
    assert out.kind is OutcomeKind.CREATED and out.ticket_number != first.ticket_number
    t = ticket(registered, out.ticket_number or "")
    assert "unregistered_sender" in t.flag_names
    assert t.linked_ticket is not None and t.linked_ticket.number == first.ticket_number
    assert len(ticket(registered, first.ticket_number or "").messages) == 1


def _close(desk: Desk, number: str, when: datetime) -> None:
    with transaction(desk.factory) as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        t.status, t.closed_at = TicketStatus.CLOSED, when


def test_follow_up_to_a_recently_closed_ticket_reopens_it(registered: Desk) -> None:
    first = ingest(registered, mail())
    _close(registered, first.ticket_number or "", datetime(2026, 11, 25, tzinfo=UTC))
    out = ingest(registered, mail(
        body="再発しました。", message_id="m6@sakura-shoji.example.jp",
        extra={"In-Reply-To": "<m1@sakura-shoji.example.jp>"},
    ), received_at=datetime(2026, 11, 30, tzinfo=UTC))
    assert out.ticket_number == first.ticket_number
    assert ticket(registered, first.ticket_number or "").status is TicketStatus.OPEN


def test_follow_up_to_a_long_closed_ticket_opens_a_linked_one(registered: Desk) -> None:
    first = ingest(registered, mail())
    _close(registered, first.ticket_number or "", datetime(2026, 11, 25, tzinfo=UTC))
    out = ingest(registered, mail(
        body="また質問です。", message_id="m7@sakura-shoji.example.jp",
        extra={"In-Reply-To": "<m1@sakura-shoji.example.jp>"},
    ), received_at=datetime(2027, 1, 20, tzinfo=UTC))
    assert out.kind is OutcomeKind.CREATED
    t = ticket(registered, out.ticket_number or "")
    assert t.number.startswith("T-2027-")
    assert t.linked_ticket is not None and t.linked_ticket.number == first.ticket_number
    assert ticket(registered, first.ticket_number or "").status is TicketStatus.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "flags"),
    [
        ({"sender": "stranger@freemail.example.com"}, ["unregistered_sender"]),
        ({"sender": "stranger@freemail.example.com", "body": "番号なしの質問です。"},
         ["unknown_support_number", "unregistered_sender"]),
        ({"sender": "suzuki@hikari-soft.example.jp",
          "body": "サポートサービス番号 2031-0003-0006\n質問です。"}, ["contract_expired"]),
        ({"body": "サポートサービス番号 2031-0001-0009\n番号を打ち間違えました。"}, []),
        ({"body": "サポートサービス番号 2031-0004-0005\n存在しない番号です。"},
         ["unknown_support_number"]),
    ],
)
def test_flags_are_set_and_the_ticket_is_still_created(
    registered: Desk, kwargs: dict[str, str], flags: list[str]
) -> None:
    out = ingest(registered, mail(**kwargs))
    assert out.kind is OutcomeKind.CREATED
    assert ticket(registered, out.ticket_number or "").flag_names == flags


def test_contact_without_number_gets_their_contract(registered: Desk) -> None:
    out = ingest(
        registered, mail(sender="sato@minato-ss.example.jp", body="番号を書き忘れました。")
    )
    t = ticket(registered, out.ticket_number or "")
    assert t.contract is not None and t.contract.support_number == "203100020007"
    assert t.flag_names == []


def test_same_message_twice_is_stored_once(registered: Desk) -> None:
    assert ingest(registered, mail()).kind is OutcomeKind.CREATED
    assert ingest(registered, mail()).kind is OutcomeKind.DUPLICATE
    # A second copy through another route has other Received: lines.
    again = mail(received="Tue, 24 Nov 2026 10:00:05 +0900")
    assert ingest(registered, again).kind is OutcomeKind.DUPLICATE


def test_message_without_message_id_is_still_idempotent(registered: Desk) -> None:
    raw = mail(message_id=None)
    assert ingest(registered, raw).kind is OutcomeKind.CREATED
    assert ingest(registered, raw).kind is OutcomeKind.DUPLICATE
    other = mail(message_id=None, body="別の質問です。")
    assert ingest(registered, other).kind is OutcomeKind.CREATED


def test_auto_reply_naming_no_ticket_opens_nothing_and_is_kept(registered: Desk) -> None:
    out = ingest(registered, mail(extra={"Auto-Submitted": "auto-replied"}, subject="不在通知"))
    assert out.kind is OutcomeKind.QUARANTINED
    with registered.factory() as s:
        assert s.scalar(select(Ticket.id)) is None
        entry = s.scalars(select(QuarantineEntry)).one()
        assert entry.reason_code == "auto_reply"


def test_auto_reply_to_a_ticket_joins_it_without_reopening(registered: Desk) -> None:
    first = ingest(registered, mail())
    _close(registered, first.ticket_number or "", datetime(2026, 11, 25, tzinfo=UTC))
    out = ingest(registered, mail(
        subject="不在通知", body="不在です。", message_id="auto1@sakura-shoji.example.jp",
        extra={"Auto-Submitted": "auto-replied", "In-Reply-To": "<m1@sakura-shoji.example.jp>"},
    ), received_at=datetime(2026, 11, 26, tzinfo=UTC))
    assert out.kind is OutcomeKind.THREADED
    t = ticket(registered, first.ticket_number or "")
    assert t.status is TicketStatus.CLOSED
    assert t.messages[-1].auto_kind == "auto_reply"


def test_bulk_mail_never_opens_a_ticket(registered: Desk) -> None:
    out = ingest(registered, mail(extra={"Precedence": "bulk", "List-Id": "<news.example>"}))
    assert out.kind is OutcomeKind.QUARANTINED and "bulk" in (out.reason or "")


def test_received_at_prefers_source_then_received_header_then_date(registered: Desk) -> None:
    given = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
    a = ingest(registered, mail(message_id="a@x"), received_at=given)
    b = ingest(registered, mail(message_id="b@x", received="Tue, 24 Nov 2026 11:30:00 +0900"))
    c = ingest(registered, mail(message_id="c@x", date="Tue, 24 Nov 2026 12:00:00 +0900"))
    assert ticket(registered, a.ticket_number or "").received_at == given
    assert ticket(registered, b.ticket_number or "").received_at == datetime(
        2026, 11, 24, 2, 30, tzinfo=UTC)
    assert ticket(registered, c.ticket_number or "").received_at == datetime(
        2026, 11, 24, 3, 0, tzinfo=UTC)


def test_garbage_is_quarantined_with_its_reason_and_the_batch_goes_on(registered: Desk) -> None:
    garbage = b"\x00\x01\x02 not a mail \xff" * 10
    outs = registered.pipeline.ingest_batch([
        Inbound(garbage, "test", "g"), Inbound(mail(), "test", "m"),
    ])
    assert [o.kind for o in outs] == [OutcomeKind.QUARANTINED, OutcomeKind.CREATED]
    with registered.factory() as s:
        entry = s.scalars(select(QuarantineEntry)).one()
    assert entry.reason and registered.blobs.get(entry.sha256) == garbage
    # The same garbage again is not quarantined twice.
    assert ingest(registered, garbage).kind is OutcomeKind.DUPLICATE


def test_message_over_the_size_limit_is_quarantined(registered: Desk) -> None:
    registered.settings.limits.max_message_bytes = 2000
    out = ingest(registered, mail(body="大きな本文\n" * 400))
    assert out.kind is OutcomeKind.QUARANTINED and "too_large" in (out.reason or "")


def test_ticket_numbers_count_up_per_year(registered: Desk) -> None:
    numbers = [
        ingest(registered, mail(message_id=f"n{i}@x", body=f"質問{i}")).ticket_number
        for i in range(3)
    ]
    assert numbers == ["T-2026-000001", "T-2026-000002", "T-2026-000003"]


@pytest.mark.postgres
def test_on_postgresql_a_batch_does_not_hold_the_ticket_counter_until_it_commits(
    postgres_databases: PostgresDatabases, tmp_path: Path,
) -> None:
    # Two daemons on one database: the second opens a ticket while the first
    # batch's transaction is still open, numbered, and not committed. Were the
    # counter row locked until that commit, the second would wait for the
    # first, which waits for it here: the join would time out. (On SQLite one
    # writer waits for the other whatever the counter does.)
    registered = register_demo_customers(
        Desk.open(make_settings(postgres_databases.new(), tmp_path)))
    other = Desk.open(registered.settings)
    second: list[str | None] = []

    def meanwhile(_session: object) -> None:
        worker = threading.Thread(target=lambda: second.append(
            ingest(other, mail(message_id="b@x", body="二通目")).ticket_number))
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the second daemon waited for the first batch"

    try:
        first = registered.pipeline.ingest_batch(
            [Inbound(mail(message_id="a@x", body="一通目"), "t", "1")], in_transaction=meanwhile)
    finally:
        other.close()
        registered.close()
    assert first[0].ticket_number == "T-2026-000001"
    assert second == ["T-2026-000002"]


def test_in_one_batch_a_reply_after_its_original_threads(registered: Desk) -> None:
    reply = mail(
        body="追伸", message_id="m2@x", extra={"In-Reply-To": "<m1@sakura-shoji.example.jp>"}
    )
    outs = registered.pipeline.ingest_batch([Inbound(mail(), "t", "1"), Inbound(reply, "t", "2")])
    assert outs[1].kind is OutcomeKind.THREADED
    assert outs[0].ticket_number == outs[1].ticket_number
    with registered.factory() as s:
        assert len(s.scalars(select(Message)).all()) == 2


def test_new_ticket_gets_its_first_response_due_on_the_business_calendar(
    registered: Desk,
) -> None:
    # Monday 2026-11-23 is 勤労感謝の日: due at the close of Tuesday.
    out = ingest(registered, mail(), received_at=datetime(2026, 11, 23, 1, 15, tzinfo=UTC))
    t = ticket(registered, out.ticket_number or "")
    tz = registered.settings.tz
    assert t.work_starts_at is not None and t.first_response_due is not None
    assert t.work_starts_at.astimezone(tz).isoformat() == "2026-11-24T09:30:00+09:00"
    assert t.first_response_due.astimezone(tz).isoformat() == "2026-11-24T17:30:00+09:00"


def test_contract_sla_override_wins_over_the_default(registered: Desk) -> None:
    from madoguchi.ticketing.models import Contract

    with transaction(registered.factory) as s:
        contract = s.scalars(
            select(Contract).where(Contract.support_number == "203100010008")
        ).one()
        contract.sla_override = {"policy": "business_hours", "hours": 4}
    # Tuesday 16:00 JST + 4 business hours: 1.5 h on Tuesday, 2.5 h from 9:30 Wednesday.
    out = ingest(registered, mail(), received_at=datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    t = ticket(registered, out.ticket_number or "")
    assert t.first_response_due is not None
    due = t.first_response_due.astimezone(registered.settings.tz)
    assert due.isoformat() == "2026-11-25T12:00:00+09:00"


def _outbox(desk: Desk) -> list[tuple[str, str, list[str]]]:
    from madoguchi.ticketing.models import OutboxMessage

    with desk.factory() as s:
        return [(o.kind, o.dedupe_key, o.rcpt_to) for o in s.scalars(select(OutboxMessage))]


def test_new_ticket_queues_one_acknowledgement_in_its_transaction(registered: Desk) -> None:
    out = ingest(registered, mail())
    assert _outbox(registered) == [
        ("ack", f"ack:{out.ticket_number}", ["yamada@sakura-shoji.example.jp"])
    ]
    # A follow-up and a re-read of the same mail queue nothing more.
    ingest(registered, mail(body="追伸", message_id="m2@x",
                            extra={"In-Reply-To": "<m1@sakura-shoji.example.jp>"}))
    ingest(registered, mail())
    assert len(_outbox(registered)) == 1


def test_no_acknowledgement_for_auto_replies_or_unregistered_senders(registered: Desk) -> None:
    ingest(registered, mail(extra={"Auto-Submitted": "auto-replied"}))
    ingest(registered, mail(sender="stranger@freemail.example.com", message_id="s@x"))
    assert _outbox(registered) == []


def test_an_internal_error_in_one_message_quarantines_it_and_keeps_the_batch(
    registered: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: no real input makes a rule raise, which is the point.
    from madoguchi.ingest.steps import autoreply

    real = autoreply.classify_auto

    def explode_on_bad(msg, desk):  # type: ignore[no-untyped-def]
        if msg.subject == "爆発":
            raise RuntimeError("rule failed")
        return real(msg, desk)

    monkeypatch.setattr(autoreply, "classify_auto", explode_on_bad)
    items = [
        Inbound(mail(message_id="a@x", body="一通目"), "t", "1"),
        Inbound(mail(message_id="b@x", subject="爆発", body="二通目"), "t", "2"),
        Inbound(mail(message_id="c@x", body="三通目"), "t", "3"),
    ]
    outs = registered.pipeline.ingest_batch(items)
    assert [o.kind for o in outs] == [
        OutcomeKind.CREATED, OutcomeKind.QUARANTINED, OutcomeKind.CREATED
    ]
    assert "internal_error" in (outs[1].reason or "")
    assert [o.ticket_number for o in outs if o.ticket_number] == ["T-2026-000001", "T-2026-000002"]


def _ack_message_id(desk: Desk) -> str:
    from madoguchi.ticketing.models import OutboxMessage

    with desk.factory() as s:
        return s.scalars(select(OutboxMessage.message_id)).one().strip("<>")


def test_reply_to_the_acknowledgement_joins_by_its_message_id(registered: Desk) -> None:
    first = ingest(registered, mail())
    ack_id = _ack_message_id(registered)
    out = ingest(registered, mail(
        sender="takahashi@sakura-shoji.example.jp", subject="Re: 受付のお知らせ",
        body="追加です。", message_id="r1@x", extra={"In-Reply-To": f"<{ack_id}>"},
    ))
    assert (out.kind, out.ticket_number) == (OutcomeKind.THREADED, first.ticket_number)


def test_bounce_of_the_acknowledgement_is_attached_to_its_ticket(registered: Desk) -> None:
    from tests.mailfactory import make_bounce

    first = ingest(registered, mail())
    ack_id = _ack_message_id(registered)
    original = (
        f"From: support@example.co.jp\r\nTo: yamada@sakura-shoji.example.jp\r\n"
        f"Subject: ack\r\nMessage-ID: <{ack_id}>\r\n\r\nbody\r\n"
    ).encode()
    out = ingest(registered, make_bounce(original))
    assert (out.kind, out.ticket_number) == (OutcomeKind.THREADED, first.ticket_number)
    t = ticket(registered, first.ticket_number or "")
    assert sorted(str(m.auto_kind) for m in t.messages) == ["None", "bounce"]


def test_forged_from_of_a_registered_contact_is_flagged_not_trusted(registered: Desk) -> None:
    registered.settings.trusted_authserv_ids = ["mx.example.co.jp"]
    out = ingest(registered, mail(extra={
        "Authentication-Results": "mx.example.co.jp; dmarc=fail header.from=sakura-shoji.example.jp"
    }))
    t = ticket(registered, out.ticket_number or "")
    assert "unregistered_sender" in t.flag_names and t.contact is None
    assert _outbox(registered) == []  # and no acknowledgement to the forger's address


# --- the batch's own writes: rows written at its end, reads done per chunk ------------


def _quiet_pipeline(desk: Desk):  # type: ignore[no-untyped-def]
    """The desk's pipeline, preparing in-process (no worker pool for a test batch)."""
    from madoguchi.ingest.pipeline import Pipeline

    return Pipeline(desk.settings, desk.factory, desk.blobs, parse_workers=0)


def test_in_one_batch_a_stranger_quoting_its_new_ticket_is_linked_to_it(
    registered: Desk,
) -> None:
    stranger = mail(
        sender="info@unknown.example.net", subject="[T-2026-000001] 進捗",
        body="進捗を教えてください。", message_id="s1@unknown.example.net",
    )
    outs = _quiet_pipeline(registered).ingest_batch(
        [Inbound(mail(), "t", "1"), Inbound(stranger, "t", "2")]
    )
    assert [(o.kind, o.ticket_number) for o in outs] == [
        (OutcomeKind.CREATED, "T-2026-000001"), (OutcomeKind.CREATED, "T-2026-000002"),
    ]
    t = ticket(registered, "T-2026-000002")
    assert t.flag_names == ["unknown_support_number", "unregistered_sender"]
    assert t.linked_ticket is not None and t.linked_ticket.number == "T-2026-000001"


def test_a_batch_is_stored_in_its_order_with_its_attachments(registered: Desk) -> None:
    from tests.mailfactory import make_mail

    raws = [
        make_mail(
            subject=f"質問{i}", body=f"サポートサービス番号: 2031-0001-0008\n質問{i}です。",
            from_=("山田 太郎", "yamada@sakura-shoji.example.jp"), message_id=f"o{i}@x",
            date=datetime(2026, 11, 24, 1, i, tzinfo=UTC),
            attachments=[(f"log{i}-{k}.txt", "text/plain", f"ログ{i}-{k}".encode())
                         for k in range(i % 3)],
        )
        for i in range(6)
    ]
    outs = _quiet_pipeline(registered).ingest_batch(
        [Inbound(raw, "t", f"ref-{i}") for i, raw in enumerate(raws)]
    )
    assert [o.ticket_number for o in outs] == [f"T-2026-00000{i}" for i in range(1, 7)]
    with registered.factory() as s:
        messages = s.scalars(select(Message).order_by(Message.id)).all()
        assert [m.message_id for m in messages] == [f"o{i}@x" for i in range(6)]
        assert [m.ticket.number for m in messages] == [o.ticket_number for o in outs]
        assert [m.raw.source_ref for m in messages if m.raw] == [f"ref-{i}" for i in range(6)]
        for i, m in enumerate(messages):
            assert m.raw is not None and registered.blobs.get(m.raw.sha256) == raws[i]
            assert [a.original_filename for a in m.attachments] == [
                f"log{i}-{k}.txt" for k in range(i % 3)
            ]
            for k, a in enumerate(m.attachments):
                assert registered.blobs.get(a.sha256) == f"ログ{i}-{k}".encode()
        tickets = s.scalars(select(Ticket).order_by(Ticket.id)).all()
        assert [t.number for t in tickets] == [o.ticket_number for o in outs]


def test_replies_in_a_later_batch_thread_without_a_query_per_message(
    registered: Desk,
) -> None:
    from sqlalchemy import event

    pipeline = _quiet_pipeline(registered)
    originals = [
        Inbound(mail(message_id=f"q{i}@x", body=f"サポートサービス番号: 2031-0001-0008\n質問{i}"),
                "t", f"q{i}")
        for i in range(30)
    ]
    first = pipeline.ingest_batch(originals)
    replies = [
        Inbound(mail(sender="takahashi@sakura-shoji.example.jp", message_id=f"r{i}@x",
                     subject="Re: 質問", body=f"追加{i}",
                     extra={"In-Reply-To": f"<q{i}@x>", "References": f"<q{i}@x>"}),
                "t", f"r{i}")
        for i in range(30)
    ]
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(registered.engine, "before_cursor_execute", count)
    try:
        outs = pipeline.ingest_batch(replies)
    finally:
        event.remove(registered.engine, "before_cursor_execute", count)
    assert [(o.kind, o.ticket_number) for o in outs] == [
        (OutcomeKind.THREADED, o.ticket_number) for o in first
    ]
    # Dedupe keys, the referenced messages, their tickets and participants,
    # the customer's contacts, then one INSERT per table: not a query per reply.
    assert len(statements) <= 10, statements


def test_a_message_whose_rows_fail_to_write_is_quarantined_and_the_rest_stored(
    registered: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection at the database write, after the rules have run: the
    # careful pass writes each message in its own savepoint, so the failing
    # one's ticket is rolled back with it and its number handed on.
    from madoguchi.ticketing import store

    real = store.insert_rows

    def fail_on_bad(session, table, rows, *, key=None):  # type: ignore[no-untyped-def]
        if table.name == "messages" and any(r["subject"] == "爆発" for r in rows):
            raise RuntimeError("the database refused the row")
        return real(session, table, rows, key=key)

    monkeypatch.setattr(store, "insert_rows", fail_on_bad)
    items = [
        Inbound(mail(message_id="a@x", body="一通目"), "t", "1"),
        Inbound(mail(message_id="b@x", subject="爆発", body="二通目"), "t", "2"),
        Inbound(mail(message_id="c@x", body="三通目",
                     extra={"In-Reply-To": "<a@x>"}), "t", "3"),
        Inbound(mail(message_id="d@x", body="四通目"), "t", "4"),
    ]
    outs = _quiet_pipeline(registered).ingest_batch(items)
    assert [(o.kind, o.ticket_number) for o in outs] == [
        (OutcomeKind.CREATED, "T-2026-000001"),
        (OutcomeKind.QUARANTINED, None),
        (OutcomeKind.THREADED, "T-2026-000001"),
        (OutcomeKind.CREATED, "T-2026-000002"),
    ]
    assert "internal_error" in (outs[1].reason or "")
    with registered.factory() as s:
        assert sorted(s.scalars(select(Ticket.number))) == ["T-2026-000001", "T-2026-000002"]
        assert sorted(s.scalars(select(Message.message_id))) == ["a@x", "c@x", "d@x"]
        assert len(s.scalars(select(RawMessage)).all()) == 3
        assert [q.reason_code for q in s.scalars(select(QuarantineEntry))] == ["internal_error"]
    assert [k for k, _key, _to in _outbox(registered)] == ["ack", "ack"]


def test_one_batch_acknowledges_a_sender_no_more_often_than_the_hourly_limit(
    registered: Desk,
) -> None:
    from madoguchi.ticketing.models import OutboxMessage

    registered.settings.acknowledgement.max_per_sender_per_hour = 2
    outs = registered.pipeline.ingest_batch([
        Inbound(mail(message_id=f"lim{i}@x", subject=f"質問{i}", body=f"質問{i}"), "t", str(i))
        for i in range(4)
    ])
    assert [o.kind for o in outs] == [OutcomeKind.CREATED] * 4
    with registered.factory() as s:
        acked = s.scalars(select(OutboxMessage.dedupe_key).order_by(OutboxMessage.id)).all()
    assert acked == ["ack:T-2026-000001", "ack:T-2026-000002"]


@pytest.mark.parametrize("workers", [1, 3])
def test_the_daemon_starts_as_many_parse_workers_as_configured(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int,
) -> None:
    import multiprocessing

    # Several daemons on one host share its cores: each is given its share.
    monkeypatch.setenv("MADOGUCHI_LIMITS__PARSE_WORKERS", str(workers))
    desk = Desk.open(make_settings(sqlite_url, tmp_path))
    before = set(multiprocessing.active_children())
    try:
        desk.pipeline.start_workers()
        assert len(set(multiprocessing.active_children()) - before) == workers
    finally:
        desk.close()
