"""Mail-side trust: a forged From, a forged Authentication-Results, a stranger who knows
a Message-ID. Each joins its ticket flagged, never unflagged, and never becomes the
reply's default recipient. Real pipeline, both databases; the ticket page over HTTP."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from madoguchi.cli import app
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing.models import Message, Ticket
from tests.mailfactory import make_mail
from tests.test_web_kit import YAMADA, Staff, WebDesk, ingest_mail, mail_date

pytest_plugins = ["tests.test_web_kit"]
pytestmark = pytest.mark.integration

MX = "mx.example.co.jp"
DESK_RECEIVED = (f"from mail.sakura-shoji.example.jp by {MX} (Postfix); "
                 "Mon, 1 Dec 2026 10:00:00 +0900")


def _ticket(wd: WebDesk, number: str) -> Ticket:
    with wd.desk.factory() as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        t.flags, t.messages  # noqa: B018 (loaded before the session closes)
        return t


def _follow_up(wd: WebDesk, raw: bytes) -> str:
    out = wd.desk.pipeline.ingest(Inbound(raw, "test", "ref"))
    assert out.ticket_number, out
    return out.ticket_number


def test_a_forged_from_of_a_contact_naming_its_ticket_joins_it_flagged_by_default(
    webdesk: WebDesk,
) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません")
    assert "unverified_sender" not in _ticket(webdesk, number).flag_names
    forged = make_mail(f"Re: [{number}] 口座を変更しました", "振込先を変更してください。",
                       from_=YAMADA, charset="utf-8", date=mail_date())
    assert _follow_up(webdesk, forged) == number  # accepted, nothing lost ...
    t = _ticket(webdesk, number)
    assert "unverified_sender" in t.flag_names  # ... but flagged for staff
    assert sorted((m.id, m.unverified_sender) for m in t.messages)[1][1] is True
    assert sum(m.unverified_sender for m in t.messages) == 1


def _ar(result: str) -> str:
    return f"{MX}; spf=pass smtp.mailfrom=sakura-shoji.example.jp; dmarc={result} " \
           "header.from=sakura-shoji.example.jp"


def test_only_the_desk_mtas_own_dmarc_pass_vouches_for_a_follow_up(webdesk: WebDesk) -> None:
    webdesk.settings.trusted_authserv_ids = [MX]
    number = ingest_mail(webdesk.desk, subject="ライセンスについて")
    # The sender wrote "dmarc=pass" itself: the desk's MTA added its Received above it.
    forged = make_mail(f"Re: [{number}] 追加の質問", "追加です。", from_=YAMADA, charset="utf-8",
                       date=mail_date(), received=[DESK_RECEIVED],
                       extra_headers={"Authentication-Results": _ar("pass")})
    assert _follow_up(webdesk, forged) == number
    assert "unverified_sender" in _ticket(webdesk, number).flag_names

    other = ingest_mail(webdesk.desk, subject="別件のお問い合わせ")
    genuine = (f"Authentication-Results: {_ar('pass')}\r\n".encode()
               + make_mail(f"Re: [{other}] 追加の質問", "追加です。", from_=YAMADA,
                           charset="utf-8", date=mail_date(), received=[DESK_RECEIVED]))
    assert _follow_up(webdesk, genuine) == other
    t = _ticket(webdesk, other)
    assert "unverified_sender" not in t.flag_names
    assert [m.unverified_sender for m in t.messages] == [False, False]


def test_a_stranger_who_knows_a_message_id_joins_flagged_and_is_not_the_reply_address(
    webdesk: WebDesk, agent: Staff,
) -> None:
    webdesk.settings.trusted_authserv_ids = [MX]
    number = ingest_mail(webdesk.desk, subject="見積もりの件", message_id="first@sakura.example.jp")
    stranger = ("攻撃者", "attacker@evil.example")
    vouched = f"Authentication-Results: {MX}; dmarc=pass header.from=evil.example\r\n".encode()
    raw = vouched + make_mail("Re: 見積もりの件", "こちらに返信してください。", from_=stranger,
                              charset="utf-8", date=mail_date() + timedelta(minutes=5),
                              in_reply_to="first@sakura.example.jp",
                              references=["first@sakura.example.jp"], received=[DESK_RECEIVED])
    assert _follow_up(webdesk, raw) == number
    t = _ticket(webdesk, number)
    by_stranger = next(m for m in t.messages if m.sender == stranger[1])
    assert "unverified_sender" in t.flag_names and by_stranger.unverified_sender

    page = agent.get(f"/tickets/{number}").text
    to = re.search(r'id="reply-to" name="to" value="([^"]*)"', page)
    assert to and to.group(1) == YAMADA[1]  # the contact, not the stranger
    assert "送信者未確認" in page
    # Even replying to that very mail.
    page = agent.get(f"/tickets/{number}?reply_to={by_stranger.id}").text
    to = re.search(r'id="reply-to" name="to" value="([^"]*)"', page)
    assert to and to.group(1) == YAMADA[1]

    # Nor did it make the stranger one of the thread: the tag alone now opens a new ticket.
    tagged = vouched + make_mail(f"Re: [{number}] まだですか", "返事をください。",
                                 from_=stranger, charset="utf-8",
                                 date=mail_date() + timedelta(minutes=9),
                                 received=[DESK_RECEIVED])
    assert _follow_up(webdesk, tagged) != number
    with webdesk.desk.factory() as s:
        assert s.scalar(select(Message.ticket_id).where(
            Message.subject.contains("まだですか"))) != t.id


def test_with_no_trusted_mail_server_intake_warns_and_status_says_so(
    webdesk: WebDesk, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, "madoguchi.security")
    ingest_mail(webdesk.desk)
    assert "trusted_authserv_ids is empty" in caplog.text
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", webdesk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(webdesk.settings.storage_dir))
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "mail trust:  NONE" in result.output
    monkeypatch.setenv("MADOGUCHI_TRUSTED_AUTHSERV_IDS", f'["{MX}"]')
    result = CliRunner().invoke(app, ["status"])
    assert f"mail trust:  Authentication-Results of {MX}" in result.output
