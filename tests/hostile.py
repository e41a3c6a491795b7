"""A seeded corpus of hostile and broken input for the whole pipeline.

Every case is a ``HostileCase``: a name ("family/what"), the raw bytes, the
kind the pipeline is told (None for mail, "fax" for a FAX document) and the
expectation: the outcomes it may end in ("created", or "quarantined:<reason
code>"). Nothing is read from disk; the bytes are built here, the random ones
from ``SEED``, so two runs feed the pipeline the same corpus.

Families: ``mime`` (structure), ``header``, ``enc`` (transfer encodings and
lying charsets), ``name`` (attachment names), ``html`` (XSS vectors),
``inject`` (line breaks meant for the acknowledgement's headers), ``auto``,
``attach`` (zip/gzip bombs, a FAX gateway's bombs) and ``fax`` (documents).

Mail comes from the registered contact of ``demo/customers.csv`` and names its
support number, so every mail that opens a ticket is acknowledged, and the
acknowledgement's headers can be checked.

    .venv/bin/python -m tests.hostile --report     # writes bench/results/hostile.txt
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email
import email.policy
import io
import random
import re
import struct
import sys
import tempfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple, get_args
from urllib.parse import quote

from PIL import Image
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen.canvas import Canvas

from madoguchi.app import Desk
from madoguchi.config import Limits, load_settings
from madoguchi.ingest.inbound import Inbound, Outcome, OutcomeKind
from madoguchi.ingest.message import ParsedMessage, ParseError
from madoguchi.ingest.parse import (
    MAX_ADDRESS,
    MAX_CONTENT_TYPE,
    MAX_MESSAGE_ID,
    MAX_NAME,
    MAX_REFERENCES,
    parse_message,
)
from madoguchi.ingest.pipeline import Pipeline
from madoguchi.ocr.errors import ReasonCode
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction, upgrade
from madoguchi.ticketing.rules.autoreply import AutoKind

SEED = 20261124
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
REPORT = ROOT / "bench" / "results" / "hostile.txt"

DESK = "support@example.co.jp"
CONTACT = "yamada@sakura-shoji.example.jp"
SUPPORT_NUMBER = "2031-0001-0008"
GATEWAY = "fax@gw.example.jp"
DATE = "Tue, 24 Nov 2026 10:00:00 +0900"
EVIL = "attacker@evil.example"

PARSE_REASONS = frozenset(("too_large", "too_many_attachments", "too_deep", "unparseable"))
FAX_REASONS = frozenset(get_args(ReasonCode))
AUTO_REASONS = frozenset(kind.value for kind in AutoKind)
# Every reason a hostile input may be quarantined with: each names what was wrong.
# "internal_error" and "worker_failed" are not among them: they mean a bug.
KNOWN_REASONS = PARSE_REASONS | FAX_REASONS | AUTO_REASONS

CREATED = frozenset({"created"})


def quarantined(*codes: str) -> frozenset[str]:
    unknown = set(codes) - KNOWN_REASONS
    if unknown:
        raise ValueError(f"not a reason code: {sorted(unknown)}")
    return frozenset(f"quarantined:{code}" for code in codes)


class HostileCase(NamedTuple):
    name: str
    raw: bytes
    kind: str | None  # None: mail; "fax": a FAX document
    expect: frozenset[str]  # "created", "threaded", "quarantined:<code>"
    ref: str = ""  # the source_ref (a FAX document's file name); the name when empty

    def inbound(self) -> Inbound:
        return Inbound(self.raw, "hostile", self.ref or self.name, kind=self.kind)


def outcome_label(outcome: Outcome) -> str:
    """"created", "threaded", "duplicate" or "quarantined:<code>"."""
    if outcome.kind is not OutcomeKind.QUARANTINED:
        return outcome.kind.value
    return f"quarantined:{(outcome.reason or '').split(':', 1)[0]}"


# -- mail, byte by byte ------------------------------------------------------------------

BODY = f"サポートサービス番号: {SUPPORT_NUMBER}\r\nログインできません。\r\n".encode()


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def mail(
    name: str,
    *,
    headers: Sequence[tuple[str | bytes, str | bytes]] = (),
    body: bytes = BODY,
    content_type: str | bytes | None = "text/plain; charset=utf-8",
    cte: str | None = "8bit",
    sender: str | bytes = CONTACT,
    subject: str | bytes | None = None,
    message_id: str | bytes | None = None,
    date: str | bytes | None = DATE,
) -> bytes:
    """A mail as it arrives: CRLF header lines exactly as given, a blank line, ``body``.

    Defaults make a valid inquiry from the registered contact; any header may
    be replaced with bytes no mailer would write.
    """
    lines: list[bytes] = [b"From: " + _b(sender), b"To: " + _b(DESK)]
    lines.append(b"Subject: " + _b(subject if subject is not None else f"hostile {name}"))
    if date is not None:
        lines.append(b"Date: " + _b(date))
    if message_id is None:
        message_id = f"<{name.replace('/', '.')}@hostile.example>"
    if message_id:
        lines.append(b"Message-ID: " + _b(message_id))
    lines.append(b"MIME-Version: 1.0")
    if content_type is not None:
        lines.append(b"Content-Type: " + _b(content_type))
    if cte is not None:
        lines.append(b"Content-Transfer-Encoding: " + _b(cte))
    lines.extend(_b(key) + b": " + _b(value) for key, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def part(content_type: str | bytes, payload: bytes, *, cte: str = "base64",
         disposition: str | bytes | None = None) -> bytes:
    """One MIME entity: its headers, a blank line, its body (encoded)."""
    head = [b"Content-Type: " + _b(content_type), b"Content-Transfer-Encoding: " + _b(cte)]
    if disposition is not None:
        head.append(b"Content-Disposition: " + _b(disposition))
    if cte == "base64":
        payload = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return b"\r\n".join(head) + b"\r\n\r\n" + payload


def multipart_body(parts: Iterable[bytes], boundary: str, *, close: bool = True) -> bytes:
    out = b"This is a multi-part message in MIME format.\r\n"
    for entity in parts:
        out += b"--" + boundary.encode() + b"\r\n" + entity + b"\r\n"
    return out + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def with_attachment(name: str, filename_params: str | bytes, payload: bytes,
                    content_type: str = "application/octet-stream",
                    sender: str = CONTACT, subject: str | None = None) -> bytes:
    """A text part and one attachment whose Content-Disposition parameters are given raw."""
    boundary = "hostile-boundary-1"
    entities = [
        part("text/plain; charset=utf-8", BODY, cte="8bit"),
        part(content_type, payload, disposition=b"attachment; " + _b(filename_params)),
    ]
    return mail(name, body=multipart_body(entities, boundary), sender=sender, subject=subject,
                content_type=f'multipart/mixed; boundary="{boundary}"', cte=None)


def encoded_word(text: str, encoding: str = "b", charset: str = "utf-8") -> str:
    data = text.encode(charset)
    if encoding == "b":
        return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
    quoted = binascii.b2a_qp(data, header=True).decode().replace("\r", "=0D").replace("\n", "=0A")
    return f"=?{charset}?q?{quoted}?="


# -- bombs, made here without ever holding their contents --------------------------------

ONE_MIB = 1 << 20


@cache
def _zero_deflate(mebibytes: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``mebibytes`` MiB of zero bytes, and their CRC-32.

    Each MiB is compressed after a full flush, so every MiB's blocks are the
    same bytes: one is made, and repeated.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(ONE_MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    zeros = bytes(ONE_MIB)
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    return block * mebibytes + b"\x03\x00", crc  # the final, empty, fixed-Huffman block


def zip_bomb(mebibytes: int = 1024, inner_name: str = "zeros.bin") -> bytes:
    """A zip archive of one file of ``mebibytes`` MiB of zeros (1 GiB: about 1 MB)."""
    data, crc = _zero_deflate(mebibytes)
    size = mebibytes * ONE_MIB
    name = inner_name.encode()
    dos_time, dos_date = 0, (2026 - 1980) << 9 | 11 << 5 | 24
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, dos_time, dos_date, crc,
                        len(data), size, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, dos_time, dos_date,
                          crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0) + name
    offset = len(local) + len(data)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return local + data + central + end


def gzip_bomb(mebibytes: int = 1024) -> bytes:
    data, crc = _zero_deflate(mebibytes)
    header = b"\x1f\x8b\x08\x00" + bytes(4) + b"\x02\xff"
    return header + data + struct.pack("<II", crc, (mebibytes * ONE_MIB) & 0xFFFFFFFF)


def zip_slip() -> bytes:
    """A zip whose entries would land outside any folder it were unpacked into."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in ("../../../../tmp/madoguchi-zip-slip.sh", "/etc/cron.d/evil",
                     "..\\..\\windows\\evil.dll"):
            archive.writestr(zipfile.ZipInfo(name), b"#!/bin/sh\necho owned\n")
    return buf.getvalue()


