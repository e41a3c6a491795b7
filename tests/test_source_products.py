"""A source names its product (``product = "NAME"`` on ``[[sources]]``): its mail is that
product's, and the acknowledgement and the reply go out from the product's address, through
its own SMTP server (``[products.smtp]``), with its signature. Two sources of two products,
end to end: files into each mailbox, the pipeline, the outbox, two real SMTP listeners."""

from __future__ import annotations

import mailbox
import uuid
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import ConfigError, load_settings
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Role, StaffUser, Ticket
from madoguchi.ticketing.outbox import OutboxSender
from madoguchi.ticketing.replies import MailReply, send_mail_reply
from madoguchi.ticketing.signatures import signature_for
from tests.mailfactory import make_mail
from tests.smtp_server import SmtpTestServer, _plain

pytestmark = pytest.mark.integration

CHAT, CRM = "support@chatluck.example.jp", "support@agcrm.example.jp"


def _config(tmp_path: Path, chat_smtp: SmtpTestServer, crm_smtp: SmtpTestServer,
            crm_product: str = "AGCRM") -> Path:
    config = tmp_path / "madoguchi.toml"
    config.write_text(f"""
database_url = "sqlite:///{tmp_path / 'desk.db'}"
storage_dir = "{tmp_path / 'storage'}"
desk_address = "desk@example.co.jp"

[smtp]
host = "127.0.0.1"
port = 9
security = "plain"
timeout_seconds = 5

[acknowledgement]
skip_flagged = []            # a sender with no contract is answered too (a notice)

[[sources]]
name = "chatluck-mail"
kind = "maildir"
path = "{tmp_path / 'chatluck'}"
product = "ChatLuck"

[[sources]]
name = "agcrm-mail"
kind = "maildir"
path = "{tmp_path / 'agcrm'}"
product = "{crm_product}"            # an alias

[[products]]
preset = "chatluck"
default = true
[products.acknowledgement]
from_name = "ChatLuck サポート"
from_address = "{CHAT}"
out_of_scope = "notice"
[products.smtp]
host = "{chat_smtp.host}"
port = {chat_smtp.port}
security = "plain"
timeout_seconds = 5

[[products]]
preset = "agcrm"
aliases = ["AGCRM", "オールギャザー"]
[products.acknowledgement]
from_name = "All Gather CRM サポート"
from_address = "{CRM}"
out_of_scope = "notice"
[products.smtp]
host = "{crm_smtp.host}"
port = {crm_smtp.port}
security = "plain"
timeout_seconds = 5
""", encoding="utf-8")
    return config


def _parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_each_sources_mail_is_answered_from_its_products_address_through_its_server(
    request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    chat_smtp, crm_smtp = _plain(request), _plain(request)
    settings = load_settings(_config(tmp_path, chat_smtp, crm_smtp))
    # Not in the other one's sources: the source's own key is the one that said it.
    assert {p.name: p.sources for p in settings.products} == {
        "ChatLuck": ["chatluck-mail"], "All Gather CRM": ["agcrm-mail"]}
    desk = Desk.open(settings)
    try:
        from madoguchi.ticketing.db import upgrade

        upgrade(settings.database_url)
        # Senders with no contract: only the mailbox tells the product.
        for folder, sender in (("chatluck", "kojima@kaisha-a.example.jp"),
                               ("agcrm", "mori@kaisha-b.example.jp")):
            mailbox.Maildir(tmp_path / folder, create=True).add(make_mail(
                subject="操作方法の質問", from_=("問合せ 太郎", sender),
                message_id=f"{folder}-1@example.jp"))
        for source in settings.sources:
            desk.poller(source).poll_once()
        with desk.factory() as s:
            products = {t.messages[0].sender: t.product for t in s.scalars(select(Ticket))}
        assert products == {"kojima@kaisha-a.example.jp": "ChatLuck",
                            "mori@kaisha-b.example.jp": "All Gather CRM"}

        OutboxSender(settings, desk.factory).send_due()
        chat_acks = [_parsed(m.raw) for m in chat_smtp.messages]
        crm_acks = [_parsed(m.raw) for m in crm_smtp.messages]
        assert [(m["From"].addresses[0].addr_spec, m["To"].addresses[0].addr_spec)
                for m in chat_acks] == [(CHAT, "kojima@kaisha-a.example.jp")]
        assert [(m["From"].addresses[0].addr_spec, m["To"].addresses[0].addr_spec)
                for m in crm_acks] == [(CRM, "mori@kaisha-b.example.jp")]
        assert chat_acks[0]["From"].addresses[0].display_name == "ChatLuck サポート"
        assert crm_acks[0]["From"].addresses[0].display_name == "All Gather CRM サポート"
        assert chat_acks[0]["Message-ID"].endswith("@chatluck.example.jp>")
        assert crm_acks[0]["Message-ID"].endswith("@agcrm.example.jp>")
        assert [m.mail_from for m in chat_smtp.messages] == [CHAT]
        assert [m.mail_from for m in crm_smtp.messages] == [CRM]

        # A reply on each ticket: the product's address, server and signature.
        now = datetime.now(UTC)
        with transaction(desk.factory) as s:
            agent = StaffUser(login="agent", name="担当 花子", email="agent@example.co.jp",
                              password_hash="!", role=Role.AGENT)
            s.add(agent)
            s.flush()
            signatures = {}
            for ticket in s.scalars(select(Ticket).order_by(Ticket.id)):
                original = ticket.messages[0]
                sign = signature_for(s, ticket, agent, settings, desk.deadlines)
                signatures[ticket.product] = sign
                send_mail_reply(s, ticket, original, agent, MailReply(
                    to=original.sender, cc="", body="お問い合わせありがとうございます。",
                    include_quote=False, idempotency_key=uuid.uuid4().hex, signature=sign),
                    settings, desk.deadlines, now)
        assert signatures["ChatLuck"] != signatures["All Gather CRM"]
        OutboxSender(settings, desk.factory).send_due()
        (chat_reply,), (crm_reply,) = ([_parsed(m.raw) for m in server.messages[1:]]
                                       for server in (chat_smtp, crm_smtp))
        for reply, address, product in ((chat_reply, CHAT, "ChatLuck"),
                                        (crm_reply, CRM, "All Gather CRM")):
            assert reply["From"].addresses[0].addr_spec == address
            assert "Auto-Submitted" not in reply
            body = _text(reply).replace("\r\n", "\n")
            assert signatures[product].strip() in body
            assert address in signatures[product]  # the product's signature names its address
    finally:
        desk.close()


def test_a_source_naming_no_product_is_a_clear_configuration_error(
    request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    config = _config(tmp_path, _plain(request), _plain(request), crm_product="AG-CRM2")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "sources.agcrm-mail: product 'AG-CRM2' is not a product's name or alias" \
        in str(caught.value)
    assert "'ChatLuck', 'All Gather CRM'" in str(caught.value)
