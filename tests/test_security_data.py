"""Data at rest: files only the desk's user reads, one person's data out or erased
(``madoguchi privacy``), the retention policy, and the daemon's daily job for it."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Text, cast, func, select
from typer.testing import CliRunner

from madoguchi.cli import app
from madoguchi.config.retention import RetentionSettings
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing import actions
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.db import make_engine, transaction
from madoguchi.ticketing.models import (
    Attachment,
    ContactEmail,
    Message,
    QuarantineEntry,
    RawMessage,
    Ticket,
)
from tests.mailfactory import make_mail
from tests.test_web_kit import YAMADA, Staff, WebDesk, ingest_mail, mail_date

pytest_plugins = ["tests.test_web_kit"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
SUZUKI = ("鈴木 一郎", "suzuki@momiji-kogyo.example.jp")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_blobs_are_the_desk_users_alone_whatever_the_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        blobs = BlobStore(tmp_path / "storage")
        digest = blobs.put(b"Subject: secret\r\n\r\nbody")
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'desk.db'}")
        with engine.connect():
            pass
        engine.dispose()
    finally:
        os.umask(old)
    path = blobs.path_for(digest)
    assert _mode(path) == 0o600
    for folder in (path.parent, path.parent.parent, tmp_path / "storage",
                   tmp_path / "storage" / "tmp"):
        assert _mode(folder) == 0o700, folder
    assert _mode(tmp_path / "var" / "desk.db") == 0o600
    unit = (REPO / "deploy" / "madoguchi.service").read_text()
    assert "\nUMask=0077\n" in unit


def _yamada_data(wd: WebDesk) -> str:
    """A ticket of Yamada's with an attachment, a reply to it, and a quarantined auto-reply."""
    number = ingest_mail(wd.desk, subject="請求書の件",
                         body="サポートサービス番号: 2031-0001-0008\n\n"
                         "住所は東京都千代田区1-2-3、電話は03-1234-5678です。\n",
                         attachments=[("請求書.pdf", "application/pdf", b"%PDF-1.4 yamada")])
    with transaction(wd.desk.factory) as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        actions.add_note(s, t, None, "山田様に電話で確認済み", datetime.now(UTC))
    auto = make_mail("自動応答: 不在です", "不在にしております。", from_=YAMADA, charset="utf-8",
                     date=mail_date(), extra_headers={"Auto-Submitted": "auto-replied"})
    out = wd.desk.pipeline.ingest(Inbound(auto, "test", "auto"))
    assert out.ticket_number is None, out  # quarantined: joins nothing
    ingest_mail(wd.desk, subject="別の会社の件", from_=SUZUKI,
                body="サポートサービス番号: 2031-0002-0006\n\n別件です。\n")
    return number


