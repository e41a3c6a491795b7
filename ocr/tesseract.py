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
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from functools import cache

from PIL import Image

from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError

DIGITS = "0123456789"
JAPANESE = "jpn+eng"
ENGLISH = "eng"

# Single text line / single character / uniform block of text / automatic.
PSM_SINGLE_LINE = 7
PSM_SINGLE_CHAR = 10
PSM_BLOCK = 6
PSM_AUTO = 3

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Word:
    text: str
    conf: float  # 0..100 as Tesseract reports it
    left: int
    top: int
    width: int
    height: int
    line_key: tuple[int, int, int]  # (block, paragraph, line)


@dataclass(frozen=True)
class OcrResult:
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        """The words as lines of text, Japanese without Tesseract's inter-word spaces."""
        lines: list[str] = []
        current: tuple[int, int, int] | None = None
        parts: list[str] = []
        for w in self.words:
            if w.line_key != current:
                if parts:
                    lines.append("".join(parts))
                parts, current = [], w.line_key
            if parts and _needs_space(parts[-1], w.text):
                parts.append(" ")
            parts.append(w.text)
        if parts:
            lines.append("".join(parts))
        return "\n".join(lines)

    def lines(self) -> list[tuple[Word, ...]]:
        grouped: dict[tuple[int, int, int], list[Word]] = {}
        for w in self.words:
            grouped.setdefault(w.line_key, []).append(w)
        return [tuple(ws) for ws in grouped.values()]

    @property
    def min_conf(self) -> float:
        return min((w.conf for w in self.words), default=0.0)


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


def recognise(
    image: Image.Image,
    *,
    lang: str = ENGLISH,
    psm: int = PSM_BLOCK,
    whitelist: str | None = None,
    dpi: int = 200,
    timeout: float = DEFAULT_TIMEOUT,
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
    cmd += ["-c", "preserve_interword_spaces=1", "tsv"]
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
    return _parse_tsv(proc.stdout.decode("utf-8", "replace"))
