"""The one place that runs poppler's ``pdfinfo`` and ``pdftoppm``.

Quirks handled here:

* ``pdfinfo`` exits 0 on some damaged files and prints nothing useful; a
  PDF is readable only when it prints a page count. Asked for a page range
  (``-f``/``-l``) it prints every page's size, which the loader needs before
  it decides a resolution.
* A password-protected PDF fails with a message naming the password or the
  encryption: that is the sender's choice, not damage, and says so.
* ``pdftoppm -gray`` writes each page as a binary PGM to stdout: no
  temporary files, and the same pixels a file would hold.
* Both run under the document's deadline and are killed when it passes.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError

_VERSION = re.compile(rb"version\s+(\d+)\.(\d+)")
_PROBE_TIMEOUT = 30.0
_PAGE_SIZE = re.compile(r"^Page\s+(\d+)\s+size$")
_POINTS = re.compile(r"([\d.]+)\s*x\s*([\d.]+)\s*pts")
_PGM_HEADER = re.compile(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s")


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


def _run(
    cmd: list[str], timeout: float | None, too_long: str
) -> subprocess.CompletedProcess[bytes]:
    limit = None if timeout is None else max(timeout, 0.1)
    try:
        return subprocess.run(cmd, capture_output=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FaxDocumentError("timeout", too_long) from exc
    except OSError as exc:
        raise OcrUnavailableError(f"cannot run {cmd[0]}: {exc}") from exc


def _info(
    path: Path, name: str, timeout: float, pages: tuple[int, int] | None = None
) -> dict[str, str]:
    cmd = [_tool("pdfinfo"), str(path)]
    if pages is not None:
        cmd += ["-f", str(pages[0]), "-l", str(pages[1])]
    proc = _run(cmd, timeout, f"pdfinfo took too long on {name}")
    info: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "ignore").split("\n"):
        key, _, value = line.partition(":")
        if key:
            info[key] = value.strip()
    if "Pages" not in info:
        detail = proc.stderr.decode("utf-8", "ignore").strip()
        if "password" in detail.lower() or "encrypt" in detail.lower():
            raise FaxDocumentError(
                "encrypted_pdf", f"{name} is password-protected: {detail or 'encrypted'}"
            )
        raise FaxDocumentError(
            "corrupt_pdf", f"{name} is not a readable PDF: {detail or 'no page count'}"
        )
    return info


def page_count(path: Path, name: str, timeout: float) -> int:
    """How many pages the PDF has; FaxDocumentError when it is no readable PDF."""
    try:
        count = int(_info(path, name, timeout)["Pages"])
    except ValueError as exc:
        raise FaxDocumentError("corrupt_pdf", f"{name}: no page count") from exc
    if count < 0:
        raise FaxDocumentError("corrupt_pdf", f"{name}: no page count")
    return count


def page_sizes(path: Path, name: str, count: int, timeout: float) -> list[tuple[float, float]]:
    """Each page's width and height in points (1/72 inch)."""
    info = _info(path, name, timeout, (1, count))
    sizes: dict[int, tuple[float, float]] = {}
    for key, value in info.items():
        m = _PAGE_SIZE.match(key)
        p = _POINTS.search(value)
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
    cmd = [_tool("pdftoppm"), "-r", str(dpi), str(path)]
    if first is not None:
        cmd += ["-f", str(first)]
    if last is not None:
        cmd += ["-l", str(last)]
    cmd.append("-gray")
    what = name if first is None else f"page {first} of {name}"
    proc = _run(cmd, timeout, f"rendering {what} took too long")
    try:
        images = _split_pgm(proc.stdout)
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise FaxDocumentError("corrupt_pdf", f"{what} cannot be rendered") from exc
    if not images:
        raise FaxDocumentError("corrupt_pdf", f"{what} cannot be rendered")
    return images


def render_bytes(pdf: bytes, dpi: int) -> list[Image.Image]:
    """Every page of a PDF held in memory, greyscale at ``dpi`` (for PDFs we drew ourselves)."""
    with tempfile.TemporaryDirectory(prefix="madoguchi-pdf-") as tmp:
        path = Path(tmp) / "document.pdf"
        path.write_bytes(pdf)
        return render(path, dpi)


def _split_pgm(data: bytes) -> list[Image.Image]:
    """The PGM images ``pdftoppm`` wrote one after another."""
    images: list[Image.Image] = []
    offset = 0
    while offset < len(data):
        m = _PGM_HEADER.match(data, offset)
        if m is None:
            raise ValueError("not a PGM image")
        width, height, maxval = (int(v) for v in m.groups())
        end = m.end() + width * height * (1 if maxval < 256 else 2)
        image = Image.open(io.BytesIO(data[offset:end]))
        image.load()
        images.append(image)
        offset = end
    return images
