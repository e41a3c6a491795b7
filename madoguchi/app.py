"""The desk's parts wired together from its settings (the edge where I/O starts).

``Desk`` is the ``ticketing.storage.Storage`` (database, blobs, deadlines)
plus the intake: the pipeline and a poller for each configured source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from madoguchi.config import EmlDirSource, FaxSpoolSource, ImapSource, MaildirSource
from madoguchi.ingest.pipeline import Pipeline
from madoguchi.ingest.sources.poller import Poller
from madoguchi.security import warn_at_intake
from madoguchi.ticketing.storage import Storage


@dataclass
class Desk(Storage):
    _pipeline: Pipeline | None = field(default=None, repr=False)

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            warn_at_intake(self.settings)
            self._pipeline = Pipeline(self.settings, self.factory, self.blobs,
                                      parse_workers=self.settings.limits.parse_workers,
                                      deadlines=self.deadlines)
        return self._pipeline

    def poller(self, source: ImapSource | MaildirSource | EmlDirSource | FaxSpoolSource) -> Poller:
        """The poller for one configured source."""
        batch = self.settings.limits.imap_batch_size
        if isinstance(source, MaildirSource):
            from madoguchi.ingest.sources.folder import MaildirPoller

            return MaildirPoller(source, self.pipeline, batch)
        if isinstance(source, FaxSpoolSource):
            from madoguchi.ingest.sources.fax_spool import FaxSpoolPoller

            return FaxSpoolPoller(source, self.pipeline)
        if isinstance(source, EmlDirSource):
            from madoguchi.ingest.sources.folder import EmlDirPoller

            return EmlDirPoller(source, self.pipeline, batch)
        from madoguchi.ingest.sources.imap import ImapPoller

        return ImapPoller(
            source,
            self.pipeline,
            self.factory,
            batch,
            max_batch_bytes=self.settings.limits.max_message_bytes,
        )

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
        super().close()
