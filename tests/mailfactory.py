"""Raw inbound mails built by hand, as Japanese mail clients put them on the wire.

Nothing here goes through the stdlib ``email`` generator: headers and bodies
are concatenated bytes, encoded the way Outlook, Thunderbird, Becky! and
iPhone Mail do it (7-bit ISO-2022-JP with the Windows characters, base64
Shift_JIS, 8-bit EUC-JP, RFC 2047 names split into words, RFC 2231 file
names), so the parser is tested against what arrives, not against itself.

    from tests.mailfactory import make_mail
    raw = make_mail(subject="ログインできません", body="サポート番号: 1234-5678-9012\\n...")
    raw = make_mail(in_reply_to=first_id, references=[first_id], charset="utf-8")

Every argument has a default; ``make_mail()`` is a valid support inquiry.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import quote

JST = timezone(timedelta(hours=9))

DEFAULT_FROM = ("山田 太郎", "taro.yamada@customer.example.co.jp")
DEFAULT_TO = "support@example.co.jp"
DEFAULT_DATE = datetime(2024, 4, 1, 10, 0, tzinfo=JST)
DEFAULT_SUBJECT = "ログインできない件について"
DEFAULT_BODY = (
    "サポートサービス番号: 1234-5678-9012\n"
    "\n"
    "株式会社サンプル システム部の山田です。\n"
    "いつもお世話になっております。\n"
    "\n"
    "本日朝より管理画面にログインできなくなりました。\n"
    "ご確認をお願いいたします。\n"
)

# charset argument -> (label in the Content-Type, default transfer encoding)
_CHARSETS = {
    "iso-2022-jp": ("ISO-2022-JP", "7bit"),  # Outlook, Becky!, Thunderbird (ja)
    "shift_jis": ("Shift_JIS", "base64"),  # webmail, mobile carriers
    "cp932": ("Windows-31J", "base64"),  # Java mailers
    "euc-jp": ("EUC-JP", "8bit"),  # Unix mailers
    "utf-8": ("UTF-8", "base64"),  # iPhone Mail, Gmail
}


def make_mail(
    subject: str = DEFAULT_SUBJECT,
    body: str | None = DEFAULT_BODY,
    *,
    charset: str = "iso-2022-jp",
    from_: str | tuple[str, str] = DEFAULT_FROM,
    to: str | Sequence[str | tuple[str, str]] = DEFAULT_TO,
    cc: Sequence[str | tuple[str, str]] = (),
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    date: datetime | str | None = DEFAULT_DATE,
    received: Sequence[datetime | str] = (),
    extra_headers: Mapping[str, str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    html: str | None = None,
    transfer_encoding: str | None = None,
    declared_charset: str | None = None,
    filename_style: str = "rfc2231",
) -> bytes:
    """One raw mail (CRLF line ends) from a customer to the desk.

    - ``charset``: "iso-2022-jp" | "shift_jis" | "cp932" | "euc-jp" | "utf-8";
      headers, body and HTML are all encoded in it, with the Windows
      characters (①, ㈱, ～, 髙, 﨑) and half-width kana (ESC ( I in ISO-2022-JP).
    - ``from_``, and each of ``to``/``cc``: (display name, address), or a
      ready "Name <addr>" string (non-ASCII in it goes out as raw UTF-8).
    - ``message_id``: bare id, no brackets; None generates a unique one,
      "" leaves the Message-ID header out. ``in_reply_to``/``references``
      are bare ids too.
    - ``date``: a datetime (formatted per RFC 5322), a raw string, or None
      to leave the Date header out.
    - ``received``: Received headers, topmost first: a datetime makes a
      plausible header with that date, a string is the raw header value.
    - ``extra_headers``: name -> value, added as they are (non-ASCII values
      as encoded words).
    - ``attachments``: (file name, content type, payload) triples, base64.
    - ``html``: an HTML alternative; with ``body=None`` the mail is HTML only.
    - ``transfer_encoding``: "7bit" | "8bit" | "base64" | "quoted-printable"
      for the text parts; defaults to what clients use for the charset.
    - ``declared_charset``: the label to put in the Content-Type instead of
      the real one (a wrong declaration); "" leaves the charset out.
    - ``filename_style``: "rfc2231" (Thunderbird: filename*=UTF-8''..., with
      continuations when long) or "rfc2047" (Outlook: name="=?ISO-2022-JP?B?...").
    """
    label, default_cte = _CHARSETS[charset]
    if declared_charset is not None:
        label = declared_charset
    cte = transfer_encoding or default_cte
    if message_id is None:
        message_id = f"{uuid.uuid4().hex}@mail.customer.example.co.jp"

    headers = [f"Received: {_received(value)}" for value in received]
    headers.append(f"From: {_mailbox(from_, charset)}")
    recipients = [to] if isinstance(to, str) else to
    headers.append("To: " + ",\r\n ".join(_mailbox(item, charset) for item in recipients))
    if cc:
        headers.append("Cc: " + ",\r\n ".join(_mailbox(item, charset) for item in cc))
    headers.append(f"Subject: {encoded_words(subject, charset)}")
    if date is not None:
        headers.append(f"Date: {date if isinstance(date, str) else format_datetime(date)}")
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        headers.append("References: " + "\r\n ".join(f"<{ref}>" for ref in references))
    for name, value in (extra_headers or {}).items():
        headers.append(f"{name}: {encoded_words(value, charset)}")
    headers.append("MIME-Version: 1.0")
    headers.append("X-Mailer: Microsoft Outlook 16.0")

    text_parts = []
    if body is not None:
        text_parts.append(_text_part("plain", body, charset, label, cte))
    if html is not None:
        text_parts.append(_text_part("html", html, charset, label, cte))
    if len(text_parts) == 2:
        content = multipart("alternative", text_parts)
    elif text_parts:
        content = text_parts[0]
    else:
        content = _text_part("plain", "", charset, label, cte)
    if attachments:
        content = multipart(
            "mixed",
            [content] + [_attachment(*item, charset, filename_style) for item in attachments],
        )
    return "\r\n".join(headers).encode("utf-8") + b"\r\n" + content


def make_bounce(original: bytes, *, headers_only: bool = False) -> bytes:
    """A delivery status notification (multipart/report) returning ``original``.

    With ``headers_only`` the original comes back as text/rfc822-headers,
    otherwise whole as message/rfc822, as Postfix and Exchange send them.
    """
    notice = _text_part(
        "plain",
        "This is the mail system at host mx.example.co.jp.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n",
        "utf-8",
        "us-ascii",
        "7bit",
    )
    status = (
        b"Content-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.co.jp\r\n\r\n"
        b"Final-Recipient: rfc822; nobody@customer.example.co.jp\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
    )
    if headers_only:
        returned = b"Content-Type: text/rfc822-headers\r\n\r\n" + original.split(b"\r\n\r\n")[0]
    else:
        returned = b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n" + original
    report = multipart("report", [notice, status, returned], "report-type=delivery-status")
    head = (
        "From: MAILER-DAEMON@mx.example.co.jp (Mail Delivery System)\r\n"
        f"To: {DEFAULT_TO}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(DEFAULT_DATE)}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mx.example.co.jp>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
    )
    return head.encode("ascii") + report


def multipart(subtype: str, parts: Sequence[bytes], extra_params: str = "") -> bytes:
    """A multipart entity (its Content-Type header, blank line, body) holding ``parts``."""
    boundary = f"----=_NextPart_000_{uuid.uuid4().hex[:16].upper()}"
    params = f"; {extra_params}" if extra_params else ""
    head = f'Content-Type: multipart/{subtype}{params};\r\n\tboundary="{boundary}"\r\n\r\n'
    body = b"This is a multi-part message in MIME format.\r\n\r\n"
    for part in parts:
        body += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return head.encode("ascii") + body + f"--{boundary}--\r\n".encode()


# -- encoders ---------------------------------------------------------------


def _jis_units(text: str) -> list[tuple[str, bytes]]:
    """Each character as ("ascii"|"kana"|"jis", its 7-bit bytes), via CP932."""
    units = []
    for char in text:
        if char.isascii():
            units.append(("ascii", char.encode("ascii")))
            continue
        sjis = char.encode("cp932")
        if len(sjis) == 1:
            units.append(("kana", bytes((sjis[0] - 0x80,))))
            continue
        # Python's CP932 encoder already writes IBM extensions in their
        # NEC-selected form (髙 -> 0xEEE0), which has a JIS code; only the
        # user-defined area (0xF0-0xF9) has none.
        if sjis[0] >= 0xF0:
            raise ValueError(f"{char!r} has no ISO-2022-JP / EUC-JP form")
        units.append(("jis", _sjis_to_jis(sjis[0], sjis[1])))
    return units


def _sjis_to_jis(s1: int, s2: int) -> bytes:
    offset = 0x70 if s1 <= 0x9F else 0xB0
    if s2 >= 0x9F:
        return bytes(((s1 - offset) * 2, s2 - 0x7E))
    return bytes(((s1 - offset) * 2 - 1, s2 - 0x1F - (s2 >= 0x80)))


_DESIGNATE = {"ascii": b"\x1b(B", "kana": b"\x1b(I", "jis": b"\x1b$B"}


def iso2022jp(text: str) -> bytes:
    """ISO-2022-JP as Windows writes it (CP50221): NEC/IBM characters in JIS
    X 0208 form, half-width kana after ESC ( I, back to ASCII at each end."""
    out = bytearray()
    mode = "ascii"
    for kind, code in _jis_units(text):
        if kind != mode:
            out += _DESIGNATE[kind]
            mode = kind
        out += code
    if mode != "ascii":
        out += _DESIGNATE["ascii"]
    return bytes(out)


def eucjp(text: str) -> bytes:
    """EUC-JP as eucJP-ms writes it, NEC/IBM characters included."""
    out = bytearray()
    for kind, code in _jis_units(text):
        if kind == "ascii":
            out += code
        elif kind == "kana":
            out += bytes((0x8E, code[0] | 0x80))
        else:
            out += bytes((code[0] | 0x80, code[1] | 0x80))
    return bytes(out)


def encode_text(text: str, charset: str) -> bytes:
    """``text`` in the named charset, Windows characters included."""
    if charset == "iso-2022-jp":
        return iso2022jp(text)
    if charset == "euc-jp":
        return eucjp(text)
    if charset in ("shift_jis", "cp932"):
        return text.encode("cp932")
    return text.encode(charset)


def _header_label(charset: str) -> str:
    return _CHARSETS[charset][0] if charset in _CHARSETS else charset


def encoded_words(text: str, charset: str) -> str:
    """RFC 2047 B-encoded words for ``text``, each under 76 characters and
    holding whole characters (one escape sequence set per ISO-2022-JP word),
    folded onto continuation lines as Thunderbird and Outlook do."""
    if text.isascii():
        return text
    label = _header_label(charset)
    room = (75 - len(f"=?{label}?B??=")) // 4 * 3
    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len(encode_text(chunk + char, charset)) > room:
            words.append(_word(chunk, charset, label))
            chunk = ""
        chunk += char
    words.append(_word(chunk, charset, label))
    return "\r\n ".join(words)


def _word(text: str, charset: str, label: str) -> str:
    return f"=?{label}?B?{base64.b64encode(encode_text(text, charset)).decode()}?="


def _mailbox(value: str | tuple[str, str], charset: str) -> str:
    if isinstance(value, str):
        return value
    name, address = value
    if not name:
        return address
    if name.isascii():
        return f'"{name}" <{address}>'
    return f"{encoded_words(name, charset)} <{address}>"


def _received(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    return (
        "from mx.customer.example.co.jp (mx.customer.example.co.jp [192.0.2.25])\r\n"
        "\tby mx.example.co.jp (Postfix) with ESMTPS id 4TX3Q21Z5Kz9rxL\r\n"
        f"\tfor <{DEFAULT_TO}>; {format_datetime(value)}"
    )


def _transfer_encode(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        return binascii.b2a_qp(data.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") or not data else data + b"\r\n"


def _text_part(subtype: str, text: str, charset: str, label: str, cte: str) -> bytes:
    data = encode_text(text.replace("\r\n", "\n").replace("\n", "\r\n"), charset)
    charset_param = f"; charset={label}" if label else ""
    head = (
        f"Content-Type: text/{subtype}{charset_param}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode("ascii") + _transfer_encode(data, cte)


def _attachment(name: str, ctype: str, payload: bytes, charset: str, style: str) -> bytes:
    if name.isascii():
        type_params = f'; name="{name}"'
        disposition = f'attachment; filename="{name}"'
    elif style == "rfc2047":
        words = encoded_words(name, charset if charset in _CHARSETS else "utf-8")
        type_params = f'; name="{words}"'
        disposition = f'attachment;\r\n filename="{words}"'
    else:
        type_params = ""
        disposition = "attachment;" + _rfc2231("filename", name)
    head = (
        f"Content-Type: {ctype}{type_params}\r\n"
        f"Content-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode("utf-8") + _transfer_encode(payload, "base64")


def _rfc2231(param: str, value: str) -> str:
    """``param*=UTF-8''...``, split into ``param*0*=`` continuations when long."""
    encoded = quote(value.encode("utf-8"), safe="")
    if len(encoded) <= 60:
        return f"\r\n {param}*=UTF-8''{encoded}"
    sections = []
    while encoded:
        cut = 60
        while "%" in encoded[cut - 2 : cut]:  # never split a %XX escape
            cut -= 1
        sections.append(encoded[:cut])
        encoded = encoded[cut:]
    charset = "UTF-8''"
    return ";".join(
        f"\r\n {param}*{i}*={charset if i == 0 else ''}{section}"
        for i, section in enumerate(sections)
    )
