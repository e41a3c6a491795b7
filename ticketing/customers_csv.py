"""Import customers, contracts and registered contacts from a CSV file; export them again.

One row per contact registered for a contract (a row without contact name
and address registers the contract alone). The columns of the first format
are required, the others optional (README lists them with an example per
plan): old files keep working. A column left out leaves that field of an
existing contract as it is.

A re-import updates what is there (customer by company, contract by support
number, contact by e-mail address within the customer, else by name) and
never duplicates; a contract's periods are merged into its history
(``ticketing.contracts``), never overwritten. Every row is checked first;
if any row is bad, the errors are reported by line and nothing is written.
The rows of one contract must agree on the contract's fields.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from madoguchi.config import SupportNumberSettings
from madoguchi.ticketing.contracts import ContractDetails, TermsError, apply_details, read_details
from madoguchi.ticketing.models import Contact, ContactEmail, Contract, Customer
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.rules.periods import PeriodKind
from madoguchi.ticketing.support_number import format_number, parse_support_number

COLUMNS = (
    "support_number",
    "company",
    "department",
    "address",
    "product",
    "period_start",
    "period_end",
    "contact_name",
    "contact_email",
    "contact_phone",
    "contact_fax",
)
OPTIONAL_COLUMNS = (
    "environment",
    "plan",
    "ordered_on",
    "purchased_on",
    "notified_on",
    "cancelled_on",
    "contract_code",
    "sla_override",
    "server_os",
    "web_server",
    "version",
    "users",
)
# What ``export_csv`` writes, in this order; ``read_rows`` reads it back unchanged.
EXPORT_COLUMNS = (
    "support_number", "company", "department", "address", "product", "plan", "period_start",
    "period_end", "ordered_on", "purchased_on", "notified_on", "cancelled_on", "contract_code",
    "sla_override", "server_os", "web_server", "version", "users", "environment",
    "contact_name", "contact_email", "contact_phone", "contact_fax",
)
_CONTRACT_COLUMNS = frozenset(EXPORT_COLUMNS) - {
    "support_number", "company", "contact_name", "contact_email", "contact_phone", "contact_fax"
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class CsvContact:
    name: str
    emails: tuple[str, ...]
    phone: str
    fax: str


@dataclass(frozen=True)
class CsvRow:
    line: int
    support_number: str
    company: str
    details: ContractDetails
    given: frozenset[str]  # the contract's columns the file has
    contact: CsvContact | None  # None: the row registers the contract alone


@dataclass
class ImportReport:
    rows: int = 0
    customers_created: int = 0
    contracts_created: int = 0
    contacts_created: int = 0
    updated: int = 0
    periods_changed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


class CsvImportError(Exception):
    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"line {n}: {msg}" for n, msg in errors))
        self.errors = errors


def read_rows(text: str, cfg: SupportNumberSettings,
              products: Products | None = None) -> list[CsvRow]:
    """Parse and check every row; raise CsvImportError listing every bad line.

    With ``products`` configured, each row's product must be one of them.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = tuple(h.strip() for h in reader.fieldnames or ())
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS and c not in OPTIONAL_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown columns: {', '.join(unknown)}")
        raise CsvImportError([(1, "; ".join(parts))])

    given = frozenset(header) & _CONTRACT_COLUMNS
    rows: list[CsvRow] = []
    errors: list[tuple[int, str]] = []
    first_of: dict[str, CsvRow] = {}
    for record in reader:
        line = reader.line_num
        values = {k.strip(): (v or "").strip() for k, v in record.items() if k}
        if None in record:
            errors.append((line, "more fields than the header has"))
            continue
        try:
            row = _check(line, values, cfg, products, given)
            _same_contract(row, first_of.setdefault(row.support_number, row), cfg)
            rows.append(row)
        except ValueError as exc:
            errors.append((line, str(exc)))
    if errors:
        raise CsvImportError(errors)
    return rows


def _same_contract(row: CsvRow, first: CsvRow, cfg: SupportNumberSettings) -> None:
    number = format_number(row.support_number, cfg)
    if first.company != row.company:
        raise ValueError(f"support_number {number} belongs to {first.company!r} "
                         f"on line {first.line}")
    differ = [f.name for f in fields(ContractDetails)
              if getattr(first.details, f.name) != getattr(row.details, f.name)]
    if differ:
        raise ValueError(f"{differ[0]} of contract {number} differs from line {first.line} "
                         "(the rows of one contract must agree on its fields)")


def _contact(v: dict[str, str]) -> CsvContact | None:
    emails = tuple(e.lower() for e in re.split(r"[;,\s]+", v["contact_email"]) if e)
    if not v["contact_name"] and not emails:
        return None  # the contract alone
    if not v["contact_name"]:
        raise ValueError("contact_name is empty")
    if not emails:
        raise ValueError("contact_email is empty")
    for e in emails:
        if not _EMAIL.match(e):
            raise ValueError(f"contact_email {e!r} is not an e-mail address")
    return CsvContact(v["contact_name"], emails, v["contact_phone"], v["contact_fax"])


