"""Structured logs: JSON lines with the ids of the ticket, message and source they are about."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madoguchi.app import Desk
from madoguchi.config import ConfigError, load_settings
from madoguchi.ingest.inbound import Inbound
from madoguchi.logs import JsonFormatter
from madoguchi.ticketing.outbox import OutboxSender
from tests.conftest import make_settings
from tests.smtp_server import SmtpTestServer
from tests.test_health import inquiry, register_customer

ROOT = Path(__file__).resolve().parent.parent


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_time_level_logger_message_and_the_ids_given() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("madoguchi.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        before = datetime.now(UTC)
        log.warning("%s を受け付けました\n二行目", "T-2026-000001",
                    extra={"ticket": "T-2026-000001", "source": "support-mailbox",
                           "source_ref": "INBOX;uid=42", "message_id": "<a@b>",
                           "color_message": "noise from a library"})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("it failed", extra={"source_ref": Path("/spool/x.pdf")})
    finally:
        log.removeHandler(handler)
    first, second = _json_lines(out.getvalue())
    assert out.getvalue().count("\n") == 2  # one object per line, newlines escaped
    assert first == {
        "time": first["time"], "level": "WARNING", "logger": "madoguchi.test.json",
        "message": "T-2026-000001 を受け付けました\n二行目", "ticket": "T-2026-000001",
        "source": "support-mailbox", "source_ref": "INBOX;uid=42", "message_id": "<a@b>",
    }
    moment = datetime.fromisoformat(str(first["time"]))
    assert moment.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC)
    assert "を受け付けました" in out.getvalue()  # Japanese as text, not \\u escapes
    assert second["level"] == "ERROR" and second["source_ref"] == "/spool/x.pdf"
    assert "ZeroDivisionError" in str(second["exc_info"])


def test_log_format_is_text_or_json_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(None).log_format == "text"
    monkeypatch.setenv("MADOGUCHI_LOG_FORMAT", "json")
    assert load_settings(None).log_format == "json"
    monkeypatch.setenv("MADOGUCHI_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(None)


def test_the_command_line_logs_json_with_the_pipelines_ids(
    database_url: str, tmp_path: Path
) -> None:
    desk = Desk.open(make_settings(database_url, tmp_path))
    try:
        register_customer(desk)
    finally:
        desk.close()
    mail = tmp_path / "inquiry.eml"
    mail.write_bytes(inquiry("ログインできません", received=datetime.now(UTC)))
    config = tmp_path / "desk.toml"
    config.write_text(f'database_url = "{database_url}"\n'
                      f'storage_dir = "{tmp_path / "storage"}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADOGUCHI_")}
    done = subprocess.run(
        [sys.executable, "-m", "madoguchi", "--config", str(config), "ingest", str(mail)],
        env={**env, "MADOGUCHI_LOG_FORMAT": "json"}, cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    number = done.stdout.split()[-1]
    assert done.stdout.startswith(f"{mail}: created T-")
    lines = _json_lines(done.stderr)  # every line of the log is a JSON object
    [line] = [x for x in lines if x["logger"] == "madoguchi.ingest.pipeline"]
    assert line["level"] == "INFO"
    assert (line["source"], line["source_ref"], line["ticket"], line["outcome"]) == (
        "cli", str(mail), number, "created"
    )


def test_outbox_log_lines_name_the_ticket(
    desk: Desk, tmp_path: Path, smtp_server: SmtpTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_customer(desk)
    [outcome] = desk.pipeline.ingest_batch(
        [Inbound(inquiry("ログインできません", received=datetime.now(UTC)), "test", "1")]
    )
    settings = make_settings(desk.settings.database_url, tmp_path,
                             smtp=smtp_server.smtp_settings())
    caplog.set_level(logging.INFO, logger="madoguchi.outbox")
    report = OutboxSender(settings, desk.factory).send_due()
    assert len(report.sent) == 1 and len(smtp_server.messages) == 1  # the acknowledgement
    [sent] = [r for r in caplog.records if r.getMessage().endswith(": sent")]
    assert sent.__dict__["ticket"] == outcome.ticket_number
    assert sent.__dict__["outbox_id"] == report.sent[0]


def test_outbox_failure_log_line_names_the_ticket(
    desk: Desk, tmp_path: Path, smtp_permfail_server: SmtpTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_customer(desk)
    [outcome] = desk.pipeline.ingest_batch(
        [Inbound(inquiry("ログインできません", received=datetime.now(UTC)), "test", "1")]
    )
    settings = make_settings(desk.settings.database_url, tmp_path,
                             smtp=smtp_permfail_server.smtp_settings())
    caplog.set_level(logging.INFO, logger="madoguchi.outbox")
    report = OutboxSender(settings, desk.factory).send_due()
    assert len(report.failed) == 1  # 550: refused for good
    [failed] = [r for r in caplog.records if ": failed: " in r.getMessage()]
    assert failed.levelno == logging.ERROR
    assert failed.__dict__["ticket"] == outcome.ticket_number
    assert failed.__dict__["outbox_id"] == report.failed[0]
