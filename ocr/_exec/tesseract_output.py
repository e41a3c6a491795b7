"""What a Tesseract run returns: words and characters with confidences, from TSV or hOCR.

``tsv`` output gives a confidence per word; the plain text is rebuilt from
it, without the spaces Tesseract puts between Japanese words. hOCR with
character boxes (``hocr_char_boxes=1``) gives each character's confidence
and box, which the readers need where Tesseract 5.3 garbles the word
confidences (see ``tesseract.py``).
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from madoguchi.ocr.errors import FaxDocumentError


@dataclass(frozen=True)
class Char:
    text: str
    conf: float  # 0..100
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom


@dataclass(frozen=True)
class Word:
    text: str
    conf: float  # 0..100 as Tesseract reports it
    left: int
    top: int
    width: int
    height: int
    line_key: tuple[int, int, int]  # (block, paragraph, line)
    chars: tuple[Char, ...] = ()  # only from hOCR (``chars=True``)


@dataclass(frozen=True)
class OcrResult:
    words: tuple[Word, ...]
    # Per character, in reading order; only when asked for (hOCR output).
    chars: tuple[Char, ...] = ()

    @property
    def text(self) -> str:
        """The words as lines of text, Japanese without Tesseract's inter-word spaces."""
        return "\n".join(line_text(words) for words in self.lines())

    def lines(self) -> list[tuple[Word, ...]]:
        grouped: dict[tuple[int, int, int], list[Word]] = {}
        for w in self.words:
            grouped.setdefault(w.line_key, []).append(w)
        return [tuple(ws) for ws in grouped.values()]


def line_text(words: tuple[Word, ...]) -> str:
    """One line's words joined: a space only between two non-CJK words."""
    parts: list[str] = []
    for w in words:
        if parts and _needs_space(parts[-1], w.text):
            parts.append(" ")
        parts.append(w.text)
    return "".join(parts)


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _needs_space(before: str, after: str) -> bool:
    if not before or not after or before == " ":
        return False
    return not (_is_wide(before[-1]) or _is_wide(after[0]))


def parse_tsv(raw: str) -> OcrResult:
    words: list[Word] = []
    for line in raw.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        text = cols[11].strip()
        if not text:
            continue
        words.append(
            Word(
                text=text,
                conf=max(0.0, float(cols[10])),
                left=int(cols[6]),
                top=int(cols[7]),
                width=int(cols[8]),
                height=int(cols[9]),
                line_key=(int(cols[2]), int(cols[3]), int(cols[4])),
            )
        )
    return OcrResult(tuple(words))


_HOCR_NS = "{http://www.w3.org/1999/xhtml}"
_BBOX = re.compile(r"bbox (-?\d+) (-?\d+) (-?\d+) (-?\d+)")
_WCONF = re.compile(r"x_wconf (-?[\d.]+)")
_CONF = re.compile(r"x_conf (-?[\d.]+)")
_CHAR_BOX = re.compile(r"x_bboxes (-?\d+) (-?\d+) (-?\d+) (-?\d+)")


def _char_box(title: str) -> tuple[int, int, int, int]:
    m = _CHAR_BOX.search(title)
    if m is None:
        return (0, 0, 0, 0)
    left, top, right, bottom = (int(v) for v in m.groups())
    return (left, top, right, bottom)


def parse_hocr(raw: str) -> OcrResult:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise FaxDocumentError("ocr_failed", f"tesseract wrote unreadable hOCR: {exc}") from exc
    words: list[Word] = []
    chars: list[Char] = []
    for line_no, line in enumerate(root.iter(f"{_HOCR_NS}span")):
        if line.get("class") not in ("ocr_line", "ocrx_line", "ocr_textfloat", "ocr_caption"):
            continue
        for span in line.iter(f"{_HOCR_NS}span"):
            if span.get("class") != "ocrx_word":
                continue
            title = span.get("title", "")
            box = _BBOX.search(title)
            wconf = _WCONF.search(title)
            x0, y0, x1, y1 = (int(v) for v in box.groups()) if box else (0, 0, 0, 0)
            word_chars = [
                Char(c.text or "", max(0.0, float(m.group(1))), _char_box(c.get("title", "")))
                for c in span.iter(f"{_HOCR_NS}span")
                if c.get("class") == "ocrx_cinfo" and (m := _CONF.search(c.get("title", "")))
            ]
            text = "".join(c.text for c in word_chars) or "".join(span.itertext()).strip()
            if not text:
                continue
            chars.extend(word_chars)
            words.append(
                Word(
                    text=text,
                    conf=max(0.0, float(wconf.group(1))) if wconf else 0.0,
                    left=x0,
                    top=y0,
                    width=x1 - x0,
                    height=y1 - y0,
                    line_key=(0, 0, line_no),
                    chars=tuple(word_chars),
                )
            )
    return OcrResult(tuple(words), tuple(chars))
