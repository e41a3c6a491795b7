"""The ``madoguchi`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from madoguchi.app import Desk
from madoguchi.auth_cli import auth_app
from madoguchi.cli_kit import fail, settings_of
from madoguchi.config import ConfigError, load_settings
from madoguchi.contracts_cli import contracts_app, customers_export
from madoguchi.form_cli import form_command
from madoguchi.logs import configure_logging
from madoguchi.outbox_cli import outbox_app
from madoguchi.privacy_cli import privacy_app
from madoguchi.search_cli import search_command
from madoguchi.security import harden_process, mail_trust_note
from madoguchi.web_cli import users_app, web_command

if TYPE_CHECKING:
    from madoguchi.ticketing.models import Contract

app = typer.Typer(help="Madoguchi (窓口): support mail and FAX to threaded tickets.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
customers_app = typer.Typer(help="Customers, contracts and contacts.", no_args_is_help=True)
tickets_app = typer.Typer(help="The ticket queue.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Messages kept aside with their reason.",
                             no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(customers_app, name="customers")
app.add_typer(tickets_app, name="tickets")
app.add_typer(quarantine_app, name="quarantine")
app.command("web")(web_command)
app.add_typer(users_app, name="users")
app.add_typer(contracts_app, name="contracts")
customers_app.command("export")(customers_export)
app.add_typer(privacy_app, name="privacy")
app.command("search")(search_command)
app.add_typer(auth_app, name="auth")
app.add_typer(outbox_app, name="outbox")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file (default: MADOGUCHI_CONFIG "
                 "or the shipped config/madoguchi.toml).", exists=True, dir_okay=False),
]


@app.callback()
def main(ctx: typer.Context, config: ConfigOption = None) -> None:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"madoguchi: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


def run() -> None:
    """The ``madoguchi`` program: what it writes is its user's alone (umask 077), then the app.

    (The umask is the process's: set here, at the program's entry, not in the
    app, which tests call in their own process.)
    """
    harden_process()
    app(prog_name="madoguchi")


def _desk(ctx: typer.Context) -> Desk:
    return Desk.open(settings_of(ctx))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "head") -> None:
    """Create or migrate the schema to the newest revision."""
    from madoguchi.ticketing.db import upgrade

    upgrade(settings_of(ctx).database_url, revision)
    typer.echo(f"database at revision {revision}")


@customers_app.command("import")
def customers_import(ctx: typer.Context, file: Path) -> None:
    """Load customers, contracts and contacts from a CSV file (one row per contact)."""
    from madoguchi.ticketing.customers_csv import CsvImportError, import_rows, read_rows
    from madoguchi.ticketing.db import transaction

    settings = settings_of(ctx)
    desk = _desk(ctx)
    try:
        rows = read_rows(file.read_text(encoding="utf-8-sig"), settings.support_number,
                         desk.deadlines.products)
        with transaction(desk.factory) as session:
            report = import_rows(session, rows)
    except CsvImportError as exc:
        for line, message in exc.errors:
            typer.echo(f"{file}:{line}: {message}", err=True)
        typer.echo("nothing imported", err=True)
        raise typer.Exit(1) from exc
    finally:
        desk.close()
    typer.echo(
        f"{report.rows} rows: {report.customers_created} customers, "
        f"{report.contracts_created} contracts, {report.contacts_created} contacts created, "
        f"{report.updated} contacts updated, {report.periods_changed} periods added or corrected"
    )


@app.command()
def poll(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
) -> None:
    """Take new mail from every configured source once."""
    settings = settings_of(ctx)
    desk = _desk(ctx)
    try:
        chosen = [s for s in settings.sources if source in (None, s.name)]
        if source and not chosen:
            typer.echo(f"no source named {source!r}", err=True)
            raise typer.Exit(2)
        for src in chosen:
            report = desk.poller(src).poll_once()
            typer.echo(f"{src.name}: {report}")
    finally:
        desk.close()


@app.command()
def ingest(ctx: typer.Context, files: list[Path]) -> None:
    """Ingest mail files (.eml) and FAX documents (.pdf, .tif) given by hand; also re-submits."""
    from madoguchi.ingest.sources.folder import ingest_files

    desk = _desk(ctx)
    try:
        for path, outcome in ingest_files(files, desk.pipeline):
            detail = outcome.ticket_number or outcome.reason or ""
            typer.echo(f"{path}: {outcome.kind.value} {detail}".rstrip())
    finally:
        desk.close()


@app.command()
def export(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Write every ticket with its messages as JSON lines."""
    from madoguchi.ticketing.views import export_records

    if format != "jsonl":
        typer.echo("only --format jsonl is supported", err=True)
        raise typer.Exit(2)
    desk = _desk(ctx)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with desk.factory() as session:
            for record in export_records(session, desk.settings.tz, desk.settings.support_number):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if output:
            out.close()
        desk.close()


