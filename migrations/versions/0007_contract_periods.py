"""contracts with plans and a history of periods; per-contract details; ticket product

Each existing contract becomes one period of kind ``certificate`` (its two
typed dates) and keeps plan ``certificate``; the company's department and
address are copied to each of its contracts. A contact registered for none
of its company's contracts was entitled for all of them before (the check
was per company): it is registered for each, so nobody loses entitlement.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLANS = ("certificate", "annual", "cloud_trial", "cloud_monthly", "cloud_yearly")
_KINDS = ("certificate", "annual", "trial", "free", "monthly", "yearly")
_INQUIRY_KINDS = ("general", "license_key")


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", _enum(_PLANS, "contract_plan"), nullable=False,
                                      server_default="certificate"))
        for name in ("ordered_on", "purchased_on", "notified_on", "cancelled_on"):
            batch_op.add_column(sa.Column(name, sa.Date(), nullable=True))
        for name, length in (("contract_code", 100), ("department", 200), ("address", 400),
                             ("server_os", 200), ("web_server", 200), ("version", 200)):
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=False,
                                          server_default=""))
        batch_op.add_column(sa.Column("users", sa.Integer(), nullable=True))
    op.create_table(
        "contract_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum(_KINDS, "period_kind"), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("support_from", sa.Date(), nullable=True),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"],
                                name=op.f("fk_contract_periods_contract_id_contracts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_periods")),
        sa.UniqueConstraint("contract_id", "starts_on",
                            name=op.f("uq_contract_periods_contract_id")),
    )
    with op.batch_alter_table("contract_periods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contract_periods_contract_id"), ["contract_id"],
                              unique=False)
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("inquiry_kind", _enum(_INQUIRY_KINDS, "inquiry_kind"),
                                      nullable=True))
    with op.batch_alter_table("ticket_flags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
    _carry_forward()


def _carry_forward() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    contracts = sa.table("contracts", sa.column("id"), sa.column("customer_id"),
                         sa.column("period_start"), sa.column("period_end"),
                         sa.column("department"), sa.column("address"))
    customers = sa.table("customers", sa.column("id"), sa.column("department"),
                         sa.column("address"))
    periods = sa.table("contract_periods", sa.column("contract_id"), sa.column("kind"),
                       sa.column("starts_on"), sa.column("ends_on"), sa.column("origin"),
                       sa.column("created_at", sa.DateTime(timezone=True)))
    links = sa.table("contract_contacts", sa.column("contract_id"), sa.column("contact_id"))
    contacts = sa.table("contacts", sa.column("id"), sa.column("customer_id"))
    rows = bind.execute(sa.select(contracts.c.id, contracts.c.period_start,
                                  contracts.c.period_end)).all()
    if rows:
        bind.execute(periods.insert(), [
            {"contract_id": cid, "kind": "certificate", "starts_on": start, "ends_on": end,
             "origin": "migration", "created_at": now}
            for cid, start, end in rows
        ])
    for customer_id, department, address in bind.execute(
        sa.select(customers.c.id, customers.c.department, customers.c.address)
    ):
        bind.execute(contracts.update().where(contracts.c.customer_id == customer_id)
                     .values(department=department, address=address))
    unlinked = bind.execute(
        sa.select(contacts.c.id, contracts.c.id)
        .join(contracts, contracts.c.customer_id == contacts.c.customer_id)
        .where(~sa.exists().where(links.c.contact_id == contacts.c.id))
    ).all()
    if unlinked:
        bind.execute(links.insert(), [
            {"contact_id": contact, "contract_id": contract} for contact, contract in unlinked
        ])


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): recreating these tables, as
    # batch mode would, trips the foreign keys that point at them.
    with op.batch_alter_table("ticket_flags", recreate="never") as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("tickets", recreate="never") as batch_op:
        batch_op.drop_column("inquiry_kind")
        batch_op.drop_column("product")
    with op.batch_alter_table("contract_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_periods_contract_id"))
    op.drop_table("contract_periods")
    with op.batch_alter_table("contracts", recreate="never") as batch_op:
        for name in ("users", "version", "web_server", "server_os", "address", "department",
                     "contract_code", "cancelled_on", "notified_on", "purchased_on",
                     "ordered_on", "plan"):
            batch_op.drop_column(name)
