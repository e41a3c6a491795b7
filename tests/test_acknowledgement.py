"""The acknowledgement: when it is sent, what it says, how it is encoded and queued."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as DEFAULT_POLICY
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import ConfigError, Settings, load_settings
from madoguchi.config.mail import FLAG_NAMES
from madoguchi.ticketing.acknowledgement import (
    acknowledge_new_ticket,
    acknowledgement_due,
    build_acknowledgement,
    check_template,
    format_due_ja,
    should_acknowledge,
)
from madoguchi.ticketing.db import make_engine, session_factory
from madoguchi.ticketing.models import (
    Channel,
    Customer,
    Direction,
    Flag,
    Message,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketFlag,
    TicketStatus,
)
from madoguchi.ticketing.outbox import OutboxSender
from madoguchi.ticketing.products import Products

if TYPE_CHECKING:
    from tests.smtp_server import SmtpTestServer


TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 24, 22, 15, tzinfo=TOKYO)  # a Tuesday evening, after hours
WORK_STARTS = datetime(2026, 11, 25, 9, 0, tzinfo=TOKYO)
DUE = datetime(2026, 11, 25, 17, 30, tzinfo=TOKYO)
CUSTOMER = "yamada@sakura.example.jp"
DESK = "support@example.co.jp"


def make_settings(tmp_path: Path, database_url: str = "sqlite://", **overrides: object) -> Settings:
    return load_settings(None, database_url=database_url, storage_dir=tmp_path / "storage",
                         sources=[], **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def ticket(number: str = "T-2026-000123", *, flags: tuple[Flag, ...] = (),
           company: str | None = None) -> Ticket:
    t = Ticket(number=number, status=TicketStatus.OPEN, channel=Channel.EMAIL,
               subject="ログインできません", received_at=NOW.astimezone(UTC),
               work_starts_at=WORK_STARTS, first_response_due=DUE)
    t.flags = [TicketFlag(flag=f) for f in flags]
    if company:
        t.customer = Customer(company=company)
    return t


def inbound(*, sender: str = CUSTOMER, sender_name: str = "山田 太郎",
            subject: str = "ログインできません", message_id: str | None = "q1@sakura.example.jp",
            references: list[str] | None = None, auto_kind: str | None = None,
            channel: Channel = Channel.EMAIL) -> Message:
    return Message(direction=Direction.IN, channel=channel, message_id=message_id,
                   references=references or [], sender=sender, sender_name=sender_name,
                   subject=subject, received_at=NOW.astimezone(UTC), auto_kind=auto_kind)


def parsed(msg: EmailMessage) -> tuple[bytes, EmailMessage]:
    """The message as it goes on the wire, and read back by the stdlib parser."""
    raw = msg.as_bytes(policy=SMTP_POLICY)
    back = message_from_bytes(raw, policy=DEFAULT_POLICY)
    assert isinstance(back, EmailMessage)
    return raw, back


def body_of(msg: EmailMessage) -> str:
    return str(msg.get_content()).replace("\r\n", "\n")


# --- the due time in words -------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (datetime(2025, 11, 25, 8, 30, tzinfo=UTC), "11月25日(火) 17:30まで"),
        (datetime(2026, 11, 25, 8, 30, tzinfo=UTC), "11月25日(水) 17:30まで"),
        (datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO), "11月26日(木) 9:00まで"),
        (datetime(2026, 11, 27, 12, 0, tzinfo=TOKYO), "11月27日(金) 12:00まで"),
        (datetime(2026, 11, 28, 10, 5, tzinfo=TOKYO), "11月28日(土) 10:05まで"),
        (datetime(2026, 11, 29, 23, 59, tzinfo=TOKYO), "11月29日(日) 23:59まで"),
        # Midnight in Tokyo is still the day before in UTC.
        (datetime(2026, 11, 29, 15, 0, tzinfo=UTC), "11月30日(月) 0:00まで"),
        (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "4月1日(水) 8:30まで"),
        (datetime(2027, 1, 4, 17, 30, tzinfo=TOKYO), "1月4日(月) 17:30まで"),
    ],
)
def test_due_time_is_written_in_japanese_words_in_the_desks_zone(
    moment: datetime, words: str
) -> None:
    assert format_due_ja(moment, TOKYO) == words


# --- what the acknowledgement looks like -----------------------------------------------


def test_acknowledgement_reads_back_with_japanese_subject_names_and_body(
    settings: Settings,
) -> None:
    msg = build_acknowledgement(ticket(company="株式会社さくら商事"), inbound(), settings,
                                due_at=DUE, now=NOW)
    raw, back = parsed(msg)

    assert back["Subject"] == "[T-2026-000123] 受付のお知らせ: ログインできません"
    assert b"\r\nSubject: [T-2026-000123] =?utf-8?" in raw  # the tag stays readable
    assert back["From"].addresses[0].display_name == "サポートセンター"
    assert back["From"].addresses[0].addr_spec == DESK
    assert back["To"].addresses[0].display_name == "山田 太郎"
    assert back["To"].addresses[0].addr_spec == CUSTOMER
    assert back["Date"].datetime == NOW
    assert str(back["Date"]).endswith("+0900")

    body = body_of(back)
    for expected in [
        "株式会社さくら商事\n山田 太郎 様\n",
        "受付番号：T-2026-000123",
        "件名　　：ログインできません",
        "受付日時：11月24日(火) 22:15",
        "11月25日(水) 9:00より順次対応いたします。",
        "11月25日(水) 17:30までに一次回答をご連絡いたします。",
        "件名の「[T-2026-000123]」を消さずに",
        "サポートセンター\nE-mail: support@example.co.jp\n",
    ]:
        assert expected in body


def test_acknowledgement_threads_under_the_inquiry_and_says_it_is_automatic(
    settings: Settings,
) -> None:
    refs = ["root@sakura.example.jp", "<mid@sakura.example.jp>"]
    _raw, back = parsed(build_acknowledgement(
        ticket(), inbound(references=refs), settings, due_at=DUE, now=NOW))
    assert back["In-Reply-To"] == "<q1@sakura.example.jp>"
    # Folded when long: whitespace around the ids is not part of them.
    assert back["References"].split() == [
        "<root@sakura.example.jp>", "<mid@sakura.example.jp>", "<q1@sakura.example.jp>"
    ]
    assert back["Message-ID"].startswith("<T-2026-000123.ack.")
    assert back["Message-ID"].endswith("@example.co.jp>")
    assert back["Auto-Submitted"] == "auto-replied"
    assert back["X-Auto-Response-Suppress"] == "All"
    assert back["Precedence"] == "auto_reply"


def test_every_acknowledgement_has_its_own_message_id(settings: Settings) -> None:
    ids = {build_acknowledgement(ticket(), inbound(), settings, due_at=DUE, now=NOW)["Message-ID"]
           for _ in range(5)}
    assert len(ids) == 5


def test_acknowledgement_is_7bit_utf8_base64_with_short_lines(settings: Settings) -> None:
    raw, back = parsed(build_acknowledgement(ticket(), inbound(subject="①㈱髙～の件 " * 8),
                                             settings, due_at=DUE, now=NOW))
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert back.get_content_type() == "text/plain"
    assert back.get_content_charset() == "utf-8"
    assert back["Content-Transfer-Encoding"] == "base64"
    assert "①㈱髙～の件" in back["Subject"]
    assert "①㈱髙～の件" in body_of(back)


def test_line_breaks_in_what_the_customer_wrote_never_make_a_header(settings: Settings) -> None:
    evil = inbound(
        subject="至急\r\nBcc: victim@example.org\nX-Injected: 1",
        sender_name="山田\r\nBcc: victim2@example.org",
        references=["ok@sakura.example.jp", "bad>\r\nX-Ref-Injected: 1"],
        message_id="q1@sakura.example.jp\r\nX-Id-Injected: 1",
    )
    raw, back = parsed(build_acknowledgement(ticket(), evil, settings, due_at=DUE, now=NOW))
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    # A line that does not start with white space starts a header: only ours do.
    starts = {line.split(b":", 1)[0].decode() for line in head if line[:1] not in b" \t"}
    assert starts == {
        "From", "To", "Subject", "Date", "Message-ID", "References", "Auto-Submitted",
        "X-Auto-Response-Suppress", "Precedence", "X-Loop", "Content-Type",
        "Content-Transfer-Encoding", "MIME-Version",
    }
    assert {name.lower() for name in back} == {name.lower() for name in starts}
    assert back["Subject"] == (
        "[T-2026-000123] 受付のお知らせ: 至急 Bcc: victim@example.org X-Injected: 1"
    )
    assert back["References"] == "<ok@sakura.example.jp>"
    assert back["In-Reply-To"] is None
    assert [a.addr_spec for a in back["To"].addresses] == [CUSTOMER]


def test_work_start_is_mentioned_only_when_it_is_still_ahead(settings: Settings) -> None:
    during_hours = WORK_STARTS + timedelta(hours=1)
    _raw, back = parsed(build_acknowledgement(ticket(), inbound(), settings, due_at=DUE,
                                              now=during_hours))
    assert "順次対応いたします" not in body_of(back)


def test_without_a_due_time_the_acknowledgement_promises_no_date(settings: Settings) -> None:
    _raw, back = parsed(build_acknowledgement(ticket(), inbound(), settings, due_at=None,
                                              now=NOW))
    body = body_of(back)
    assert "追って一次回答をご連絡いたします" in body
    assert "まで" not in body


def test_empty_subject_and_name_still_make_a_polite_mail(settings: Settings) -> None:
    _raw, back = parsed(build_acknowledgement(ticket(), inbound(subject="", sender_name=""),
                                              settings, due_at=DUE, now=NOW))
    assert back["Subject"] == "[T-2026-000123] 受付のお知らせ"
    assert body_of(back).startswith("ご担当者様\n")


def test_the_desk_edits_its_own_template(tmp_path: Path) -> None:
    template = tmp_path / "ack.txt.j2"
    template.write_text("{{ sender_name }} 様\n{{ ticket_number }} を{{ due }}に回答します。\n",
                        encoding="utf-8")
    settings = make_settings(tmp_path, acknowledgement={"template": str(template),
                                                        "subject_label": "自動受付"})
    check_template(settings, now=NOW)
    _raw, back = parsed(build_acknowledgement(ticket(), inbound(), settings, due_at=DUE,
                                              now=NOW))
    assert back["Subject"] == "[T-2026-000123] 自動受付: ログインできません"
    assert body_of(back) == "山田 太郎 様\nT-2026-000123 を11月25日(水) 17:30までに回答します。\n"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("{{ tiket_number }}\n", "tiket_number"), ("{% if due %}\n", "end of template")],
)
def test_a_broken_template_is_a_config_error_at_start_up(
    tmp_path: Path, text: str, complaint: str
) -> None:
    template = tmp_path / "ack.txt.j2"
    template.write_text(text, encoding="utf-8")
    settings = make_settings(tmp_path, acknowledgement={"template": str(template)})
    with pytest.raises(ConfigError, match=rf"acknowledgement\.template: .*{complaint}"):
        check_template(settings, now=NOW)


def test_the_shipped_template_passes_the_start_up_check(settings: Settings) -> None:
    check_template(settings, now=NOW)


# --- whether to acknowledge ------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_ticket", "the_mail", "recent", "overrides", "ok", "reason"),
    [
        (ticket(), inbound(), 0, {}, True, "new ticket"),
        (ticket(), inbound(auto_kind="auto_reply"), 0, {}, False, "machine-written"),
        (ticket(), inbound(auto_kind="bounce"), 0, {}, False, "bounce"),
        (ticket(flags=(Flag.UNREGISTERED_SENDER,)), inbound(), 0, {}, False,
         "flagged unregistered_sender"),
        (ticket(flags=(Flag.UNREGISTERED_SENDER,)), inbound(), 0,
         {"skip_flagged": []}, True, "new ticket"),
        (ticket(flags=(Flag.CONTRACT_EXPIRED,)), inbound(), 0, {}, True, "new ticket"),
        (ticket(flags=(Flag.CONTRACT_EXPIRED,)), inbound(), 0,
         {"skip_flagged": ["contract_expired"]}, False, "flagged contract_expired"),
        (ticket(), inbound(), 2, {}, True, "new ticket"),
        (ticket(), inbound(), 3, {}, False, "limit 3"),
        (ticket(), inbound(), 0, {"max_per_sender_per_hour": 0}, False, "limit 0"),
        (ticket(), inbound(sender="Support@Example.co.jp"), 0, {}, False, "own address"),
        (ticket(), inbound(), 0, {"enabled": False}, False, "disabled"),
        (ticket(), inbound(channel=Channel.FAX), 0, {}, False, "fax"),
        (ticket(), inbound(sender=""), 0, {}, False, "no usable sender"),
        (ticket(), inbound(sender="a b@sakura.example.jp"), 0, {}, False, "no usable sender"),
        (ticket(), inbound(sender="x@y.jp\r\nBcc: z@q.jp"), 0, {}, False, "no usable sender"),
    ],
)
def test_who_gets_an_acknowledgement(
    tmp_path: Path, the_ticket: Ticket, the_mail: Message, recent: int,
    overrides: dict[str, object], ok: bool, reason: str,
) -> None:
    settings = make_settings(tmp_path, acknowledgement=overrides)
    decision, why = should_acknowledge(the_ticket, the_mail, settings, recent)
    assert decision is ok
    assert reason in why


def test_skip_flagged_names_only_known_flags(tmp_path: Path) -> None:
    assert {f.value for f in Flag} == FLAG_NAMES
    with pytest.raises(ConfigError, match=r"acknowledgement\.skip_flagged: .*unregistred"):
        make_settings(tmp_path, acknowledgement={"skip_flagged": ["unregistred"]})


def test_a_missing_template_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"acknowledgement\.template: .*not found"):
        make_settings(tmp_path, acknowledgement={"template": str(tmp_path / "nope.j2")})


# --- queued in the ticket's transaction ------------------------------------------------


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the suite's migrated, empty database (SQLite, then PostgreSQL)."""
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def open_ticket(session: Session, number: str, *, sender: str = CUSTOMER,
                flags: tuple[Flag, ...] = ()) -> tuple[Ticket, Message]:
    t = ticket(number, flags=flags)
    session.add(t)
    session.flush()
    m = inbound(sender=sender, message_id=f"{number}@sakura.example.jp")
    m.ticket_id = t.id
    session.add(m)
    session.flush()
    return t, m


