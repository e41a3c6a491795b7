"""the conversation's state and clocks on tickets, the deadline the queue sorts by, and
the tickets' history (ticket_events)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("new", "open", "waiting", "pending", "customer_replied", "solved", "closed")
_MOMENTS = ("response_due", "next_response_due", "customer_replied_at", "pending_until",
            "solved_at")
# As ticketing.queues.ACTIVE, for the partial index the queue's query matches.
_ACTIVE = "tickets.status <> 'closed'"


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite that would copy the table.
    op.add_column("tickets", sa.Column(
        "state", sa.Enum(*_STATES, name="conversation_state", native_enum=False, length=32),
        nullable=False, server_default="new"))
    for name in _MOMENTS:
        op.add_column("tickets", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    # The tickets so far, read as the conversation would have them: closed and pending
    # as they are; open ones answered or taken by someone are open, the others new.
    op.execute("UPDATE tickets SET state = 'closed' WHERE status = 'closed'")
    op.execute("UPDATE tickets SET state = 'pending' WHERE status = 'pending'")
    op.execute("UPDATE tickets SET state = 'open' WHERE status = 'open' "
               "AND (first_responded_at IS NOT NULL OR assignee_id IS NOT NULL)")
    op.execute("UPDATE tickets SET response_due = first_response_due "
               "WHERE status <> 'closed' AND first_responded_at IS NULL")
    active = sa.text(_ACTIVE)
    op.create_index("ix_tickets_active_response_due", "tickets", ["response_due", "id"],
                    postgresql_where=active, sqlite_where=active)
    op.create_index("ix_tickets_response_due_id", "tickets", ["response_due", "id"])
    # The daemon's sweeps look for these few.
    for name in ("next_response_due", "pending_until", "solved_at"):
        not_null = sa.text(f"{name} IS NOT NULL")
        op.create_index(f"ix_tickets_{name}", "tickets", [name],
                        postgresql_where=not_null, sqlite_where=not_null)
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("once_key", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_ticket_events_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["by_id"], ["staff_users.id"],
                                name=op.f("fk_ticket_events_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
        sa.UniqueConstraint("once_key", name=op.f("uq_ticket_events_once_key")),
    )
    op.create_index("ix_ticket_events_ticket_at", "ticket_events", ["ticket_id", "at", "id"])


def downgrade() -> None:
    op.drop_table("ticket_events")
    for name in ("solved_at", "pending_until", "next_response_due"):
        op.drop_index(f"ix_tickets_{name}", table_name="tickets")
    op.drop_index("ix_tickets_response_due_id", table_name="tickets")
    op.drop_index("ix_tickets_active_response_due", table_name="tickets")
    # SQLite 3.35+ drops a column in place (no copy, the triggers stay).
    for name in reversed(_MOMENTS):
        op.drop_column("tickets", name)
    op.drop_column("tickets", "state")
