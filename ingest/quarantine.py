"""Input kept aside with its reason (``madoguchi quarantine list``), its raw bytes kept too.

Never a lost message: what cannot become a ticket (unreadable mail, a FAX
document that is no FAX, machine-written mail about nothing the desk knows,
a message that made the desk fail) is recorded with a reason code staff
read, and can be re-submitted with ``madoguchi ingest``.
"""

from __future__ import annotations

from sqlalchemy import select

from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Inbound, Outcome, OutcomeKind
from madoguchi.ticketing.models import QuarantineEntry


def quarantine(batch: Batch, item: Inbound, digest: str, code: str, reason: str) -> Outcome:
    """Keep ``item`` aside; a second copy of one already kept for that reason is a duplicate."""
    session = batch.session
    if (digest, code) in batch.staged.quarantined or session.scalar(
        select(QuarantineEntry.id).where(
            QuarantineEntry.sha256 == digest, QuarantineEntry.reason_code == code
        )
    ) is not None:
        return Outcome(OutcomeKind.DUPLICATE, reason=reason)
    batch.staged.quarantined.add((digest, code))
    now = batch.now()
    session.add(
        QuarantineEntry(
            source=item.source,
            source_ref=item.source_ref[:500],
            reason_code=code,
            reason=reason,
            sha256=digest,
            size=len(item.raw),
            received_at=item.received_at or now,
            created_at=now,
        )
    )
    return Outcome(OutcomeKind.QUARANTINED, reason=f"{code}: {reason}")