def test_new_ticket_queues_one_acknowledgement_however_often_asked(
    sessions: sessionmaker[Session], settings: Settings,
) -> None:
    with sessions() as s, s.begin():
        t, m = open_ticket(s, "T-2026-000123")
        row = acknowledge_new_ticket(s, t, m, settings, now=NOW)
        assert row is not None
        assert acknowledge_new_ticket(s, t, m, settings, now=NOW) is None
    with sessions() as s:
        [row] = s.scalars(select(OutboxMessage)).all()
    assert (row.kind, row.dedupe_key, row.ticket_id) == ("ack", "ack:T-2026-000123", t.id)
    assert (row.mail_from, row.rcpt_to) == (DESK, [CUSTOMER])
    assert row.status is OutboxStatus.PENDING
    back = message_from_bytes(row.raw, policy=DEFAULT_POLICY)
    assert back["Message-ID"] == row.message_id
    assert back["Subject"] == "[T-2026-000123] 受付のお知らせ: ログインできません"


def test_a_flagged_ticket_queues_nothing(
    sessions: sessionmaker[Session], settings: Settings,
) -> None:
    with sessions() as s, s.begin():
        t, m = open_ticket(s, "T-2026-000124", flags=(Flag.UNREGISTERED_SENDER,))
        assert acknowledge_new_ticket(s, t, m, settings, now=NOW) is None
        assert s.scalars(select(OutboxMessage)).all() == []


