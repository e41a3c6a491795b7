"""The one place that runs Tesseract.

It knows the command line (page segmentation modes, the character whitelist,
languages), the environment Tesseract wants, how long a call may take, and
turns every failure into the project's own exceptions. Nothing else in the
project starts ``tesseract``.

Quirks handled here:

* Tesseract 4.1+ honours ``tessedit_char_whitelist`` in the LSTM engine (4.0
  ignored it); the Debian 12 package is 5.3.
* Tesseract starts OpenMP threads per process. Several pages are OCRed one
  after another, and the desk may run several readers at once, so one thread
  per process (``OMP_THREAD_LIMIT=1``) is faster overall and keeps a reader
  on one core.
* The image goes in on stdin as PNM: no temporary files, no compression cost.
* ``tsv`` output gives a confidence per word; the plain text is rebuilt from
  it, without the spaces Tesseract puts between Japanese words.
* With ``tessedit_char_whitelist`` set, Tesseract 5.3 reports a word
  confidence of 0 and garbles the per-character ones (the suppressed
  characters' penalties leak into the beam; tesseract-ocr/tesseract#3856).
  ``recognise(..., chars=True)`` asks for hOCR with character boxes and
  returns each character's confidence; callers that need a trustworthy
  confidence read without the whitelist and compare.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache

from PIL import Image

from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError

DIGITS = "0123456789"
JAPANESE = "jpn+eng"
JAPANESE_ONLY = "jpn"  # a line of Japanese text: the eng model only adds misreadings
ENGLISH = "eng"

# Single text line / uniform block of text / automatic page layout.
PSM_SINGLE_LINE = 7
PSM_BLOCK = 6
PSM_AUTO = 3

DEFAULT_TIMEOUT = 30.0


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


@cache
def tesseract_path() -> str:
    path = shutil.which("tesseract")
    if path is None:
        raise OcrUnavailableError("tesseract is not installed (apt-get install tesseract-ocr)")
    return path


@cache
def available_languages() -> frozenset[str]:
    proc = subprocess.run(
        [tesseract_path(), "--list-langs"], capture_output=True, timeout=30, check=False
    )
    out = proc.stdout.decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in out[1:] if line.strip())


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")
    return env


def _pnm(image: Image.Image) -> bytes:
    if image.mode not in ("1", "L"):
        image = image.convert("L")
    buf = io.BytesIO()
    image.save(buf, format="PPM")
    return buf.getvalue()


def _parse_tsv(raw: str) -> OcrResult:
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


def _parse_hocr(raw: str) -> OcrResult:
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


def recognise(
    image: Image.Image,
    *,
    lang: str = ENGLISH,
    psm: int = PSM_BLOCK,
    whitelist: str | None = None,
    dpi: int = 200,
    timeout: float = DEFAULT_TIMEOUT,
    chars: bool = False,
) -> OcrResult:
    """OCR one image and return its words with confidences.

    Raises OcrUnavailableError when Tesseract or a language is missing (the
    desk is misconfigured: retry later, do not quarantine), and
    FaxDocumentError("ocr_failed") when Tesseract fails or runs out of time
    on this image.
    """
    missing = set(lang.split("+")) - available_languages()
    if missing:
        raise OcrUnavailableError(
            f"tesseract language data missing: {', '.join(sorted(missing))} "
            "(apt-get install tesseract-ocr-jpn tesseract-ocr-eng)"
        )
    cmd = [tesseract_path(), "stdin", "stdout", "--psm", str(psm), "-l", lang, "--dpi", str(dpi)]
    if whitelist is not None:
        cmd += ["-c", f"tessedit_char_whitelist={whitelist}"]
    # Japanese output otherwise has a space between most characters.
    cmd += ["-c", "preserve_interword_spaces=1"]
    cmd += ["-c", "hocr_char_boxes=1", "hocr"] if chars else ["tsv"]
    try:
        proc = subprocess.run(
            cmd,
            input=_pnm(image),
            capture_output=True,
            timeout=max(timeout, 0.1),
            env=_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FaxDocumentError(
            "ocr_failed", f"tesseract took longer than {timeout:.0f} s on one image"
        ) from exc
    except OSError as exc:
        raise OcrUnavailableError(f"cannot run tesseract: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = err[-1] if err else f"exit status {proc.returncode}"
        raise FaxDocumentError("ocr_failed", f"tesseract failed: {detail}")
    out = proc.stdout.decode("utf-8", "replace")
    return _parse_hocr(out) if chars else _parse_tsv(out)
