"""the live desk: the change feed (SQLite) and who is on a ticket

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_changes")),
    )
    op.create_table(
        "desk_presence",
        sa.Column("view_key", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("typing_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_desk_presence_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], ondelete="CASCADE",
                                name=op.f("fk_desk_presence_staff_id_staff_users")),
        sa.PrimaryKeyConstraint("view_key", name=op.f("pk_desk_presence")),
    )
    with op.batch_alter_table("desk_presence") as batch_op:
        batch_op.create_index("ix_desk_presence_ticket", ["ticket_id", "seen_at"])


def downgrade() -> None:
    op.drop_table("desk_presence")
    op.drop_table("ticket_changes")
