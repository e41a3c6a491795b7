"""A Tesseract that is missing, lacks Japanese, crashes or hangs: what the reader and the desk do.

A fake ``tesseract`` (a shell script) is put first on PATH: it answers the
wrapper's version and language probes like the real one, then fails the way
a broken install or a bad page makes the real one fail. Missing Tesseract
or language data is the desk's fault (``OcrUnavailableError``): the FAX is
neither stored nor quarantined, and the next poll takes it again. A crash
or a hang is this document's (``FaxDocumentError("ocr_failed")``): the FAX is
quarantined with its reason, the original kept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from madoguchi.app import Desk
from madoguchi.config.settings import FaxLimits
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ocr._exec import tesseract
from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError
from madoguchi.ocr.reader import read_fax_document
from madoguchi.ticketing.models import Message, QuarantineEntry, Ticket
from tests.conftest import make_settings
from tests.faxfactory import letter_pdf, send_fax

ROOT = Path(__file__).resolve().parent.parent
REAL_TESSERACT = shutil.which("tesseract")
# The deadline of a document whose Tesseract hangs: short, so that the test
# is quick. Every other test gives the document a deadline no load reaches
# (ROOMY_SECONDS), so that only the hang, never a busy machine, fails one.
TIMEOUT_SECONDS = 8.0
ROOMY_SECONDS = 300.0

_PROBES = """#!/bin/sh
case "$1" in
  --version) echo "tesseract 5.3.0"; echo " leptonica-1.82.0"; exit 0 ;;
  --list-langs) echo 'List of available languages in "/fake/tessdata/" (2):'
    for lang in {langs}; do echo "$lang"; done; exit 0 ;;
esac
"""
LACKS_JPN = _PROBES.format(langs="eng osd") + f'exec "{REAL_TESSERACT}" "$@"\n'
EXITS_NONZERO = (
    _PROBES.format(langs="eng jpn osd")
    + 'echo "Error in pixReadStream: Unknown format: no pix returned" >&2\nexit 1\n'
)
KILLED_BY_SIGNAL = _PROBES.format(langs="eng jpn osd") + "kill -SEGV $$\n"
HANGS = _PROBES.format(langs="eng jpn osd") + "exec sleep 600\n"

# A fake and the real Tesseract, started without a server fixture (tests/conftest.py on main).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(REAL_TESSERACT is None, reason="tesseract is not installed"),
]


def _fake(tmp_path: Path, script: str | None) -> str:
    """A PATH with ``script`` first as tesseract; None: a PATH with no tesseract at all."""
    folder = tmp_path / "fake-bin"
    folder.mkdir(exist_ok=True)
    if script is None:
        return str(folder)
    path = folder / "tesseract"
    path.write_text(script, encoding="utf-8")
    path.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(scope="module")
def letter_fax(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A free-form FAX: its number can only be read by full-page (Japanese) OCR."""
    folder = tmp_path_factory.mktemp("fax")
    lines = ["サポートサービス番号：2031-0001-0008", "ライセンスキーの再発行をお願いします。"]
    return send_fax(letter_pdf(lines), folder / "scan.tif").read_bytes()


def _read(data: bytes, timeout: float = ROOMY_SECONDS) -> None:
    read_fax_document(data, "scan.tif", FaxLimits(timeout_seconds=timeout))


# --- the reader ------------------------------------------------------------------


def test_missing_tesseract_is_the_desks_fault(
    letter_fax: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _fake(tmp_path, None))
    with pytest.raises(OcrUnavailableError, match="tesseract is not installed"):
        _read(letter_fax)


def test_tesseract_without_japanese_data_is_the_desks_fault(
    letter_fax: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _fake(tmp_path, LACKS_JPN))
    with pytest.raises(OcrUnavailableError, match="language data missing: jpn"):
        _read(letter_fax)


def test_tesseract_older_than_4_1_is_refused_as_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _PROBES.format(langs="eng jpn").replace("tesseract 5.3.0", "tesseract 4.0.0")
    monkeypatch.setenv("PATH", _fake(tmp_path, old))
    with pytest.raises(OcrUnavailableError, match="ignores the digit whitelist"):
        tesseract.installed()


def test_tesseract_exiting_with_an_error_fails_the_document_as_ocr_failed(
    letter_fax: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _fake(tmp_path, EXITS_NONZERO))
    with pytest.raises(FaxDocumentError) as caught:
        _read(letter_fax)
    assert caught.value.reason_code == "ocr_failed"
    assert "Unknown format" in caught.value.reason


