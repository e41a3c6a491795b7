"""Local sources: Maildir, a folder of .eml files and a FAX spool, with the spine's guarantees."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from madoguchi.app import Desk
from madoguchi.config import EmlDirSource, MaildirSource, load_settings
from madoguchi.daemon import Daemon
from madoguchi.ingest.sources.folder import EmlDirPoller, MaildirPoller
from madoguchi.ticketing.models import Message, SourceFailure, Ticket
from tests.conftest import make_settings
from tests.mailfactory import make_mail
from tests.test_daemon import Clock, failures_written_down, run_poll_job, source_backoff

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=JST)


def _desk(sqlite_url: str, tmp_path: Path) -> Desk:
    return Desk.open(make_settings(sqlite_url, tmp_path))


def count(desk: Desk, model: type) -> int:
    with desk.factory() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_maildir_reads_in_received_order_so_a_reply_never_comes_first(
    sqlite_url: str, tmp_path: Path
) -> None:
    desk = _desk(sqlite_url, tmp_path)
    box = tmp_path / "Maildir"
    poller = MaildirPoller(MaildirSource(kind="maildir", name="box", path=box), desk.pipeline)
    original = make_mail(message_id="orig@x", received=[T0])
    reply = make_mail(subject="Re: 件名", body="追伸", message_id="reply@x",
                      in_reply_to="orig@x", received=[T0 + timedelta(minutes=5)])
    # Directory order puts the reply first ("a" < "b").
    (box / "new" / "a-reply").write_bytes(reply)
    (box / "new" / "b-original").write_bytes(original)
    report = poller.poll_once()
    assert (report.created, report.threaded) == (1, 1)
    assert sorted(p.name for p in (box / "cur").iterdir()) == ["a-reply:2,S", "b-original:2,S"]
    assert poller.poll_once().taken == 0  # seen mail is not read again
    desk.close()


def test_maildir_file_left_unmarked_by_a_crash_is_recognised(
    sqlite_url: str, tmp_path: Path
) -> None:
    desk = _desk(sqlite_url, tmp_path)
    box = tmp_path / "Maildir"
    poller = MaildirPoller(MaildirSource(kind="maildir", name="box", path=box), desk.pipeline)
    raw = make_mail(message_id="m@x")
    (box / "new" / "one").write_bytes(raw)
    poller.poll_once()
    # As if the process died after the commit but before the rename.
    (box / "new" / "one").write_bytes(raw)
    report = poller.poll_once()
    assert (report.duplicate, count(desk, Ticket), count(desk, Message)) == (1, 1, 1)
    desk.close()


def test_eml_folder_moves_mail_to_done_and_broken_files_to_failed_with_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    desk = _desk(sqlite_url, tmp_path)
    folder = tmp_path / "eml"
    folder.mkdir()
    poller = EmlDirPoller(EmlDirSource(kind="eml_dir", name="eml", path=folder), desk.pipeline)
    (folder / "good.eml").write_bytes(make_mail())
    (folder / "broken.eml").write_bytes(b"\x00\x01 not mail \xff" * 5)
    report = poller.poll_once()
    assert (report.created, report.quarantined) == (1, 1)
    assert (folder / "done" / "good.eml").exists()
    assert (folder / "failed" / "broken.eml").exists()
    assert "unparseable" in (folder / "failed" / "broken.eml.reason").read_text(encoding="utf-8")
    assert list(folder.glob("*.eml")) == []
    desk.close()


def _break_and_mend(kind: str, root: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    """A real fault of each folder source kind, and its repair: a folder gone, then back."""
    if kind == "maildir":
        return (lambda: shutil.rmtree(root / "new")), (lambda: (root / "new").mkdir())
    if kind == "fax_spool":
        def mend_spool() -> None:
            for sub in ("done", "failed"):
                (root / sub).mkdir(parents=True)
        return (lambda: shutil.rmtree(root)), mend_spool
    # An .eml folder whose done/ is gone: the mail is stored, then cannot be filed away.
    def break_eml() -> None:
        (root / "done").rmdir()
        (root / "waiting.eml").write_bytes(make_mail(message_id="waiting@x"))
    return break_eml, (lambda: (root / "done").mkdir())


@pytest.mark.parametrize("kind", ["maildir", "eml_dir", "fax_spool"])
def test_a_failing_folder_source_backs_off_and_its_first_good_poll_ends_it(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    root = tmp_path / kind
    settings = load_settings(None, database_url=sqlite_url, storage_dir=tmp_path / "storage",
                             sources=[{"name": "folder", "kind": kind, "path": str(root)}])
    desk = Desk.open(settings)
    try:
        clock = Clock(T0)
        daemon = Daemon(desk, backoff=source_backoff(desk, clock, base=4.0))
        daemon.poll("folder")  # the folders are there: nothing to take
        break_folder, mend = _break_and_mend(kind, root)
        break_folder()
        written: list[SourceFailure] = []

        def after(failures: int) -> None:
            written.append(failures_written_down(desk)["folder"])
            if failures == 2:
                mend()

        delays = run_poll_job(daemon, "folder", clock, after)

        assert len(delays) == 2
        assert 2.0 <= delays[0] <= 4.0 and 4.0 <= delays[1] <= 8.0
        first, second = written
        assert (first.failures, second.failures) == (1, 2)
        assert first.failing_since == second.failing_since == T0
        assert second.last_failed_at == second.failing_since + timedelta(seconds=delays[0])
        assert second.next_attempt_at == clock.now
        assert second.last_error.startswith("FileNotFoundError: ")
        assert failures_written_down(desk) == {}
    finally:
        desk.close()
