from __future__ import annotations

import pytest

from madoguchi.ingest.message import ParsedMessage
from madoguchi.ticketing.rules.autoreply import AutoKind, classify_auto

DESK = "support@example.co.jp"


def parsed(sender: str = "yamada@sakura.example.jp", content_type: str = "text/plain",
           **headers: str) -> ParsedMessage:
    return ParsedMessage(
        message_id="m@x", in_reply_to=(), references=(), subject="件名", from_addr=sender,
        from_name="", to=(DESK,), cc=(), reply_to=(), date=None, received_date=None,
        text="本文", html=None, attachments=(),
        headers={k.replace("_", "-").lower(): v for k, v in headers.items()},
        content_type=content_type,
    )


def test_a_persons_mail_is_not_automatic() -> None:
    assert classify_auto(parsed(auto_submitted="no"), DESK) is None
    assert classify_auto(parsed(), DESK) is None


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (parsed(auto_submitted="auto-replied"), AutoKind.AUTO_REPLY),
        (parsed(auto_submitted="auto-generated"), AutoKind.AUTO_REPLY),
        (parsed(x_autoreply="yes"), AutoKind.AUTO_REPLY),
        (parsed(x_autorespond="vacation"), AutoKind.AUTO_REPLY),
        (parsed(x_auto_response_suppress="All"), AutoKind.AUTO_REPLY),
        (parsed(precedence="auto_reply"), AutoKind.AUTO_REPLY),
        (parsed(precedence="bulk"), AutoKind.BULK),
        (parsed(precedence="list"), AutoKind.BULK),
        (parsed(list_id="<news.vendor.example>"), AutoKind.BULK),
        (parsed(list_unsubscribe="<mailto:u@x>"), AutoKind.BULK),
        (parsed(content_type="multipart/report"), AutoKind.BOUNCE),
        (parsed(sender="mailer-daemon@mx.example.jp"), AutoKind.BOUNCE),
        (parsed(sender="postmaster@mx.example.jp"), AutoKind.BOUNCE),
        (parsed(x_failed_recipients="a@b.c"), AutoKind.BOUNCE),
        (parsed(sender=DESK), AutoKind.LOOP),
        (parsed(x_loop=DESK), AutoKind.LOOP),
    ],
)
def test_machine_written_mail_is_recognised(message: ParsedMessage, kind: AutoKind) -> None:
    assert classify_auto(message, DESK) is kind
