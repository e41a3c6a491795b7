"""The one place that runs Tesseract.

It knows the command line (page segmentation modes, the character whitelist,
languages), the environment Tesseract wants, how long a call may take, and
turns every failure into the project's own exceptions. Nothing else in the
project starts ``tesseract``. The binary is the first ``tesseract`` on PATH;
its version and languages are probed once per binary.

Quirks handled here:

* Tesseract 4.1+ honours ``tessedit_char_whitelist`` in the LSTM engine (4.0
  ignored it); the Debian 12 package is 5.3. An older one is refused as
  unusable rather than trusted to read digits.
* Tesseract starts OpenMP threads per process. Several pages are OCRed one
  after another, and the desk may run several readers at once, so one thread
  per process (``OMP_THREAD_LIMIT=1``) is faster overall and keeps a reader
  on one core.
* The image goes in on stdin as PNM: no temporary files, no compression cost.
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
import signal
import subprocess
from dataclasses import dataclass
from functools import cache

from PIL import Image

from madoguchi.ocr._exec.tesseract_output import OcrResult, parse_hocr, parse_tsv
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
# The whitelist works in the LSTM engine from 4.1 on (see above).
MIN_VERSION = (4, 1)
# Asking for the version or the languages is instant; longer means a broken install.
_PROBE_TIMEOUT = 30.0
_VERSION = re.compile(rb"tesseract\s+v?(\d+)\.(\d+)")
_INSTALL = "apt-get install tesseract-ocr tesseract-ocr-jpn tesseract-ocr-eng"


@dataclass(frozen=True)
class Tesseract:
    """One installed Tesseract: where it is, its version, the languages it has."""

    path: str
    version: tuple[int, int]
    languages: frozenset[str]


def installed() -> Tesseract:
    """The Tesseract that will run; OcrUnavailableError when there is none usable."""
    path = shutil.which("tesseract")
    if path is None:
        raise OcrUnavailableError(f"tesseract is not installed ({_INSTALL})")
    return _probe(path)


@cache
def _probe(path: str) -> Tesseract:
    version_out = _run_probe(path, "--version")
    m = _VERSION.search(version_out)
    if m is None:
        raise OcrUnavailableError(f"{path} --version does not say which tesseract it is")
    version = (int(m.group(1)), int(m.group(2)))
    if version < MIN_VERSION:
        raise OcrUnavailableError(
            f"tesseract {version[0]}.{version[1]} ignores the digit whitelist; "
            f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or newer is needed"
        )
    # The first line names the tessdata folder; one language per line follows.
    out = _run_probe(path, "--list-langs").decode("utf-8", "replace").splitlines()
    languages = frozenset(line.strip() for line in out[1:] if line.strip())
    return Tesseract(path, version, languages)


def _run_probe(path: str, flag: str) -> bytes:
    try:
        proc = subprocess.run(
            [path, flag],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            env=_environment(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OcrUnavailableError(f"cannot run {path} {flag}: {exc}") from exc
    if proc.returncode != 0:
        raise OcrUnavailableError(f"{path} {flag} failed: {_failure(proc)}")
    # Tesseract 3 printed its version on stderr.
    return proc.stdout + proc.stderr if flag == "--version" else proc.stdout


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


def _failure(proc: subprocess.CompletedProcess[bytes]) -> str:
    """Why a run failed: its last line on stderr, or how it ended."""
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if err:
        return err[-1]
    if proc.returncode < 0:
        try:
            return f"killed by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            return f"killed by signal {-proc.returncode}"
    return f"exit status {proc.returncode}"


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
    tool = installed()
    missing = set(lang.split("+")) - tool.languages
    if missing:
        raise OcrUnavailableError(
            f"tesseract language data missing: {', '.join(sorted(missing))} ({_INSTALL})"
        )
    cmd = [tool.path, "stdin", "stdout", "--psm", str(psm), "-l", lang, "--dpi", str(dpi)]
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
        raise FaxDocumentError("ocr_failed", f"tesseract failed: {_failure(proc)}")
    out = proc.stdout.decode("utf-8", "replace")
    return parse_hocr(out) if chars else parse_tsv(out)
