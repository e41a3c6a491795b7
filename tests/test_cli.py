"""The command line as an operator uses it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from madoguchi.app import Desk
from madoguchi.cli import app
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Channel
from tests.mailfactory import make_mail

DEMO = Path(__file__).resolve().parent.parent / "demo"


@pytest.fixture
def env(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> Desk:
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", desk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(desk.settings.storage_dir))
    return desk


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("received", "starts", "due"),
    [
        # Monday 2026-11-23 is 勤労感謝の日: the next business day's close.
        ("2026-11-23T10:00:00+09:00", "2026-11-24T09:30:00+09:00", "2026-11-24T17:30:00+09:00"),
        # Tuesday at lunch, before the 17:00 cut-off: that day's close.
        ("2026-11-24T03:30:00Z", "2026-11-24T13:00:00+09:00", "2026-11-24T17:30:00+09:00"),
        # Tuesday 17:10, after the cut-off: Wednesday's close.
        ("2026-11-24T17:10:00+09:00", "2026-11-24T17:10:00+09:00", "2026-11-25T17:30:00+09:00"),
        # New Year's Eve in New York is already January 1 in Tokyo: closed until 1/4.
        ("2026-12-31T12:00:00-05:00", "2027-01-04T09:30:00+09:00", "2027-01-04T17:30:00+09:00"),
    ],
)
def test_sla_due_prints_when_work_starts_and_when_it_is_due(
    received: str, starts: str, due: str
) -> None:
    out = json.loads(run("sla", "due", received, "--format", "json"))
    assert out["starts_at"] == starts and out["due_at"] == due
    assert datetime.fromisoformat(out["received_at"]) == datetime.fromisoformat(received)


def test_sla_due_uses_the_contracts_override(env: Desk) -> None:
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     env.settings.support_number)
    with transaction(env.factory) as s:
        import_rows(s, rows)
        from sqlalchemy import select

        from madoguchi.ticketing.models import Contract

        s.scalars(select(Contract).where(Contract.support_number == "203100010008")).one(
        ).sla_override = {"calendar": "24x7", "policy": "business_hours", "hours": 4}
    out = json.loads(run("sla", "due", "2026-11-28T22:00:00+09:00", "--format", "json",
                         "--support-number", "2031-0001-0008"))
    assert out["due_at"] == "2026-11-29T02:00:00+09:00"


def test_sla_due_refuses_a_moment_without_offset() -> None:
    result = CliRunner().invoke(app, ["sla", "due", "2026-11-24T10:00:00"])
    assert result.exit_code == 2 and "offset" in result.output


def test_tickets_list_sorts_by_due_and_marks_overdue(env: Desk) -> None:
    # A registered contact of a contract in force whenever the test runs: only
    # inquiries in scope are given a due time.
    rows = read_rows(
        "support_number,company,department,address,product,period_start,period_end,"
        "contact_name,contact_email,contact_phone,contact_fax\n"
        "2031-0001-0008,株式会社さくら商事,,,ChatLuck,2000-01-01,2199-12-31,"
        "山田 太郎,yamada@sakura.example.jp,,\n", env.settings.support_number)
    with transaction(env.factory) as s:
        import_rows(s, rows)
    now = datetime.now(UTC)
    body = "サポートサービス番号 2031-0001-0008\n質問です。"
    env.pipeline.ingest_batch([
        Inbound(make_mail(message_id="late@x", subject="古い問い合わせ", body=body,
                          from_=("山田 太郎", "yamada@sakura.example.jp")), "t", "1",
                received_at=now - timedelta(days=20)),
        Inbound(make_mail(message_id="new@x", subject="新しい問い合わせ", body=body,
                          from_=("山田 太郎", "yamada@sakura.example.jp")), "t", "2",
                received_at=now),
    ])
    lines = run("tickets", "list").splitlines()
    rows = [line for line in lines if "問い合わせ" in line]
    assert "古い問い合わせ" in rows[0] and rows[0].startswith("!")
    assert "新しい問い合わせ" in rows[1] and not rows[1].startswith("!")
    record = json.loads(run("export").splitlines()[0])
    assert record["first_response_due"] is not None


def _customers(desk: Desk) -> None:
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     desk.settings.support_number)
    with transaction(desk.factory) as s:
        import_rows(s, rows)


def test_triage_assign_numbers_a_fax_and_notes_it_in_the_command_lines_name(env: Desk) -> None:
    from sqlalchemy import select

    from madoguchi.ticketing.actions import COMMAND_LINE
    from madoguchi.ticketing.models import Direction, Flag, Message
    from tests.test_web_kit import YAMADA, make_ticket, ticket

    _customers(env)
    number = make_ticket(env, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,),
                         text=f"{YAMADA[0]}\n質問です。")
    assert run("triage", "assign", number.lower(), "2031 0001 0008").strip() == (
        f"{number}: 203100010008, flags: -"
    )
    t = ticket(env, number)
    assert t.contract_id is not None and t.contact_id is not None and t.flag_names == []
    with env.factory() as s:
        note = s.scalars(select(Message).where(Message.direction == Direction.NOTE)).one()
    assert note.sender_name == COMMAND_LINE and note.author_id is None
    assert "2031-0001-0008 と確認しました" in note.text


def test_triage_assign_refuses_an_unknown_ticket_or_a_bad_number(env: Desk) -> None:
    from madoguchi.ticketing.models import Flag
    from tests.test_web_kit import make_ticket

    number = make_ticket(env, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,))
    result = CliRunner().invoke(app, ["triage", "assign", "T-1999-000001", "2031-0001-0008"])
    assert result.exit_code == 1 and "no ticket T-1999-000001" in result.output
    result = CliRunner().invoke(app, ["triage", "assign", number, "2031-0001-0009"])
    assert result.exit_code == 1
    assert "'2031-0001-0009' is not a valid support service number" in result.output


def test_a_merged_tickets_number_leads_the_cli_to_the_ticket_it_went_into(env: Desk) -> None:
    from madoguchi.ticketing.lookup import ticket_by_number
    from madoguchi.ticketing.models import Flag
    from tests.test_web_kit import make_ticket, ticket

    _customers(env)
    old = make_ticket(env, subject="間違えて開いたFAX", channel=Channel.FAX)
    right = make_ticket(env, subject="正しいFAX", channel=Channel.FAX,
                        flags=(Flag.UNREADABLE_FAX,))
    with transaction(env.factory) as s:
        merged, into = (ticket_by_number(s, n, follow_merges=False) for n in (old, right))
        assert merged is not None and into is not None
        merged.merged_into_id = into.id
    assert run("tickets", "show", old).startswith(f"{right}  [open]  正しいFAX")
    assert run("triage", "assign", old, "2031-0001-0008").startswith(f"{right}: 203100010008")
    assert ticket(env, right).contract_id is not None
    assert ticket(env, old).contract_id is None
