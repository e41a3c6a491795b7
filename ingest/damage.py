"""How damaged a reading of some bytes looks: the measure charset guessing chooses by.

A wrong charset rarely fails outright: Latin-1 bytes are valid Shift_JIS
("Hofjägeralle" reads "Hofj臠eralle"), Shift_JIS bytes valid Windows-1252
("テスト" reads "ƒeƒXƒg"), and GB18030 reads nearly anything. What gives a
wrong reading away, in order of weight:

* characters no text has: U+FFFD, private-use characters (Shift_JIS's
  user-defined area, which Latin-1 letters land in), C0/C1 controls: 10 each;
* an East Asian character inside a Latin word ("Hofj臠eralle"): 1 each;
* a Japanese reading with no kana and no Japanese punctuation at all: 0.35
  (real Japanese text has them; Latin-1 read as Shift_JIS gives rare kanji);
  a Latin reading whose letters are mostly not ASCII: 1 (CJK read as Latin-1),
  and each UTF-8 character in it read byte by byte ("Ã©" for é): 1;
* charset-normalizer's mess ratio (symbols amid letters, accents on
  unlikely letters, "ŽR“c" for 山田): its value, 0 for clean text.

``detected`` asks charset-normalizer's detector for charsets to try when no
candidate reads cleanly (its own pick alone is unreliable on the short texts
mail has: "äöüß" comes out as Big5-HKSCS), so its proposals join the
candidates and the measure above decides.
"""

from __future__ import annotations

import re

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

# Characters no real text holds (NUL is not counted: the parser drops it anyway).
_UNREADABLE = re.compile(
    "[\ufffd\ue000-\uf8ff\U000f0000-\U0010ffff\x01-\x08\x0b\x0e-\x1f\x7f-\x9f]"
)
_EAST_ASIAN = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff61-\uff9f]"
_INSIDE_LATIN_WORD = re.compile(rf"(?<=[A-Za-z]){_EAST_ASIAN}+(?=[a-z])")
# Kana, Japanese punctuation and symbols (―…※, ①, Ⅲ, ㈱, ㍉), full-width forms:
# what Japanese text has. Half-width kana are not among them: Latin-1 capitals
# read as Shift_JIS are half-width kana.
_JAPANESE_MARKS = re.compile(
    "[\u2015\u2025\u2026\u203b\u2160-\u217f\u2460-\u24ff\u3001-\u30ff\u3200-\u33ff"
    "\uff01-\uff5e\uffe0-\uffe5]"
)
_JAPANESE_CODECS = frozenset(("cp932", "euc_jp", "iso2022_jp"))
_LATIN_CODECS = frozenset(
    ("cp1252", "iso8859-15", "cp1250", "cp1254", "cp1257", "iso8859-2", "iso8859-15",
     "latin_1", "iso8859_15", "iso8859_2", "iso8859_9", "iso8859_10", "mac_roman", "cp1125")
)
_NON_ASCII = re.compile("[^\x00-\x7f]")
# A UTF-8 lead byte and a continuation byte read as Windows-1252: "Ã©" for é.
_UTF8_AS_LATIN = re.compile(
    "[\u00c2-\u00f4][\u00a0-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_ASCII_LETTERS = re.compile("[A-Za-z]")
# The share of a text measured: enough to judge, bounded for long bodies.
_SAMPLE = 8000
# A reading at least this damaged is no clean one.
CLEAN = 0.3


def damaged(text: str) -> bool:
    """Whether ``text`` holds characters no real text has (the fast path's check)."""
    return _UNREADABLE.search(text) is not None


def suspicion(text: str, codec: str) -> float:
    """What gives a wrong reading away without judging its letters: unreadable
    characters, East Asian characters inside Latin words, Japanese without kana."""
    sample = text[:_SAMPLE]
    score = 10.0 * len(_UNREADABLE.findall(sample))
    score += len(_INSIDE_LATIN_WORD.findall(sample))
    if codec in _JAPANESE_CODECS and not _JAPANESE_MARKS.search(sample):
        score += 0.35
    elif codec in _LATIN_CODECS:
        score += len(_UTF8_AS_LATIN.findall(sample)) + (1 if _mostly_not_ascii(sample) else 0)
    return score


def _mostly_not_ascii(sample: str) -> bool:
    """Whether a Latin reading's letters are mostly not ASCII: CJK bytes read as
    Latin-1 ("¾ã³²Êó¹ð" for 障害報告); European text is mostly ASCII letters."""
    non_ascii = len(_NON_ASCII.findall(sample))
    return non_ascii >= 2 and non_ascii > len(_ASCII_LETTERS.findall(sample))


def damage(text: str, codec: str) -> float:
    """How wrong the reading ``text`` of some bytes in ``codec`` looks; 0 for clean text.

    The mess ratio is for comparing readings, not for judging Japanese alone:
    ①㈱～ are symbols to it ("㈱サンプル①～" scores 0.57).
    """
    return suspicion(text, codec) + mess_ratio(text[:_SAMPLE], 1.0)


# Tried already, or no charset of mail text: the detector is asked for others.
_NOT_PROPOSED = (
    "ascii", "cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004",
    "euc_jisx0213", "iso2022_jp", "utf_8", "cp1252", "latin_1", "utf_16", "utf_16_be",
    "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7",
)


def detected(data: bytes) -> list[str]:
    """Other charsets charset-normalizer's detector proposes for ``data``, best first.

    The charsets tried before it are excluded: asked about all of them, it
    stops at the first clean reading, and Cyrillic KOI8-R reads "cleanly" as
    half-width kana in CP932.
    """
    try:
        matches = from_bytes(data[: 4 * _SAMPLE], cp_exclusion=list(_NOT_PROPOSED))
    except Exception:  # a detector failure must not cost the message
        return []
    return [match.encoding for match in matches][:4]
