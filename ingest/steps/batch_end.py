"""The end of a batch, before its one commit: nothing is committed that is not on disk."""

from __future__ import annotations

from madoguchi.ingest.arrival import BatchStep
from madoguchi.ingest.batch import Batch


def _flush(batch: Batch) -> None:
    batch.session.flush()


def _source(batch: Batch) -> None:
    if batch.in_transaction is not None:
        batch.in_transaction(batch.session)


def _blobs(batch: Batch) -> None:
    # One sync for the whole batch: raw bytes and attachments were written
    # without waiting for the disk.
    batch.blobs.sync()


FLUSH = BatchStep("flush", _flush)
SOURCE = BatchStep("source_bookkeeping", _source)
BLOBS = BatchStep("blobs_synced", _blobs)
