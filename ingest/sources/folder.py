"""Local sources: a Maildir and a folder of .eml files, and files given by hand.

Same guarantees as the IMAP poller: a file is stored and committed before it
is marked as taken (moved to ``cur/`` in a Maildir, to ``done/`` from an .eml
folder), and a file read twice is recognised by the pipeline's dedupe key.
Files are taken in the order the desk received them, not directory order,
so a reply is never read before the mail it answers.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from madoguchi.config import EmlDirSource, MaildirSource
from madoguchi.ingest.fax import is_fax_filename
from madoguchi.ingest.inbound import Inbound, Outcome, OutcomeKind, Sink
from madoguchi.ingest.parse import parse_date, received_date

log = logging.getLogger("madoguchi.ingest.folder")

_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def received_time(raw: bytes) -> datetime | None:
    """When the desk's server received the mail: the topmost Received:, else Date:."""
    headers = _HEADER_PARSER.parsebytes(raw[:65536])
    received = headers.get_all("Received") or []
    found = received_date(re.sub(r"\s+", " ", str(received[0]))) if received else None
    return found or parse_date(str(headers.get("Date") or ""))


@dataclass(frozen=True)
class _File:
    path: Path
    raw: bytes
    order: datetime


def _load(paths: Iterable[Path]) -> list[_File]:
    files = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            log.error("cannot read %s: %s", path, exc)
            continue
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        files.append(_File(path, raw, received_time(raw) or mtime))
    files.sort(key=lambda f: (f.order, f.path.name))
    return files


def ingest_files(
    paths: Iterable[Path], sink: Sink, source: str = "cli", batch_size: int = 100
) -> list[tuple[Path, Outcome]]:
    """Ingest files as given by an operator (also re-submits quarantined mail).

    ``.pdf``/``.tif``/``.tiff`` files are FAX documents (received when the
    file was written); anything else is a mail file.
    """
    paths = list(paths)
    results: list[tuple[Path, Outcome]] = []
    for path in (p for p in paths if is_fax_filename(p.name)):
        received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        [outcome] = sink.ingest_batch(
            [Inbound(path.read_bytes(), source, str(path), received_at=received, kind="fax")]
        )
        results.append((path, outcome))
    files = _load(p for p in paths if not is_fax_filename(p.name))
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        outcomes = sink.ingest_batch(
            [Inbound(f.raw, source, str(f.path), received_at=None) for f in chunk]
        )
        results.extend(zip((f.path for f in chunk), outcomes, strict=True))
    return results


@dataclass
class FolderReport:
    taken: int = 0
    created: int = 0
    threaded: int = 0
    duplicate: int = 0
    quarantined: int = 0

    def count(self, outcome: Outcome) -> None:
        self.taken += 1
        setattr(self, outcome.kind.value, getattr(self, outcome.kind.value) + 1)


def file_away(path: Path, root: Path, outcome: Outcome) -> Path:
    """Move a taken file to ``done/``, or to ``failed/`` beside a ``.reason`` file.

    An operator looking at the folder sees why (the desk keeps its own copy
    of quarantined input).
    """
    if outcome.kind is OutcomeKind.QUARANTINED:
        target = root / "failed" / path.name
        target.with_name(target.name + ".reason").write_text(
            (outcome.reason or "") + "\n", encoding="utf-8"
        )
    else:
        target = root / "done" / path.name
    os.replace(path, target)
    return target


def _take(
    files: list[_File], sink: Sink, source: str, batch_size: int,
    mark: Callable[[Path, Outcome], object],
) -> FolderReport:
    """Ingest files in batches; mark each only after its batch is committed."""
    report = FolderReport()
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        outcomes = sink.ingest_batch([Inbound(f.raw, source, f.path.name) for f in chunk])
        for f, outcome in zip(chunk, outcomes, strict=True):
            report.count(outcome)
            mark(f.path, outcome)
    return report


class MaildirPoller:
    """Takes mail from ``new/`` (and unseen mail in ``cur/``), marks it seen after commit."""

    def __init__(self, source: MaildirSource, sink: Sink, batch_size: int = 100) -> None:
        self.source = source
        self.sink = sink
        self.batch_size = batch_size
        for sub in ("new", "cur", "tmp"):
            (source.path / sub).mkdir(parents=True, exist_ok=True)

    def _pending(self) -> list[Path]:
        root = self.source.path
        pending = [p for p in (root / "new").iterdir() if p.is_file()]
        for p in (root / "cur").iterdir():
            info = p.name.rpartition(":2,")[2] if ":2," in p.name else ""
            if p.is_file() and "S" not in info:
                pending.append(p)
        return pending

    @staticmethod
    def _mark_seen(path: Path) -> None:
        # Maildir's own way to say "read": in cur/, with the S flag in the info.
        base, _, info = path.name.partition(":2,")
        flags = "".join(sorted(set(info) | {"S"}))
        os.replace(path, path.parent.parent / "cur" / f"{base}:2,{flags}")

    def poll_once(self) -> FolderReport:
        return _take(
            _load(self._pending()), self.sink, self.source.name, self.batch_size,
            lambda path, _: self._mark_seen(path),
        )


class EmlDirPoller:
    """Takes ``*.eml`` files from a folder; moves each to ``done/`` or ``failed/`` after commit."""

    def __init__(self, source: EmlDirSource, sink: Sink, batch_size: int = 100) -> None:
        self.source = source
        self.sink = sink
        self.batch_size = batch_size
        for sub in ("done", "failed"):
            (source.path / sub).mkdir(parents=True, exist_ok=True)

    def poll_once(self) -> FolderReport:
        files = _load(p for p in self.source.path.glob("*.eml") if p.is_file())
        return _take(
            files, self.sink, self.source.name, self.batch_size,
            lambda path, outcome: file_away(path, self.source.path, outcome),
        )