def test_tesseract_killed_by_a_signal_fails_the_document_as_ocr_failed(
    letter_fax: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _fake(tmp_path, KILLED_BY_SIGNAL))
    with pytest.raises(FaxDocumentError) as caught:
        _read(letter_fax)
    assert caught.value.reason_code == "ocr_failed"
    assert "SIGSEGV" in caught.value.reason


def test_hanging_tesseract_is_killed_at_the_documents_deadline_as_ocr_failed(
    letter_fax: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _fake(tmp_path, HANGS))
    start = time.monotonic()
    with pytest.raises(FaxDocumentError) as caught:
        _read(letter_fax, TIMEOUT_SECONDS)
    assert caught.value.reason_code == "ocr_failed"
    assert "took longer than" in caught.value.reason
    assert time.monotonic() - start < TIMEOUT_SECONDS + 5


# --- through the pipeline --------------------------------------------------------

# The pipeline reads a FAX in a worker process, forked from a forkserver that
# keeps the environment it started with: the fake PATH must be the desk
# process's own from its start, so the desk runs in a process of its own.
_INGEST = """
import sys
from pathlib import Path

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.ingest.inbound import Inbound
from madoguchi.ocr.errors import OcrUnavailableError

desk = Desk.open(load_settings(None, sources=[]))
try:
    raw = Path(sys.argv[1]).read_bytes()
    out = desk.pipeline.ingest(Inbound(raw, "cli", "scan.tif", kind="fax"))
    print(out.kind.value, out.reason or "")
except OcrUnavailableError as exc:
    print("OcrUnavailableError", exc)
finally:
    desk.close()
"""


@pytest.fixture
def desk(database_url: str, tmp_path: Path) -> Iterator[Desk]:
    settings = make_settings(database_url, tmp_path, fax={"timeout_seconds": ROOMY_SECONDS})
    d = Desk.open(settings)
    yield d
    d.close()


def _ingest_with(desk: Desk, data: bytes, path_env: str, tmp_path: Path,
                 timeout: float = ROOMY_SECONDS) -> str:
    """What the desk's pipeline, in a process whose PATH is ``path_env``, makes of the FAX."""
    scan = tmp_path / "scan.tif"
    scan.write_bytes(data)
    env = {
        **os.environ,
        "PATH": path_env,
        "MADOGUCHI_DATABASE_URL": desk.settings.database_url,
        "MADOGUCHI_STORAGE_DIR": str(desk.settings.storage_dir),
        "MADOGUCHI_FAX__TIMEOUT_SECONDS": str(timeout),
    }
    done = subprocess.run(
        [sys.executable, "-c", _INGEST, str(scan)], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=timeout + 120, check=True,
    )
    return done.stdout.strip()


def _stored(desk: Desk) -> tuple[int, int, int]:
    with desk.factory() as s:
        return (
            s.scalar(select(func.count()).select_from(Ticket)) or 0,
            s.scalar(select(func.count()).select_from(Message)) or 0,
            s.scalar(select(func.count()).select_from(QuarantineEntry)) or 0,
        )


@pytest.mark.parametrize("script", [None, LACKS_JPN], ids=["missing", "lacks-jpn"])
def test_fax_read_without_usable_tesseract_is_left_for_the_next_poll_not_quarantined(
    desk: Desk, letter_fax: bytes, tmp_path: Path, script: str | None
) -> None:
    said = _ingest_with(desk, letter_fax, _fake(tmp_path, script), tmp_path)
    assert said.startswith("OcrUnavailableError")
    assert _stored(desk) == (0, 0, 0)
    # Tesseract back: the same FAX, taken again, becomes a ticket.
    out = desk.pipeline.ingest(Inbound(letter_fax, "cli", "scan.tif", kind="fax"))
    assert out.kind is OutcomeKind.CREATED
    assert _stored(desk) == (1, 1, 0)


@pytest.mark.parametrize(
    "script", [EXITS_NONZERO, KILLED_BY_SIGNAL, HANGS], ids=["exits-1", "sigsegv", "hangs"]
)
def test_fax_that_crashes_or_hangs_tesseract_is_quarantined_as_ocr_failed_and_kept(
    desk: Desk, letter_fax: bytes, tmp_path: Path, script: str
) -> None:
    timeout = TIMEOUT_SECONDS if script is HANGS else ROOMY_SECONDS
    said = _ingest_with(desk, letter_fax, _fake(tmp_path, script), tmp_path, timeout)
    assert said.startswith("quarantined ocr_failed"), said
    assert _stored(desk) == (0, 0, 1)
    with desk.factory() as s:
        entry = s.scalars(select(QuarantineEntry)).one()
        assert entry.reason_code == "ocr_failed"
        assert desk.blobs.get(entry.sha256) == letter_fax
