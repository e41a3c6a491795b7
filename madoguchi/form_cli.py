"""``madoguchi form``: the FAX request form, blank or for a contract, or a signed link to it.

Registered by madoguchi/cli.py::

    from madoguchi.form_cli import form_command
    app.command("form")(form_command)

Thin over ``ocr.form`` (the PDF) and ``ticketing.fax_forms`` (what a
contract's form carries, and the link's signature), as the web desk is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from madoguchi.app import Desk
from madoguchi.cli_kit import fail, settings_of
from madoguchi.config import Settings
from madoguchi.ticketing.models import Contract, Customer
from madoguchi.ticketing.support_number import parse_support_number


def _contract(settings: Settings, support_number: str) -> Contract:
    """The contract of a number, its customer and contacts loaded; exits 2 (bad) or 1 (none)."""
    number = parse_support_number(support_number, settings.support_number)
    if number is None:
        raise fail(f"invalid support number {support_number!r}", 2)
    desk = Desk.open(settings)
    try:
        with desk.factory() as session:
            contract = session.scalar(
                select(Contract).where(Contract.support_number == number.digits).options(
                    selectinload(Contract.contacts),
                    selectinload(Contract.customer).selectinload(Customer.contacts),
                )
            )
    finally:
        desk.close()
    if contract is None:
        raise fail(f"no contract {number.display}")
    return contract


def _print_link(settings: Settings, contract: Contract, days: int | None) -> None:
    from madoguchi.ticketing.fax_forms import link_url
    from madoguchi.web.auth import load_secret

    web = settings.web
    secret = load_secret(web.secret_path(settings.storage_dir))
    try:
        url, expires = link_url(web.public_url, secret, contract, datetime.now(UTC),
                                days if days is not None else web.fax_form_link_days)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(url)
    typer.echo(f"valid until {expires.astimezone(settings.tz):%Y-%m-%d %H:%M %Z}", err=True)


def form_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Argument(help="Where to write the PDF.")] = Path(
        "fax-request-form.pdf"
    ),
    support_number: Annotated[
        str | None, typer.Option("--support-number", help="Pre-print this number (and its QR).")
    ] = None,
    contract: Annotated[
        str | None, typer.Option("--contract", help="The contract's form: its number, company, "
                                 "department, contact and address pre-filled, its product's.")
    ] = None,
    ticket: Annotated[
        str | None, typer.Option("--ticket", help="Pre-fill 問合せ番号 for a follow-up.")
    ] = None,
    product: Annotated[
        str | None, typer.Option("--product", help="The product whose form it is (vendor, "
                                 "FAX number, hours); default: the default product.")
    ] = None,
    link: Annotated[
        bool, typer.Option("--link", help="With --contract: print a signed download link to "
                           "the contract's form on [web] public_url instead of writing it.")
    ] = False,
    days: Annotated[
        int | None, typer.Option("--days", min=1, max=3650, help="With --link: valid this many "
                                 "days (default [web] fax_form_link_days).")
    ] = None,
) -> None:
    """Write the FAX request form (A4 PDF, Japanese); blank unless a number is given."""
    from madoguchi.ocr.form import write_contract_form, write_form
    from madoguchi.ticketing.deadlines import Deadlines

    settings = settings_of(ctx)
    if link and not contract:
        raise fail("--link needs --contract NUMBER", 2)
    deadlines = Deadlines.from_settings(settings)
    terms = deadlines.products.named(product) if product else deadlines.products.default
    if terms is None:
        raise fail(f"no product {product!r} (configured: "
                    f"{', '.join(deadlines.products.names) or 'none'})", 2)
    try:
        if contract:
            row = _contract(settings, contract)
            if link:
                _print_link(settings, row, days)
                return
            write_contract_form(output, row, deadlines.product_for(row), settings.support_number,
                                ticket)
        else:
            details = terms.fax_form
            assert details is not None  # every product built from settings has its form
            write_form(output, support_number, ticket, vendor_name=details.vendor_name,
                       vendor_fax=details.fax_number, hours=details.hours,
                       settings=settings.support_number)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"wrote {output}")
