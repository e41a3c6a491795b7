"""Charset decoding for the world's mail, Japanese first: bodies, header values, MIME parameters.

Pure functions, no state. The rules:

* The three Japanese encodings (ISO-2022-JP, Shift_JIS, EUC-JP) all decode
  JIS X 0208 the way Windows does (CP932): NEC row 13 (①, ㈱), the IBM
  extensions (髙, 﨑) and half-width kana decode, and a character reads the
  same whichever of the three the mailer chose (JIS 0x2141 is "～" everywhere,
  as the Windows user typed it, never "〜" in one mail and "～" in the next).
* A declared label is read with the codec of its superset, as browsers read
  it (the WHATWG Encoding Standard): gb2312/GBK as GB18030, ks_c_5601/EUC-KR
  as CP949, Big5 as Big5-HKSCS, ISO-8859-1 as Windows-1252,
  ISO-8859-9 as Windows-1254, TIS-620 as Windows-874, Shift_JIS as CP932.
  Mailers write the old name and the wider set's bytes.
* A declared charset whose strict reading is clean is taken at once (the
  fast path of nearly every mail). Otherwise (no label, an unknown one, a
  label mailers write without looking, or a reading that fails or holds
  private-use, replacement or control characters) the bytes are read in
  every candidate charset: UTF-8, the charsets the message declares
  elsewhere (its other parts, its encoded words), the Japanese ones,
  Windows-1252, and when none of those reads cleanly, what
  charset-normalizer's detector proposes. The reading with the least
  damage wins (``_damage``: unreadable characters count ten, mixed scripts
  inside a word one, charset-normalizer's mess ratio its value); on a tie
  the earlier candidate, so Japanese stays Japanese. Valid UTF-8 beats a
  declared US-ASCII/Latin-1, which mailers write without looking at the text;
  UTF-8 with stray single-byte characters is read as UTF-8, each stray byte
  as Windows-1252 (charset ``utf-8+cp1252``).
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from madoguchi.ingest.damage import CLEAN, damage, damaged, detected, suspicion

_JIS = "iso2022_jp"
_EUC = "euc_jp"
_ALIASES = {
    **dict.fromkeys(
        ("shift_jis", "shift-jis", "shiftjis", "sjis", "x-sjis", "s-jis", "ms_kanji",
         "csshiftjis", "windows-31j", "cp932", "ms932", "x-ms-cp932"),
        "cp932",
    ),
    **dict.fromkeys(
        ("iso-2022-jp", "iso2022_jp", "iso2022jp", "csiso2022jp", "iso-2022-jp-1",
         "iso2022_jp_1", "iso-2022-jp-2", "iso2022_jp_2", "iso2022_jp_ext", "iso-2022-jp-ms",
         "cp50220", "cp50221", "cp50222", "jis", "x-jis"),
        _JIS,
    ),
    **dict.fromkeys(
        ("euc-jp", "euc_jp", "eucjp", "x-euc-jp", "x-euc", "cseucpkdfmtjapanese", "cp51932",
         "eucjp-ms", "euc-jp-ms", "eucjp-win"),
        _EUC,
    ),
    **dict.fromkeys(("x-unicode20utf8", "unicode-1-1-utf-8"), "utf-8"),
}
# The superset each declared charset is read with (Python's canonical names).
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949", "big5": "big5hkscs",
    "iso8859-1": "cp1252", "iso8859-9": "cp1254", "tis-620": "cp874",
    "iso8859-11": "cp874",
}
# Labels that name no charset at all.
_NO_CHARSET = frozenset(("", "unknown", "unknown-8bit", "x-unknown", "default", "x-user-defined"))
# Labels mailers put on text they did not look at (as read: ISO-8859-1 is
# Windows-1252). US-ASCII is no superset's name: 8-bit bytes under it are guessed.
_WEAK = frozenset(("ascii", "cp1252", "iso8859-15"))
# Codecs Python has that are no charset a mail may declare.
_NOT_MAIL = frozenset(("unicode-escape", "raw-unicode-escape", "idna", "punycode"))
_JAPANESE = ("cp932", _EUC, _JIS)
# The single-byte reading tried last: what Western mailers send unlabelled.
_WESTERN = "cp1252"
# Encodings whose ASCII-only bytes are not ASCII text.
_NOT_ASCII_COMPATIBLE = ("utf-16", "utf-32", "utf-7")

# JIS X 0208 code points where Python's JIS codecs and CP932 disagree, and
# JIS Roman (ESC ( J), which Windows reads as ASCII.
_JIS_TO_CP932 = tuple(zip("〜‖−¢£¬¥‾", "～∥－￠￡￢\\~", strict=True))

_SHIFT_SEQUENCE = re.compile(rb"(\x1b\$[@B]|\x1b&@\x1b\$B|\x1b\([BJI]|\x0e|\x0f)")
# JIS Roman (ESC ( J) reads as ASCII, as Windows reads it.
_SINGLE_BYTE_SETS = {b"\x1b(B": "ascii", b"\x1b(J": "ascii", b"\x1b(I": "kana"}
_NEWLINE = re.compile(rb"(\r?\n)")
_JIS_BYTES = bytes(range(0x21, 0x7F))
_KANA_BYTES = bytes(range(0x21, 0x60))
_C1 = re.compile("[\x80-\x9f]")
_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]")
# UTF-7 (and only it, of the codecs mail declares) decodes to lone surrogates
# without complaint; such text cannot even be stored as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _jis_tables() -> tuple[bytes, bytes, bytes, bytes]:
    """Translate tables turning JIS X 0208 byte pairs into Shift_JIS ones."""
    lead = bytearray(range(256))
    odd = bytearray(256)
    trail = bytearray(range(256))
    for j in range(0x21, 0x7F):
        lead[j] = ((j + 1) >> 1) + (0x70 if j <= 0x5E else 0xB0)
        odd[j] = 0x80 if j & 1 else 0
        trail[j] = j + 0x7E  # after an even first byte
        trail[j | 0x80] = j + 0x1F + (j >= 0x60)  # after an odd first byte
    kana = bytes((b + 0x80) & 0xFF for b in range(256))
    return bytes(lead), bytes(odd), bytes(trail), kana


_LEAD, _ODD, _TRAIL, _KANA = _jis_tables()
# EUC-JP bytes 0xA1-0xFE to JIS X 0208; anything else to NUL, which no JIS pair has.
_EUC_TO_JIS = bytes(b - 0x80 if 0xA1 <= b <= 0xFE else 0 for b in range(256))


class DecodedText(NamedTuple):
    text: str
    charset: str  # the codec that read the bytes ("cp932", "utf-8", ...)
    exact: bool  # False when replacement characters stand in for bad bytes


def decode_bytes(data: bytes, declared: str | None, hints: Sequence[str] = ()) -> str:
    """Decode text bytes whose declared charset may be wrong or missing.

    ``hints`` are the charsets the message declares elsewhere (labels, in any
    spelling): candidates when ``declared`` is missing or does not read.
    """
    return decode_text(data, declared, hints).text


def decode_text(data: bytes, declared: str | None, hints: Sequence[str] = ()) -> DecodedText:
    """Like ``decode_bytes``, also saying which charset read the bytes."""
    codec = charset_codec(declared)
    if (
        data.isascii()
        and b"\x1b" not in data
        and b"\x0e" not in data
        and (codec is None or not codec.startswith(_NOT_ASCII_COMPATIBLE))
    ):
        return DecodedText(data.decode("ascii"), "ascii", True)
    strong = codec is not None and codec not in _WEAK
    if strong:
        assert codec is not None
        text = _strict(data, codec, guessing=False)
        if text is not None and not damaged(text):
            return DecodedText(text, codec, True)  # the fast path: the label reads cleanly
    hinted = [c for c in map(charset_codec, hints) if c is not None and c not in _WEAK]
    first = _first_reading(data, codec, hinted)
    doubt = suspicion(first.text, first.charset)
    if doubt < CLEAN:
        return first
    # Kanji without kana is doubtful only against Latin text ("äöüß" reads as two
    # rare kanji); CJK readings the detector finds are no likelier than Japanese.
    detect = not strong and (damaged(first.text) or doubt >= 1)
    return _wider(data, codec, hinted, first, detect=detect)


def _first_reading(data: bytes, codec: str | None, hinted: list[str]) -> DecodedText:
    """The declared charset if it reads; else the first of UTF-8, the charsets the
    message declares elsewhere, and the Japanese ones that reads; else the reading
    with the fewest replacement characters."""
    if codec is not None and codec not in _WEAK:
        text = _strict(data, codec, guessing=False)
        if text is not None:
            return DecodedText(text, codec, True)
        fallbacks = ["utf-8", *hinted, *_JAPANESE]
    elif codec is not None:
        # A weak label after UTF-8, read as ISO-8859-1 would be: bytes 0x80-0x9F
        # (C1 controls there) mean it is not what the text is, e.g. Shift_JIS.
        weak = [codec] if not _C1_BYTES.search(data) else []
        fallbacks = ["utf-8", *weak, *hinted, *_JAPANESE]
    else:
        fallbacks = ["utf-8", *hinted, *_JAPANESE]
    for name in dict.fromkeys(fallbacks):
        if name == codec and codec not in _WEAK:
            continue
        text = _strict(data, name, guessing=True)
        if text is not None:
            return DecodedText(text, name, True)
    return _least_damaged(data, [codec or "utf-8", "utf-8", *hinted, "cp932", _EUC])


def _wider(
    data: bytes, codec: str | None, hinted: list[str], first: DecodedText, *, detect: bool
) -> DecodedText:
    """A reading in a wider set of charsets, taken only when it is clean: the hinted
    ones, the declared one, Windows-1252, UTF-8 with stray bytes, and (``detect``:
    no charset or a weak one was declared, and the first reading is damaged)
    what the detector proposes; and only when it is less damaged than the first. A label that
    read, if only with private-use characters (a Japanese user's own, 外字), is
    left for a clean reading alone, and so is Japanese. The detector is not asked
    about declared text: SJIS with one bad byte "reads" cleanly as Cyrillic CP855."""
    names = [n for n in dict.fromkeys([*hinted, *([codec] if codec else []), _WESTERN])
             if n != first.charset]
    readings = [DecodedText(text, name, True) for name in names
                if (text := _strict(data, name, guessing=True)) is not None]
    mixed = _utf8_with_strays(data)
    best = _least(readings, mixed)
    if detect and (best is None or best[1] >= CLEAN):
        proposed = [n for n in detected(data) if n not in names and _ascii_compatible(n)]
        readings += [DecodedText(text, name, True) for name in proposed
                     if (text := _decode_or_none(data, name)) is not None]
        best = _least(readings, mixed)
    if best is None or best[1] >= CLEAN or best[1] >= damage(first.text, first.charset):
        return first
    return best[0]


_C1_BYTES = re.compile(rb"[\x80-\x9f]")


@lru_cache(maxsize=64)
def _ascii_compatible(codec: str) -> bool:
    """Whether ``codec`` reads ASCII bytes as ASCII (EBCDIC and UTF-16 do not)."""
    try:
        return _ASCII_PROBE.decode(codec) == _ASCII_PROBE.decode("ascii")
    except (UnicodeError, LookupError):
        return False


_ASCII_PROBE = bytes(range(0x20, 0x7F)) + b"\r\n\t"
# What a stray-byte reading must beat a whole one by: it is a repair.
_STRAY_PENALTY = 0.2


def _least(
    readings: list[DecodedText], mixed: DecodedText | None
) -> tuple[DecodedText, float] | None:
    """The reading with the least damage, the earliest on a tie; None if there is none."""
    scored = [(damage(r.text, r.charset), i, r) for i, r in enumerate(readings)]
    if mixed is not None:
        scored.append((damage(mixed.text, "utf-8") + _STRAY_PENALTY, len(scored), mixed))
    if not scored:
        return None
    score, _, reading = min(scored)
    return reading, score


def _utf8_with_strays(data: bytes) -> DecodedText | None:
    """UTF-8 text with a few bytes of a single-byte charset in it (a mailer that
    pasted Latin-1 into UTF-8): each stray byte as Windows-1252; None when
    the bytes hold no UTF-8 character at all."""
    text = data.decode("utf-8", "surrogateescape")
    strays = len(_SURROGATE.findall(text))
    if not strays or not any(ord(ch) > 0x7F and not 0xDC80 <= ord(ch) <= 0xDCFF for ch in text):
        return None
    fixed = _SURROGATE.sub(lambda m: bytes([ord(m.group()) - 0xDC00]).decode(
        _WESTERN, "replace"), text)
    return DecodedText(fixed, "utf-8+" + _WESTERN, True)


@lru_cache(maxsize=256)
def charset_codec(declared: str | None) -> str | None:
    """The codec that reads a declared charset label; None when there is none."""
    if declared is None:
        return None
    label = declared.strip().strip("\"'").lower()
    if label in _NO_CHARSET:
        return None
    if label in _ALIASES:
        return _ALIASES[label]
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return None
    if name in _NOT_MAIL:
        return None
    name = _ALIASES.get(name, name)
    return _SUPERSETS.get(name, name)


def _strict(data: bytes, codec: str, *, guessing: bool) -> str | None:
    """Decode strictly; None when the bytes are not text in this charset."""
    if codec == _JIS:
        return decode_iso2022jp(data) if b"\x1b" in data or b"\x0e" in data else None
    if b"\x1b" in data:  # 7-bit ISO-2022-JP is no other charset's text
        return None
    if codec == "cp932":
        return _sjis_or_euc(data) if guessing else _decode_or_none(data, "cp932")
    if codec == _EUC:
        return decode_eucjp(data)
    text = _decode_or_none(data, "utf-8-sig" if codec == "utf-8" else codec)
    if text is not None and codec != "utf-8" and _C1.search(text):
        return None  # Shift_JIS bytes read as Latin-1
    return text


def _decode_or_none(data: bytes, codec: str, errors: str = "strict") -> str | None:
    try:
        text = data.decode(codec, errors)
    except (UnicodeError, LookupError):
        return None
    if _SURROGATE.search(text):
        return None if errors == "strict" else _SURROGATE.sub("\ufffd", text)
    return text


def _sjis_or_euc(data: bytes) -> str | None:
    """Undeclared Japanese: CP932, unless it reads as EUC-JP with less half-width kana.

    EUC-JP bytes are often valid CP932 too, read as runs of half-width kana,
    which real Japanese text hardly ever has.
    """
    text = _decode_or_none(data, "cp932")
    if text is None:
        return None
    kana = len(_HALFWIDTH_KANA.findall(text))
    if kana:
        euc = decode_eucjp(data)
        if euc is not None and len(_HALFWIDTH_KANA.findall(euc)) < kana:
            return euc
    return text


def _least_damaged(data: bytes, candidates: list[str]) -> DecodedText:
    readings = []
    for codec in dict.fromkeys(candidates):
        python_codec = {_JIS: "iso2022_jp_ext", _EUC: "euc_jis_2004"}.get(codec, codec)
        text = _decode_or_none(data, python_codec, "replace")
        if text is not None:
            readings.append(DecodedText(text, codec, False))
    return min(readings, key=lambda reading: reading.text.count("\ufffd"))


def _cp932_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: read a JIS X 0208 pair Python's JIS codecs lack
    (NEC row 13, IBM extensions) the way CP932 does."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    pair = error.object[error.start : error.start + 2]
    jis = pair.translate(_EUC_TO_JIS) if error.encoding == _EUC else pair
    if len(jis) == 2 and not jis.translate(None, _JIS_BYTES):
        text = _decode_or_none(_jis_to_sjis(jis), "cp932")
        if text is not None:
            return text, error.start + 2
    raise error


_CP932_FALLBACK = "madoguchi-jis-cp932"
codecs.register_error(_CP932_FALLBACK, _cp932_fallback)


def decode_iso2022jp(data: bytes) -> str | None:
    """ISO-2022-JP with the Microsoft extensions (CP50220/50221/50222).

    NEC/IBM characters read as CP932; half-width kana (ESC ( I, SO/SI) through
    CP932 too; ISO-2022-JP-2 and JIS X 0213 through Python's codecs; ESC ( J
    (JIS Roman) as ASCII, like Windows. None when the bytes are none of these.
    """
    if b"\x0e" not in data:  # Python's codec lets SO/SI through as text
        text = _decode_or_none(data, "iso2022_jp", _CP932_FALLBACK)
        if text is not None:
            return _as_cp932(text)
    text = _with_halfwidth_kana(data)
    if text is not None:
        return text
    for codec in ("iso2022_jp_2", "iso2022_jp_2004"):
        text = _decode_or_none(data, codec)
        if text is not None:
            return text
    return None


def _as_cp932(text: str) -> str:
    for jis, cp932 in _JIS_TO_CP932:
        if jis in text:  # str.replace is many times faster than str.translate
            text = text.replace(jis, cp932)
    return text


def _with_halfwidth_kana(data: bytes) -> str | None:
    """ISO-2022-JP with ESC ( I or SO/SI kana, rebuilt as CP932 bytes."""
    sjis = bytearray()
    mode = before_shift_out = "ascii"
    for i, chunk in enumerate(_SHIFT_SEQUENCE.split(data)):
        if i % 2:
            if chunk == b"\x0e":
                mode, before_shift_out = "kana", mode
            elif chunk == b"\x0f":
                mode = before_shift_out
            else:
                mode = _SINGLE_BYTE_SETS.get(chunk, "jis")
        elif mode == "kana":
            if chunk.translate(None, _KANA_BYTES):
                return None
            sjis += chunk.translate(_KANA)
        elif mode == "jis":
            # Like Python's codec, a line break does not leave JIS X 0208.
            for j, part in enumerate(_NEWLINE.split(chunk)):
                if j % 2:
                    sjis += part
                elif len(part) % 2 or part.translate(None, _JIS_BYTES):
                    return None
                else:
                    sjis += _jis_to_sjis(part)
        elif chunk.isascii() and b"\x1b" not in chunk:
            sjis += chunk
        else:
            return None
    return _decode_or_none(bytes(sjis), "cp932")


def _jis_to_sjis(pairs: bytes) -> bytes:
    """JIS X 0208 byte pairs as Shift_JIS, without a per-pair loop."""
    first, second = pairs[0::2], pairs[1::2]
    n = len(first)
    # The Shift_JIS second byte depends on the parity of the first: mark odd
    # first bytes in the high bit of the second, then translate once.
    marked = int.from_bytes(second, "big") | int.from_bytes(first.translate(_ODD), "big")
    sjis = bytearray(2 * n)
    sjis[0::2] = first.translate(_LEAD)
    sjis[1::2] = marked.to_bytes(n, "big").translate(_TRAIL)
    return bytes(sjis)


def decode_eucjp(data: bytes) -> str | None:
    """EUC-JP; NEC/IBM rows as eucJP-ms (CP51932) has them, else JIS X 0213."""
    text = _decode_or_none(data, _EUC, _CP932_FALLBACK)
    if text is not None:
        return _as_cp932(text)
    return _decode_or_none(data, "euc_jis_2004")


# RFC 2047 encoded words; the charset may carry an RFC 2231 language (*ja).
# Some mailers leave blanks inside the encoded text (=?utf-7?Q?ABC / 123?=): taken
# as they are, since the text cannot hold "?" the word still ends at the first "?=".
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?]*)\?=")
_LINE_BREAK = re.compile(r"\r?\n")


def decode_header_value(value: str, hints: Sequence[str] = ()) -> str:
    """Decode a raw header value: unfold, RFC 2047 words, raw 8-bit bytes.

    ``value`` is as the stdlib parser keeps it: 8-bit bytes appear as
    surrogate escapes. Adjacent encoded words in one charset are joined as
    bytes before decoding, so a character split across two words survives.
    """
    if "\n" in value:
        value = unfold(value)
    if "=?" not in value:
        return _raw_text(value, hints)
    pieces: list[str] = []
    pending = bytearray()
    pending_charset = ""
    previous_end: int | None = None
    for match in _ENCODED_WORD.finditer(value):
        between = value[previous_end or 0 : match.start()]
        charset = match.group(1).lower()
        # Whitespace between two encoded words is no part of the text.
        adjacent = previous_end is not None and not between.strip()
        if pending and not (adjacent and charset == pending_charset):
            pieces.append(decode_bytes(bytes(pending), pending_charset, hints))
            pending.clear()
        if not adjacent:
            pieces.append(_raw_text(between, hints))
        pending += _word_bytes(match.group(2), match.group(3))
        pending_charset = charset
        previous_end = match.end()
    if pending:
        pieces.append(decode_bytes(bytes(pending), pending_charset, hints))
    pieces.append(_raw_text(value[previous_end or 0 :], hints))
    return "".join(pieces)


def unfold(value: str) -> str:
    """A folded header value on one line: each line break and the blanks around it
    become one space. Line by line: a pattern with blanks on both sides of the
    break took quadratic time on a long run of blanks."""
    lines = _LINE_BREAK.split(value)
    if len(lines) == 1:
        return value
    inner = (line.strip(" \t") for line in lines[1:-1])
    return " ".join((lines[0].rstrip(" \t"), *inner, lines[-1].lstrip(" \t")))


def _raw_text(value: str, hints: Sequence[str] = ()) -> str:
    """Header text outside encoded words; 8-bit bytes read by charset guessing, the
    message's declared charsets (``hints``) among the candidates."""
    if value.isascii():
        return value
    return decode_bytes(to_bytes(value), None, hints)


def to_bytes(value: str) -> bytes:
    """The original bytes of a string the stdlib decoded with surrogate escapes."""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _word_bytes(encoding: str, text: str) -> bytes:
    data = text.encode("ascii", "ignore")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    return b64decode_lenient(data)


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def b64decode_lenient(data: bytes) -> bytes:
    """Base64 that survives junk and bad padding."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    clean = _NOT_BASE64.sub(b"", data)
    if len(clean) % 4 == 1:  # a lone trailing character holds no whole byte
        clean = clean[:-1]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


# MIME parameters: name=token or name="quoted string" (RFC 2045), and the
# RFC 2231 forms name*=charset'lang'%XX with continuations name*0*=, name*1=.
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)', re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
_SECTION = re.compile(r"(.*?)\*(\d{1,4})?(\*)?")


def parse_params(value: str, hints: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
    """Split a Content-Type / Content-Disposition value into its value and params.

    The value and parameter names are lower-cased; parameter values are
    decoded (RFC 2231 with its charset, RFC 2047 words that clients put in
    quoted names, raw 8-bit bytes). The first of repeated parameters wins.
    """
    if "\n" in value:
        value = unfold(value)
    head, _, rest = value.partition(";")
    if not rest:
        return head.strip().lower(), {}
    plain: dict[str, str] = {}
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    for match in _PARAM.finditer(";" + rest):
        name, raw = match.group(1).lower(), _unquote(match.group(2).strip())
        section = _SECTION.fullmatch(name)
        if section:
            index = int(section.group(2)) if section.group(2) else 0
            extended = bool(section.group(3)) or section.group(2) is None
            sections.setdefault(section.group(1), []).append((index, extended, raw))
        else:
            plain.setdefault(name, raw)
    params = {name: decode_header_value(raw, hints) for name, raw in plain.items()}
    for name, parts in sections.items():
        params[name] = _join_rfc2231(parts, hints)
    return head.strip().lower(), params


def _unquote(raw: str) -> str:
    if not raw.startswith('"'):
        return raw
    inner = raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
    return _QUOTED_PAIR.sub(r"\1", inner)


def _join_rfc2231(parts: list[tuple[int, bool, str]], hints: Sequence[str]) -> str:
    parts.sort(key=lambda part: part[0])
    if not any(extended for _, extended, _ in parts):
        # Some mailers split an RFC 2047 word over plain continuations.
        return decode_header_value("".join(raw for _, _, raw in parts), hints)
    charset: str | None = None
    data = bytearray()
    for position, (_, extended, raw) in enumerate(parts):
        if extended and position == 0 and raw.count("'") >= 2:
            charset, _, raw = raw.split("'", 2)
        data += unquote_to_bytes(to_bytes(raw)) if extended else to_bytes(raw)
    return decode_bytes(bytes(data), charset or None, hints)
