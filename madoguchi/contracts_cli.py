"""``madoguchi contracts show|renew`` and ``madoguchi customers export``.

Registered by madoguchi/cli.py::

    from madoguchi.contracts_cli import contracts_app, customers_export
    app.add_typer(contracts_app, name="contracts")
    customers_app.command("export")(customers_export)

Thin over ``ticketing.contracts`` and ``ticketing.customers_csv``, as the web
desk is.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from madoguchi.cli_kit import fail, settings_of
from madoguchi.config import Settings
from madoguchi.ticketing.contracts import TermsError, describe, render_contract, renew
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Contract
from madoguchi.ticketing.storage import Storage
from madoguchi.ticketing.support_number import format_number, parse_support_number

contracts_app = typer.Typer(help="Contracts and their support periods.", no_args_is_help=True)


def _contract(session: Session, settings: Settings, number: str) -> Contract:
    parsed = parse_support_number(number, settings.support_number)
    if parsed is None:
        raise fail(f"{number!r} is not a valid support service number", 2)
    contract = session.scalar(
        select(Contract).where(Contract.support_number == parsed.digits)
        .options(selectinload(Contract.periods), selectinload(Contract.customer))
    )
    if contract is None:
        raise fail(f"no contract {parsed.display}")
    return contract


def _day(text: str | None, settings: Settings) -> date:
    if text is None:
        return datetime.now(settings.tz).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"--on {text!r} is not a date (YYYY-MM-DD)", 2) from None


@contracts_app.command("show")
def contracts_show(
    ctx: typer.Context,
    number: str,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    on: Annotated[str | None, typer.Option("--on", help="Judge the standing on this date "
                                                         "(default: today).")] = None,
) -> None:
    """A contract, its plan and its periods with their kind (cloud renewals included)."""
    settings = settings_of(ctx)
    if format not in ("text", "json"):
        raise fail("--format is text or json", 2)
    day = _day(on, settings)
    storage = Storage.open(settings)
    try:
        with storage.factory() as session:
            record = describe(_contract(session, settings, number), day,
                              lambda d: format_number(d, settings.support_number))
    finally:
        storage.close()
    if format == "json":
        typer.echo(json.dumps({**record, "on": day.isoformat()}, ensure_ascii=False))
    else:
        typer.echo(render_contract(record, day))


@contracts_app.command("renew")
def contracts_renew(ctx: typer.Context, number: str) -> None:
    """Add the contract's next period: from the day after its last one ends, a year."""
    settings = settings_of(ctx)
    storage = Storage.open(settings)
    try:
        with transaction(storage.factory) as session:
            contract = _contract(session, settings, number)
            try:
                period = renew(contract, now=datetime.now(UTC))
            except TermsError as exc:
                raise fail(exc.english) from exc
            shown = format_number(contract.support_number, settings.support_number)
            typer.echo(f"{shown}: {period.kind.value} {period.starts_on} – {period.ends_on} added")
    finally:
        storage.close()


def customers_export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write here (default: stdout).")] = None,
) -> None:
    """Every contract and its registered contacts as CSV, as `customers import` reads it."""
    from madoguchi.ticketing.customers_csv import export_csv

    settings = settings_of(ctx)
    storage = Storage.open(settings)
    try:
        with storage.factory() as session:
            text = export_csv(session, settings.support_number)
    finally:
        storage.close()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
