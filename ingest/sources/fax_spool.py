"""A FAX spool folder: what a FAX server (HylaFAX's recvq) or a scanner drops there.

A file is taken once it is complete: its size and modification time have not
changed for ``stable_seconds`` (seen on two looks), and its name does not end
in ``.part``/``.tmp`` nor start with a dot — a writer that renames a
finished file into place is taken at once. After the commit the file moves
to ``done/``; one that could not be read goes to ``failed/`` beside a
``.reason`` file (the desk keeps its own copy in the quarantine). A crash
between commit and move leaves the file in place; the next look recognises
it (its sha256 is the dedupe key) and only moves it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from madoguchi.config import FaxSpoolSource
from madoguchi.ingest.fax import is_fax_filename
from madoguchi.ingest.inbound import Inbound, Sink
from madoguchi.ingest.sources.folder import FolderReport, file_away

log = logging.getLogger("madoguchi.ingest.fax_spool")


class FaxSpoolPoller:
    def __init__(
        self,
        source: FaxSpoolSource,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.sink = sink
        self.clock = clock
        # path → (size, mtime_ns, first seen unchanged at)
        self._seen: dict[Path, tuple[int, int, float]] = {}
        for sub in ("done", "failed"):
            (source.path / sub).mkdir(parents=True, exist_ok=True)

    def _complete(self) -> list[Path]:
        now = self.clock()
        ready, current = [], {}
        for path in sorted(self.source.path.iterdir()):
            name = path.name
            if (
                not path.is_file()
                or name.startswith(".")
                or name.endswith((".part", ".tmp"))
                or not is_fax_filename(name)
            ):
                continue
            st = path.stat()
            before = self._seen.get(path)
            since = before[2] if before and before[:2] == (st.st_size, st.st_mtime_ns) else now
            current[path] = (st.st_size, st.st_mtime_ns, since)
            if now - since >= self.source.stable_seconds:
                ready.append(path)
        self._seen = current
        return ready

    def poll_once(self) -> FolderReport:
        report = FolderReport()
        for path in self._complete():
            raw = path.read_bytes()
            received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            # One document per transaction: each takes about a second to read.
            [outcome] = self.sink.ingest_batch(
                [Inbound(raw, self.source.name, path.name, received_at=received, kind="fax")]
            )
            report.count(outcome)
            target = file_away(path, self.source.path, outcome)
            self._seen.pop(path, None)
            log.info("%s: %s → %s", path.name, outcome.kind.value, target.parent.name)
        return report
