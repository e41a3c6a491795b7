"""``madoguchi status``: what waits for the desk, read from the database and the source folders."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from madoguchi.app import Desk
from madoguchi.cli import app
from madoguchi.config import Settings, load_settings
from madoguchi.daemon import Daemon
from madoguchi.health import Claims, MailboxPosition, Schedule, desk_status, render_status
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing import actions, models
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import MailboxState, PendingMark, Ticket
from tests.mailfactory import make_mail
from tests.test_daemon import Clock, source_backoff

JST = timezone(timedelta(hours=9))
NUMBER = "2031-0001-0008"
YAMADA = ("山田 太郎", "yamada@sakura-shoji.example.jp")
STRANGER = ("知らない 人", "someone@elsewhere.example.com")
CSV_HEADER = ("support_number,company,department,address,product,period_start,period_end,"
              "contact_name,contact_email,contact_phone,contact_fax")


def register_customer(desk: Desk) -> None:
    """One customer whose contract is in force whenever the tests run."""
    today = date.today()
    row = (f"{NUMBER},株式会社さくら商事,情報システム部,東京都千代田区丸の内1-1-1,ChatLuck,"
           f"{today - timedelta(days=365)},{today + timedelta(days=365)},"
           f"{YAMADA[0]},{YAMADA[1]},03-1234-5678,03-1234-5679")
    rows = read_rows(f"{CSV_HEADER}\n{row}\n", desk.settings.support_number)
    with transaction(desk.factory) as session:
        import_rows(session, rows)


def inquiry(subject: str, *, received: datetime, from_: tuple[str, str] = YAMADA,
            **kw: object) -> bytes:
    return make_mail(subject, f"サポートサービス番号: {NUMBER}\n\nお世話になっております。\n",
                     from_=from_, date=received, charset="utf-8", **kw)  # type: ignore[arg-type]


def ingest(desk: Desk, *raws: bytes, source: str = "test") -> list[str | None]:
    outcomes = desk.pipeline.ingest_batch(
        [Inbound(raw, source, f"ref-{i}") for i, raw in enumerate(raws)]
    )
    return [o.ticket_number for o in outcomes]


def test_status_counts_the_queue_overdue_triage_quarantine_and_outbox(desk: Desk) -> None:
    register_customer(desk)
    now = datetime.now(UTC)
    fresh, old, stranger, auto, junk = ingest(
        desk,
        inquiry("ログインできません", received=now),
        inquiry("十日前の問い合わせ", received=now - timedelta(days=10)),
        inquiry("見知らぬ人から", received=now, from_=STRANGER),
        make_mail("不在のお知らせ", "ただいま不在です。", date=now, charset="utf-8",
                  extra_headers={"Auto-Submitted": "auto-replied"}),
        b"this is not a mail at all\r\n",
    )
    assert fresh and old and stranger and auto is None and junk is None

    with desk.factory() as session:
        status = desk_status(desk.settings, session, datetime.now(UTC))
    assert status.awaiting_first_response == 3
    assert status.overdue == 1
    assert status.by_status == {"open": 3, "pending": 0}
    assert (status.triage_fax, status.triage_mail) == (0, 1)  # the stranger's mail
    assert status.quarantine_total == 2
    assert status.quarantine_by_reason == {"auto_reply": 1, "unparseable": 1}
    # Acknowledgements for the customer's two tickets; none for the stranger.
    assert status.outbox == {"pending": 2, "sending": 0, "failed": 0}

    with transaction(desk.factory) as session:
        tickets = {t.number: t for t in session.scalars(select(Ticket))}
        actions.mark_first_response(tickets[fresh], now)
        actions.set_status(tickets[old], "closed", now)
    with desk.factory() as session:
        status = desk_status(desk.settings, session, datetime.now(UTC))
    assert (status.awaiting_first_response, status.overdue) == (1, 0)
    assert status.by_status == {"open": 2, "pending": 0}


def _folder_settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        None, database_url=database_url, storage_dir=tmp_path / "storage",
        sources=[
            {"name": "box", "kind": "maildir", "path": str(tmp_path / "Maildir")},
            {"name": "drop", "kind": "eml_dir", "path": str(tmp_path / "eml")},
            {"name": "fax", "kind": "fax_spool", "path": str(tmp_path / "fax")},
            {"name": "gone", "kind": "eml_dir", "path": str(tmp_path / "nowhere")},
        ],
    )


def _config_file(settings: Settings, tmp_path: Path) -> Path:
    """The TOML of ``settings`` (folder sources only), for the command line."""
    config = tmp_path / "desk.toml"
    config.write_text(
        f'database_url = "{settings.database_url}"\nstorage_dir = "{settings.storage_dir}"\n'
        + "".join(
            f'[[sources]]\nname = "{s.name}"\nkind = "{s.kind}"\npath = "{s.path}"\n'
            for s in settings.sources
        ),
        encoding="utf-8",
    )
    return config


def test_status_of_folder_sources_counts_files_waiting_and_failed(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = _folder_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    try:
        register_customer(desk)
        box, drop = settings.sources[:2]
        now = datetime.now(UTC)
        box_poller, drop_poller = desk.poller(box), desk.poller(drop)
        (tmp_path / "Maildir/new/1.eml").write_bytes(inquiry("一通目", received=now))
        (tmp_path / "eml/good.eml").write_bytes(inquiry("二通目", received=now))
        (tmp_path / "eml/broken.eml").write_bytes(b"not a mail\r\n")
        box_poller.poll_once()
        drop_poller.poll_once()
        # Arrived since the polls: two unseen in the Maildir, one .eml, one FAX.
        (tmp_path / "Maildir/new/2.eml").write_bytes(inquiry("三通目", received=now))
        (tmp_path / "Maildir/cur/3.eml:2,").write_bytes(inquiry("四通目", received=now))
        (tmp_path / "eml/later.eml").write_bytes(inquiry("五通目", received=now))
        (tmp_path / "eml/notes.txt").write_text("not for the desk")
        (tmp_path / "fax").mkdir()
        for name in ("a.pdf", "b.tif.part", ".c.pdf", "d.txt"):
            (tmp_path / "fax" / name).write_bytes(b"%PDF-1.4")

        with desk.factory() as session:
            status = desk_status(settings, session, datetime.now(UTC))
            numbers = list(session.scalars(select(Ticket.number).order_by(Ticket.id)))
    finally:
        desk.close()

    by_name = {s.name: s for s in status.sources}
    assert (by_name["box"].files_waiting, by_name["box"].files_failed) == (2, None)
    assert by_name["box"].last_ticket == numbers[0]
    assert (by_name["drop"].files_waiting, by_name["drop"].files_failed) == (1, 1)
    assert by_name["drop"].last_ticket == numbers[1]
    assert by_name["drop"].last_quarantine_reason == "unparseable"
    assert by_name["fax"].files_waiting == 1 and by_name["fax"].last_ticket is None
    assert by_name["gone"].folder_missing and by_name["gone"].files_waiting is None
    assert all(s.schedule is None for s in status.sources)  # no daemon has run

    config = _config_file(settings, tmp_path)
    result = CliRunner().invoke(app, ["--config", str(config), "status", "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert [(s["name"], s["files_waiting"]) for s in shown["sources"]] == [
        ("box", 2), ("drop", 1), ("fax", 1), ("gone", None)
    ]
    assert shown["quarantine_by_reason"] == {"unparseable": 1}
    assert shown["awaiting_first_response"] == 2

    result = CliRunner().invoke(app, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    assert "files:       1 waiting, 1 in failed/" in result.stdout
    assert "folder:      MISSING" in result.stdout
    assert "last stored: " in result.stdout and numbers[1] in result.stdout
    assert "quarantine:  1 (unparseable 1)" in result.stdout


def test_status_shows_the_imap_position_marks_owed_and_claims(
    database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(
        None, database_url=database_url, storage_dir=tmp_path / "storage",
        sources=[{"name": "mailbox", "kind": "imap", "host": "127.0.0.1",
                  "username": "support", "password_env": "UNUSED_IN_STATUS"}],
    )
    desk = Desk.open(settings)
    try:
        # What the IMAP poller leaves: its position, marks it still owes the
        # server after a crash, and (migration 0003) UID ranges claimed.
        with transaction(desk.factory) as session:
            session.add(MailboxState(source="mailbox", folder="INBOX", uidvalidity=7,
                                     last_uid=42))
            session.add_all([PendingMark(source="mailbox", folder="INBOX", uidvalidity=7,
                                         uid=uid) for uid in (41, 42)])
            session.add(PendingMark(source="other", folder="INBOX", uidvalidity=1, uid=1))
            # Another change brings the claims; status reads them only where they exist.
            claim = getattr(models, "IngestClaim", None)
            has_claims = claim is not None and inspect(session.connection()).has_table(
                "ingest_claims"
            )
            if has_claims:
                session.add_all([
                    claim(source="mailbox", folder="INBOX", uidvalidity=7, first_uid=first,
                          last_uid=last, created_at=datetime.now(UTC))
                    for first, last in ((43, 45), (46, 46))
                ])
        with desk.factory() as session:
            status = desk_status(settings, session, datetime.now(UTC))
    finally:
        desk.close()
    [mailbox] = status.sources
    assert mailbox.mailboxes == [MailboxPosition("INBOX", 7, 42)]
    assert mailbox.marks_owed == 2
    if has_claims:
        assert mailbox.claims == status.claims == Claims(2, 4)
    else:
        assert mailbox.claims is None and status.claims is None


def test_status_reads_the_daemons_poll_schedule(database_url: str, tmp_path: Path) -> None:
    settings = _folder_settings(database_url, tmp_path)
    desk = Desk.open(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    # The daemon's own job store, written by APScheduler itself (paused: no job runs).
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=desk.engine)})
    scheduler.start(paused=True)
    try:
        for name, next_run in (("box", now + timedelta(seconds=20)), ("fax", None)):
            scheduler.add_job("madoguchi.daemon:_run", IntervalTrigger(seconds=60),
                              args=["poll", name], id=f"poll:{name}", next_run_time=next_run)
        scheduler.shutdown()
        with desk.factory() as session:
            status = desk_status(settings, session, now)
            # Ten minutes on, no daemon has moved the job on: it is late.
            later = desk_status(settings, session, now + timedelta(minutes=10))
    finally:
        desk.close()
    by_name = {s.name: s.schedule for s in status.sources}
    box, fax = by_name["box"], by_name["fax"]
    assert box is not None and box.next_at == now + timedelta(seconds=20)
    assert box.last_at == now - timedelta(seconds=40) and not box.late
    assert fax is not None and fax.next_at is None and not fax.late  # paused
    assert by_name["drop"] is None  # no job: no daemon ever scheduled it
    late = {s.name: s.schedule for s in later.sources}["box"]
    assert late is not None and late.late


def test_status_shows_a_source_backing_off_until_its_next_good_poll(
    database_url: str, tmp_path: Path
) -> None:
    settings = _folder_settings(database_url, tmp_path)
    desk = Desk.open(settings)
    since = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(since)
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=desk.engine)})
    try:
        box = settings.sources[0]
        daemon = Daemon(desk, pollers={"box": desk.poller(box)},
                        backoff=source_backoff(desk, clock, base=60.0, cap=600.0))
        shutil.rmtree(tmp_path / "Maildir" / "new")  # a real fault: the poll cannot list it
        for _ in range(3):
            with pytest.raises(FileNotFoundError):
                daemon.poll("box")
            failed_at = clock.now
            failing = daemon.backoff.failing("box")
            assert failing is not None
            clock.now = failing.next_attempt_at
        next_try = clock.now
        # The leader moved the poll job to the next try (APScheduler's own store).
        scheduler.start(paused=True)
        scheduler.add_job("madoguchi.daemon:_run", IntervalTrigger(seconds=60),
                          args=["poll", "box"], id="poll:box", next_run_time=next_try)
        scheduler.shutdown()
        with desk.factory() as session:
            status = desk_status(settings, session, failed_at)
        config = _config_file(settings, tmp_path)
        text = CliRunner().invoke(app, ["--config", str(config), "status"])
        shown = CliRunner().invoke(app, ["--config", str(config), "status", "--format", "json"])

        (tmp_path / "Maildir" / "new").mkdir()
        daemon.poll("box")
        with desk.factory() as session:
            after = desk_status(settings, session, datetime.now(UTC))
        text_after = CliRunner().invoke(app, ["--config", str(config), "status"])
    finally:
        desk.close()

    by_name = {s.name: s for s in status.sources}
    backoff = by_name["box"].backoff
    assert backoff is not None
    assert (backoff.failures, backoff.since, backoff.last_failed_at, backoff.next_attempt_at) \
        == (3, since, failed_at, next_try)
    assert backoff.last_error.startswith("FileNotFoundError: [Errno 2] No such file or directory")
    assert "\n" not in backoff.last_error
    assert by_name["box"].schedule == Schedule(failed_at, next_try, late=False)
    assert all(s.backoff is None for s in status.sources[1:])

    def local(moment: datetime) -> str:
        return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")

    assert text.exit_code == 0, text.output
    assert (f"    BACKING OFF: 3 failures since {local(since)}, next try {local(next_try)}: "
            f"FileNotFoundError: ") in text.stdout
    assert text.stdout.count("BACKING OFF") == 1
    assert shown.exit_code == 0, shown.output
    [box_shown] = [s for s in json.loads(shown.stdout)["sources"] if s["name"] == "box"]
    assert box_shown["backoff"] == {
        "failures": 3, "since": since.astimezone(JST).isoformat(),
        "last_failed_at": failed_at.astimezone(JST).isoformat(),
        "next_attempt_at": next_try.astimezone(JST).isoformat(),
        "last_error": backoff.last_error,
    }
    assert {s.name: s.backoff for s in after.sources}["box"] is None
    assert text_after.exit_code == 0 and "BACKING OFF" not in text_after.stdout


def test_status_and_metrics_show_each_daemons_components_and_the_late_ones(
    desk: Desk,
) -> None:
    from madoguchi.health import metric_families
    from madoguchi.ticketing.heartbeats import Beat, write_beats

    t0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    with transaction(desk.factory) as session:
        write_beats(session, "host-a:41", [
            Beat("host-a:41", "scheduler", "running", "", t0, t0 + timedelta(minutes=1)),
            Beat("host-a:41", "outbox", "ok", "sent 1, retrying 0", t0, t0 + timedelta(hours=1)),
        ])
    now = t0 + timedelta(minutes=30)
    with desk.factory() as session:
        shown = render_status(desk_status(desk.settings, session, now), desk.settings.tz)
    lines = {li.split()[1]: li for li in shown.splitlines() if li.startswith("  host-a:41")}
    assert lines["scheduler"].endswith("LATE")
    assert "sent 1, retrying 0" in lines["outbox"] and "LATE" not in lines["outbox"]
    samples = {(f.name, s[1].get("component")): s[2]
               for f in metric_families(desk, now) for s in f.samples}
    assert samples[("madoguchi_component_late", "scheduler")] == 1
    assert samples[("madoguchi_component_late", "outbox")] == 0
    assert samples[("madoguchi_component_last_beat_timestamp_seconds", "outbox")] == \
        t0.timestamp()
