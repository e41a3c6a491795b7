"""The desk's parts wired together from its settings (the edge where I/O starts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import EmlDirSource, FaxSpoolSource, ImapSource, MaildirSource, Settings
from madoguchi.ingest.pipeline import Pipeline
from madoguchi.ingest.sources.poller import Poller
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.db import make_engine, session_factory


@dataclass
class Desk:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    blobs: BlobStore
    _pipeline: Pipeline | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings) -> Desk:
        engine = make_engine(settings.database_url)
        return cls(settings, engine, session_factory(engine), BlobStore(settings.storage_dir))

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(self.settings, self.factory, self.blobs,
                                      parse_workers=self.settings.limits.parse_workers)
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
        self.engine.dispose()