def _check(line: int, v: dict[str, str], cfg: SupportNumberSettings,
           products: Products | None, given: frozenset[str]) -> CsvRow:
    number = parse_support_number(v["support_number"], cfg)
    if number is None:
        raise ValueError(
            f"support_number {v['support_number']!r} is not a valid support service number"
        )
    if not v["company"]:
        raise ValueError("company is empty")
    try:
        details = read_details(v, products)
    except TermsError as exc:
        raise ValueError(exc.english) from None
    return CsvRow(line, number.digits, v["company"], details, given, _contact(v))


def import_rows(session: Session, rows: list[CsvRow], *,
                now: datetime | None = None) -> ImportReport:
    """Upsert checked rows inside the caller's transaction."""
    now = now or datetime.now(UTC)
    report = ImportReport(rows=len(rows))
    applied: set[str] = set()
    for row in rows:
        customer = session.scalar(select(Customer).where(Customer.company == row.company))
        if customer is None:
            customer = Customer(company=row.company)
            session.add(customer)
            report.customers_created += 1
        # The company's own department and address: the first given (each
        # contract keeps its own, below).
        customer.department = customer.department or row.details.department
        customer.address = customer.address or row.details.address

        contract = session.scalar(
            select(Contract).where(Contract.support_number == row.support_number)
            .options(selectinload(Contract.periods))
        )
        if contract is None:
            contract = Contract(support_number=row.support_number, customer=customer)
            session.add(contract)
            report.contracts_created += 1
        elif contract.customer_id != customer.id and customer.id is not None:
            raise CsvImportError(
                [(row.line, f"support_number {row.support_number} belongs to another company")]
            )
        if row.support_number not in applied:
            applied.add(row.support_number)
            report.periods_changed += apply_details(contract, row.details, origin="import",
                                                    now=now, given=row.given)
        session.flush()
        if row.contact is not None:
            _register(session, customer, contract, row.contact, report)
    return report


def _register(session: Session, customer: Customer, contract: Contract, row: CsvContact,
              report: ImportReport) -> None:
    contact = _find_contact(session, customer, row)
    if contact is None:
        contact = Contact(customer=customer, name=row.name)
        session.add(contact)
        report.contacts_created += 1
    else:
        report.updated += 1
    contact.name, contact.phone, contact.fax = row.name, row.phone, row.fax
    have = {e.email for e in contact.emails}
    for address in row.emails:
        if address not in have:
            contact.emails.append(ContactEmail(email=address))
    if contract not in contact.contracts:
        contact.contracts.append(contract)
    session.flush()


def _find_contact(session: Session, customer: Customer, row: CsvContact) -> Contact | None:
    if customer.id is None:
        return None
    by_email = session.scalar(
        select(Contact)
        .join(ContactEmail)
        .where(Contact.customer_id == customer.id, ContactEmail.email.in_(row.emails))
        .limit(1)
    )
    if by_email is not None:
        return by_email
    return session.scalar(
        select(Contact).where(Contact.customer_id == customer.id, Contact.name == row.name)
    )


# -- export --------------------------------------------------------------------


def _contract_cells(contract: Contract, cfg: SupportNumberSettings) -> dict[str, str]:
    certificate = [p for p in contract.periods if p.kind is PeriodKind.CERTIFICATE]
    latest = max(certificate, key=lambda p: p.starts_on) if certificate else None
    override = contract.sla_override
    cells = {
        "support_number": format_number(contract.support_number, cfg),
        "company": contract.customer.company,
        "plan": contract.plan.value,
        "period_start": latest.starts_on.isoformat() if latest else "",
        "period_end": latest.ends_on.isoformat() if latest else "",
        "sla_override": json.dumps(override, ensure_ascii=False, sort_keys=True)
        if override else "",
        "users": "" if contract.users is None else str(contract.users),
    }
    for name in ("ordered_on", "purchased_on", "notified_on", "cancelled_on"):
        day = getattr(contract, name)
        cells[name] = day.isoformat() if day else ""
    for name in ("department", "address", "product", "contract_code", "server_os", "web_server",
                 "version", "environment"):
        cells[name] = getattr(contract, name)
    return cells


def export_rows(session: Session, cfg: SupportNumberSettings) -> Iterator[dict[str, str]]:
    """Every contract with each contact registered for it, as ``read_rows`` reads them."""
    contracts = session.scalars(
        select(Contract).order_by(Contract.support_number).options(
            selectinload(Contract.customer), selectinload(Contract.periods),
            selectinload(Contract.contacts).selectinload(Contact.emails),
        )
    )
    for contract in contracts:
        cells = _contract_cells(contract, cfg)
        contacts: list[Contact | None] = [*sorted(contract.contacts, key=lambda c: c.id)]
        for contact in contacts or [None]:
            yield {**cells, **({
                "contact_name": contact.name,
                "contact_email": ";".join(sorted(e.email for e in contact.emails)),
                "contact_phone": contact.phone,
                "contact_fax": contact.fax,
            } if contact is not None else dict.fromkeys(
                ("contact_name", "contact_email", "contact_phone", "contact_fax"), ""))}


def export_csv(session: Session, cfg: SupportNumberSettings) -> str:
    """The whole directory as one CSV text (UTF-8 when written; a header line first)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(export_rows(session, cfg))
    return out.getvalue()
