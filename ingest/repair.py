"""Repairs of mail as real mailers break it, before and after the MIME parse.

* A header value continued on a line without leading blanks (some mailers
  fold that way) ended the header block for the stdlib parser: From,
  Subject and To below it were read as body text. Such a line is joined to
  the header above it when real headers follow it in the block.
* A junk line above the headers (``---- Original email message ----`` from
  a "save as" or a forwarder) made the whole message body text, and the
  message unparseable. Up to ``MAX_JUNK_LINES`` such lines are dropped when
  headers follow them.
* The charsets a message declares (its parts' ``charset=``, its encoded
  words') are hints for raw 8-bit text that declares none.
* uuencoded parts without their ``begin`` line, which the stdlib hands back
  still encoded.
* Bidirectional controls (U+202E...) that turn a subject or a name around
  in the queue.
* format=flowed text (RFC 3676), whose soft line breaks are joined.

Every repair made is named in the message's defects.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator, Sequence
from typing import overload

MAX_JUNK_LINES = 3
# Header names that show a line is really a header of the message (a line
# such as "Note: ..." of a body that lacks its blank line is not one of them).
_KNOWN = (
    rb"from|to|cc|subject|date|message-id|received|return-path|sender|reply-to|mime-version"
    rb"|content-type|content-transfer-encoding|content-disposition|in-reply-to|references"
    rb"|delivered-to|x-mailer|user-agent|importance|x-priority|thread-topic|thread-index"
    rb"|authentication-results|dkim-signature|list-id|auto-submitted|precedence"
)
_HEADER = re.compile(rb"[!-9;-~]{1,76}[ \t]*:")
_KNOWN_HEADER = re.compile(rb"(?:" + _KNOWN + rb")[ \t]*:", re.I)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
# A line of the header block that is neither a header nor a continuation.
_STRAY_LINE = re.compile(rb"^(?![ \t]|[!-9;-~]{1,76}[ \t]*:)[^\r\n]", re.M)
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)
_WORD_CHARSET = re.compile(rb"=\?([A-Za-z0-9_.:-]{1,40})[?*]")
MAX_HINTS = 8
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def recover_headers(raw: bytes) -> tuple[bytes, list[str]]:
    """``raw`` with its header block repaired, and the repairs made (defect names)."""
    end = _BLANK_LINE.search(raw)
    block = raw[: end.start()] if end else raw
    if _STRAY_LINE.search(block) is None:
        return raw, []  # the common case: every line a header or a continuation
    lines = block.splitlines(keepends=True)
    defects: list[str] = []
    start = 0
    while (start < min(MAX_JUNK_LINES, len(lines) - 1) and not _is_header(lines[start])
           and not lines[start].startswith(b"From ") and _is_header(lines[start + 1])):
        start += 1
    if start:
        defects.append("JunkBeforeHeaders")
    lines = lines[start:]
    for i in range(1, len(lines)):
        line = lines[i]
        if line[:1] in (b" ", b"\t") or _is_header(line):
            continue
        if not any(_KNOWN_HEADER.match(later) for later in lines[i + 1 :]):
            break  # the body begins here, without its blank line
        lines[i] = b" " + line
        if "UnindentedContinuation" not in defects:
            defects.append("UnindentedContinuation")
    if not defects:
        return raw, []
    return b"".join(lines) + (raw[end.start() :] if end else b""), defects


def _is_header(line: bytes) -> bool:
    return _HEADER.match(line) is not None


def declared_charsets(raw: bytes) -> tuple[str, ...]:
    """The charsets a message names anywhere (parts' parameters, encoded words)."""
    found: dict[str, None] = {}
    for pattern in (_CHARSET, _WORD_CHARSET):
        for match in pattern.finditer(raw):
            found.setdefault(match.group(1).decode("ascii").lower())
            if len(found) >= MAX_HINTS:
                return tuple(found)
    return tuple(found)


class CharsetHints(Sequence[str]):
    """``declared_charsets`` of a message, looked for only when a guess needs them
    (clean, correctly labelled mail never does)."""

    def __init__(self, raw: bytes) -> None:
        self._raw: bytes | None = raw
        self._found: tuple[str, ...] = ()

    def _charsets(self) -> tuple[str, ...]:
        if self._raw is not None:
            self._found, self._raw = declared_charsets(self._raw), None
        return self._found

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._charsets()[index]

    def __len__(self) -> int:
        return len(self._charsets())

    def __iter__(self) -> Iterator[str]:
        return iter(self._charsets())


def without_bidi(text: str) -> str:
    """``text`` without bidirectional controls, which reorder what the desk shows."""
    return _BIDI.sub("", text) if _BIDI.search(text) else text


UUENCODINGS = frozenset(("x-uuencode", "uuencode", "uue", "x-uue"))


def uudecode(data: bytes) -> bytes | None:
    """The bytes of a uuencoded body, ``begin``/``end`` lines or not; None if it is none."""
    out = bytearray()
    for line in data.splitlines():
        if not line.strip() or line.startswith((b"begin ", b"end")) or line.strip() == b"`":
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad lines short; the stdlib's own workaround.
            nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(line[:nbytes])
            except binascii.Error:
                return None
    return bytes(out)


_ENCODED_WORD_START = re.compile(r"=\?[^?\s*]+(?:\*[^?\s]*)?\?[bBqQ]\?[^?]*\?=")


def split_mailboxes(value: str) -> list[str]:
    """The mailboxes of an address list, split at the commas between them.

    Not at a comma inside a quoted name, a comment, angle brackets or an encoded
    word, also one whose mailer left the comma raw (``=?utf-8?Q?M=C3=BCller,
    Hans?=``); linear in the length of the value.
    """
    items: list[str] = []
    start, depth, quoted, angle, i, n = 0, 0, False, False, 0, len(value)
    while i < n:
        char = value[i]
        if char == "\\" and (quoted or depth):
            i += 2
            continue
        if char == "=" and not quoted and value.startswith("=?", i):
            word = _ENCODED_WORD_START.match(value, i)
            if word:
                i = word.end()
                continue
        if char == '"' and not depth:
            quoted = not quoted
        elif not quoted:
            if char == "(":
                depth += 1
            elif char == ")" and depth:
                depth -= 1
            elif char == "<" and not depth:
                angle = True
            elif char == ">" and not depth:
                angle = False
            elif char == "," and not depth and not angle:
                items.append(value[start:i])
                start = i + 1
        i += 1
    items.append(value[start:])
    return [item.strip() for item in items if item.strip()]


def unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676)."""
    lines: list[str] = []
    paragraph: str | None = None
    paragraph_depth = 0
    for line in text.split("\n"):
        content = line.lstrip(">")
        depth = len(line) - len(content)
        if content.startswith(" "):  # space-stuffing or the quote marker's space
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if soft and delsp:
            content = content[:-1]
        if paragraph is not None and depth == paragraph_depth:
            paragraph += content
        else:
            if paragraph is not None:
                lines.append(_quoted(paragraph, paragraph_depth))
            paragraph, paragraph_depth = content, depth
        if not soft:
            lines.append(_quoted(paragraph, paragraph_depth))
            paragraph = None
    if paragraph is not None:
        lines.append(_quoted(paragraph, paragraph_depth))
    return "\n".join(lines)


def _quoted(text: str, depth: int) -> str:
    return ">" * depth + " " + text if depth and text else ">" * depth + text
