"""Backup and restore bring back the same desk, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete

from madoguchi.app import Desk
from madoguchi.backup import backup, restore
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Attachment, Message, RawMessage, Ticket, TicketFlag
from madoguchi.ticketing.views import export_records
from tests.mailfactory import make_mail


def snapshot(desk: Desk) -> list[dict[str, object]]:
    with desk.factory() as s:
        return list(export_records(s, desk.settings.tz, desk.settings.support_number))


def test_restore_brings_back_tickets_messages_and_blobs(desk: Desk, tmp_path: Path) -> None:
    desk.pipeline.ingest_batch([
        Inbound(make_mail(message_id="b1@x", attachments=[("ログ.txt", "text/plain", b"log")]),
                "t", "1"),
        Inbound(make_mail(message_id="b2@x", in_reply_to="b1@x", body="追伸"), "t", "2"),
    ])
    before = snapshot(desk)
    blob = before[0]["messages"][0]["attachments"][0]["sha256"]  # type: ignore[index]
    manifest = backup(desk, tmp_path / "backup")
    assert json.loads((tmp_path / "backup" / "manifest.json").read_text())["blobs"] >= 3
    assert manifest["blobs"] >= 3

    # Disaster: the rows and a blob are gone.
    with transaction(desk.factory) as s:
        for model in (Attachment, Message, RawMessage, TicketFlag, Ticket):
            s.execute(delete(model))
    desk.blobs.path_for(blob).unlink()
    assert snapshot(desk) == []

    restore(desk, tmp_path / "backup")
    assert snapshot(desk) == before
    assert desk.blobs.get(blob) == b"log"


def test_cli_backup_refuses_a_non_empty_destination(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from madoguchi.cli import app

    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", desk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(desk.settings.storage_dir))
    dest = tmp_path / "b"
    assert CliRunner().invoke(app, ["backup", str(dest)]).exit_code == 0
    again = CliRunner().invoke(app, ["backup", str(dest)])
    assert again.exit_code == 1 and "not empty" in again.output
    assert CliRunner().invoke(app, ["restore", str(dest)]).exit_code == 0
