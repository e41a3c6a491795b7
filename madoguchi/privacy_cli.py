"""``madoguchi privacy``: one person's data out, or anonymised; the retention policy now.

Registered by madoguchi/cli.py with one line::

    app.add_typer(privacy_app, name="privacy")

    madoguchi privacy export --email yamada@example.jp [--output DIR]
    madoguchi privacy erase  --email yamada@example.jp [--yes]
    madoguchi privacy purge      # apply [retention] now (the daemon does it daily)
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from madoguchi.cli_kit import settings_of
from madoguchi.ingest.filenames import safe_filename
from madoguchi.ticketing import privacy
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.retention import apply_retention
from madoguchi.ticketing.storage import Storage

privacy_app = typer.Typer(help="Personal data: export, erase (APPI), retention.",
                          no_args_is_help=True)

Email = Annotated[str, typer.Option("--email", help="The person's e-mail address.")]


def _address(email: str) -> str:
    address = email.strip().lower()
    if address.count("@") != 1 or not all(address.split("@")) or any(c.isspace() for c in address):
        typer.echo(f"madoguchi: not an e-mail address: {email!r}", err=True)
        raise typer.Exit(2)
    return address


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid {os.getuid()}"


def _write_files(desk: Storage, data: privacy.PersonData, folder: Path) -> int:
    """The raw messages and attachments beside the JSON (0600 files in a 0700 folder)."""
    written = 0
    for sub in ("raw", "attachments"):
        (folder / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    for m in data.messages:
        blobs = [(folder / "raw" / f"message-{m.id}.eml", m.raw.sha256)] if m.raw else []
        blobs += [(folder / "attachments" / f"{a.id}-{safe_filename(a.filename, a.content_type)}",
                   a.sha256) for a in m.attachments]
        for path, sha in blobs:
            if desk.blobs.exists(sha):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(desk.blobs.get(sha))
                written += 1
    return written


@privacy_app.command("export")
def export(
    ctx: typer.Context, email: Email,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Write data.json, raw/ and attachments/ into this new folder "
        "(default: the JSON on standard output)", file_okay=False)] = None,
) -> None:
    """All the desk keeps about one person, as JSON (and the files, with --output)."""
    address = _address(email)
    desk = Storage.open(settings_of(ctx))
    now = datetime.now(UTC)
    try:
        with transaction(desk.factory) as db:
            data = privacy.find(db, address, desk.blobs)
            document = json.dumps(privacy.export_record(data, now), ensure_ascii=False,
                                  indent=2)
            files = 0
            if output is not None:
                output.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(output / "data.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(document + "\n")
                files = _write_files(desk, data, output)
            privacy.record(db, "export", address, now, _operator(),
                           {"messages": len(data.messages), "files": files})
    finally:
        desk.close()
    if output is None:
        typer.echo(document)
    else:
        typer.echo(f"exported {len(data.messages)} message(s) and {files} file(s) to {output}")


@privacy_app.command("erase")
def erase(
    ctx: typer.Context, email: Email,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Anonymise one person's data in place and remove its raw bytes (recorded in the history)."""
    address = _address(email)
    if not yes and not typer.confirm(f"anonymise every record of {address}? This cannot be "
                                     "undone", default=False):
        raise typer.Exit(1)
    desk = Storage.open(settings_of(ctx))
    try:
        with transaction(desk.factory) as db:
            data = privacy.find(db, address, desk.blobs)
            done = privacy.erase(db, data, datetime.now(UTC), _operator())
        removed = privacy.sweep_blobs(desk.factory, desk.blobs, done.blobs)
    finally:
        desk.close()
    s = done.summary()
    typer.echo(f"erased {address}: {s['contacts']} contact(s), {s['tickets']} ticket(s), "
               f"{s['messages']} message(s), {s['outbox']} outbox mail(s), "
               f"{s['quarantine']} quarantined; {removed} file(s) removed")


@privacy_app.command("purge")
def purge(ctx: typer.Context) -> None:
    """Apply the [retention] policy now (the daemon does it once a day)."""
    settings = settings_of(ctx)
    desk = Storage.open(settings)
    try:
        report = apply_retention(desk, settings.retention, datetime.now(UTC), _operator())
    finally:
        desk.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in report.counts().items()))
