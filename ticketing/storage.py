"""What the desk keeps, opened from its settings: the database, the blob store, the deadlines.

Everything that reads or changes tickets (the web desk, the command line,
the daemon) works on a ``Storage``; the application's ``madoguchi.app.Desk``
is one that also takes mail in (the pipeline and the pollers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import Settings
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.db import make_engine, session_factory
from madoguchi.ticketing.deadlines import Deadlines


@dataclass
class Storage:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    blobs: BlobStore
    deadlines: Deadlines

    @classmethod
    def open(cls, settings: Settings) -> Self:
        engine = make_engine(settings.database_url)
        return cls(settings, engine, session_factory(engine), BlobStore(settings.storage_dir),
                   Deadlines.from_settings(settings))

    def close(self) -> None:
        self.engine.dispose()