def pdf_document(objects: Sequence[bytes], *, root: int = 1, extra_trailer: bytes = b"") -> bytes:
    """A PDF file of ``objects`` (numbered from 1) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\n" % (len(objects) + 1, root, extra_trailer)
    return bytes(out + b"startxref\n%d\n%%%%EOF\n" % xref)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _one_page_pdf(page_extra: bytes = b"", content: bytes = b"", resources: bytes = b"",
                  more: Sequence[bytes] = (), catalog_extra: bytes = b"",
                  media_box: bytes = b"[0 0 595 842]", count: int = 1) -> bytes:
    return pdf_document([
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + media_box + b" /Resources << "
        + resources + b">> /Contents 4 0 R " + page_extra + b">>",
        _stream(b"", content),
        *more,
    ])


def pdf_huge_page(points: int = 20000) -> bytes:
    """One page ``points`` × ``points`` pt (20000 pt: 7 m square)."""
    return _one_page_pdf(media_box=b"[0 0 %d %d]" % (points, points),
                         content=b"BT /F1 12 Tf 72 72 Td (huge) Tj ET",
                         resources=b"/Font << /F1 5 0 R >> ",
                         more=[b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])


def pdf_huge_image(pixels: int = 30000) -> bytes:
    """An A4 page showing one ``pixels``² bilevel white image: 112 MB of pixels in ~110 KB."""
    row_bytes = (pixels + 7) // 8
    size = row_bytes * pixels
    mebibytes = -(-size // ONE_MIB)
    deflated, _ = _zero_deflate(mebibytes)
    padded = mebibytes * ONE_MIB  # the stream holds a little more than the image needs
    adler = (padded % 65521) << 16 | 1  # Adler-32 of zeros: a stays 1, b counts them
    data = b"\x78\xda" + deflated + struct.pack(">I", adler)
    image = _stream(
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 1 /Decode [1 0] /Filter /FlateDecode" % (pixels, pixels),
        data,
    )
    return _one_page_pdf(content=b"q 595 0 0 842 0 0 cm /Im0 Do Q",
                         resources=b"/XObject << /Im0 5 0 R >> ", more=[image])


def pdf_pages(count: int, encrypt: StandardEncryption | None = None) -> bytes:
    """``count`` blank A4 pages, drawn by reportlab."""
    buf = io.BytesIO()
    pdf = Canvas(buf, pagesize=(595.0, 842.0), encrypt=encrypt)
    for _ in range(count):
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def pdf_encrypted(user_password: str = "secret") -> bytes:
    return pdf_pages(1, encrypt=StandardEncryption(user_password, ownerPassword="owner-pw"))


def pdf_javascript() -> bytes:
    """A blank page that asks the reader to run JavaScript and launch a program on opening."""
    action = b"<< /S /JavaScript /JS (app.alert('owned'); this.exportDataObject({}); ) >>"
    launch = b"<< /S /Launch /F (cmd.exe) /Win << /F (cmd.exe) /P (/c calc) >> >>"
    return _one_page_pdf(catalog_extra=b"/OpenAction 5 0 R /AA << /WC 6 0 R >> ",
                         more=[action, launch])


def pdf_deep_nesting(depth: int = 100_000) -> bytes:
    return _one_page_pdf(page_extra=b"/Junk " + b"[" * depth + b"]" * depth + b" ")


def pdf_count_lie() -> bytes:
    """A page tree that claims a million pages and has one."""
    return _one_page_pdf(count=1_000_000)


def _tiff(image: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "TIFF", **params)
    return buf.getvalue()


def tiff_g4_blank(width: int, height: int) -> bytes:
    """A white page, CCITT G4: a few KB whatever its size."""
    return _tiff(Image.new("1", (width, height), 1), compression="group4", dpi=(200, 200))


def _ifd_entries(data: bytes, offset: int) -> Iterable[tuple[int, int, int]]:
    """(tag, type, offset of the entry) of the little-endian TIFF IFD at ``offset``."""
    (count,) = struct.unpack_from("<H", data, offset)
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        yield tag, kind, entry


def tiff_claiming(width: int, height: int) -> bytes:
    """A small G4 TIFF written by Pillow, its IFD then patched to claim ``width``×``height``."""
    data = bytearray(_tiff(Image.new("1", (256, 256), 1), compression="group4"))
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", data, 4)
    for tag, kind, entry in _ifd_entries(bytes(data), ifd):
        value = {256: width, 257: height, 278: height}.get(tag)
        if value is not None:
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, value)
    return bytes(data)


def tiff_pages(count: int) -> bytes:
    pages = [Image.new("1", (1728, 200), 1) for _ in range(count)]
    return _tiff(pages[0], save_all=True, append_images=pages[1:], compression="group4")


def tiff_ifd_loop() -> bytes:
    """Two pages whose second IFD names the first as the next: a page chain without end."""
    data = bytearray(tiff_pages(2))
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    (second,) = struct.unpack_from("<I", data, first + 2 + 12 * count)
    (count2,) = struct.unpack_from("<H", data, second)
    struct.pack_into("<I", data, second + 2 + 12 * count2, first)
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body)
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


def bmp_claiming(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (8, 8), 1).save(buf, "BMP")
    data = bytearray(buf.getvalue())
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def _image(mode: str, size: tuple[int, int], fmt: str, colour: int | tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, fmt)
    return buf.getvalue()


# -- the families ------------------------------------------------------------------------

_B = "b0undary"


def _nested_multipart(name: str, depth: int) -> bytes:
    """A mail whose text sits ``depth`` multiparts deep."""
    body = part("text/plain; charset=utf-8", BODY, cte="8bit")
    for level in range(depth - 1):
        boundary = f"nest{level}"
        body = (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
                + multipart_body([body], boundary))
    return mail(name, body=multipart_body([body], "top"), cte=None,
                content_type='multipart/mixed; boundary="top"')


def _nested_rfc822(depth: int) -> bytes:
    inner = mail("inner", body=b"innermost\r\n")
    for _ in range(depth):
        inner = mail("wrapper", body=inner, content_type="message/rfc822", cte="8bit")
    return inner


def mime_cases(rng: random.Random) -> list[HostileCase]:
    text = part("text/plain; charset=utf-8", BODY, cte="8bit")
    attachment = part("application/pdf", b"%PDF-1.4 not really\n",
                      disposition='attachment; filename="a.pdf"')
    two = multipart_body([text, attachment], _B)
    cases = [
        ("missing_boundary_parameter", mail("m1", body=two, content_type="multipart/mixed",
                                            cte=None), CREATED),
        ("wrong_boundary_parameter", mail("m2", body=two, cte=None,
                                          content_type='multipart/mixed; boundary="other"'),
         CREATED),
        ("no_closing_delimiter", mail("m3", body=multipart_body([text, attachment], _B,
                                                               close=False),
                                      content_type=f"multipart/mixed; boundary={_B}", cte=None),
         CREATED),
        ("boundary_never_used", mail("m4", body=BODY, cte=None,
                                     content_type=f"multipart/mixed; boundary={_B}"), CREATED),
        ("empty_multipart", mail("m5", body=b"", cte=None,
                                 content_type=f"multipart/mixed; boundary={_B}"), CREATED),
        ("nested_multipart_100_levels", _nested_multipart("m6", 100), quarantined("too_deep")),
        ("nested_multipart_45_levels", _nested_multipart("m7", 45), CREATED),
        ("nested_message_rfc822_100_levels", mail("m8", body=_nested_rfc822(100), cte=None,
                                                  content_type="message/rfc822"),
         CREATED | quarantined("too_deep")),
        ("nested_message_rfc822_2000_levels", mail("m9", body=_nested_rfc822(2000), cte=None,
                                                   content_type="message/rfc822"),
         CREATED | quarantined("too_deep")),
        ("five_thousand_parts", mail("m10", body=multipart_body([text] * 5000, _B), cte=None,
                                     content_type=f"multipart/mixed; boundary={_B}"), CREATED),
        ("too_many_attachments",
         mail("m11", body=multipart_body([text] + [attachment] * 101, _B), cte=None,
              content_type=f"multipart/mixed; boundary={_B}"),
         quarantined("too_many_attachments")),
        ("rfc822_attachment_headers_only",
         mail("m12", cte=None, content_type=f"multipart/mixed; boundary={_B}",
              body=multipart_body([text, part("message/rfc822", b"Subject: cut here",
                                              cte="7bit")], _B)), CREATED),
        ("headers_only_no_blank_line",
         b"From: " + CONTACT.encode() + b"\r\nSubject: no body\r\nMessage-ID: <m13@h>", CREATED),
        ("body_without_headers", BODY * 3, quarantined("unparseable")),
        ("empty", b"", quarantined("unparseable")),
        ("whitespace_only", b" \r\n\t\r\n\r\n", quarantined("unparseable")),
        ("random_bytes", rng.randbytes(65536), quarantined("unparseable")),
        ("jpeg_sent_as_mail", _image("RGB", (64, 64), "JPEG", (200, 30, 30)),
         quarantined("unparseable")),
        ("bare_cr_line_ends", mail("m14").replace(b"\r\n", b"\r"), CREATED),
        ("lf_line_ends", mail("m15").replace(b"\r\n", b"\n"), CREATED),
        ("mixed_line_ends", mail("m16", body=b"a\rb\nc\r\nd\n\r" * 1000), CREATED),
        ("over_the_size_limit", mail("m17", body=b"x" * (25 * ONE_MIB + 1)),
         quarantined("too_large")),
        ("one_line_of_5_mb", mail("m18", body=BODY + b"y" * (5 * ONE_MIB)), CREATED),
        ("hundred_thousand_lines", mail("m19", body=BODY + b"line\r\n" * 100_000), CREATED),
        ("sixty_boundaries_then_a_long_delimiter_line",
         mail("m20", cte=None, content_type=f"multipart/mixed; boundary={_B}",
              body=b"".join(b"boundary=x%d\r\n--x%d--\r\n" % (i, i) for i in range(60))
              + b"--a" + b" " * 200_000 + b"b\r\n" + multipart_body([text], _B)), CREATED),
        ("multipart_report_without_parts",
         mail("m21", body=b"", cte=None,
              content_type=f"multipart/report; report-type=delivery-status; boundary={_B}"),
         quarantined("bounce")),
    ]
    return [HostileCase(f"mime/{name}", raw, None, expect) for name, raw, expect in cases]


def header_cases(rng: random.Random) -> list[HostileCase]:
    mb = ONE_MIB
    folded = "\r\n ".join("x" * 70 for _ in range(mb // 72))
    long_ids = " ".join(f"<r{i}@hostile.example>" for i in range(100_000))
    cases: list[tuple[str, bytes, frozenset[str]]] = [
        ("subject_1_mb_one_line", mail("h1", subject="s" * mb), CREATED),
        ("subject_1_mb_folded", mail("h2", subject=folded), CREATED),
        ("x_header_1_mb", mail("h3", headers=[("X-Junk", "j" * mb)]), CREATED),
        ("twenty_thousand_received", mail("h4", headers=[
            ("Received", f"from relay{i} by mx; {DATE}") for i in range(20_000)]), CREATED),
        ("from_after_1_mb_of_blanks", mail("h5", sender="\r\n" + " " * mb + f"<{CONTACT}>"),
         CREATED),
        ("from_name_with_1_mb_of_blanks",
         mail("h6", sender="Yamada" + " " * mb + f"Taro <{CONTACT}>"), CREATED),
        ("cc_after_1_mb_of_blanks", mail("h7", headers=[("Cc", "\r\n" + " " * mb + "x")]),
         CREATED),
        ("subject_fold_then_1_mb_of_blanks", mail("h8", subject="a\r\n b" + " " * mb + "c"),
         CREATED),
        ("date_fold_then_1_mb_of_blanks", mail("h9", date="a\r\n b" + " " * mb + "c"), CREATED),
        ("from_comments_nested_100000_deep", mail("h10", sender="(" * 100_000 + CONTACT),
         CREATED),
        ("from_1_mb_of_at_signs", mail("h11", sender="@" * mb), CREATED),
        ("references_100000_ids", mail("h12", headers=[("References", long_ids)]), CREATED),
        ("message_id_of_5000_chars", mail("h13", message_id=f"<{'i' * 5000}@hostile.example>"),
         CREATED),
        ("sender_address_of_400_chars", mail("h14", sender=f"{'a' * 400}@sakura-shoji.example.jp"),
         CREATED),
        ("display_name_of_5000_chars", mail("h15", sender=f'"{"名" * 5000}" <{CONTACT}>'),
         CREATED),
        ("content_type_of_300_chars", mail("h16", content_type="text/" + "p" * 300), CREATED),
        ("date_in_year_9999", mail("h17", date="Fri, 31 Dec 9999 23:59:59 -1200"), CREATED),
        ("date_in_year_1", mail("h18", date="Mon, 01 Jan 0001 00:00:00 +1400"), CREATED),
        ("date_in_year_2999", mail("h19", date="Tue, 24 Nov 2999 10:00:00 +0900"), CREATED),
        ("date_garbage", mail("h20", date="Tue, 99 Foo 99999 99:99:99 +9999"), CREATED),
        ("received_date_in_year_9999", mail("h21", date=None, headers=[
            ("Received", "from x by y; Fri, 31 Dec 9999 23:59:59 +0000")]), CREATED),
        ("nul_in_subject", mail("h22", subject=b"before\x00after"), CREATED),
        ("nul_in_display_name", mail("h23", sender=b"Yama\x00da <" + CONTACT.encode() + b">"),
         CREATED),
        ("nul_in_message_id", mail("h24", message_id=b"<nul\x00id@hostile.example>"), CREATED),
        ("nul_in_address", mail("h25", sender=b"yamada\x00@sakura-shoji.example.jp"), CREATED),
        ("nul_in_header_name", mail("h26", headers=[(b"X-N\x00ul", "v")]), CREATED),
        ("nul_bytes_in_body", mail("h27", body=BODY + b"\x00" * 1000 + b"end\x00\r\n"), CREATED),
        ("8bit_subject_shift_jis", mail("h28", subject="障害報告①㈱".encode("cp932")), CREATED),
        ("8bit_subject_euc_jp", mail("h29", subject="障害報告".encode("euc_jp")), CREATED),
        ("8bit_subject_invalid_utf8", mail("h30", subject=b"\xff\xfe\xc3\x28\xa0\xa1"), CREATED),
        ("8bit_display_name", mail("h31", sender="山田 太郎".encode("cp932") + b" <"
                                   + CONTACT.encode() + b">"), CREATED),
        ("8bit_header_name", mail("h32", headers=[(b"X-\xff\xfe\x80", b"\xe3\x81\x82")]),
         CREATED),
        ("8bit_address", mail("h33", sender=b"\xff\xfe@\x80.example"), CREATED),
        ("from_contact_as_display_name", mail("h41", sender=f"{CONTACT} <{EVIL}>"), CREATED),
        ("from_contact_in_an_encoded_word",
         mail("h42", sender=f"=?utf-8?q?x:{CONTACT}?= <{EVIL}>"), CREATED),
        ("from_contact_in_a_group", mail("h43", sender=f"Yamada: {CONTACT}; <{EVIL}>"), CREATED),
        ("from_two_angle_addresses", mail("h44", sender=f"<{CONTACT}> <{EVIL}>"), CREATED),
        ("from_two_addresses", mail("h45", sender=f"{CONTACT}, {EVIL}"), CREATED),
        ("line_that_is_no_header", mail("h34", headers=[(b"This line has no colon", b"")]),
         CREATED),
        ("header_block_starting_with_a_fold", b" folded first line\r\n" + mail("h35"),
         CREATED | quarantined("unparseable")),
        ("encoded_word_invalid_base64", mail("h36", subject="=?utf-8?b?!!!*&^%?="), CREATED),
        ("encoded_word_unknown_charset", mail("h37", subject="=?x-klingon?q?abc?="), CREATED),
        ("encoded_word_python_codec_names",
         mail("h38", subject="=?unicode-escape?q?\\u0041?= =?rot13?q?nop?= =?base64?b?YQ==?="),
         CREATED),
        ("hundred_thousand_encoded_words", mail("h39", subject=" ".join(
            encoded_word(f"語{i}") for i in range(100_000))), CREATED),
        ("random_header_bytes", mail("h40", headers=[
            ("X-Random", rng.randbytes(4096).replace(b"\r", b"").replace(b"\n", b""))]),
         CREATED),
    ]
    return [HostileCase(f"header/{name}", raw, None, expect) for name, raw, expect in cases]


def encoding_cases(rng: random.Random) -> list[HostileCase]:
    html_utf7 = "+ADw-script+AD4-alert(1)+ADw-/script+AD4-".encode("ascii")
    cases: list[tuple[str, bytes, frozenset[str]]] = [
        ("base64_with_junk", mail("e1", cte="base64", body=b"!!" + base64.encodebytes(BODY)
                                  .replace(b"\n", b"*\r\n")), CREATED),
        ("base64_bad_padding", mail("e2", cte="base64",
                                    body=base64.b64encode(BODY).rstrip(b"=") + b"===="), CREATED),
        ("base64_one_char_over", mail("e3", cte="base64", body=base64.b64encode(BODY) + b"Q"),
         CREATED),
        ("base64_all_junk", mail("e4", cte="base64", body=b"%%%% ^^^^ ~~~~\r\n"), CREATED),
        ("base64_random", mail("e5", cte="base64", body=bytes(
            rng.choice(b"ABCxyz019+/=-_ \r\n") for _ in range(65536))), CREATED),
        ("qp_invalid_escapes", mail("e6", cte="quoted-printable",
                                    body=BODY + b"=ZZ=4=\r\n=G1=\r=0=\r\n"), CREATED),
        ("qp_soft_break_storm", mail("e7", cte="quoted-printable", body=BODY + b"=\r\n" * 200_000),
         CREATED),
        ("unknown_transfer_encoding", mail("e8", cte="x-uuencode", body=BODY), CREATED),
        ("binary_transfer_encoding_with_nul", mail("e9", cte="binary", body=BODY + bytes(256)),
         CREATED),
        ("8bit_without_charset_shift_jis", mail("e10", content_type="text/plain",
                                                body="サポートサービス番号: 2031-0001-0008\r\n①"
                                                .encode("cp932")), CREATED),
        ("declared_utf8_is_shift_jis", mail("e11", body="障害です㈱".encode("cp932") + b"\r\n"),
         CREATED),
        ("declared_iso2022jp_is_utf8", mail("e12", content_type="text/plain; charset=iso-2022-jp"),
         CREATED),
        ("declared_ascii_is_euc_jp", mail("e13", content_type="text/plain; charset=us-ascii",
                                          body="障害報告".encode("euc_jp")), CREATED),
        ("declared_utf16_is_ascii", mail("e14", content_type="text/plain; charset=utf-16",
                                         body=b"plain ascii, odd length."), CREATED),
        ("declared_utf32_odd_bytes", mail("e15", content_type="text/plain; charset=utf-32",
                                          body=b"\x00\xd8\x00\x00abc"), CREATED),
        ("declared_unicode_escape", mail("e16", content_type="text/plain; charset=unicode-escape",
                                         body=b"\\N{BOGUS} \\x"), CREATED),
        ("declared_rot13_and_base64_codecs",
         mail("e17", content_type="text/plain; charset=rot13", body=b"\xff" + BODY), CREATED),
        ("charset_name_of_10000_chars", mail("e18", content_type="text/plain; charset="
                                             + "x" * 10_000, body=b"\xe3\x81\x82" + BODY),
         CREATED),
        ("charset_with_nul", mail("e19", content_type=b"text/plain; charset=utf\x00-8",
                                  body=b"\xe3\x81\x82"), CREATED),
        ("utf7_script_in_html", mail("e20", content_type="text/html; charset=utf-7",
                                     body=html_utf7), CREATED),
        ("html_meta_charset_lie", mail("e21", content_type="text/html", body=(
            '<meta charset="iso-2022-jp"><p>障害</p>').encode("cp932")), CREATED),
        ("escape_sequences_in_utf8", mail("e22", body=b"\x1b$B$3$s\x1b(B\x0e\x0f" + BODY),
         CREATED),
    ]
    return [HostileCase(f"enc/{name}", raw, None, expect) for name, raw, expect in cases]


# Attachment names as a sender could write them: (case, Content-Disposition parameters).
def _rfc2231(name: str) -> str:
    return "filename*=UTF-8''" + quote(name.encode("utf-8", "surrogateescape"), safe="")


NAME_CASES: list[tuple[str, str | bytes | None]] = [
    ("dot_dot_slash", 'filename="../../../../etc/passwd"'),
    ("dot_dot_backslash", 'filename="..\\..\\windows\\win.ini"'),
    ("absolute_unix", 'filename="/etc/cron.d/evil"'),
    ("absolute_windows", 'filename="C:\\Windows\\System32\\drivers\\etc\\hosts"'),
    ("unc_path", 'filename="\\\\server\\share\\evil.exe"'),
    ("percent_encoded_traversal", _rfc2231("../../../etc/shadow")),
    ("rfc2231_continuations_traversal",
     "filename*0*=UTF-8''..%2F..%2F; filename*1*=..%2Fetc%2Fpasswd"),
    ("rfc2047_traversal", f'filename="{encoded_word("../../etc/passwd")}"'),
    ("only_dots", 'filename=".."'),
    ("single_dot", 'filename="."'),
    ("empty", 'filename=""'),
    ("blanks", 'filename="   .   "'),
    ("slash_only", 'filename="/"'),
    ("dotfile", 'filename=".htaccess"'),
    ("home_ssh", 'filename="~/.ssh/authorized_keys"'),
    ("device_con", 'filename="CON"'),
    ("device_con_txt", 'filename="con.txt"'),
    ("device_aux_pdf", 'filename="AUX.pdf"'),
    ("device_nul_tar_gz", 'filename="nul.tar.gz"'),
    ("device_com1", 'filename="COM1"'),
    ("device_lpt9", 'filename="LPT9.log"'),
    ("device_prn_dot", 'filename="PRN."'),
    ("device_con_space_txt", 'filename="CON .txt"'),
    ("device_superscript", _rfc2231("COM¹.txt")),
    ("control_characters", _rfc2231("a\x01\x02\x1b[31mred\x7f.txt")),
    ("bidi_override", _rfc2231("請求書\u202efdp.exe")),
    ("line_separators", _rfc2231("a\u2028b\u2029c\x85d.txt")),
    ("crlf_in_name", _rfc2231("report\r\nContent-Type: text/html\r\n.txt")),
    ("nul_in_name", _rfc2231("invoice.pdf\x00.exe")),
    ("tab_in_name", 'filename="tab\tname.txt"'),
    ("windows_forbidden", 'filename="a:b|c*?<>.txt"'),
    ("trailing_dots_and_spaces", 'filename="evil.exe. . ."'),
    ("ascii_1000_chars", f'filename="{"a" * 1000}.pdf"'),
    ("japanese_1000_chars", _rfc2231("資料" * 500 + ".pdf")),
    ("extension_of_300_chars", f'filename="x.{"e" * 300}"'),
    ("undecodable_8bit", b'filename="\xff\xfe\x80\x81../x.txt"'),
    ("lone_surrogate_bytes", _rfc2231("\udcff\udcfe.txt")),
    ("name_in_content_type_only", None),  # filled below: name= on the Content-Type
]


def name_cases() -> list[HostileCase]:
    cases = []
    for case, params in NAME_CASES:
        if params is None:
            raw = mail("n-ct", cte=None, content_type=f'multipart/mixed; boundary="{_B}"',
                       body=multipart_body([
                           part("text/plain; charset=utf-8", BODY, cte="8bit"),
                           part('application/octet-stream; name="../../boot.ini"', b"x"),
                       ], _B))
        else:
            raw = with_attachment(f"name/{case}", params, b"attachment bytes\r\n")
        cases.append(HostileCase(f"name/{case}", raw, None, CREATED))
    return cases


# XSS vectors, after the OWASP cheat sheet: each must lose every active part.
XSS_VECTORS: list[tuple[str, str]] = [
    ("script", "<script>alert(1)</script>"),
    ("script_mixed_case", "<ScRiPt>alert(1)</sCrIpT>"),
    ("script_src", '<script src="https://evil.example/x.js"></script>'),
    ("script_unclosed", "<p>hi<script>alert(1)"),
    ("script_split", "<scr<script>ipt>alert(1)</scr</script>ipt>"),
    ("img_onerror", "<img src=x onerror=alert(1)>"),
    ("img_onerror_no_quotes_slash", "<img/src=x/onerror=alert(1)>"),
    ("img_remote", '<img src="https://tracker.example/pixel.gif?u=1">'),
    ("img_protocol_relative", '<img src="//tracker.example/p.gif">'),
    ("img_srcset", '<img srcset="https://tracker.example/a.png 1x">'),
    ("img_data_uri", '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">'),
    ("svg_onload", "<svg onload=alert(1)>"),
    ("svg_script", "<svg><script>alert(1)</script></svg>"),
    ("svg_animate_href", '<svg><a><animate attributeName=href values=javascript:alert(1) />'
     '<text x=20 y=20>X</text></a></svg>'),
    ("math_href", '<math><mtext><a href="javascript:alert(1)">X</a></mtext></math>'),
    ("math_mglyph_style", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("body_onload", "<body onload=alert(1)>text</body>"),
    ("iframe_srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>'),
    ("iframe_src", '<iframe src="javascript:alert(1)"></iframe>'),
    ("object_data", '<object data="javascript:alert(1)"></object>'),
    ("embed_src", '<embed src="https://evil.example/x.swf">'),
    ("a_javascript", '<a href="javascript:alert(1)">x</a>'),
    ("a_javascript_tab", '<a href="jav&#x09;ascript:alert(1)">x</a>'),
    ("a_javascript_newline", '<a href="jav&#x0A;ascript:alert(1)">x</a>'),
    ("a_javascript_entities", '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;'
     '&#116;&#58;alert(1)">x</a>'),
    ("a_javascript_hex_no_semicolons", '<a href="&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69'
     '&#x70&#x74&#x3A;alert(1)">x</a>'),
    ("a_javascript_leading_space", '<a href=" javascript:alert(1)">x</a>'),
    ("a_javascript_upper", '<a href="JAVASCRIPT:alert(1)">x</a>'),
    ("a_vbscript", '<a href="vbscript:msgbox(1)">x</a>'),
    ("a_data_html", '<a href="data:text/html,<script>alert(1)</script>">x</a>'),
    ("a_relative", '<a href="/logout">x</a>'),
    ("a_target_blank", '<a href="https://ok.example" target="_blank">x</a>'),
    ("form_action", '<form action="javascript:alert(1)"><input type=submit></form>'),
    ("button_formaction", '<button formaction="javascript:alert(1)">x</button>'),
    ("base_href", '<base href="https://evil.example/">'),
    ("meta_refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("link_stylesheet", '<link rel="stylesheet" href="https://evil.example/x.css">'),
    ("style_element", "<style>@import 'https://evil.example/x.css'; body{}</style>"),
    ("style_expression", '<div style="width: expression(alert(1))">x</div>'),
    ("style_url_javascript", "<div style=\"background:url('javascript:alert(1)')\">x</div>"),
    ("style_remote_background", '<p style="background-image:url(https://t.example/p)">x</p>'),
    ("background_attribute", '<table background="https://t.example/p.gif"><tr><td>x</td></tr>'
     "</table>"),
    ("css_overlay", '<div style="position:fixed;top:0;left:0;width:100%;height:100%">x</div>'),
    ("event_on_many_tags", "<p onclick=a() onmouseover=b()>x</p><b onfocus=c()>y</b>"
     "<details open ontoggle=alert(1)>"),
    ("event_handler_entity_encoded", "<img src=x &#111;nerror=alert(1)>"),
    ("xml_namespace", '<x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>'),
    ("comment_breakout", "<!--<img src=x onerror=alert(1)>-->"),
    ("conditional_comment", "<!--[if gte IE 4]><script>alert(1)</script><![endif]-->"),
    ("cdata_breakout", "<![CDATA[<script>alert(1)</script>]]>"),
    ("noscript_breakout", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">'),
    ("textarea_breakout", "<textarea></textarea><script>alert(1)</script>"),
    ("title_breakout", "<title></title><img src=x onerror=alert(1)>"),
    ("template_content", "<template><script>alert(1)</script></template>"),
    ("nul_in_tag", "<scr\x00ipt>alert(1)</scr\x00ipt><img src=x o\x00nerror=alert(1)>"),
    ("unclosed_attribute", '<a href="https://ok.example>x</a><img src=x onerror=alert(1)>'),
    ("deep_nesting", "<div>" * 5000 + "<img src=x onerror=alert(1)>" + "</div>" * 5000),
    ("marquee_onstart", "<marquee onstart=alert(1)>x</marquee>"),
    ("video_poster", '<video poster="javascript:alert(1)"><source onerror=alert(1)></video>'),
    ("input_autofocus", "<input autofocus onfocus=alert(1)>"),
    ("xlink_href", '<svg><use xlink:href="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="/></svg>'),
]


def html_cases() -> list[HostileCase]:
    cases = []
    for case, vector in XSS_VECTORS:
        html = f"<html><body><p>サポートサービス番号: {SUPPORT_NUMBER}</p>{vector}</body></html>"
        raw = mail(f"html/{case}", content_type="text/html; charset=utf-8",
                   body=html.encode("utf-8"))
        cases.append(HostileCase(f"html/{case}", raw, None, CREATED))
    return cases


def inject_cases() -> list[HostileCase]:
    """Line breaks aimed at the acknowledgement's headers, each followed by a header
    naming an address that must never receive it."""
    crlf = "\r\n"
    cases = [
        ("subject_b_encoded_crlf", mail("i1", subject=encoded_word(f"件名{crlf}Bcc: {EVIL}"))),
        ("subject_q_encoded_crlf", mail("i2", subject=encoded_word(f"x{crlf}Bcc: {EVIL}", "q"))),
        ("subject_encoded_lf_only", mail("i3", subject=encoded_word(f"x\nBcc: {EVIL}"))),
        ("subject_encoded_cr_only", mail("i4", subject=encoded_word(f"x\rBcc: {EVIL}"))),
        ("subject_crlf_then_body",
         mail("i5", subject=encoded_word(f"x{crlf}{crlf}<html>{EVIL}"))),
        ("subject_unicode_separators", mail("i6", subject=encoded_word(
            f"a\u2028Bcc: {EVIL}\u2029b\x85Cc: {EVIL}\x0bc\x0cd"))),
        ("subject_shift_jis_crlf",
         mail("i7", subject=encoded_word(f"件名{crlf}Bcc: {EVIL}", "b", "cp932"))),
        ("subject_raw_bare_cr", mail("i8", subject=f"x\rBcc: {EVIL}".encode())),
        ("subject_double_encoded",
         mail("i9", subject=encoded_word(encoded_word(f"x{crlf}Bcc: {EVIL}")))),
        ("subject_10000_chars",
         mail("i10", subject=encoded_word(f"長い件名 Bcc: {EVIL} " * 300))),
        ("from_name_crlf",
         mail("i11", sender=f"{encoded_word(f'山田{crlf}Bcc: {EVIL}', 'q')} <{CONTACT}>")),
        ("from_name_quoted_crlf",
         mail("i12", sender=f'"{encoded_word(f"Taro{crlf}Cc: {EVIL}")}" <{CONTACT}>')),
        ("from_name_double_encoded", mail("i17", sender=(
            f"{encoded_word(encoded_word(f'x{crlf}Bcc: {EVIL}'))} <{CONTACT}>"))),
        ("from_folded_bcc", mail("i13", sender=f"{CONTACT}{crlf} Bcc: {EVIL}")),
        ("message_id_encoded_crlf",
         mail("i14", message_id=encoded_word(f"<a@b>{crlf}Bcc: {EVIL}"))),
        ("message_id_folded_bcc",
         mail("i15", message_id=f"<inj15@hostile.example>{crlf}\tBcc: <{EVIL}>")),
        ("references_with_header", mail("i16", headers=[
            ("References", f"<ref16@hostile.example>{crlf} Bcc: <{EVIL}>")])),
    ]
    return [HostileCase(f"inject/{name}", raw, None, CREATED) for name, raw in cases]


def auto_cases() -> list[HostileCase]:
    cases = [
        ("from_the_desk_itself", mail("a1", sender=DESK), quarantined("loop")),
        ("x_loop_of_the_desk", mail("a2", headers=[("X-Loop", DESK)]), quarantined("loop")),
        ("auto_submitted", mail("a3", headers=[("Auto-Submitted", "auto-replied")]),
         quarantined("auto_reply")),
        ("mailer_daemon", mail("a4", sender="MAILER-DAEMON@mx.example"), quarantined("bounce")),
        ("list_mail", mail("a5", headers=[("List-Id", "<x.lists.example>")]),
         quarantined("bulk")),
    ]
    return [HostileCase(f"auto/{name}", raw, None, expect) for name, raw, expect in cases]


def _attached(name: str, filename: str, content_type: str, payload: bytes,
              sender: str = CONTACT) -> bytes:
    return with_attachment(name, f'filename="{filename}"', payload, content_type, sender=sender)


def attach_cases() -> list[HostileCase]:
    cases = [
        ("zip_bomb_1_gib", _attached("t1", "bomb.zip", "application/zip", zip_bomb()), CREATED),
        ("gzip_bomb_1_gib", _attached("t2", "bomb.gz", "application/gzip", gzip_bomb()),
         CREATED),
        ("zip_slip", _attached("t3", "slip.zip", "application/zip", zip_slip()), CREATED),
        ("pdf_bomb_from_a_customer",
         _attached("t4", "big.pdf", "application/pdf", pdf_huge_page()), CREATED),
        ("gateway_pdf_of_20000_pt", _attached("t5", "fax.pdf", "application/pdf",
                                              pdf_huge_page(), sender=GATEWAY),
         quarantined("image_too_large")),
        ("gateway_tiff_claiming_30000_px", _attached("t6", "fax.tif", "image/tiff",
                                                     tiff_claiming(30000, 30000), sender=GATEWAY),
         quarantined("image_too_large")),
        ("gateway_encrypted_pdf", _attached("t7", "fax.pdf", "application/pdf", pdf_encrypted(),
                                            sender=GATEWAY), quarantined("encrypted_pdf")),
        ("gateway_fax_named_traversal", _attached("t8", "../../../etc/passwd.pdf",
                                                  "application/pdf", pdf_pages(500),
                                                  sender=GATEWAY), quarantined("too_many_pages")),
        ("attachment_of_5_mib", _attached("t9", "big.bin", "application/octet-stream",
                                          bytes(range(256)) * (5 * ONE_MIB // 256)), CREATED),
    ]
    return [HostileCase(f"attach/{name}", raw, None, expect) for name, raw, expect in cases]


def fax_cases(rng: random.Random) -> list[HostileCase]:
    pdf = pdf_pages(1)
    cases = [
        ("pdf_page_of_20000_pt", pdf_huge_page(), "bomb.pdf", quarantined("image_too_large")),
        ("pdf_image_of_30000_px_on_a4", pdf_huge_image(), "image.pdf",
         CREATED | quarantined("image_too_large", "timeout")),
        ("pdf_500_pages", pdf_pages(500), "pages.pdf", quarantined("too_many_pages")),
        ("pdf_encrypted", pdf_encrypted(), "locked.pdf", quarantined("encrypted_pdf")),
        ("pdf_owner_password_only", pdf_encrypted(""), "restricted.pdf",
         CREATED | quarantined("encrypted_pdf")),
        ("pdf_truncated", pdf[: len(pdf) * 3 // 5], "cut.pdf",
         CREATED | quarantined("corrupt_pdf", "empty_document")),
        ("pdf_header_then_garbage", b"%PDF-1.4\n" + rng.randbytes(20000), "garbage.pdf",
         quarantined("corrupt_pdf", "empty_document")),
        ("pdf_javascript_and_launch", pdf_javascript(), "js.pdf", CREATED),
        ("pdf_nested_100000_deep", pdf_deep_nesting(), "deep.pdf",
         CREATED | quarantined("corrupt_pdf")),
        ("pdf_claims_a_million_pages", pdf_count_lie(), "count.pdf",
         CREATED | quarantined("too_many_pages", "corrupt_pdf")),
        ("tiff_claiming_30000_px", tiff_claiming(30000, 30000), "claim.tif",
         quarantined("image_too_large")),
        ("tiff_g4_blank_8000_px", tiff_g4_blank(8000, 8000), "blank8000.tif",
         quarantined("image_too_large")),
        ("tiff_g4_blank_at_the_limits", tiff_g4_blank(7200, 5500), "blank7200.tif", CREATED),
        ("tiff_60_pages", tiff_pages(60), "pages.tif", quarantined("too_many_pages")),
        ("tiff_page_chain_loop", tiff_ifd_loop(), "loop.tif",
         CREATED | quarantined("too_many_pages", "not_an_image")),
        ("png_claiming_100000_px", png_claiming(100_000, 100_000), "claim.png",
         quarantined("image_too_large")),
        ("bmp_claiming_50000_px", bmp_claiming(50_000, 50_000), "claim.bmp",
         quarantined("image_too_large", "not_an_image")),
        ("colour_jpeg", _image("RGB", (1700, 2200), "JPEG", (200, 30, 30)), "photo.jpg",
         quarantined("not_a_fax")),
        ("tiny_gif", _image("P", (16, 16), "GIF", 0), "tiny.gif", quarantined("not_a_fax")),
        ("empty_file", b"", "empty.pdf", quarantined("empty_document")),
        ("random_bytes", rng.randbytes(4096), "random.tif", quarantined("not_an_image")),
        ("blank_page_named_traversal", tiff_g4_blank(1728, 2200), "../../../etc/passwd.tif",
         CREATED),
        ("blank_page_named_device", tiff_g4_blank(1728, 2201), "C:\\fax\\..\\CON.tif", CREATED),
        ("blank_page_named_with_controls", tiff_g4_blank(1728, 2202),
         "fax\r\nBcc: x\x00\x1b.tif", CREATED),
        ("blank_page_named_1000_chars", tiff_g4_blank(1728, 2203), "f" * 1000 + ".tif", CREATED),
    ]
    return [HostileCase(f"fax/{name}", raw, "fax", expect, ref)
            for name, raw, ref, expect in cases]


def build_corpus(seed: int = SEED) -> list[HostileCase]:
    """Every hostile case, the random ones drawn from ``seed``."""
    rng = random.Random(seed)
    corpus = [
        *mime_cases(rng), *header_cases(rng), *encoding_cases(rng), *name_cases(),
        *html_cases(), *inject_cases(), *auto_cases(), *attach_cases(), *fax_cases(rng),
    ]
    names = [case.name for case in corpus]
    duplicates = {name for name in names if names.count(name) > 1}
    assert not duplicates, f"duplicate case names: {sorted(duplicates)}"
    return corpus


# -- what must hold of anything stored or sent --------------------------------------------

_RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]]
)


def filename_problems(name: str) -> list[str]:
    """Why a stored attachment name is unsafe on Unix or Windows; empty when it is safe."""
    problems = []
    if not name:
        problems.append("empty")
    if "/" in name or "\\" in name:
        problems.append("path separator")
    if name.startswith("."):
        problems.append("leading dot (hidden file, or '..')")
    if name != name.strip() or name.endswith("."):
        problems.append("leading/trailing blank or trailing dot")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in name):
        problems.append("control, format or separator character")
    if set(name) & set('<>:"|?*'):
        problems.append("character Windows forbids")
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED_NAMES:
        problems.append("Windows device name")
    try:
        if len(name.encode("utf-8")) > 255:
            problems.append("longer than 255 bytes")
    except UnicodeEncodeError:
        problems.append("not encodable")
    return problems


_ACTIVE_ELEMENTS = frozenset(
    ("script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "base",
     "meta", "link", "form", "input", "button", "textarea", "select", "svg", "math",
     "template", "noscript", "xml", "marquee", "video", "audio", "source", "track", "portal")
)
# Attributes that fetch, submit or run something; only an inline image (cid:) may stay.
_FETCHING = frozenset(
    ("src", "srcset", "background", "poster", "dynsrc", "lowsrc", "data", "codebase", "action",
     "formaction", "ping", "xlink:href", "href:xlink", "usemap", "longdesc", "manifest")
)
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:", "cid:")


class _Inspector(HTMLParser):
    """Reads sanitised (well-formed) HTML and notes what a browser would run or fetch."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _ACTIVE_ELEMENTS:
            self.problems.append(f"element <{tag}>")
        for name, value in attrs:
            url = re.sub(r"[\x00-\x20\x7f]+", "", value or "").lower()
            fetches = name in _FETCHING and not (name == "src" and url.startswith("cid:"))
            links_out = name in ("href", "cite") and not url.startswith(_LINK_SCHEMES)
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}>: event handler")
            elif name == "style":
                self.problems.append(f"<{tag} style>")
            elif fetches or links_out:
                self.problems.append(f"<{tag} {name}={(value or '')[:60]!r}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.problems.append("a comment (conditional comments run in old Outlook)")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl[:40]!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data[:40]!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration {data[:40]!r}")


