"""Before a chunk's messages: which of them were stored before, and which stored tickets
their References name, in a few queries for the chunk rather than several per message."""

from __future__ import annotations

from madoguchi.ingest.arrival import BatchStep
from madoguchi.ingest.batch import Batch


def _run(batch: Batch) -> None:
    chunk = batch.chunk
    batch.read_ahead([p.key for _, p in chunk if p.key],
                     [p.message for _, p in chunk if p.message])


STEP = BatchStep("read_ahead", _run)