def _cli(wd: WebDesk, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", wd.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(wd.settings.storage_dir))
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_privacy_export_gives_all_of_one_persons_data(
    webdesk: WebDesk, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    number = _yamada_data(webdesk)
    out = tmp_path / "export"
    _cli(webdesk, monkeypatch, "privacy", "export", "--email", YAMADA[1].upper(),
         "--output", str(out))
    data = json.loads((out / "data.json").read_text(encoding="utf-8"))
    assert data["email"] == YAMADA[1]
    assert [c["name"] for c in data["contacts"]] == [YAMADA[0]]
    [ticket] = data["tickets"]
    assert ticket["number"] == number
    texts = " ".join(m["text"] for m in ticket["messages"])
    assert "千代田区" in texts and "電話で確認済み" in texts
    assert len(data["quarantine"]) == 1
    assert not any("momiji" in json.dumps(t) for t in data["tickets"])
    files = sorted(p.relative_to(out).parts[0] for p in out.rglob("*") if p.is_file())
    assert files.count("raw") >= 1 and files.count("attachments") == 1
    assert _mode(out) == 0o700 and _mode(out / "data.json") == 0o600
    printed = json.loads(_cli(webdesk, monkeypatch, "privacy", "export", "--email", YAMADA[1]))
    assert printed["tickets"][0]["number"] == number
    from madoguchi.ticketing.security_models import PrivacyAction

    with webdesk.desk.factory() as s:
        rows = s.scalars(select(PrivacyAction)).all()
    assert [r.action for r in rows] == ["export", "export"]
    assert rows[0].subject_sha256 == hashlib.sha256(YAMADA[1].encode()).hexdigest()


def test_privacy_erase_anonymises_in_place_removes_the_bytes_and_keeps_the_rest(
    webdesk: WebDesk, monkeypatch: pytest.MonkeyPatch, agent: Staff,
) -> None:
    number = _yamada_data(webdesk)
    with transaction(webdesk.desk.factory) as s:
        suzukis = s.scalars(select(Ticket).join(Message).where(Message.sender == SUZUKI[1])).one()
        actions.add_note(s, suzukis, None, f"{YAMADA[0]}様（{YAMADA[1]}）から折り返しの依頼あり",
                         datetime.now(UTC))
    blobs = webdesk.desk.blobs
    with webdesk.desk.factory() as s:
        mine = s.scalars(select(RawMessage.sha256).join(Message, Message.raw_id == RawMessage.id)
                         .join(Ticket).where(Ticket.number == number)).all()
        mine += s.scalars(select(QuarantineEntry.sha256)).all()
        mine += s.scalars(select(Attachment.sha256)).all()
    assert mine and all(blobs.exists(h) for h in mine)
    assert f"/tickets/{number}" in agent.get("/search?q=千代田区").text

    said = _cli(webdesk, monkeypatch, "privacy", "erase", "--email", YAMADA[1], "--yes")
    assert "erased" in said

    address = YAMADA[1]
    with webdesk.desk.factory() as s:
        assert s.scalar(select(func.count()).select_from(ContactEmail)
                        .where(ContactEmail.email == address)) == 0
        for column in (Message.sender, Message.text, Message.subject,
                       cast(Message.recipients, Text)):
            assert s.scalar(select(func.count()).select_from(Message).where(
                column.contains("yamada") | column.contains("千代田区")
                | column.contains("山田"))) == 0, column
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert t.status is not None and len(t.messages) == 2  # kept, anonymised in place
        assert all(m.raw_id is None and not m.attachments for m in t.messages)
        assert s.scalar(select(func.count()).select_from(QuarantineEntry)) == 0
        others = s.scalars(select(Message).where(Message.sender == SUZUKI[1])).all()
        assert len(others) == 1 and "別件です" in others[0].text  # another person: untouched
        [named] = s.scalars(select(Message).where(Message.text.contains("折り返し"))).all()
        # Suzuki's ticket keeps its note; only the words naming Yamada are gone.
        assert named.text == "（削除済み）様（（削除済み））から折り返しの依頼あり"
        from madoguchi.ticketing.security_models import PrivacyAction

        [erased] = s.scalars(select(PrivacyAction).where(PrivacyAction.action == "erase")).all()
    assert erased.subject_sha256 == hashlib.sha256(address.encode()).hexdigest()
    assert address not in json.dumps(erased.summary) and erased.summary["messages"] == 2
    assert erased.summary["mentions"] == 1
    assert not any(blobs.exists(h) for h in mine)  # the raw bytes are gone from disk
    assert f"/tickets/{number}" not in agent.get("/search?q=千代田区").text  # nor in the index


def test_the_retention_policy_purges_and_anonymises_only_what_is_old_enough(
    webdesk: WebDesk, agent: Staff,
) -> None:
    from madoguchi.ticketing.retention import ANONYMISED, apply_retention

    number = _yamada_data(webdesk)
    other = ingest_mail(webdesk.desk, subject="まだ対応中の件")
    with transaction(webdesk.desk.factory) as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        actions.set_status(t, "closed", datetime.now(UTC))
    assert agent.get(f"/tickets/{number}").status_code == 200  # an access-log row
    policy = RetentionSettings(raw_mail_days=30, attachments_days=30, quarantine_days=30,
                               closed_tickets_days=60, access_log_days=30, sessions_days=30)
    now = datetime.now(UTC)
    report = apply_retention(webdesk.desk, policy, now)
    assert not report.removed_anything  # nothing is old enough yet

    report = apply_retention(webdesk.desk, policy, now + timedelta(days=45))
    assert report.raw_mail >= 3 and report.quarantine == 1 and report.attachments == 1
    assert report.access_log == 1 and report.tickets == 0 and report.blobs_removed >= 3
    with webdesk.desk.factory() as s:
        assert s.scalar(select(func.count()).select_from(RawMessage)) == 0
        open_one = s.scalars(select(Ticket).where(Ticket.number == other)).one()
        assert open_one.messages[0].text  # the text of a ticket still worked on stays

    report = apply_retention(webdesk.desk, policy, now + timedelta(days=61))
    assert report.tickets == 1
    with webdesk.desk.factory() as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert t.subject == ANONYMISED
        assert all("千代田区" not in m.text and m.sender == "" for m in t.messages)
        assert s.scalars(select(Ticket).where(Ticket.number == other)).one().subject \
            == "まだ対応中の件"
    assert apply_retention(webdesk.desk, policy, now + timedelta(days=62)).tickets == 0


def test_the_daemon_schedules_the_retention_job_daily(webdesk: WebDesk) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from madoguchi import retention_job

    scheduler = BackgroundScheduler(timezone=webdesk.settings.tz)
    retention_job.schedule(scheduler, webdesk.settings)
    job = scheduler.get_job("retention")
    assert job is not None and "hour='4', minute='0'" in str(job.trigger)
    assert "retention_job.schedule(scheduler, self.settings)" in (
        REPO / "madoguchi" / "daemon.py").read_text()


def test_an_existing_database_is_carried_forward_and_keeps_its_search(tmp_path: Path) -> None:
    import sqlite3

    from madoguchi.ticketing.db import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0004")
    db = sqlite3.connect(tmp_path / "old.db")
    db.execute("INSERT INTO tickets (id, number, status, channel, subject, received_at) "
               "VALUES (1, 'T-2026-000001', 'open', 'email', '件名', '2026-12-01 01:00:00')")
    db.execute("INSERT INTO messages (id, ticket_id, direction, channel, message_id, "
               "\"references\", sender, sender_name, recipients, cc, subject, received_at, "
               "text) VALUES (1, 1, 'in', 'email', 'a@b', '[]', 'a@b.example', '', '[]', "
               "'[]', '件名', '2026-12-01 01:00:00', 'ライセンスキーの再発行')")
    db.commit()
    db.close()
    upgrade(url)
    db = sqlite3.connect(tmp_path / "old.db")
    assert db.execute("SELECT unverified_sender FROM messages").fetchall() == [(0,)]
    triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    # The FTS index's three triggers (0002/0014) and those keeping a ticket's triage flags (0016).
    assert triggers == {"messages_fts_insert", "messages_fts_delete", "messages_fts_update",
                        "ticket_flags_triage_insert", "ticket_flags_triage_delete",
                        "ticket_flags_triage_update"}
    # Migration 0014 folded the old row into search_text and indexed it; the index
    # follows that column (the ORM writes it with the text: ticketing.search_index).
    assert db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'ライセンス'"
                      ).fetchall() == [(1,)]
    db.execute("UPDATE messages SET search_text = '請求書の再送付' WHERE id = 1")
    assert db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH '再送付'"
                      ).fetchall() == [(1,)]
    db.close()


def test_users_commands_refuse_a_weak_password_and_list_and_end_sessions(
    webdesk: WebDesk, monkeypatch: pytest.MonkeyPatch, agent: Staff,
) -> None:
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", webdesk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(webdesk.settings.storage_dir))
    monkeypatch.setenv("MADOGUCHI_NEW_PASSWORD", "1234567890")
    result = CliRunner().invoke(app, ["users", "add", "carol", "--name", "高橋"])
    assert result.exit_code == 1 and "common passwords" in result.output
    assert agent.get("/queue").status_code == 200
    listed = _cli(webdesk, monkeypatch, "users", "sessions", "agent")
    assert len(listed.strip().splitlines()) == 1
    assert "1 session(s) of agent ended" in _cli(webdesk, monkeypatch, "users", "revoke", "agent")
    assert agent.get("/queue").status_code == 303
    assert _cli(webdesk, monkeypatch, "users", "sessions", "agent").strip() == ""