def html_problems(html: str) -> list[str]:
    """What in stored HTML could run, restyle the page, or fetch from a sender's server."""
    inspector = _Inspector()
    inspector.feed(html)
    inspector.close()
    return inspector.problems


def _strings(message: ParsedMessage) -> Iterator[str]:
    yield from (message.subject, message.from_addr, message.from_name, message.text)
    yield from (message.html or "", message.message_id or "")
    yield from (*message.to, *message.cc, *message.reply_to, *message.in_reply_to)
    yield from message.references
    for attachment in message.attachments:
        yield from (attachment.filename, attachment.content_type)


def assert_storable(message: ParsedMessage) -> None:
    """Everything the pipeline stores from a parsed mail fits every database it runs on."""
    for text in _strings(message):
        text.encode("utf-8")  # no lone surrogates
        assert "\0" not in text  # PostgreSQL refuses NUL in text
    assert len(message.from_addr) <= MAX_ADDRESS
    assert all(len(a) <= MAX_ADDRESS for a in (*message.to, *message.cc))
    assert len(message.from_name) <= MAX_NAME
    assert message.message_id is None or 0 < len(message.message_id) <= MAX_MESSAGE_ID
    assert len(message.references) <= MAX_REFERENCES
    for attachment in message.attachments:
        assert len(attachment.content_type) <= MAX_CONTENT_TYPE
        assert attachment.content_type.count("/") == 1


