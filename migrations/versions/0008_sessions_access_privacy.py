"""server-side web sessions, sign-in attempts, the ticket access log, privacy actions,
and messages whose sender the desk could not vouch for

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=20), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"],
                                name=op.f("fk_web_sessions_staff_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions") as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_staff_id"), ["staff_id"])
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_attempts")),
    )
    with op.batch_alter_table("sign_in_attempts") as batch_op:
        batch_op.create_index("ix_sign_in_attempts_at", ["at"])
    op.create_table(
        "ticket_access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"],
                                name=op.f("fk_ticket_access_log_staff_id_staff_users")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_ticket_access_log_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_access_log")),
    )
    with op.batch_alter_table("ticket_access_log") as batch_op:
        batch_op.create_index("ix_ticket_access_log_at", ["at"])
        batch_op.create_index(batch_op.f("ix_ticket_access_log_ticket_id"), ["ticket_id"])
    op.create_table(
        "privacy_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("subject_sha256", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=100), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_actions")),
    )
    with op.batch_alter_table("privacy_actions") as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_actions_subject_sha256"), ["subject_sha256"])
    # Existing messages were all taken as their sender's: not flagged. A plain
    # ADD COLUMN, not batch mode: on SQLite that would copy the table and drop
    # the search triggers of 0002.
    op.add_column("messages", sa.Column("unverified_sender", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (no copy, the triggers stay).
    op.drop_column("messages", "unverified_sender")
    op.drop_table("privacy_actions")
    op.drop_table("ticket_access_log")
    op.drop_table("sign_in_attempts")
    op.drop_table("web_sessions")
