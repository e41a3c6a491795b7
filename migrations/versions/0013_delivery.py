"""delivery you can see: the server's answer and bounces on outbox rows, who handled one,
and reply drafts saved while typing

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("server_reply", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("bounce_detail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("bounce_message_id", sa.String(length=998), nullable=True))
        batch_op.add_column(sa.Column("handled_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_outbox_handled_by_staff_users"), "staff_users",
                                    ["handled_by"], ["id"])
    op.create_table(
        "reply_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("to", sa.Text(), nullable=False),
        sa.Column("cc", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_message_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_reply_drafts_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"],
                                name=op.f("fk_reply_drafts_staff_id_staff_users")),
        sa.ForeignKeyConstraint(["sent_message_id"], ["messages.id"], ondelete="SET NULL",
                                name=op.f("fk_reply_drafts_sent_message_id_messages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_drafts")),
        sa.UniqueConstraint("token", name=op.f("uq_reply_drafts_token")),
    )
    with op.batch_alter_table("reply_drafts") as batch_op:
        batch_op.create_index("ix_reply_drafts_ticket_staff", ["ticket_id", "staff_id"])


def downgrade() -> None:
    op.drop_table("reply_drafts")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint(op.f("fk_outbox_handled_by_staff_users"), type_="foreignkey")
        for name in ("handled_by", "bounce_message_id", "bounce_detail", "bounced_at",
                     "server_reply"):
            batch_op.drop_column(name)
