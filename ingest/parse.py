"""Raw inbound bytes -> ``ParsedMessage``: what every later step reads.

Why our own decoding and not mail-parser, the design card's first choice:
``.venv/bin/python bench/libraries.py`` (its run: ``bench/results/libraries.txt``)
parses 200 Japanese mails built with ``tests/mailfactory.py``, whose content
is known, and the 8 demo mails, with each in turn:

    subject, sender name and body right  parse_message  mail-parser  stdlib default
    all (208)                                      208           84             107
    ISO-2022-JP, JIS X 0208 text (20)               20            0              20
    ISO-2022-JP, Shift_JIS, EUC-JP
      with CP932 characters (60)                    60            0               0
    Windows-31J (40)                                40            0               0
    median ms per message:
      0.7 KB text/plain                           0.26         0.60            1.05
      68 KB, 2 attachments                        2.08         2.20            3.93
      1.4 MB                                      32.5         25.5            28.6

CP932 characters are ①㈱～髙﨑 and half-width kana, which Windows clients put
in mail of any charset. mail-parser 4.8.0 hands 7-bit ISO-2022-JP bodies back
undecoded, knows no Windows-31J (Python has no codec of that name) and turns
CP932 characters into U+FFFD or drops them: the defects of Python's codecs
(the stdlib's own decoding, ``policy.default``, fails the same mail) and one
of its own. Every text part would have to be decoded again, and it costs 1.5
to 2.3 times our time on ordinary mail (1.1 times with attachments, 0.8 times
on the 1.4 MB mail, where base64 decoding is most of the work). So the MIME
structure comes from the stdlib feed parser with ``compat32`` (raw header
values, 8-bit bytes kept as surrogate escapes, defects recorded; 0.07 ms for
the 0.7 KB mail), after ``repair`` mended a broken header block, and
everything needing judgement is ours: charsets (``decode``), MIME parameters
(RFC 2231/2047), which parts are the text (every one with content, in order;
of alternatives the plain one unless it is empty) and which attachments.

Guards: the size limit is checked before parsing; multipart nesting is
bounded before the stdlib parser (whose work grows with depth x lines) sees
the bytes, message/rfc822 nesting by catching its RecursionError; nothing
but ``ParseError`` leaves ``parse_message``.
"""

from __future__ import annotations

import contextlib
import email
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import InvalidBase64LengthDefect
from email.generator import BytesGenerator
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from io import BytesIO

from madoguchi.config import Limits
from madoguchi.ingest.decode import (
    b64decode_lenient,
    charset_codec,
    decode_header_value,
    decode_text,
    parse_params,
    to_bytes,
)
from madoguchi.ingest.htmltext import html_to_text
from madoguchi.ingest.message import ParsedAttachment, ParsedMessage, ParseError
from madoguchi.ingest.repair import (
    UUENCODINGS,
    CharsetHints,
    recover_headers,
    split_mailboxes,
    unflow,
    uudecode,
    without_bidi,
)

MAX_DEPTH = 50
# Bounds on what a message may put in the desk's columns; beyond them a value
# is junk, not a longer real one. RFC 5321: a local part of 64 octets, "@", a
# domain of 255. RFC 5322: a Message-ID fits on one line of 998 characters.
# RFC 6838: a media type name is at most 127 characters.
MAX_ADDRESS = 320
MAX_MESSAGE_ID = 998
MAX_NAME = 200
MAX_CONTENT_TYPE = 127
# Of a References header, the thread's root and the nearest ancestors (RFC 5322
# 3.6.4); one naming a hundred thousand messages is no thread.
MAX_REFERENCES = 100
# The stdlib address parser takes some 3 µs a character; a longer header is
# read only if it is a plain list of addresses.
MAX_PARSED_ADDRESS_HEADER = 256 * 1024
# Dates the desk can work with: an earlier or later one is a broken clock or
# a forgery, and is taken as missing (the business calendar covers 1900-2199).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# A message must carry at least one of these to count as mail.
_MAIL_HEADERS = frozenset(
    ("from", "to", "subject", "date", "message-id", "received", "return-path", "sender",
     "mime-version", "content-type", "reply-to", "cc", "delivered-to")
)
_BODY_TYPES = frozenset(("text/plain", "text/html"))
_RETURNED_MESSAGE = frozenset(("message/rfc822", "message/global"))
_RETURNED_HEADERS = frozenset(("text/rfc822-headers", "message/global-headers"))
_DELIVERY_STATUS = frozenset(("message/delivery-status", "message/global-delivery-status"))
_MAX_STATUS = 20_000  # bytes of a delivery-status part kept: a few hundred recipients

