"""The one folding of text for search: what is indexed and what is asked go through ``fold``.

Staff type ``ﾛｸﾞｲﾝ``, ``ＣＳＶ`` or ``２０３１－０００３`` as often as
``ログイン``, ``csv`` or ``2031-0003``; customers write either. Both sides are
folded the same way, so the index holds the folded text and a query is
folded before it is looked up:

- NFKC (full-width ASCII to half-width, half-width kana to full-width, the
  half-width voiced marks joined to their kana, ① to 1, ㈱ to (株)), then
  casefold (``CSV`` and ``csv`` alike);
- the dashes NFKC leaves apart (U+2010–2015 hyphens and dashes, U+2043,
  U+2212 minus, U+FE63/U+FF0D which NFKC already maps) become ``-``;
- the long-sound mark ``ー`` becomes ``-`` only between two digits, as in a
  number written ``2031ー0003``: in a katakana word (``ログイン``, ``データー``)
  it stays.

``fold`` folds a whole string at once (fast: the migration folds millions
of messages). ``fold_map`` folds it again per *segment* (a character and
the combining marks after it, the half-width ﾞ and ﾟ included), which keeps
a map from every folded character back to the original text: the desk
highlights the original words, not the folded ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import lru_cache

_DASHES = {c: "-" for c in (*range(0x2010, 0x2016), 0x2043, 0x2212, 0xFE63, 0xFF0D)}
_LONG_SOUND = "\u30fc"
_DIGITS_DASH = re.compile(r"(?<=[0-9])\u30fc(?=[0-9])")


def _nfkc_casefold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def fold(text: str) -> str:
    """The searchable form of ``text`` (index and query alike).

    The whole string at once (C code: fast enough to fold millions of
    messages in a migration); ``fold_map`` gives the same text piece by piece.
    """
    folded = _nfkc_casefold(text).translate(_DASHES)
    return _DIGITS_DASH.sub("-", folded) if _LONG_SOUND in folded else folded


@lru_cache(maxsize=4096)
def _combines(ch: str) -> bool:
    if unicodedata.combining(ch):
        return True
    folded = unicodedata.normalize("NFKC", ch)
    return bool(folded) and unicodedata.combining(folded[0]) != 0


def _segments(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each base character with the combining marks that follow it."""
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not _combines(text[i]):
            yield start, i
            start = i


@lru_cache(maxsize=8192)
def _fold_segment(segment: str) -> str:
    return _nfkc_casefold(segment).translate(_DASHES)


def fold_map(text: str) -> tuple[str, list[int] | None]:
    """``fold(text)``, and for each of its characters the original index it came from.

    The list has one more entry than the folded text: ``len(text)``, so that a
    folded span ``[a, b)`` maps to the original ``[starts[a], starts[b])``
    (see ``original_span``). None when folding piece by piece differs from
    folding the whole (characters that compose across pieces, as conjoining
    Hangul jamo do): then no place in the original is known.
    """
    out: list[str] = []
    starts: list[int] = []
    for start, end in _segments(text):
        piece = _fold_segment(text[start:end])
        out.append(piece)
        starts.extend([start] * len(piece))
    folded = "".join(out)
    if _LONG_SOUND in folded:
        folded = _DIGITS_DASH.sub("-", folded)
    starts.append(len(text))
    whole = fold(text)
    return (folded, starts) if folded == whole else (whole, None)


def original_span(starts: Sequence[int], at: int, length: int) -> tuple[int, int]:
    """The original text's [start, end) behind the folded span at ``at`` of ``length``.

    A folded span that begins or ends inside what one original character
    became (``㈱`` folds to three characters) widens to the whole character.
    """
    end = at + length
    stop = starts[end]
    # The end may fall inside a segment: take the segment up to its end.
    while end < len(starts) - 1 and starts[end] == starts[end - 1]:
        end += 1
        stop = starts[end]
    return starts[at], stop


def find(text: str, term: str) -> tuple[int, int] | None:
    """Where the folded ``term`` (already folded) first occurs in ``text``, as original indexes."""
    whole = fold(text)
    at = whole.find(term)
    if at < 0:
        return None
    # Most text keeps its length when folded (no half-width kana, no ①): then the
    # place is the same in the original, if that place folds to the term.
    if len(whole) == len(text) and fold(text[at:at + len(term)]) == term:
        return at, at + len(term)
    folded, starts = fold_map(text)
    if starts is None:
        return None
    return original_span(starts, folded.find(term), len(term))


def bigrams(folded: str) -> list[str]:
    """The pairs of neighbouring characters without white space, first seen first.

    What migration 0014's ``madoguchi_bigrams`` indexes on PostgreSQL (it
    keeps some junk beside them, never asked for), so that a two-character
    term, which has no trigram, is found through an index too.
    """
    seen: dict[str, None] = {}
    for i in range(len(folded) - 1):
        pair = folded[i:i + 2]
        if not any(c.isspace() for c in pair):
            seen.setdefault(pair)
    return list(seen)


def indexed_by_bigrams(term: str) -> bool:
    """A folded term the bigram index answers: two characters, no white space."""
    return len(term) == 2 and bigrams(term) == [term]


def message_document(*, note: bool, subject: str, text: str, sender: str = "",
                     sender_name: str = "", recipients: Sequence[str] = (),
                     cc: Sequence[str] = ()) -> str:
    """What a message is found by, folded: one field a line.

    A note counts by its own text only (it carries its ticket's subject,
    which would otherwise make every note match a subject word); mail and
    FAX by subject, text, and the addresses it came from and went to.
    """
    if note:
        return fold(text)
    fields = [subject, text, sender, sender_name, *recipients, *cc]
    return "\n".join(fold(f) for f in fields if f)


def document_fields(*, note: bool, subject: str, text: str, sender: str = "",
                    sender_name: str = "", recipients: Sequence[str] = (),
                    cc: Sequence[str] = ()) -> list[str]:
    """The original fields ``message_document`` folds, in its order (for the snippet)."""
    if note:
        return [text]
    return [f for f in (text, subject, sender, sender_name, *recipients, *cc) if f]


# -- customer lookup -----------------------------------------------------------

_HIRAGANA = range(0x3041, 0x3097)


def katakana(folded: str) -> str:
    """Hiragana as katakana, so that ``やまだ`` and ``ヤマダ`` are one key."""
    return "".join(chr(ord(c) + 0x60) if ord(c) in _HIRAGANA else c for c in folded)


def lookup_fold(text: str) -> str:
    """The customer lookup's folding: ``fold`` and then hiragana as katakana."""
    return katakana(fold(text))


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def digits(text: str) -> str:
    """The digits of a phone, FAX or support number written in any width."""
    return "".join(c for c in fold(text) if _digit(c))


def lookup_key(*names: str, readings: Sequence[str] = (), numbers: Sequence[str] = ()) -> str:
    """A contact's or company's lookup key: names and readings folded, numbers as digits.

    A name with spaces (山田 太郎) is also kept without them, as staff type
    it either way.
    """
    parts = [lookup_fold(n) for n in (*names, *readings) if n]
    parts += [joined for joined in ("".join(p.split()) for p in parts) if joined not in parts]
    parts += [d for d in (digits(n) for n in numbers) if d]
    return "\n".join(parts)