@tickets_app.command("list")
def tickets_list(
    ctx: typer.Context,
    all: Annotated[bool, typer.Option("--all", help="Include closed tickets.")] = False,
    limit: int = 200,
) -> None:
    """The queue, soonest first-response due first."""
    from madoguchi.ticketing.render import render_queue
    from madoguchi.ticketing.views import queue

    desk = _desk(ctx)
    with desk.factory() as session:
        typer.echo(render_queue(queue(session, include_closed=all, limit=limit), desk.settings))
    desk.close()


@tickets_app.command("show")
def tickets_show(ctx: typer.Context, number: str) -> None:
    """One ticket with its whole thread (a merged ticket's number shows the one it went into)."""
    from madoguchi.ticketing.history import events_of
    from madoguchi.ticketing.render import render_ticket
    from madoguchi.ticketing.views import ticket_by_number

    desk = _desk(ctx)
    with desk.factory() as session:
        ticket = ticket_by_number(session, number, follow_merges=True)
        if ticket is None:
            typer.echo(f"no ticket {number}", err=True)
            raise typer.Exit(1)
        history = events_of(session, [ticket.id])[ticket.id]
        typer.echo(render_ticket(ticket, desk.settings, history))
    desk.close()


@quarantine_app.command("list")
def quarantine_list(
    ctx: typer.Context, format: Annotated[str, typer.Option("--format")] = "table"
) -> None:
    """What was kept aside, and why."""
    from madoguchi.ticketing.views import quarantine_records

    desk = _desk(ctx)
    with desk.factory() as session:
        for rec in quarantine_records(session, desk.settings.tz):
            if format == "jsonl":
                typer.echo(json.dumps(rec, ensure_ascii=False))
            else:
                typer.echo(
                    f"#{rec['id']:<5} {rec['received_at']}  {rec['source']}:{rec['source_ref']}"
                    f"  [{rec['reason_code']}] {rec['reason']}"
                )
    desk.close()


