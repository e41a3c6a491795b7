"""The one place that runs poppler's ``pdfinfo`` and ``pdftoppm`` (through pdf2image).

pdf2image knows the command lines and parses ``pdfinfo``; this wrapper
probes the tools once (a broken install is the desk's fault, not every
PDF's), hands pdf2image the binaries it found, and turns pdf2image's errors
into the project's own. Quirks handled here:

* ``pdfinfo`` exits 0 on some damaged files and prints nothing useful; a
  PDF is readable only when it gives a page count. Asked for a page range
  it gives every page's size, which the loader needs before it decides a
  resolution.
* A password-protected PDF fails with a message naming the password or the
  encryption: that is the sender's choice, not damage, and says so.
* pdf2image wants its timeouts in whole seconds; both tools run under the
  document's deadline and are killed when it passes.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from pdf2image import convert_from_bytes, convert_from_path, pdfinfo_from_path
from pdf2image.exceptions import (
    PDFInfoNotInstalledError,
    PDFPageCountError,
    PDFPopplerTimeoutError,
    PopplerNotInstalledError,
)
from PIL import Image, UnidentifiedImageError

from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError

_VERSION = re.compile(rb"version\s+(\d+)\.(\d+)")
_PROBE_TIMEOUT = 30.0
_PAGE_SIZE = re.compile(r"^Page\s+(\d+)\s+size$")
_POINTS = re.compile(r"([\d.]+)\s*x\s*([\d.]+)\s*pts")


def _tool(name: str) -> str:
    """The tool's path, once its version probe has shown it runs at all.

    A broken install (a library missing) would otherwise fail on every PDF
    and quarantine each as damaged: the probe makes it the desk's fault.
    """
    path = shutil.which(name)
    if path is None:
        raise OcrUnavailableError(f"poppler-utils ({name}) is not installed")
    _version(path)
    return path


@cache
def _version(path: str) -> tuple[int, int]:
    """The tool's version, asked once per binary; poppler prints it on stderr."""
    try:
        proc = subprocess.run(
            [path, "-v"], capture_output=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OcrUnavailableError(f"cannot run {path}: {exc}") from exc
    m = _VERSION.search(proc.stderr + proc.stdout)
    if m is None:
        raise OcrUnavailableError(f"{path} -v does not say which poppler it is")
    return int(m.group(1)), int(m.group(2))


def _folder(name: str) -> str:
    """Where the probed tool lives, for pdf2image to run that one."""
    return str(Path(_tool(name)).parent)


def _options(*, first: int | None, last: int | None, timeout: float | None) -> dict[str, Any]:
    """pdf2image's page range and timeout (whole seconds), given only when set."""
    options: dict[str, Any] = {}
    if first is not None:
        options["first_page"] = first
    if last is not None:
        options["last_page"] = last
    if timeout is not None:
        options["timeout"] = max(1, math.ceil(timeout))
    return options


def _info(
    path: Path, name: str, timeout: float, pages: tuple[int, int] | None = None
) -> dict[str, object]:
    options = _options(first=pages[0] if pages else None, last=pages[1] if pages else None,
                       timeout=timeout)
    try:
        info: dict[str, object] = pdfinfo_from_path(
            str(path), poppler_path=_folder("pdfinfo"), **options
        )
    except PDFPopplerTimeoutError as exc:
        raise FaxDocumentError("timeout", f"pdfinfo took too long on {name}") from exc
    except PDFInfoNotInstalledError as exc:
        raise OcrUnavailableError("poppler-utils (pdfinfo) is not installed") from exc
    except PDFPageCountError as exc:
        detail = str(exc).replace("Unable to get page count.", "").strip()
        if "password" in detail.lower() or "encrypt" in detail.lower():
            raise FaxDocumentError(
                "encrypted_pdf", f"{name} is password-protected: {detail or 'encrypted'}"
            ) from exc
        raise FaxDocumentError(
            "corrupt_pdf", f"{name} is not a readable PDF: {detail or 'no page count'}"
        ) from exc
    return info


def page_count(path: Path, name: str, timeout: float) -> int:
    """How many pages the PDF has; FaxDocumentError when it is no readable PDF."""
    count = _info(path, name, timeout).get("Pages")
    if not isinstance(count, int) or count < 0:
        raise FaxDocumentError("corrupt_pdf", f"{name}: no page count")
    return count


def page_sizes(path: Path, name: str, count: int, timeout: float) -> list[tuple[float, float]]:
    """Each page's width and height in points (1/72 inch)."""
    info = _info(path, name, timeout, (1, count))
    sizes: dict[int, tuple[float, float]] = {}
    for key, value in info.items():
        m = _PAGE_SIZE.match(key)
        p = _POINTS.search(str(value))
        if m and p:
            sizes[int(m.group(1))] = (float(p.group(1)), float(p.group(2)))
    if len(sizes) != count:
        raise FaxDocumentError("corrupt_pdf", f"{name}: pdfinfo did not give every page's size")
    return [sizes[i] for i in range(1, count + 1)]


def render(
    path: Path,
    dpi: int,
    *,
    first: int | None = None,
    last: int | None = None,
    name: str = "the PDF",
    timeout: float | None = None,
) -> list[Image.Image]:
    """Pages ``first``..``last`` (all by default) as greyscale images at ``dpi``.

    FaxDocumentError("corrupt_pdf") when poppler renders nothing,
    ("timeout") when it runs past ``timeout`` seconds.
    """
    what = name if first is None else f"page {first} of {name}"
    try:
        images: list[Image.Image] = convert_from_path(
            str(path), dpi=dpi, grayscale=True, poppler_path=_folder("pdftoppm"),
            **_options(first=first, last=last, timeout=timeout),
        )
    except PDFPopplerTimeoutError as exc:
        raise FaxDocumentError("timeout", f"rendering {what} took too long") from exc
    except (PopplerNotInstalledError, PDFInfoNotInstalledError) as exc:
        raise OcrUnavailableError("poppler-utils (pdftoppm) is not installed") from exc
    except PDFPageCountError as exc:
        raise FaxDocumentError("corrupt_pdf", f"{name} is not a readable PDF") from exc
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise FaxDocumentError("corrupt_pdf", f"{what} cannot be rendered") from exc
    if not images:
        raise FaxDocumentError("corrupt_pdf", f"{what} cannot be rendered")
    return [image if image.mode == "L" else image.convert("L") for image in images]


def render_bytes(pdf: bytes, dpi: int) -> list[Image.Image]:
    """Every page of a PDF held in memory, greyscale at ``dpi`` (for PDFs we drew ourselves)."""
    images: list[Image.Image] = convert_from_bytes(
        pdf, dpi=dpi, grayscale=True, poppler_path=_folder("pdftoppm")
    )
    return [image if image.mode == "L" else image.convert("L") for image in images]
