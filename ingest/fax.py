"""The FAX step: a FAX document (or a gateway mail's FAX attachments) → a reading.

Runs where parsing runs (a worker process for a large batch): the OCR reader
in ``ocr/`` turns pages into a support number, a quoted ticket number and
the page text; this module stores the page images in the blob store and
keeps a record of how the number was read for the message.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import PurePath
from typing import TYPE_CHECKING

from madoguchi.config import Settings, SupportNumberSettings
from madoguchi.config.settings import FaxLimits
from madoguchi.ingest.message import ParsedMessage
from madoguchi.ticketing.blobstore import BlobStore

if TYPE_CHECKING:
    from madoguchi.ocr.decide import BoxEvidence
    from madoguchi.ocr.sender import SenderFax

FAX_SUFFIXES = frozenset({".pdf", ".tif", ".tiff"})
FAX_TYPES = frozenset({"application/pdf", "image/tiff", "image/tif", "image/x-tiff"})


def is_fax_filename(name: str) -> bool:
    return PurePath(name).suffix.lower() in FAX_SUFFIXES


def fax_content_type(name: str) -> str:
    return "application/pdf" if name.lower().endswith(".pdf") else "image/tiff"


@dataclass(frozen=True)
class FaxConfig:
    """What the FAX step needs of the settings (small and picklable)."""

    limits: FaxLimits
    numbers: SupportNumberSettings
    ticket_prefix: str
    gateways: frozenset[str]


def fax_config(settings: Settings) -> FaxConfig:
    return FaxConfig(
        limits=settings.fax.limits,
        numbers=settings.support_number,
        ticket_prefix=settings.threading.ticket_prefix,
        gateways=frozenset(a.lower() for a in settings.fax.gateway_addresses),
    )


@dataclass(frozen=True)
class FaxPrepared:
    support_digits: str | None  # check-digit valid, or None: unreadable
    ticket_number: str | None  # 問合せ番号 quoted on the page, if any
    text: str  # full-page OCR text of all pages
    page_blobs: tuple[tuple[str, int], ...]  # (sha256, size) of each page image (PNG)
    record: dict[str, object]  # how it was read, kept on the message
    ocr_seconds: float = 0.0  # wall time of reading it (also in the record, for /metrics)
    # Filled boxes the reader could not read alone: the registered numbers decide
    # (ingest/steps/support_number.py).
    boxes: BoxEvidence | None = None
    sender: SenderFax | None = None  # the sending machine's own number, as announced


def read_document(data: bytes, filename: str, cfg: FaxConfig, blobs: BlobStore) -> FaxPrepared:
    """Read one FAX document; raises ocr.errors.FaxDocumentError for bad input."""
    from madoguchi.ocr.reader import read_fax_document

    started = time.perf_counter()
    reading = read_fax_document(
        data, filename, cfg.limits, settings=cfg.numbers, ticket_prefix=cfg.ticket_prefix
    )
    # The whole read, as the pipeline waited for it; the phase timings below
    # leave out the 問合せ番号 read and the page images.
    seconds = round(time.perf_counter() - started, 4)
    pages = tuple((blobs.put(png, durable=False), len(png)) for png in reading.page_images)
    record: dict[str, object] = {
        "file": filename,
        "support_number": reading.support_number.display if reading.support_number else None,
        "ticket_number": reading.ticket_number,
        "method": reading.method,
        "confidence": round(reading.confidence, 4),
        "page_count": reading.page_count,
        "problems": list(reading.problems),
        "reads": [asdict(r) for r in reading.reads],
        "timings": {k: round(v, 4) for k, v in reading.timings.items()},
        "ocr_seconds": seconds,
        "sender_fax": asdict(reading.sender) if reading.sender else None,
    }
    return FaxPrepared(
        support_digits=reading.support_number.digits if reading.support_number else None,
        ticket_number=reading.ticket_number,
        text=reading.text,
        page_blobs=pages,
        record=record,
        ocr_seconds=seconds,
        boxes=reading.boxes,
        sender=reading.sender,
    )


def read_gateway_mail(
    msg: ParsedMessage, cfg: FaxConfig, blobs: BlobStore
) -> FaxPrepared | None:
    """The FAX carried by a FAX-to-email gateway's mail; None if it is no such mail.

    Several FAX attachments are read in order; the first readable number
    counts, and their texts and pages are kept together.
    """
    if msg.from_addr not in cfg.gateways:
        return None
    parts = [
        a for a in msg.attachments
        if a.content_type in FAX_TYPES or is_fax_filename(a.filename)
    ]
    if not parts:
        return None
    readings = [read_document(a.payload, a.filename or "fax.pdf", cfg, blobs) for a in parts]
    first = next((r for r in readings if r.support_digits), readings[0])
    caller = gateway_caller(msg)
    return replace(
        first,
        sender=caller or first.sender,
        ticket_number=first.ticket_number or next(
            (r.ticket_number for r in readings if r.ticket_number), None
        ),
        text="\n\f\n".join(r.text for r in readings),
        page_blobs=tuple(p for r in readings for p in r.page_blobs),
        record={
            "documents": [r.record for r in readings],
            "ocr_seconds": round(sum(r.ocr_seconds for r in readings), 4),
        } if len(readings) > 1 else first.record,
        ocr_seconds=sum(r.ocr_seconds for r in readings),
    )


def gateway_caller(msg: ParsedMessage) -> SenderFax | None:
    """The caller ID / TSI a FAX-to-email gateway gives: in its subject or its From name.

    Gateways write "FAX受信 03-1234-5678から (2枚)", "Fax from +81 3 1234 5678",
    or put the sender's number in the From display name.
    """
    from madoguchi.ocr.sender import SenderFax, national_digits

    for text in (msg.subject, msg.from_name):
        digits = national_digits(text or "")
        if digits:
            return SenderFax(digits, "caller_id", (text or "")[:120])
    return None


def fax_subject(prepared: FaxPrepared, fallback: str = "", company: str | None = None) -> str:
    """A subject for a FAX ticket: the gateway mail's, else who sent it.

    The page's first OCR line is the sending machine's header or the form's
    title, so it would make a poor subject; staff read the page itself.
    """
    if fallback:
        return fallback
    pages = len(prepared.page_blobs)
    return f"FAXでのお問い合わせ{f'（{company}）' if company else ''}（{pages}枚）"