def parse_or_refuse(raw: bytes) -> ParsedMessage | None:
    try:
        return parse_message(raw, Limits())
    except ParseError as exc:
        assert exc.reason_code in PARSE_REASONS
        assert exc.reason
        return None


# What the acknowledgement is written with (ticketing/acknowledgement.py), and nothing else.
ACK_HEADERS = frozenset(
    ("from", "to", "subject", "date", "message-id", "in-reply-to", "references",
     "auto-submitted", "x-auto-response-suppress", "precedence", "x-loop", "mime-version",
     "content-type", "content-transfer-encoding")
)


def outgoing_header_problems(raw: bytes, recipient: str = CONTACT) -> list[str]:
    """What in an outgoing mail's header section the desk did not write itself."""
    head, separator, _ = raw.partition(b"\r\n\r\n")
    problems = [] if separator else ["no blank line after the headers"]
    names: list[str] = []
    for line in head.split(b"\r\n"):
        if b"\r" in line or b"\n" in line:
            problems.append(f"bare CR or LF in {line[:60]!r}")
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        if not colon:
            problems.append(f"a line that is no header: {line[:60]!r}")
            continue
        names.append(name.decode("ascii", "replace").strip().lower())
    for name in sorted(set(names)):
        if name not in ACK_HEADERS:
            problems.append(f"header {name!r}")
        elif names.count(name) > 1:
            problems.append(f"header {name!r} {names.count(name)} times")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    to = [address.addr_spec for address in message["To"].addresses] if message["To"] else []
    if to != [recipient]:
        problems.append(f"To is {to}")
    subject = str(message["Subject"] or "")
    if any(c in subject for c in "\r\n\x85\u2028\u2029"):
        problems.append(f"line break in the decoded subject {subject[:60]!r}")
    return problems


