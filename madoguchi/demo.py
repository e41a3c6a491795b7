"""The embedded demo: seed a local mailbox and customers, run the main job once."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from madoguchi.app import Desk
from madoguchi.config import FaxSpoolSource, MaildirSource, Settings
from madoguchi.ticketing.contracts import describe, render_contract, renew
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction, upgrade
from madoguchi.ticketing.models import Contract
from madoguchi.ticketing.render import render_queue
from madoguchi.ticketing.support_number import format_number
from madoguchi.ticketing.views import queue

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
# The contract the demo renews (ChatLuck, annual), and those it shows: the
# renewed one, a free trial and a monthly cloud plan (All Gather CRM).
RENEWED = "203100010008"
SHOWN = (RENEWED, "203100050004", "203100060003")


def seed_maildir(source: MaildirSource, mail_dir: Path) -> int:
    """Deliver the sample mails into the Maildir's new/, once."""
    marker = source.path / ".madoguchi-demo-seeded"
    if marker.exists():
        return 0
    new = source.path / "new"
    for sub in ("new", "cur", "tmp"):
        (source.path / sub).mkdir(parents=True, exist_ok=True)
    count = 0
    for i, eml in enumerate(sorted(mail_dir.glob("*.eml"))):
        shutil.copyfile(eml, new / f"17640000{i:02d}.demo{i}.madoguchi")
        count += 1
    marker.write_text("seeded\n", encoding="utf-8")
    return count


def seed_fax_spool(source: FaxSpoolSource, fax_dir: Path) -> int:
    """Drop the sample FAXes into the spool folder, once."""
    marker = source.path / ".madoguchi-demo-seeded"
    if marker.exists():
        return 0
    source.path.mkdir(parents=True, exist_ok=True)
    count = 0
    for fax in sorted(fax_dir.iterdir()):
        shutil.copyfile(fax, source.path / fax.name)
        count += 1
    marker.write_text("seeded\n", encoding="utf-8")
    return count


def _contract(session: Session, digits: str) -> Contract:
    return session.scalars(select(Contract).where(Contract.support_number == digits)
                           .options(selectinload(Contract.periods))).one()


def _renew_once(session: Session) -> str:
    """Renew the demo's ChatLuck contract for its second year, the first time only."""
    contract = _contract(session, RENEWED)
    if len(contract.periods) > 1:
        return ""
    period = renew(contract, now=datetime.now(UTC))
    return f"{RENEWED} renewed: {period.starts_on} – {period.ends_on}"


def _show_contracts(session: Session, settings: Settings, echo: Callable[[str], None]) -> None:
    today = datetime.now(settings.tz).date()
    for digits in SHOWN:
        record = describe(_contract(session, digits), today,
                          lambda d: format_number(d, settings.support_number))
        echo(render_contract(record, today))


def run_demo(settings: Settings, echo: Callable[[str], None]) -> None:
    upgrade(settings.database_url)
    desk = Desk.open(settings)
    try:
        rows = read_rows(
            (DEMO_DIR / "customers.csv").read_text(encoding="utf-8"), settings.support_number,
            desk.deadlines.products,
        )
        with transaction(desk.factory) as session:
            import_rows(session, rows)
            renewed = _renew_once(session)
        echo(f"customers: {len(rows)} registered contacts loaded from demo/customers.csv")
        if renewed:
            echo(f"contracts: {renewed}")

        for source in settings.sources:
            if isinstance(source, MaildirSource):
                seeded = seed_maildir(source, DEMO_DIR / "mail")
                if seeded:
                    echo(f"{source.name}: {seeded} sample mails delivered to {source.path}/new")
            if isinstance(source, FaxSpoolSource):
                seeded = seed_fax_spool(source, DEMO_DIR / "fax")
                if seeded:
                    echo(f"{source.name}: {seeded} sample FAXes dropped into {source.path} "
                         "(reading them with Tesseract takes a few seconds each)")
            report = desk.poller(source).poll_once()
            taken = report.created + report.threaded + report.duplicate + report.quarantined
            echo(
                f"{source.name}: {taken} taken, {report.created} new tickets, "
                f"{report.threaded} threaded, {report.duplicate} duplicates, "
                f"{report.quarantined} quarantined"
            )
        with desk.factory() as session:
            echo("")
            _show_contracts(session, settings, echo)
            echo("")
            echo(render_queue(queue(session), settings))
    finally:
        desk.close()
    echo("")
    echo("Next, look at:")
    echo("  .venv/bin/madoguchi tickets show T-2026-000001   # a threaded ticket")
    echo("  .venv/bin/madoguchi quarantine list              # what was kept aside, and why")
    echo("  .venv/bin/madoguchi triage list                  # FAXes waiting for a number")
    echo("  .venv/bin/madoguchi export --format jsonl        # every ticket as JSON")
    echo("  .venv/bin/madoguchi contracts show 2031-0006-0003 --format json   # a monthly plan")
