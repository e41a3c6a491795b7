"""daemon supervision: the leader's lease with its fencing epoch, and each component's heartbeat

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    leader = op.create_table(
        "daemon_leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemon_leader")),
    )
    # The one row every daemon competes for; epoch 0: nobody has led yet.
    op.bulk_insert(leader, [{"id": 1, "epoch": 0}])
    op.create_table(
        "daemon_heartbeats",
        sa.Column("daemon", sa.String(length=200), nullable=False),
        sa.Column("component", sa.String(length=200), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("daemon", "component", name=op.f("pk_daemon_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("daemon_heartbeats")
    op.drop_table("daemon_leader")