@app.command()
def status(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Sources, queue, triage, quarantine and outbox at a glance, from the database."""
    from datetime import UTC, datetime

    from madoguchi.health import desk_status, render_status, status_record

    if format not in ("text", "json"):
        typer.echo("madoguchi: --format is text or json", err=True)
        raise typer.Exit(2)
    desk = _desk(ctx)
    try:
        with desk.factory() as session:
            found = desk_status(desk.settings, session, datetime.now(UTC))
    finally:
        desk.close()
    tz = desk.settings.tz
    trust = mail_trust_note(desk.settings)
    if format == "json":
        record = {**status_record(found, tz), "mail_trust": trust.split(":", 1)[1].strip()}
        typer.echo(json.dumps(record, ensure_ascii=False))
    else:
        typer.echo(render_status(found, tz) + "\n" + trust)


@app.command()
def daemon(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass of everything due, then exit.")]
    = False,
) -> None:
    """Run the pollers, the outbox and the SLA jobs (SIGTERM/SIGINT stop it cleanly)."""
    import signal
    import threading

    from madoguchi import heap
    from madoguchi.daemon import Daemon

    desk = _desk(ctx)
    try:
        runner = Daemon(desk)
        if once:
            typer.echo(str(runner.run_once()))
            return
        heap.settle()
        stop = threading.Event()

        def request_stop(*_: object) -> None:
            # Set from another thread: Event.set() in the handler itself could
            # deadlock on the lock the interrupted main thread holds in wait().
            threading.Thread(target=stop.set, daemon=True).start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, request_stop)
        raise typer.Exit(runner.run(stop))
    finally:
        desk.close()


def _backup_action(ctx: typer.Context, action: str, path: Path) -> None:
    from madoguchi import backup as backups

    desk = _desk(ctx)
    try:
        typer.echo(json.dumps(getattr(backups, action)(desk, path), ensure_ascii=False))
    except backups.BackupError as exc:
        typer.echo(f"madoguchi: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        desk.close()


@app.command("backup")
def backup_cmd(ctx: typer.Context, dest: Path) -> None:
    """A consistent copy of the database and the attachment store into DEST."""
    _backup_action(ctx, "backup", dest)


@app.command("restore")
def restore_cmd(ctx: typer.Context, src: Path) -> None:
    """Bring back a backup made by `madoguchi backup` (stop the daemon first)."""
    _backup_action(ctx, "restore", src)


sla_app = typer.Typer(help="First-response deadlines.", no_args_is_help=True)
app.add_typer(sla_app, name="sla")


@sla_app.command("due")
def sla_due(
    ctx: typer.Context,
    timestamp: str,
    support_number: Annotated[str | None, typer.Option(
        "--support-number", help="The contract's product and own terms.")] = None,
    product: Annotated[str | None, typer.Option(
        "--product", help="The product's terms (a name or alias; default: the default "
        "product). With --support-number, the contract's product must be this one.")] = None,
    kind: Annotated[str, typer.Option(
        "--kind", help="general, or license_key (the licence-key rule).")] = "general",
    format: Annotated[str, typer.Option("--format")] = "text",
) -> None:
    """When work starts and when the first response is due, for a message received then."""
    from datetime import datetime

    from madoguchi.ticketing.deadlines import Deadlines
    from madoguchi.ticketing.vocabulary import InquiryKind

    settings = settings_of(ctx)
    try:
        received = datetime.fromisoformat(timestamp)
    except ValueError as exc:
        typer.echo(f"madoguchi: not an ISO 8601 timestamp: {timestamp!r}", err=True)
        raise typer.Exit(2) from exc
    if received.tzinfo is None:
        typer.echo("madoguchi: give the timestamp with its offset (e.g. +09:00 or Z)", err=True)
        raise typer.Exit(2)
    if kind not in {k.value for k in InquiryKind}:
        raise fail(f"--kind is one of {', '.join(k.value for k in InquiryKind)}", 2)
    deadlines = Deadlines.from_settings(settings)
    chosen = deadlines.products.named(product) if product else None
    if product and chosen is None:
        raise fail(f"no product {product!r} (configured: "
                    f"{', '.join(deadlines.products.names) or 'none'})", 2)
    contract = _contract_named(ctx, support_number) if support_number else None
    terms = deadlines.product_for(contract, product)
    if contract is not None and chosen is not None and terms is not chosen:
        raise fail(f"the contract {support_number} is for {terms.name or 'the default product'}"
                    f", not {chosen.name}", 2)
    deadline = deadlines.first_response(received, contract, product=product,
                                        kind=InquiryKind(kind))
    if format == "json":
        typer.echo(json.dumps({
            "received_at": deadline.received_at.isoformat(),
            "starts_at": deadline.starts_at.isoformat(),
            "due_at": deadline.due_at.isoformat(),
            "product": terms.name or None,
            "kind": kind,
        }, ensure_ascii=False))
    else:
        typer.echo(f"received: {deadline.received_at.isoformat()}")
        typer.echo(f"starts:   {deadline.starts_at.isoformat()}")
        typer.echo(f"due:      {deadline.due_at.isoformat()}")
        if terms.name:
            typer.echo(f"product:  {terms.name} ({kind})")


def _contract_named(ctx: typer.Context, support_number: str) -> Contract:
    """The contract of a number given on the command line; exits 2 (bad number) or 1 (none)."""
    from sqlalchemy import select

    from madoguchi.ticketing.models import Contract
    from madoguchi.ticketing.support_number import parse_support_number

    number = parse_support_number(support_number, settings_of(ctx).support_number)
    if number is None:
        raise fail(f"invalid support number {support_number!r}", 2)
    desk = _desk(ctx)
    with desk.factory() as session:
        contract = session.scalar(select(Contract).where(Contract.support_number == number.digits))
    desk.close()
    if contract is None:
        raise fail(f"no contract {number.display}")
    return contract


app.command("form")(form_command)


triage_app = typer.Typer(help="FAXes whose number could not be read.", no_args_is_help=True)
app.add_typer(triage_app, name="triage")


@triage_app.command("list")
def triage_list(ctx: typer.Context) -> None:
    """Tickets waiting for staff to assign the support number, with their page images."""
    from madoguchi.ticketing.triage import triage_queue

    desk = _desk(ctx)
    with desk.factory() as session:
        for ticket, pages in triage_queue(session):
            typer.echo(f"{ticket.number}  {ticket.subject}")
            for sha in pages:
                typer.echo(f"    page: {desk.blobs.path_for(sha)}")
    desk.close()


@triage_app.command("assign")
def triage_assign(ctx: typer.Context, ticket: str, support_number: str) -> None:
    """Give a triaged FAX ticket its support number (checked by its check digit).

    The same action as the web desk's triage page; its note is written in the
    name of the command line (there is no signed-in user).
    """
    from datetime import UTC, datetime

    from madoguchi.ticketing.actions import ActionError
    from madoguchi.ticketing.db import transaction
    from madoguchi.ticketing.lookup import ticket_by_number
    from madoguchi.ticketing.support_number import parse_support_number
    from madoguchi.ticketing.triage import assign_fax_number

    settings = settings_of(ctx)
    number = parse_support_number(support_number, settings.support_number)
    desk = _desk(ctx)
    try:
        with transaction(desk.factory) as session:
            # Staff quoting a merged ticket's number mean the one it went into.
            found = ticket_by_number(session, ticket, follow_merges=True)
            if found is None:
                raise fail(f"no ticket {ticket}")
            if number is None:
                raise fail(f"{support_number!r} is not a valid support service number")
            t = assign_fax_number(session, found, number, None, settings, desk.deadlines,
                                  datetime.now(UTC))
            typer.echo(f"{t.number}: {t.support_number}, flags: {', '.join(t.flag_names) or '-'}")
    except ActionError as exc:
        raise fail(str(exc)) from exc
    finally:
        desk.close()


@app.command()
def demo(ctx: typer.Context) -> None:
    """Seed the demo mailbox and customers, then run the main job once."""
    from madoguchi.demo import run_demo

    run_demo(settings_of(ctx), typer.echo)


if __name__ == "__main__":  # pragma: no cover
    app()
