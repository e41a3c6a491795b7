"""Import customers, contracts and registered contacts from a CSV file.

One row per contact. A re-import updates what is there (customer by company,
contract by support number, contact by e-mail address within the customer,
else by name) and never duplicates. Every row is checked first; if any row
is bad, the errors are reported by line and nothing is written.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.config import SupportNumberSettings
from madoguchi.ticketing.models import Contact, ContactEmail, Contract, Customer
from madoguchi.ticketing.support_number import parse_support_number

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
OPTIONAL_COLUMNS = ("environment",)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class CsvRow:
    line: int
    support_number: str
    company: str
    department: str
    address: str
    product: str
    environment: str
    period_start: date
    period_end: date
    contact_name: str
    contact_emails: tuple[str, ...]
    contact_phone: str
    contact_fax: str


@dataclass
class ImportReport:
    rows: int = 0
    customers_created: int = 0
    contracts_created: int = 0
    contacts_created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


class CsvImportError(Exception):
    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"line {n}: {msg}" for n, msg in errors))
        self.errors = errors


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip().replace("/", "-"))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def read_rows(text: str, cfg: SupportNumberSettings) -> list[CsvRow]:
    """Parse and check every row; raise CsvImportError listing every bad line."""
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

    rows: list[CsvRow] = []
    errors: list[tuple[int, str]] = []
    company_of: dict[str, tuple[str, int]] = {}
    for record in reader:
        line = reader.line_num
        values = {k.strip(): (v or "").strip() for k, v in record.items() if k}
        if None in record:
            errors.append((line, "more fields than the header has"))
            continue
        try:
            rows.append(_check(line, values, cfg, company_of))
        except ValueError as exc:
            errors.append((line, str(exc)))
    if errors:
        raise CsvImportError(errors)
    return rows


def _check(
    line: int,
    v: dict[str, str],
    cfg: SupportNumberSettings,
    company_of: dict[str, tuple[str, int]],
) -> CsvRow:
    number = parse_support_number(v["support_number"], cfg)
    if number is None:
        raise ValueError(
            f"support_number {v['support_number']!r} is not a valid support service number"
        )
    if not v["company"]:
        raise ValueError("company is empty")
    seen = company_of.setdefault(number.digits, (v["company"], line))
    if seen[0] != v["company"]:
        raise ValueError(
            f"support_number {number.display} belongs to {seen[0]!r} on line {seen[1]}"
        )
    start = _date(v["period_start"], "period_start")
    end = _date(v["period_end"], "period_end")
    if end < start:
        raise ValueError(f"period_end {end} is before period_start {start}")
    if not v["contact_name"]:
        raise ValueError("contact_name is empty")
    emails = tuple(e.lower() for e in re.split(r"[;,\s]+", v["contact_email"]) if e)
    if not emails:
        raise ValueError("contact_email is empty")
    for e in emails:
        if not _EMAIL.match(e):
            raise ValueError(f"contact_email {e!r} is not an e-mail address")
    return CsvRow(
        line=line,
        support_number=number.digits,
        company=v["company"],
        department=v["department"],
        address=v["address"],
        product=v["product"],
        environment=v.get("environment", ""),
        period_start=start,
        period_end=end,
        contact_name=v["contact_name"],
        contact_emails=emails,
        contact_phone=v["contact_phone"],
        contact_fax=v["contact_fax"],
    )


def import_rows(session: Session, rows: list[CsvRow]) -> ImportReport:
    """Upsert checked rows inside the caller's transaction."""
    report = ImportReport(rows=len(rows))
    for row in rows:
        customer = session.scalar(select(Customer).where(Customer.company == row.company))
        if customer is None:
            customer = Customer(company=row.company)
            session.add(customer)
            report.customers_created += 1
        customer.department = row.department
        customer.address = row.address

        contract = session.scalar(
            select(Contract).where(Contract.support_number == row.support_number)
        )
        if contract is None:
            contract = Contract(support_number=row.support_number, customer=customer)
            session.add(contract)
            report.contracts_created += 1
        elif contract.customer_id != customer.id and customer.id is not None:
            raise CsvImportError(
                [(row.line, f"support_number {row.support_number} belongs to another company")]
            )
        contract.product = row.product
        contract.environment = row.environment or contract.environment or ""
        contract.period_start = row.period_start
        contract.period_end = row.period_end
        session.flush()

        contact = _find_contact(session, customer, row)
        if contact is None:
            contact = Contact(customer=customer, name=row.contact_name)
            session.add(contact)
            report.contacts_created += 1
        else:
            report.updated += 1
        contact.name = row.contact_name
        contact.phone = row.contact_phone
        contact.fax = row.contact_fax
        have = {e.email for e in contact.emails}
        for address in row.contact_emails:
            if address not in have:
                contact.emails.append(ContactEmail(email=address))
        if contract not in contact.contracts:
            contact.contracts.append(contract)
        session.flush()
    return report


def _find_contact(session: Session, customer: Customer, row: CsvRow) -> Contact | None:
    if customer.id is None:
        return None
    by_email = session.scalar(
        select(Contact)
        .join(ContactEmail)
        .where(Contact.customer_id == customer.id, ContactEmail.email.in_(row.contact_emails))
        .limit(1)
    )
    if by_email is not None:
        return by_email
    return session.scalar(
        select(Contact).where(Contact.customer_id == customer.id, Contact.name == row.contact_name)
    )
