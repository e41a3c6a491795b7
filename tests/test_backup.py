"""Backup and restore bring back the same desk, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

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
