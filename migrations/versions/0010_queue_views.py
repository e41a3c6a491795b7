"""the queue's views: partial indexes that make their counts cheap

The desk's saved views (mine, unassigned, due today, waiting for us, all
open) are counted on every queue page. ``ix_tickets_active_assignee`` serves
"mine" and "unassigned" (a range of one assignee, or NULL, among the tickets
not closed); ``ix_tickets_awaiting_due`` serves "due today" (not closed, not
yet answered, due before the end of the day). "All open" has
``ix_tickets_active_due`` (0002) and "waiting for us" ``ix_tickets_status_due``
(0001). The predicates are written as ``madoguchi.ticketing.queues`` writes
them: a planner matches a partial index only to the same literal test.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status <> 'closed'"
AWAITING = "status <> 'closed' AND first_responded_at IS NULL"


def upgrade() -> None:
    active, awaiting = sa.text(ACTIVE), sa.text(AWAITING)
    op.create_index("ix_tickets_active_assignee", "tickets", ["assignee_id"],
                    postgresql_where=active, sqlite_where=active)
    op.create_index("ix_tickets_awaiting_due", "tickets", ["first_response_due"],
                    postgresql_where=awaiting, sqlite_where=awaiting)


def downgrade() -> None:
    op.drop_index("ix_tickets_awaiting_due", table_name="tickets")
    op.drop_index("ix_tickets_active_assignee", table_name="tickets")