# -- running it --------------------------------------------------------------------------


class Result(NamedTuple):
    case: HostileCase
    outcome: Outcome
    seconds: float  # of the batch the case was in, shared out evenly

    @property
    def label(self) -> str:
        return outcome_label(self.outcome)

    @property
    def as_expected(self) -> bool:
        return self.label in self.case.expect


def run_corpus(pipeline: Pipeline, corpus: Sequence[HostileCase], batch_size: int = 25,
               progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every case through ``pipeline.ingest_batch``, ``batch_size`` at a time."""
    results: list[Result] = []
    for start in range(0, len(corpus), batch_size):
        batch = corpus[start : start + batch_size]
        began = time.perf_counter()
        outcomes = pipeline.ingest_batch([case.inbound() for case in batch])
        share = (time.perf_counter() - began) / len(batch)
        for case, outcome in zip(batch, outcomes, strict=True):
            results.append(Result(case, outcome, share))
            if progress is not None:
                progress(results[-1])
    return results


def report_table(results: Sequence[Result], seconds: float) -> str:
    width = max(len(r.case.name) for r in results)
    lines = [
        f"Hostile input through the real pipeline (tests/hostile.py, seed {SEED}).",
        "Each case ran alone (a batch of one); seconds are its wall-clock time, FAX",
        "documents and gateway mails read in a worker process.",
        "",
        f"{'case':<{width}}  {'kind':<4}  {'outcome':<34}  {'s':>6}  expected",
    ]
    for r in results:
        mark = "" if r.as_expected else "   <-- NOT AS EXPECTED"
        lines.append(
            f"{r.case.name:<{width}}  {r.case.kind or 'mail':<4}  {r.label:<34}  "
            f"{r.seconds:6.2f}  {' | '.join(sorted(r.case.expect))}{mark}"
        )
    counts: dict[str, int] = {}
    for r in results:
        counts[r.label] = counts.get(r.label, 0) + 1
    lines += ["", f"{len(results)} cases in {seconds:.1f} s:"]
    lines += [f"  {count:4d}  {label}" for label, count in sorted(counts.items())]
    unexpected = [r.case.name for r in results if not r.as_expected]
    lines.append(f"  {len(unexpected):4d}  not as expected" + (
        f": {', '.join(unexpected)}" if unexpected else ""))
    return "\n".join(lines) + "\n"


def register_customers(desk: Desk) -> None:
    """The demo customers, contracts and contacts (``demo/customers.csv``)."""
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     desk.settings.support_number)
    with transaction(desk.factory) as session:
        import_rows(session, rows)


def _report(path: Path) -> int:
    corpus = build_corpus()
    with tempfile.TemporaryDirectory(prefix="madoguchi-hostile-") as tmp:
        database = f"sqlite:///{Path(tmp) / 'desk.db'}"
        upgrade(database)
        desk = Desk.open(load_settings(None, **desk_overrides(database, Path(tmp))))
        try:
            register_customers(desk)
            began = time.perf_counter()
            results = run_corpus(desk.pipeline, corpus, batch_size=1, progress=lambda r: print(
                f"{r.case.name:<55} {r.label:<34} {r.seconds:6.2f}", file=sys.stderr))
            table = report_table(results, time.perf_counter() - began)
        finally:
            desk.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table, encoding="utf-8")
    print(table)
    return 0 if all(r.as_expected for r in results) else 1


def desk_overrides(database_url: str, root: Path) -> dict[str, object]:
    """Settings for a desk that runs the corpus: a FAX gateway, and no hourly limit on
    acknowledgements (every new ticket's acknowledgement is checked)."""
    return {
        "database_url": database_url,
        "storage_dir": root / "storage",
        "sources": [],
        "fax": {"gateway_addresses": [GATEWAY]},
        "acknowledgement": {"max_per_sender_per_hour": 100_000},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", nargs="?", const=REPORT, type=Path, metavar="FILE",
                        help=f"run the corpus through a fresh desk, write the table "
                             f"(default {REPORT.relative_to(ROOT)})")
    parser.add_argument("--list", action="store_true", help="list the cases")
    args = parser.parse_args(argv)
    if args.list:
        for case in build_corpus():
            print(f"{case.name:<55} {len(case.raw):>10}  {' | '.join(sorted(case.expect))}")
        return 0
    if args.report is not None:
        return _report(args.report)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