# A boundary declaration, or a line starting "--" (whose trailing blanks are cut
# afterwards: a lazy pattern before [ \t]* took quadratic time on a line of blanks).
_MIME_MARK = re.compile(
    rb'boundary\s*=\s*(?:"([^"\r\n]+)"|([^\s;"]+))|^--([^\r\n]+)(?=\r?\n|\r?\Z)', re.I | re.M
)
_ANGLE_ID = re.compile(r"<\s*([^<>\s]+)\s*>")
# "addr", "Name <addr>", '"Name" <addr>' with nothing the full parser is needed for.
# Each piece is matched on its own: one pattern with optional spaces on both
# sides of a lazy name took cubic time on a header of blanks.
_ADDR_SPEC = re.compile(r"[^\s<>()\[\]\",;:\\@]+@[^\s<>()\[\]\",;:\\@]+")
_ANGLE_ADDR = re.compile(rf"<({_ADDR_SPEC.pattern})>")
_QUOTED_NAME = re.compile(r'"([^"\\]*)"')
_PLAIN_NAME = re.compile(r'[^"<>()\[\],;:\\@]*')
_ID_SEPARATORS = re.compile(r"[\s,;]+")
# An unquoted display name holds none of these: "yamada@x <evil@y>" is no name.
_NOT_A_NAME = re.compile(r"[@:;<>\[\]\\]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_MESSAGE_ID_LINE = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


def parse_message(raw: bytes, limits: Limits) -> ParsedMessage:
    """Parse one raw mail; raise ``ParseError`` (and nothing else) when it cannot be read.

    Reason codes: ``too_large``, ``too_many_attachments``, ``too_deep``,
    ``unparseable``. A merely sloppy mail parses as far as it can, with
    what was wrong in ``defects``. ``headers`` holds every header, decoded;
    of a repeated one (Received, Authentication-Results) the first, topmost.
    """
    if len(raw) > limits.max_message_bytes:
        raise ParseError(
            "too_large", f"message is {len(raw)} bytes, limit {limits.max_message_bytes}"
        )
    if not raw.strip():
        raise ParseError("unparseable", "empty message")
    if nesting_exceeds(raw, MAX_DEPTH):
        raise ParseError("too_deep", f"multipart nesting deeper than {MAX_DEPTH}")
    try:
        return _parse(raw, limits)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError("too_deep", "message nesting too deep for the parser") from exc
    except Exception as exc:  # a library failure must not take the worker down
        # repr: the message may quote the input, NUL bytes and all.
        raise ParseError("unparseable", f"parser failure: {exc!r}") from exc


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether multiparts nest deeper than ``limit``, judged before parsing.

    Depth cannot exceed the number of boundary declarations, so most mail is
    cleared by one count; otherwise boundary declarations and delimiter lines
    are replayed in order (an over-estimate at worst: a boundary declared in
    quoted text counts).
    """
    if raw.lower().count(b"boundary") <= limit:
        return False
    open_boundaries: list[bytes] = []
    for match in _MIME_MARK.finditer(raw):
        quoted, token, line = match.groups()
        if line is None:
            open_boundaries.append(quoted or token)
            if len(open_boundaries) > limit:
                return True
            continue
        line = line.rstrip(b" \t") or line[:1]
        closing = line.endswith(b"--") and line[:-2] in open_boundaries
        boundary = line[:-2] if closing else line
        if boundary in open_boundaries:
            # A delimiter of an outer part ends every part opened inside it.
            index = len(open_boundaries) - 1 - open_boundaries[::-1].index(boundary)
            del open_boundaries[index if closing else index + 1 :]
    return False


@dataclass
class _Collected:
    """What walking the MIME tree gathers."""

    limits: Limits
    hints: CharsetHints
    attachments: list[ParsedAttachment] = field(default_factory=list)
    html: list[str] = field(default_factory=list)  # every HTML part, in order
    bounced_message_id: str | None = None
    delivery_status: str | None = None
    defects: list[str] = field(default_factory=list)

    def add_attachment(self, attachment: ParsedAttachment) -> None:
        self.attachments.append(attachment)
        if len(self.attachments) > self.limits.max_attachments:
            raise ParseError(
                "too_many_attachments",
                f"more than {self.limits.max_attachments} attachments",
            )


@dataclass(frozen=True)
class _Part:
    """One MIME entity's headers, read our way."""

    message: Message
    content_type: str
    params: dict[str, str]
    disposition: str | None
    filename: str
    content_id: str | None
    uuencoded: bool  # Content-Transfer-Encoding: x-uuencode (or its kin)

    @classmethod
    def read(cls, message: Message, hints: CharsetHints) -> _Part:
        fields: dict[str, str] = {}
        for name, value in message.raw_items():
            fields.setdefault(name.lower(), value)
        content_type, params = parse_params(fields.get("content-type", ""), hints)
        if len(content_type) > MAX_CONTENT_TYPE or not _MEDIA_TYPE.fullmatch(content_type):
            content_type = message.get_default_type()
        disposition, disposition_params = parse_params(
            fields.get("content-disposition", ""), hints)
        ids = message_ids(fields.get("content-id", ""))
        return cls(
            message=message,
            content_type=content_type,
            params=params,
            disposition=disposition or None,
            filename=_no_nul(disposition_params.get("filename") or params.get("name") or ""),
            content_id=ids[0] if ids else None,
            uuencoded="content-transfer-encoding" in fields
            and fields["content-transfer-encoding"].strip().lower() in UUENCODINGS,
        )


# Readable pieces of a part: ("plain" | "html", decoded text).
_Pieces = list[tuple[str, str]]


def _parse(raw: bytes, limits: Limits) -> ParsedMessage:
    raw, repairs = recover_headers(raw)
    message = email.message_from_bytes(raw)
    header_values: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        header_values.setdefault(name.strip().lower(), []).append(value)
    if _MAIL_HEADERS.isdisjoint(header_values):
        raise ParseError("unparseable", "no mail header block (no From, To, Subject, Date...)")

    hints = CharsetHints(raw)
    collected = _Collected(limits, hints)
    collected.defects.extend(repairs)
    root = _Part.read(message, hints)
    pieces = _visit(root, 0, collected)
    # Every text part with content, in order: alternatives were chosen among
    # already (_visit_multipart); an HTML part beside a plain one is text too.
    texts = [text if kind == "plain" else html_to_text(text) for kind, text in pieces]

    def first(name: str) -> str:
        return header_values.get(name, [""])[0]

    # The first of repeated headers: the topmost, added by the MTA nearest to us.
    headers = {
        name: _no_nul(decode_header_value(values[0], hints))
        for name, values in header_values.items()
    }
    from_name, from_addr = _mailbox(first("from"), hints, collected.defects)
    received = header_values.get("received")
    return ParsedMessage(
        message_id=next(iter(message_ids(first("message-id"))), None),
        in_reply_to=_thread_ids(message_ids(first("in-reply-to"))),
        references=_thread_ids(message_ids(first("references"))),
        subject=without_bidi(headers.get("subject", "")).strip(),
        from_addr=from_addr,
        from_name=from_name,
        to=_addresses(header_values.get("to", [])),
        cc=_addresses(header_values.get("cc", [])),
        reply_to=_addresses(header_values.get("reply-to", [])),
        date=parse_date(first("date")),
        received_date=received_date(received[0]) if received else None,
        text="\n".join(text.rstrip() for text in texts if text.strip()),
        html=collected.html[0] if collected.html else None,
        more_html=tuple(collected.html[1:]),
        attachments=tuple(collected.attachments),
        headers=headers,
        content_type=root.content_type,
        bounced_message_id=collected.bounced_message_id,
        delivery_status=collected.delivery_status,
        defects=tuple(dict.fromkeys(collected.defects)),
    )


def _visit(part: _Part, depth: int, collected: _Collected) -> _Pieces:
    """Gather attachments and defects under ``part``; return its readable text."""
    if depth > MAX_DEPTH:
        raise ParseError("too_deep", f"MIME nesting deeper than {MAX_DEPTH}")
    pieces = _read(part, depth, collected)
    # Read afterwards: undoing the transfer encoding adds the stdlib's defects.
    collected.defects.extend(
        f"{type(defect).__name__} in {part.content_type}" for defect in part.message.defects
    )
    return pieces


def _read(part: _Part, depth: int, collected: _Collected) -> _Pieces:
    if part.content_type.startswith("multipart/"):
        children = _children(part.message)
        if children is None:
            children = _salvage_parts(part, collected)
        if children is None:
            return _text_leaf(part, "plain", collected)
        parts = [_Part.read(child, collected.hints) for child in children]
        return _visit_multipart(part, parts, depth, collected)
    if part.content_type in _BODY_TYPES and part.disposition != "attachment" and not part.filename:
        return _text_leaf(part, part.content_type[5:], collected)
    collected.add_attachment(
        ParsedAttachment(
            filename=part.filename,
            content_type=part.content_type,
            payload=_payload(part.message, part.uuencoded),
            content_id=part.content_id,
            inline=part.disposition == "inline"
            or (part.disposition is None and part.content_id is not None),
        )
    )
    return []


def _visit_multipart(
    part: _Part, children: list[_Part], depth: int, collected: _Collected
) -> _Pieces:
    if part.content_type == "multipart/report":
        _note_bounce(children, collected)
    readable = [_visit(child, depth + 1, collected) for child in children]
    if part.content_type != "multipart/alternative":
        return [piece for pieces in readable for piece in pieces]
    # Prefer a plain-text alternative with content; else the last (the richest)
    # with content: an empty text/plain beside a full HTML part is no text.
    for pieces in readable:
        if any(kind == "plain" and text.strip() for kind, text in pieces):
            return pieces
    return next((pieces for pieces in reversed(readable) if _has_content(pieces)),
                next((pieces for pieces in readable if pieces), []))


def _has_content(pieces: _Pieces) -> bool:
    return any((text if kind == "plain" else html_to_text(text)).strip() for kind, text in pieces)


def _text_leaf(part: _Part, kind: str, collected: _Collected) -> _Pieces:
    data = _payload(part.message, part.uuencoded)
    declared = part.params.get("charset", "")
    if not declared and kind == "html":
        meta = _META_CHARSET.search(data, 0, 2048)
        declared = meta.group(1).decode("ascii") if meta else ""
    decoded = decode_text(data, declared or None, collected.hints)
    if not decoded.exact:
        collected.defects.append(
            f"UndecodableText in {part.content_type}: "
            f"declared {declared or 'no charset'}, read as {decoded.charset} with replacements"
        )
    elif "+" in decoded.charset:
        collected.defects.append(
            f"MixedCharset in {part.content_type}: declared {declared or 'no charset'}, "
            f"read as {decoded.charset} (UTF-8, the bytes that are not UTF-8 as Windows-1252)"
        )
    elif decoded.charset != "ascii" and charset_codec(declared) not in (decoded.charset, None):
        collected.defects.append(
            f"CharsetMismatch in {part.content_type}: "
            f"declared {declared}, read as {decoded.charset}"
        )
    text = _no_nul(decoded.text).replace("\r\n", "\n").replace("\r", "\n")
    if kind == "html":
        collected.html.append(text)
        return [("html", text)]
    if part.params.get("format", "").lower() == "flowed":
        text = unflow(text, delsp=part.params.get("delsp", "").lower() == "yes")
    return [("plain", text)]


def _payload(message: Message, uuencoded: bool = False) -> bytes:
    """The entity's body bytes, transfer encoding undone."""
    if message.is_multipart():  # message/*, which the stdlib parsed: write it back
        return _entity_body(message)
    decoded = message.get_payload(decode=True)
    data = decoded if isinstance(decoded, bytes) else b""  # None: no body at all
    if any(isinstance(defect, InvalidBase64LengthDefect) for defect in message.defects):
        data = b64decode_lenient(data)  # the stdlib hands such base64 back undecoded
    elif uuencoded:
        # The stdlib decodes uuencode only after a "begin" line, else hands it back.
        data = uudecode(data) or data
    return data


def _entity_body(message: Message) -> bytes:
    buffer = BytesIO()
    BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(message, linesep="\r\n")
    return buffer.getvalue().partition(b"\r\n\r\n")[2]


def _children(message: Message) -> list[Message] | None:
    """The entities the parser found inside a multipart (or message/*) entity; None if none."""
    payload = message.get_payload()
    if not isinstance(payload, list):
        return None
    return [m for m in payload if isinstance(m, Message)]


def _salvage_parts(part: _Part, collected: _Collected) -> list[Message] | None:
    """Children of a multipart whose boundary is missing or wrong, found by the
    delimiter lines actually in its body; None when there are none."""
    body = _payload(part.message)
    for match in re.finditer(rb"^--([!#-~]{1,70}?)[ \t]*\r?$", body, re.M):
        boundary = match.group(1)
        if body.count(b"--" + boundary) < 2:
            continue
        head = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
        children = _children(email.message_from_bytes(head + body))
        if children:
            collected.defects.append(f"BoundaryGuessed in {part.content_type}")
            return children
    return None


def _note_bounce(children: list[_Part], collected: _Collected) -> None:
    for child in children:
        if child.content_type in _DELIVERY_STATUS and collected.delivery_status is None:
            # Before the returned message, as RFC 3464 orders a report's parts.
            collected.delivery_status = _payload(child.message)[:_MAX_STATUS].decode(
                "utf-8", "replace")
        if child.content_type in _RETURNED_MESSAGE:
            returned = _children(child.message)
            if returned:
                values = [v for n, v in returned[0].raw_items() if n.lower() == "message-id"]
                ids = message_ids(values[0]) if values else ()
                collected.bounced_message_id = ids[0] if ids else None
                return
        if child.content_type in _RETURNED_HEADERS:
            match = _MESSAGE_ID_LINE.search(_payload(child.message))
            ids = message_ids(match.group(1).decode("ascii", "replace")) if match else ()
            collected.bounced_message_id = ids[0] if ids else None
            return


def message_ids(value: str) -> tuple[str, ...]:
    """Bare message ids from Message-ID / In-Reply-To / References.

    Tolerates folding, comments and other junk around ``<id>``; without any
    brackets, takes the tokens that look like ids (contain "@").
    """
    if not value.isascii():
        value = decode_header_value(value)
    ids = _ANGLE_ID.findall(value)
    if not ids:
        ids = [token.strip("<>") for token in _ID_SEPARATORS.split(value) if "@" in token]
    return tuple(
        dict.fromkeys(
            id_ for id_ in ids if id_ and len(id_) <= MAX_MESSAGE_ID and id_.isprintable()
        )
    )


def _thread_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    if len(ids) <= MAX_REFERENCES:
        return ids
    return (ids[0], *ids[-(MAX_REFERENCES - 1) :])


def _no_nul(text: str) -> str:
    # No mail text means a NUL, and PostgreSQL refuses to store one.
    return text.replace("\0", "")


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 date, timezone-aware (UTC when the zone is unknown); None if unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        in_range = _EARLIEST <= parsed.astimezone(UTC) < _LATEST
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if in_range else None


def received_date(received: str) -> datetime | None:
    """The date a Received header ends with, after its last semicolon."""
    _, semicolon, date = received.rpartition(";")
    return parse_date(date) if semicolon else None


def _mailbox(
    value: str, hints: Sequence[str] = (), defects: list[str] | None = None
) -> tuple[str, str]:
    """(decoded display name, lower-cased address) of a From header: its first mailbox."""
    if not value:
        return "", ""
    simple = _simple_mailbox(value)  # the stdlib address parser is slow; most need none of it
    name, address = "", ""
    if simple:
        name, address = simple
    else:
        boxes = split_mailboxes(value) if len(value) <= MAX_PARSED_ADDRESS_HEADER else []
        if len(boxes) > 1:
            # The name is the first mailbox's own, never paired with another's
            # address; and as DMARC reads it, several addresses leave the sender
            # unknown (a forger lists the contact first and signs for the second).
            name, address = _one_mailbox(boxes[0])
            address = address if sum("@" in box for box in boxes) == 1 else ""
            if defects is not None:
                defects.append("MultipleFromMailboxes: the sender is unknown")
        else:
            name, address = _one_mailbox(value)
    address = _clean_address(address)
    if not address and not name:  # a bare name, no address at all
        name = value
    name = _no_nul(decode_header_value(name, hints))
    if not name.isprintable() or "  " in name:
        name = " ".join(_CONTROLS.sub(" ", name).split())
    name = without_bidi(name)
    return (name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"), address


def _one_mailbox(value: str) -> tuple[str, str]:
    """(raw display name, address) of one mailbox that ``_simple_mailbox`` could not read."""
    angled = _ANGLE_ADDR.findall(value)
    stripped = value.rstrip()
    name = stripped[: stripped.rfind("<")].strip()
    quoted = _QUOTED_NAME.fullmatch(name)
    name = quoted.group(1) if quoted else name
    if len(angled) == 1 and stripped.endswith(">") and (quoted or not _NOT_A_NAME.search(name)):
        # The name is what stands before the angle brackets, as a mail client
        # shows it, encoded words (with blanks or commas inside) and all.
        return name, angled[0]
    name, address = "", ""
    if len(value) <= MAX_PARSED_ADDRESS_HEADER:
        with contextlib.suppress(RecursionError):  # comments nested thousands deep
            name, address = parseaddr(value)
    # A mail client shows, and DMARC checks, the address in angle brackets: read
    # anything else, and "yamada@customer.example <x@evil.example>" would pass for
    # the customer. Two addresses leave the sender unknown.
    if len(angled) == 1:
        address = angled[0]
    elif angled or len(_addresses([value])) > 1:
        address = ""
    return name, address


def _simple_mailbox(value: str) -> tuple[str, str] | None:
    """(name, address) of "addr", "Name <addr>" or '"Name" <addr>'; None for anything else."""
    value = value.strip()
    if _ADDR_SPEC.fullmatch(value):
        return "", value
    name, bracket, rest = value.rpartition("<")
    address = rest[:-1]
    if not bracket or not rest.endswith(">") or not _ADDR_SPEC.fullmatch(address):
        return None
    name = name.strip()
    quoted = _QUOTED_NAME.fullmatch(name)
    if quoted:
        return quoted.group(1), address
    return (name, address) if _PLAIN_NAME.fullmatch(name) else None


def _addresses(values: list[str]) -> tuple[str, ...]:
    pairs: list[str] = []
    for value in values:
        simple = [_simple_mailbox(item) for item in value.split(",")]
        if all(simple):
            pairs.extend(mailbox[1] for mailbox in simple if mailbox)
            continue
        if len(value) <= MAX_PARSED_ADDRESS_HEADER:
            with contextlib.suppress(RecursionError):
                pairs.extend(address for _, address in getaddresses([value]))
    found = (_clean_address(address) for address in pairs)
    return tuple(dict.fromkeys(address for address in found if address))


def _clean_address(address: str) -> str:
    address = address.strip()
    if not address.isascii():
        try:  # SMTPUTF8 addresses arrive as raw UTF-8
            address = to_bytes(address).decode("utf-8")
        except UnicodeDecodeError:
            return ""
        if "@" not in address:
            return ""
    # No address has spaces or control characters, or is longer than SMTP allows.
    if len(address) > MAX_ADDRESS or not address.isprintable() or " " in address:
        return ""
    return address.lower()
