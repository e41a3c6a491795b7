"""support_number_written: what the customer wrote; support_number is the contract's number

Until now ``tickets.support_number`` held the number as the message gave it,
even when its check digit failed or it named no contract. From here on it is
the number of the ticket's contract (validated when the contract was
registered) or NULL, and what the customer wrote is kept beside it.

Existing tickets are carried forward: what they held moves to
``support_number_written``, and ``support_number`` becomes their contract's.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("support_number_written", sa.String(length=32), nullable=True))
    op.execute("UPDATE tickets SET support_number_written = support_number")
    op.execute(
        "UPDATE tickets SET support_number = "
        "(SELECT contracts.support_number FROM contracts WHERE contracts.id = tickets.contract_id)"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE tickets SET support_number = support_number_written "
        "WHERE support_number_written IS NOT NULL"
    )
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("support_number_written")
