"""the agent's toolkit: text modules (seeded with the shipped defaults), signatures,
phone calls; a ticket's priority and tags

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from madoguchi.ticketing.text_modules import DEFAULTS

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    modules = op.create_table(
        "text_modules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("set_status", sa.String(length=20), nullable=False),
        sa.Column("set_assignee", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_text_modules")),
        sa.UniqueConstraint("title", name=op.f("uq_text_modules_title")),
    )
    op.create_table(
        "signatures",
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product", name=op.f("pk_signatures")),
    )
    op.create_table(
        "phone_calls",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("party", sa.String(length=200), nullable=False),
        sa.Column("number", sa.String(length=50), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE",
                                name=op.f("fk_phone_calls_message_id_messages")),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_phone_calls")),
    )
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("priority", sa.String(length=10), nullable=False,
                                      server_default="normal"))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False,
                                      server_default="[]"))
    now = datetime.now(UTC)
    op.bulk_insert(modules, [
        {"title": title, "body": body, "product": "", "set_status": status,
         "set_assignee": assignee, "updated_at": now}
        for title, body, status, assignee in DEFAULTS
    ])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("priority")
    op.drop_table("phone_calls")
    op.drop_table("signatures")
    op.drop_table("text_modules")