def test_at_most_n_acknowledgements_per_sender_per_hour(
    sessions: sessionmaker[Session], settings: Settings,
) -> None:
    limit = settings.acknowledgement.max_per_sender_per_hour
    with sessions() as s, s.begin():
        queued = [
            acknowledge_new_ticket(s, *open_ticket(s, f"T-2026-00020{i}", sender=sender),
                                   settings, now=NOW + timedelta(minutes=i))
            for i, sender in enumerate([CUSTOMER] * (limit + 1) + ["Sato@sakura.example.jp"])
        ]
        assert [q is not None for q in queued] == [True] * limit + [False, True]
        # An hour after the first, the window has room again.
        later = acknowledge_new_ticket(s, *open_ticket(s, "T-2026-000299"), settings,
                                       now=NOW + timedelta(minutes=60, seconds=1))
        assert later is not None


def test_a_template_broken_while_running_falls_back_to_the_shipped_one(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    template = tmp_path / "ack.txt.j2"
    template.write_text("{{ ticket_number }}\n", encoding="utf-8")
    settings = make_settings(tmp_path, acknowledgement={"template": str(template)})
    template.write_text("{{ ticket_numbr }}\n", encoding="utf-8")  # the desk's typo
    with sessions() as s, s.begin():
        row = acknowledge_new_ticket(s, *open_ticket(s, "T-2026-000555"), settings, now=NOW)
        assert row is not None
        body = body_of(message_from_bytes(row.raw, policy=DEFAULT_POLICY))  # type: ignore[arg-type]
    assert "受付番号：T-2026-000555" in body
    assert "template" in caplog.text and "ticket_numbr" in caplog.text


def test_acknowledgement_reaches_the_customer_through_a_real_smtp_server(
    tmp_path: Path, database_url: str, sessions: sessionmaker[Session],
    smtp_server: SmtpTestServer,
) -> None:
    settings = make_settings(tmp_path, database_url, smtp=smtp_server.smtp_settings())
    with sessions() as s, s.begin():
        t, m = open_ticket(s, "T-2026-000777")
        assert acknowledge_new_ticket(s, t, m, settings, now=NOW) is not None

    report = OutboxSender(settings, sessions, now=lambda: NOW).send_due()

    assert len(report.sent) == 1
    [got] = smtp_server.messages
    assert (got.mail_from, got.rcpt_tos) == (DESK, (CUSTOMER,))
    back = message_from_bytes(got.raw, policy=DEFAULT_POLICY)
    assert isinstance(back, EmailMessage)
    assert back["Subject"] == "[T-2026-000777] 受付のお知らせ: ログインできません"
    assert back["In-Reply-To"] == "<T-2026-000777@sakura.example.jp>"
    assert "11月25日(水) 17:30までに" in body_of(back)


# --- out of scope: no deadline promised; each product's voice ---------------------------


@pytest.mark.parametrize("flag", [Flag.CONTRACT_EXPIRED, Flag.CONTRACT_NOT_STARTED,
                                  Flag.UNREGISTERED_SENDER])
def test_an_out_of_scope_ticket_is_promised_no_response_by_default(
    tmp_path: Path, flag: Flag
) -> None:
    """All Gather CRM 4(2)③ サポート対象外: "サポート契約の期限を過ぎている本ソフトウェアに
    関するご質問・お問い合わせ", "窓口担当者の方以外からのご質問・お問い合わせ"."""
    settings = make_settings(tmp_path, acknowledgement={"skip_flagged": []})
    out = ticket(flags=(flag,))
    out.first_response_due = None  # the pipeline gives it none until staff accept it
    assert acknowledgement_due(out, inbound(), settings, now=NOW, recent_acks=0) is None
    assert acknowledgement_due(ticket(), inbound(), settings, now=NOW, recent_acks=0) is not None


@pytest.mark.parametrize(
    ("flag", "words", "subject"),
    [
        (Flag.UNREGISTERED_SENDER, "窓口担当者として\nご登録いただいている方からのみ",
         "お問い合わせについてのご案内"),
        (Flag.CONTRACT_EXPIRED, "サポート期間が終了しているため", "サポート期間についてのご案内"),
        (Flag.CONTRACT_NOT_STARTED, "サポート期間がまだ開始していないため",
         "サポート期間についてのご案内"),
    ],
)
def test_a_desk_may_send_a_polite_notice_worded_for_the_case(
    tmp_path: Path, flag: Flag, words: str, subject: str
) -> None:
    settings = make_settings(tmp_path, acknowledgement={"out_of_scope": "notice",
                                                        "skip_flagged": []})
    check_template(settings, now=NOW)
    msg = acknowledgement_due(ticket(flags=(flag,), company="株式会社さくら商事"), inbound(),
                              settings, now=NOW, recent_acks=0)
    assert msg is not None
    _raw, back = parsed(msg)
    body = body_of(back)
    assert back["Subject"] == f"[T-2026-000123] {subject}: ログインできません"
    assert words in body and "受付番号：T-2026-000123" in body
    # No response time is promised: no time of day, no first response, no "順次対応".
    assert not re.search(r"\d:\d\d", body.split("受付日時")[1].split("\n", 1)[1])
    assert "一次回答" not in body and "順次対応" not in body
    assert back["Auto-Submitted"] == "auto-replied"


def test_skip_flagged_still_means_nothing_at_all(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, acknowledgement={"out_of_scope": "notice"})
    stranger = ticket(flags=(Flag.UNREGISTERED_SENDER,))
    assert acknowledgement_due(stranger, inbound(), settings, now=NOW, recent_acks=0) is None


def test_each_product_acknowledges_in_its_own_voice(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, products=[
        {"preset": "chatluck", "acknowledgement": {"from_name": "ChatLuck サポート",
                                                   "from_address": "cltech@chatluck.example"}},
        {"preset": "agcrm"},
    ])
    check_template(settings, now=NOW)
    products = Products.from_settings(settings)
    chat = build_acknowledgement(ticket(), inbound(), settings, due_at=DUE, now=NOW,
                                 voice=products.get("ChatLuck").voice)
    _raw, back = parsed(chat)
    assert back["From"].addresses[0].display_name == "ChatLuck サポート"
    assert back["From"].addresses[0].addr_spec == "cltech@chatluck.example"
    assert back["Message-ID"].endswith("@chatluck.example>")
    assert "ChatLuck サポート\nE-mail: cltech@chatluck.example\n" in body_of(back)
    _raw, other = parsed(build_acknowledgement(ticket(), inbound(), settings, due_at=DUE,
                                               now=NOW, voice=products.get("All Gather CRM").voice))
    assert other["From"].addresses[0].addr_spec == DESK  # the desk's, not given
    # Mail from a product's own address is the desk's, never acknowledged.
    assert not should_acknowledge(ticket(), inbound(sender="cltech@chatluck.example"), settings,
                                  0, products.get("ChatLuck").voice)[0]


def test_a_products_broken_notice_template_is_a_config_error_at_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "notice.txt.j2"
    broken.write_text("{{ cas }}\n", encoding="utf-8")
    settings = make_settings(tmp_path, products=[
        {"preset": "agcrm", "acknowledgement": {"notice_template": str(broken)}}])
    with pytest.raises(ConfigError,
                       match=r"products\.All Gather CRM\.acknowledgement\.notice_template"):
        check_template(settings, now=NOW)
