"""parse_message against mail as Japanese clients put it on the wire."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madoguchi.config import Limits
from madoguchi.ingest.message import ParseError
from madoguchi.ingest.parse import MAX_DEPTH, parse_message
from tests.mailfactory import (
    DEFAULT_BODY,
    DEFAULT_DATE,
    JST,
    encoded_words,
    iso2022jp,
    make_bounce,
    make_mail,
    multipart,
)

LIMITS = Limits()
HARD = "①②㈱～―髙﨑"  # NEC row 13, wave dash, horizontal bar, IBM extensions
BODY = f"サポートサービス番号: 1234-5678-9012\n{HARD}の件でご連絡しました。\n"


def parse(raw: bytes, limits: Limits = LIMITS):
    return parse_message(raw, limits)


def crlf(text: str) -> bytes:
    """A hand-written raw mail: UTF-8 source text with CRLF line ends."""
    return text.replace("\n", "\r\n").encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- one test per charset ------------------------------------------------------


def test_iso2022jp_mail_with_windows_characters_decodes_body_and_subject():
    raw = make_mail(subject=f"{HARD}ｶﾅの件", body=BODY + "半角ｶﾅ\n", charset="iso-2022-jp")
    assert b"\x1b$B-!" in raw and b"\x1b(I" in raw  # 7-bit JIS as CP50221 writes it
    message = parse(raw)
    assert message.subject == f"{HARD}ｶﾅの件"
    assert message.text == (BODY + "半角ｶﾅ").rstrip()
    assert message.defects == ()


def test_shift_jis_body_with_nec_specials_decodes_as_cp932():
    raw = make_mail(subject=f"{HARD}の件", body=BODY, charset="shift_jis")
    assert b"Content-Transfer-Encoding: base64" in raw
    message = parse(raw)
    assert (message.subject, message.text) == (f"{HARD}の件", BODY.rstrip())


def test_windows_31j_labelled_body_decodes_as_cp932():
    assert parse(make_mail(body=BODY, charset="cp932")).text == BODY.rstrip()


def test_euc_jp_eight_bit_body_with_nec_specials_decodes():
    raw = make_mail(subject=f"{HARD}の件", body=BODY, charset="euc-jp")
    message = parse(raw)
    assert (message.subject, message.text) == (f"{HARD}の件", BODY.rstrip())


@pytest.mark.parametrize("transfer_encoding", ["base64", "quoted-printable", "8bit"])
def test_utf8_body_decodes_in_every_transfer_encoding(transfer_encoding):
    raw = make_mail(body=BODY, charset="utf-8", transfer_encoding=transfer_encoding)
    assert parse(raw).text == BODY.rstrip()


# -- subjects and names --------------------------------------------------------


def test_subject_encoded_words_split_in_the_middle_of_a_character_are_joined():
    data = "ライセンスキー発行のお願い".encode()
    raw = crlf(
        "From: a@customer.example.co.jp\n"
        f"Subject: =?UTF-8?B?{b64(data[:7])}?=\n =?UTF-8?B?{b64(data[7:])}?=\n\n本文\n"
    )
    assert parse(raw).subject == "ライセンスキー発行のお願い"


def test_iso2022jp_subject_with_nec_specials_decodes():
    jis = b"\x1b$B-!-\"%m%0%$%s$G$-$^$;$s\x1b(B"
    raw = crlf(f"From: a@b.jp\nSubject: Re: =?ISO-2022-JP?B?{b64(jis)}?=\n\nx\n")
    assert parse(raw).subject == "Re: ①②ログインできません"


def test_shift_jis_encoded_word_subject_with_cp932_characters_decodes():
    word = f"=?Shift_JIS?B?{b64('㈱サンプル様①～'.encode('cp932'))}?="
    assert parse(crlf(f"From: a@b.jp\nSubject: {word}\n\nx\n")).subject == "㈱サンプル様①～"


def test_long_subject_folded_into_many_words_decodes():
    subject = "【至急】" + "管理画面へのログインができない現象について" * 4
    raw = make_mail(subject=subject)
    assert raw.count(b"=?ISO-2022-JP?B?") > 3
    assert parse(raw).subject == subject


def test_from_name_in_iso2022jp_is_decoded_and_address_lower_cased():
    raw = make_mail(from_=("髙橋 﨑子", "Sakiko.Takahashi@Customer.Example.co.jp"))
    message = parse(raw)
    assert (message.from_name, message.from_addr) == (
        "髙橋 﨑子",
        "sakiko.takahashi@customer.example.co.jp",
    )


def test_quoted_encoded_word_name_as_some_clients_send_it_is_decoded():
    raw = crlf(f'From: "{encoded_words("山田", "utf-8")}" <T@X.jp>\nSubject: s\n\nx\n')
    assert (parse(raw).from_name, parse(raw).from_addr) == ("山田", "t@x.jp")


def test_from_without_an_address_keeps_the_name():
    message = parse(crlf("From: 山田太郎\nSubject: s\n\nx\n"))
    assert (message.from_name, message.from_addr) == ("山田太郎", "")


def test_address_lists_are_lower_cased_and_deduplicated():
    raw = make_mail(
        to=["Support@Example.co.jp", ("窓口, サポート", "support@example.co.jp")],
        cc=["Boss <BOSS@customer.example.co.jp>", "x@customer.example.co.jp"],
        extra_headers={"Reply-To": "Reply <Reply@customer.example.co.jp>"},
    )
    message = parse(raw)
    assert message.to == ("support@example.co.jp",)
    assert message.cc == ("boss@customer.example.co.jp", "x@customer.example.co.jp")
    assert message.reply_to == ("reply@customer.example.co.jp",)


# -- attachments ---------------------------------------------------------------


def test_rfc2231_attachment_name_with_japanese_continuations_decodes():
    name = "お見積書①_株式会社サンプル様_2024年度_ライセンス追加.pdf"
    raw = make_mail(attachments=[(name, "application/pdf", b"%PDF-1.7")])
    assert b"filename*1*=" in raw
    (attachment,) = parse(raw).attachments
    assert (attachment.filename, attachment.content_type, attachment.payload) == (
        name,
        "application/pdf",
        b"%PDF-1.7",
    )
    assert not attachment.inline


def test_rfc2047_attachment_name_as_outlook_sends_it_decodes():
    raw = make_mail(
        attachments=[("画面①.png", "image/png", b"\x89PNG")], filename_style="rfc2047"
    )
    assert b'filename="=?ISO-2022-JP?B?' in raw
    assert parse(raw).attachments[0].filename == "画面①.png"


def test_attachment_named_only_in_content_type_keeps_its_name():
    raw = crlf(
        "From: a@b.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain; charset=utf-8\n\n本文\n--b\n"
        f'Content-Type: application/octet-stream; name="=?UTF-8?B?{b64("ログ.zip".encode())}?="\n'
        "Content-Transfer-Encoding: base64\n\nUEsDBA==\n--b--\n"
    )
    message = parse(raw)
    assert message.text == "本文"
    assert [(a.filename, a.payload) for a in message.attachments] == [("ログ.zip", b"PK\x03\x04")]


def test_text_file_attachment_is_not_part_of_the_text():
    raw = make_mail(body="本文です", attachments=[("error.log", "text/plain", b"ERROR 500\n")])
    message = parse(raw)
    assert message.text == "本文です"
    assert message.attachments[0].filename == "error.log"
    assert message.attachments[0].payload == b"ERROR 500\n"


def test_plain_parts_around_an_inline_image_are_joined_and_the_image_kept():
    raw = crlf(
        "From: a@b.jp\nContent-Type: multipart/mixed; boundary=apple\n\n--apple\n"
        "Content-Type: text/plain; charset=utf-8\n\n画面は次の通りです。\n--apple\n"
        "Content-Type: image/png; name=shot.png\nContent-Disposition: inline; filename=shot.png\n"
        "Content-ID: <shot@iphone>\nContent-Transfer-Encoding: base64\n\niVBORw==\n--apple\n"
        "Content-Type: text/plain; charset=utf-8\n\nよろしくお願いします。\n--apple--\n"
    )
    message = parse(raw)
    assert message.text == "画面は次の通りです。\nよろしくお願いします。"
    (image,) = message.attachments
    assert (image.filename, image.content_id, image.inline) == ("shot.png", "shot@iphone", True)


def test_forwarded_mail_is_an_eml_attachment_that_parses_again():
    original = make_mail(subject="元のお問い合わせ①", message_id="first@customer.example.co.jp")
    raw = crlf(
        "From: a@b.jp\nSubject: Fw: 転送\nContent-Type: multipart/mixed; boundary=fw\n\n--fw\n"
        "Content-Type: text/plain; charset=utf-8\n\n転送します。\n--fw\n"
        "Content-Type: message/rfc822\nContent-Disposition: attachment\n\n"
    ) + original + b"\r\n--fw--\r\n"
    message = parse(raw)
    assert message.text == "転送します。"
    (forwarded,) = message.attachments
    assert forwarded.content_type == "message/rfc822"
    again = parse(forwarded.payload)
    assert again.subject == "元のお問い合わせ①"
    assert again.message_id == "first@customer.example.co.jp"


def test_whole_message_of_a_non_text_type_is_one_attachment():
    raw = crlf(
        "From: scanner@customer.example.co.jp\nContent-Type: application/pdf; name=scan.pdf\n"
        "Content-Transfer-Encoding: base64\n\nJVBERi0=\n"
    )
    message = parse(raw)
    assert (message.text, message.content_type) == ("", "application/pdf")
    assert [(a.filename, a.payload) for a in message.attachments] == [("scan.pdf", b"%PDF-")]


# -- wrong and missing charsets ------------------------------------------------


def test_declared_us_ascii_body_that_is_utf8_is_read_as_utf8_with_a_note():
    raw = make_mail(
        body=BODY, charset="utf-8", declared_charset="us-ascii", transfer_encoding="8bit"
    )
    message = parse(raw)
    assert message.text == BODY.rstrip()
    assert message.defects == ("CharsetMismatch in text/plain: declared us-ascii, read as utf-8",)


def test_body_without_charset_that_is_shift_jis_is_detected():
    raw = make_mail(body=BODY, charset="shift_jis", declared_charset="")
    assert parse(raw).text == BODY.rstrip()


def test_body_without_charset_that_is_iso2022jp_is_detected():
    raw = make_mail(body=BODY, charset="iso-2022-jp", declared_charset="")
    assert parse(raw).text == BODY.rstrip()


def test_body_labelled_iso2022jp_but_sent_as_shift_jis_is_read():
    raw = make_mail(body=BODY, charset="shift_jis", declared_charset="ISO-2022-JP")
    message = parse(raw)
    assert message.text == BODY.rstrip()
    assert "read as cp932" in message.defects[0]


# -- HTML ----------------------------------------------------------------------


def test_html_only_mail_text_is_readable_and_html_kept():
    html = (
        "<html><head><style>p{margin:0}</style></head><body>"
        "<p>サポートサービス番号: 1234-5678-9012</p><p>お世話になっております。<br>"
        "ログインできません&#65281;</p><script>track()</script></body></html>"
    )
    message = parse(make_mail(body=None, html=html, charset="utf-8"))
    assert message.text == (
        "サポートサービス番号: 1234-5678-9012\nお世話になっております。\nログインできません！"
    )
    assert message.html == html


def test_html_part_without_charset_parameter_uses_its_meta_charset():
    html = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
    body = (html + "</head><body>ｶﾅｶﾅ</body></html>").encode("cp932")
    raw = crlf("From: a@b.jp\nContent-Type: text/html\nContent-Transfer-Encoding: 8bit\n\n")
    assert parse(raw + body).text == "ｶﾅｶﾅ"


def test_alternative_prefers_the_plain_text_and_keeps_the_html():
    message = parse(make_mail(body="プレーン本文", html="<p>HTML本文</p>"))
    assert message.text == "プレーン本文"
    assert message.html == "<p>HTML本文</p>\r\n".replace("\r", "")


def test_html_only_alternative_inside_related_with_images_is_read():
    related = multipart(
        "related",
        [
            crlf("Content-Type: text/html; charset=utf-8\n\n<div>画像の通り<img src=cid:i1></div>"),
            crlf("Content-Type: image/gif\nContent-ID: <i1>\nContent-Transfer-Encoding: base64\n\n"
                 "R0lGOA==\n"),
        ],
    )
    raw = crlf("From: a@b.jp\nSubject: s\n") + multipart("alternative", [related])
    message = parse(raw)
    assert message.text == "画像の通り"
    assert [(a.content_id, a.inline, a.payload) for a in message.attachments] == [
        ("i1", True, b"GIF8")
    ]


# -- threading headers, dates --------------------------------------------------


def test_threading_ids_are_bare_and_tolerate_folding_junk_and_missing_brackets():
    raw = crlf(
        "From: a@b.jp\nMessage-ID:  <abc.123@mail.example.co.jp> (added by relay)\n"
        "In-Reply-To: Your message of Mon, 1 Apr 2024 <T00042.1@desk.example.co.jp>\n"
        "References: <r1@x.jp>\n\t<r2@x.jp>,<r1@x.jp>\n  r3@x.jp\n\nx\n"
    )
    message = parse(raw)
    assert message.message_id == "abc.123@mail.example.co.jp"
    assert message.in_reply_to == ("T00042.1@desk.example.co.jp",)
    assert message.references == ("r1@x.jp", "r2@x.jp")


def test_message_id_without_brackets_is_read():
    raw = crlf("From: a@b.jp\nMessage-ID: naked-id@mail.example.co.jp\nReferences: a@x b@y\n\nx\n")
    message = parse(raw)
    assert message.message_id == "naked-id@mail.example.co.jp"
    assert message.references == ("a@x", "b@y")


def test_missing_message_id_is_none():
    message = parse(make_mail(message_id=""))
    assert (message.message_id, message.in_reply_to, message.references) == (None, (), ())


def test_reply_ids_from_factory_round_trip():
    question = "q1@desk.example.co.jp"
    message = parse(make_mail(in_reply_to=question, references=["q0@c.jp", question]))
    assert message.in_reply_to == (question,)
    assert message.references == ("q0@c.jp", question)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (DEFAULT_DATE, DEFAULT_DATE),
        ("Mon, 1 Apr 2024 10:00:00 +0900 (JST)", datetime(2024, 4, 1, 1, 0, tzinfo=UTC)),
        ("1 Apr 2024 01:00:00 -0000", datetime(2024, 4, 1, 1, 0, tzinfo=UTC)),
        ("2024/04/01 10:00", None),
        ("", None),
        (None, None),
    ],
)
def test_date_is_timezone_aware_or_none(value, expected):
    date = parse(make_mail(date=value)).date
    assert date == expected
    assert date is None or date.tzinfo is not None


def test_received_date_comes_from_the_topmost_received_header():
    newest = datetime(2024, 4, 1, 10, 0, 7, tzinfo=JST)
    raw = make_mail(received=[newest, newest - timedelta(seconds=5)])
    assert parse(raw).received_date == newest


@pytest.mark.parametrize(
    "received",
    [[], ["from x by y with SMTP id 1 Mon, 1 Apr 2024 10:00:00 +0900"], ["by y; garbage"]],
)
def test_received_date_is_none_when_absent_or_unreadable(received):
    assert parse(make_mail(received=received)).received_date is None


def test_headers_the_rules_read_are_lower_cased_and_decoded():
    raw = make_mail(
        extra_headers={
            "Auto-Submitted": "auto-replied",
            "Precedence": "bulk",
            "X-Autoreply": "yes",
            "X-Autorespond": "不在通知",
            "X-Auto-Response-Suppress": "All",
            "List-Id": "<support.customer.example.co.jp>",
            "List-Unsubscribe": "<mailto:leave@customer.example.co.jp>",
            "Return-Path": "<bounce@customer.example.co.jp>",
            "X-Failed-Recipients": "nobody@customer.example.co.jp",
            "X-Loop": "support@example.co.jp",
            "Authentication-Results": "mx.example.co.jp; dkim=pass",
        }
    )
    second = b"Authentication-Results: relay.evil; dkim=fail\r\n"
    raw = raw.replace(b"MIME-Version", second + b"MIME-Version")
    headers = parse(raw).headers
    assert headers["auto-submitted"] == "auto-replied"
    assert headers["precedence"] == "bulk"
    assert headers["x-autoreply"] == "yes"
    assert headers["x-autorespond"] == "不在通知"
    assert headers["x-auto-response-suppress"] == "All"
    assert headers["list-id"] == "<support.customer.example.co.jp>"
    assert headers["list-unsubscribe"] == "<mailto:leave@customer.example.co.jp>"
    assert headers["return-path"] == "<bounce@customer.example.co.jp>"
    assert headers["x-failed-recipients"] == "nobody@customer.example.co.jp"
    assert headers["x-loop"] == "support@example.co.jp"
    assert headers["content-type"] == "text/plain; charset=ISO-2022-JP"
    # Several of one header: the first (topmost, from the MTA nearest the desk) is kept.
    assert headers["authentication-results"] == "mx.example.co.jp; dkim=pass"


# -- bounces -------------------------------------------------------------------


def test_bounce_with_returned_message_names_the_bounced_message_id():
    original = make_mail(message_id="T00042.1@desk.example.co.jp")
    message = parse(make_bounce(original))
    assert message.content_type == "multipart/report"
    assert message.bounced_message_id == "T00042.1@desk.example.co.jp"
    assert message.text.startswith("This is the mail system")
    assert [a.content_type for a in message.attachments] == [
        "message/delivery-status",
        "message/rfc822",
    ]


def test_bounce_with_returned_headers_only_names_the_bounced_message_id():
    original = make_mail(message_id="T00042.2@desk.example.co.jp")
    message = parse(make_bounce(original, headers_only=True))
    assert message.bounced_message_id == "T00042.2@desk.example.co.jp"


def test_ordinary_mail_has_no_bounced_message_id():
    assert parse(make_mail()).bounced_message_id is None


# -- limits and refusals -------------------------------------------------------


def test_too_large_message_is_refused_before_parsing():
    raw = make_mail()
    with pytest.raises(ParseError) as caught:
        parse(raw, Limits(max_message_bytes=len(raw) - 1))
    assert caught.value.reason_code == "too_large"
    assert parse(raw, Limits(max_message_bytes=len(raw))).subject


def test_too_many_attachments_is_refused():
    attachments = [(f"画像{n}.png", "image/png", b"\x89PNG") for n in range(4)]
    raw = make_mail(attachments=attachments)
    with pytest.raises(ParseError) as caught:
        parse(raw, Limits(max_attachments=3))
    assert caught.value.reason_code == "too_many_attachments"
    assert len(parse(raw, Limits(max_attachments=4)).attachments) == 4


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n  \r\n",
        "ただの文章です。\nメールではありません。\n".encode(),
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    ],
)
def test_bytes_that_are_no_mail_are_unparseable(raw):
    with pytest.raises(ParseError) as caught:
        parse(raw)
    assert caught.value.reason_code == "unparseable"


def nested(depth: int) -> bytes:
    inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "深い".encode() + b"\r\n"
    for _ in range(depth):
        inner = multipart("mixed", [inner])
    return b"From: a@b.jp\r\nSubject: nest\r\n" + inner


def test_nesting_up_to_the_limit_parses():
    assert parse(nested(MAX_DEPTH)).text == "深い"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 400, 1500])
def test_deeper_nesting_is_refused_as_too_deep(depth):
    with pytest.raises(ParseError) as caught:
        parse(nested(depth))
    assert caught.value.reason_code == "too_deep"


def test_many_sibling_multiparts_without_close_delimiters_are_not_too_deep():
    # No close delimiters, as truncating clients leave them: each sibling is
    # ended by its parent's next delimiter, so the nesting stays two deep.
    siblings = [
        crlf(f'Content-Type: multipart/alternative; boundary="alt{n}"\n\n--alt{n}\n'
             f"Content-Type: text/plain\n\npart {n}")
        for n in range(MAX_DEPTH + 10)
    ]
    message = parse(crlf("From: a@b.jp\n") + multipart("mixed", siblings))
    assert message.text.startswith("part 0\npart 1\n")


def test_thousands_of_nested_forwarded_mails_are_refused_as_too_deep():
    inner = b"Subject: x\r\n\r\nhello\r\n"
    for _ in range(3000):
        inner = b"From: a@b.jp\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    with pytest.raises(ParseError) as caught:
        parse(inner)
    assert caught.value.reason_code == "too_deep"


# -- sloppy mail still yields its text -----------------------------------------


def test_multipart_without_boundary_parameter_still_yields_text_and_attachment():
    raw = crlf(
        "From: a@b.jp\nSubject: s\nContent-Type: multipart/mixed\n\n--abc\n"
        "Content-Type: text/plain; charset=utf-8\n\n本文です\n--abc\n"
        "Content-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\n"
        "JVBERg==\n--abc--\n"
    )
    message = parse(raw)
    assert message.text == "本文です"
    assert [a.filename for a in message.attachments] == ["a.pdf"]
    assert "NoBoundaryInMultipartDefect in multipart/mixed" in message.defects
    assert "BoundaryGuessed in multipart/mixed" in message.defects


def test_multipart_with_wrong_boundary_still_yields_text():
    raw = crlf(
        'From: a@b.jp\nContent-Type: multipart/alternative; boundary="declared"\n\n'
        "--actual\nContent-Type: text/plain; charset=utf-8\n\nテキスト\n--actual--\n"
    )
    message = parse(raw)
    assert message.text == "テキスト"
    assert "StartBoundaryNotFoundDefect in multipart/alternative" in message.defects


def test_multipart_without_any_delimiter_is_read_as_text():
    raw = crlf("From: a@b.jp\nContent-Type: multipart/mixed; boundary=x\n\n本文だけ\n")
    assert parse(raw).text == "本文だけ"


def test_missing_close_delimiter_keeps_the_parts():
    raw = crlf(
        "From: a@b.jp\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain; charset=utf-8\n\n途中で切れたメール\n"
    )
    message = parse(raw)
    assert message.text == "途中で切れたメール"
    assert "CloseBoundaryNotFoundDefect in multipart/mixed" in message.defects


def test_bad_base64_body_keeps_the_readable_part_with_a_note():
    encoded = b64("サポート番号の件".encode())[:-3]  # cut mid-quantum, padding lost
    raw = crlf(
        "From: a@b.jp\nContent-Type: text/plain; charset=utf-8\n"
        f"Content-Transfer-Encoding: base64\n\n{encoded}\n"
    )
    message = parse(raw)
    assert message.text.startswith("サポート番号の")
    assert any(defect.startswith("InvalidBase64") for defect in message.defects)


def test_body_without_blank_line_after_headers_is_still_read():
    raw = crlf("From: a@b.jp\nSubject: s\nお問い合わせです\n")
    message = parse(raw)
    assert message.text == "お問い合わせです"
    assert message.defects


def test_format_flowed_soft_breaks_are_joined():
    raw = crlf(
        "From: a@b.jp\nContent-Type: text/plain; charset=UTF-8; format=flowed; delsp=yes\n"
        "Content-Transfer-Encoding: 8bit\n\n"
        "長い行が途中で \n折り返されています。\n> 引用の \n> 続きです\n-- \n署名\n"
    )
    assert parse(raw).text == "長い行が途中で折り返されています。\n> 引用の続きです\n-- \n署名"


# -- robustness ----------------------------------------------------------------


def parses_or_refuses(raw: bytes) -> None:
    try:
        parse(raw, Limits(max_message_bytes=200_000, max_attachments=20))
    except ParseError as error:
        assert error.reason_code in {"too_large", "too_many_attachments", "too_deep", "unparseable"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_only_ever_raise_parse_error(raw):
    parses_or_refuses(raw)


SEEDS = [
    make_mail(),
    make_mail(charset="shift_jis", html="<p>x</p>", attachments=[("a.pdf", "x/pdf", b"%")]),
    make_mail(charset="euc-jp", attachments=[("見積①.xlsx", "application/zip", b"PK")] * 2),
    make_mail(charset="utf-8", attachments=[("見積①.xlsx", "x/y", b"")], filename_style="rfc2047"),
    make_bounce(make_mail()),
]
JUNK = [
    b"\r\n", b"\r\n\r\n", b"--", b"=?", b"?=", b";", b'"', b"<", b">", b"\x00", b"\xff\xfe", b"%E3",
    b"\x1b$B", b"\x1b(I", b"boundary=", b"filename*0*=", b"=?ISO-2022-JP?B?GyRCLSE=?=",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(SEEDS) - 1), st.randoms(use_true_random=False), st.integers(1, 10))
def test_mutated_mails_only_ever_raise_parse_error(seed, rng: random.Random, edits):
    raw = bytearray(SEEDS[seed])
    for _ in range(edits):
        position = rng.randrange(len(raw) + 1)
        choice = rng.random()
        if choice < 0.3 and raw:
            raw[min(position, len(raw) - 1)] = rng.randrange(256)
        elif choice < 0.5:
            del raw[position : position + rng.randint(1, 200)]
        elif choice < 0.85:
            raw[position:position] = rng.choice(JUNK)
        else:
            del raw[position:]
    parses_or_refuses(bytes(raw))


def test_default_factory_mail_parses_cleanly():
    message = parse(make_mail())
    assert message.text == DEFAULT_BODY.rstrip()
    assert message.from_addr == "taro.yamada@customer.example.co.jp"
    assert message.to == ("support@example.co.jp",)
    assert message.date == DEFAULT_DATE
    assert message.content_type == "text/plain"
    assert message.html is None and message.attachments == () and message.defects == ()
    assert iso2022jp(DEFAULT_BODY.replace("\n", "\r\n")) in make_mail()
