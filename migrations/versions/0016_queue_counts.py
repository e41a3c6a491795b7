"""the queue's counts in one index-only pass: tickets.triage_flags, kept by triggers

The queue page counts six views on every draw (mine, unassigned, due today,
waiting for us, all open, トリアージ). トリアージ is "not closed and carrying a
triage flag", and the flags live in ``ticket_flags``: counting it was a
semi-join over every flagged ticket, closed ones included, so it grew with
the desk's history (56 ms p95 at 1 M tickets). Now:

- ``tickets.triage_flags``: how many of the triage queues' flags
  (``ticketing.queues.TRIAGE_FLAGS``) the ticket carries, kept by triggers on
  ``ticket_flags`` (insert, delete, update; cascaded deletes too), so that
  every writer of flags, ORM or Core, keeps it right without knowing of it;
  filled here for the tickets so far;
- ``ix_tickets_active_views``: a partial index over the tickets not closed
  holding every column the six counts test, so that
  ``web.queries.view_counts`` counts them all in one index-only pass over
  the open tickets, whatever the number of closed ones.

The flag list is written out here as it stands in ``queues.TRIAGE_FLAGS``;
``tests/test_queue_counts.py`` checks the triggers against it flag by flag.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ticketing.queues.TRIAGE_FLAGS at this revision.
TRIAGE_FLAGS = ("unregistered_sender", "contract_expired", "contract_not_started",
                "unknown_support_number", "unreadable_fax")
_IN = "(" + ", ".join(f"'{f}'" for f in TRIAGE_FLAGS) + ")"
ACTIVE = "status <> 'closed'"


def _step(row: str, sign: str) -> str:
    return (f"UPDATE tickets SET triage_flags = triage_flags {sign} 1 "
            f"WHERE id = {row}.ticket_id AND {row}.flag IN {_IN}")


_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER ticket_flags_triage_insert AFTER INSERT ON ticket_flags BEGIN
        {_step("new", "+")};
    END""",
    f"""CREATE TRIGGER ticket_flags_triage_delete AFTER DELETE ON ticket_flags BEGIN
        {_step("old", "-")};
    END""",
    f"""CREATE TRIGGER ticket_flags_triage_update AFTER UPDATE ON ticket_flags BEGIN
        {_step("old", "-")};
        {_step("new", "+")};
    END""",
]
_POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION madoguchi_triage_flags() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    {_step("OLD", "-")};
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_step("NEW", "+")};
  END IF;
  RETURN NULL;
END
$$
"""
_POSTGRES_TRIGGER = ("CREATE TRIGGER ticket_flags_triage AFTER INSERT OR UPDATE OR DELETE "
                     "ON ticket_flags FOR EACH ROW EXECUTE FUNCTION madoguchi_triage_flags()")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Plain ADD COLUMN, not batch mode: on SQLite that would copy the table.
    op.add_column("tickets", sa.Column("triage_flags", sa.Integer(), nullable=False,
                                       server_default="0"))
    op.execute(f"UPDATE tickets SET triage_flags = (SELECT count(*) FROM ticket_flags f "
               f"WHERE f.ticket_id = tickets.id AND f.flag IN {_IN}) "
               f"WHERE id IN (SELECT ticket_id FROM ticket_flags WHERE flag IN {_IN})")
    if dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)
    else:
        raise NotImplementedError(f"triage flag triggers on {dialect}")
    active = sa.text(ACTIVE)
    op.create_index("ix_tickets_active_views", "tickets",
                    ["assignee_id", "status", "first_response_due", "first_responded_at",
                     "triage_flags"], postgresql_where=active, sqlite_where=active)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_tickets_active_views", table_name="tickets")
    if dialect == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS ticket_flags_triage_{name}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_flags_triage ON ticket_flags")
        op.execute("DROP FUNCTION IF EXISTS madoguchi_triage_flags()")
    op.drop_column("tickets", "triage_flags")
