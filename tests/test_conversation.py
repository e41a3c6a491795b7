"""After the first response: a customer's reply wakes the ticket, the daemon keeps the
next-response, pending and silence dates once each, and the history tells what happened.

On SQLite and PostgreSQL (``database_url``), through the pipeline, the web desk, the
daemon's pass and the command line.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from madoguchi.cli import app
from madoguchi.config import Settings
from madoguchi.daemon import Daemon
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing import actions
from madoguchi.ticketing.conversation_models import TicketEvent
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import Contract, Flag, OutboxMessage, StaffUser, Ticket
from madoguchi.ticketing.vocabulary import ConversationState as State
from tests.conftest import make_settings
from tests.mailfactory import make_mail
from tests.test_web_kit import (
    JST,
    YAMADA,
    Staff,
    WebDesk,
    ingest_mail,
    make_ticket,
    ticket,
)

pytest_plugins = ["tests.test_web_kit"]

DESK = "support@example.co.jp"
BOSS = "boss@sakura-shoji.example.jp"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, desk_address=DESK, daemon={
        "team_address": "team@example.co.jp", "supervisor_address": "chief@example.co.jp"})


def _form(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, name
    return found.group(1)


def _follow_up(webdesk: WebDesk, number: str, when: datetime, body: str,
               subject: str = "Re: ログインできません") -> None:
    with webdesk.desk.factory() as s:
        ours = s.scalars(select(OutboxMessage.message_id).where(
            OutboxMessage.kind == "reply")).first()
    raw = make_mail(subject=subject, body=body, from_=YAMADA, charset="utf-8", date=when,
                    message_id=f"f{when.timestamp():.0f}@sakura-shoji.example.jp",
                    in_reply_to=ours, references=[ours] if ours else ())
    outcome = webdesk.desk.pipeline.ingest(Inbound(raw, "test", "ref", received_at=when))
    assert outcome.ticket_number == number, outcome


def _answer(agent: Staff, number: str, then: str = "pending", **extra: str) -> None:
    page = agent.get(f"/tickets/{number}").text
    r = agent.post(f"/tickets/{number}/reply", {
        "to": _form(page, "to"), "cc": _form(page, "cc"), "body": "ご確認ください。",
        "quote": "1", "reply_to": _form(page, "reply_to"),
        "idempotency_key": _form(page, "idempotency_key"), "then_status": then, **extra})
    assert r.status_code == 303


def _history(webdesk: WebDesk, number: str) -> list[str]:
    with webdesk.desk.factory() as s:
        t = ticket_by_number(s, number, follow_merges=False)
        assert t is not None
        return list(s.scalars(select(TicketEvent.what).where(TicketEvent.ticket_id == t.id)
                              .order_by(TicketEvent.id)))


def test_a_customer_reply_wakes_a_pending_ticket_with_its_contracts_next_response_due(
    webdesk: WebDesk, agent: Staff,
) -> None:
    with transaction(webdesk.desk.factory) as s:
        contract = s.scalars(select(Contract).where(
            Contract.support_number == "203100010008")).one()
        contract.sla_override = {"next_response": {"calendar": "24x7", "policy":
                                                   "business_hours", "hours": 2}}
    number = ingest_mail(webdesk.desk, subject="ログインできません",
                         message_id="first@sakura-shoji.example.jp")
    later = make_ticket(webdesk.desk, subject="別件", due=datetime.now(UTC) + timedelta(hours=5))
    _answer(agent, number, then="pending")
    assert ticket(webdesk.desk, number).state is State.PENDING
    when = datetime.now(UTC).replace(microsecond=0)
    _follow_up(webdesk, number, when, "至急お願いします。まだログインできません。")

    t = ticket(webdesk.desk, number)
    assert (t.state, t.status.value) == (State.CUSTOMER_REPLIED, "open")
    assert t.next_response_due == when + timedelta(hours=2)  # the contract's own terms
    assert t.response_due == t.next_response_due and Flag.URGENT.value in t.flag_names
    page = agent.get("/queue").text
    rows = re.findall(r'<tr class="sla-[a-z]+"[^>]*>(.*?)</tr>', page, re.S)
    assert number in rows[0] and later in rows[1]  # due in 2 h, before the other's 5 h
    assert "お客様から返信あり" in rows[0] and "待ち" in rows[0] and "至急" in rows[0]
    history = _history(webdesk, number)
    assert any(h.startswith("状態: 回答済・返信待ち → 保留") or h.startswith("状態: 新規 → 回答済")
               for h in history)
    assert any(h.startswith("状態: 保留 → お客様から返信あり") for h in history), history
    assert any(h.startswith("フラグ: 至急") for h in history)
    # No trusted mail server here: the follow-up's sender is unverified, and that is told too.
    assert any(h.startswith("フラグ: 送信者未確認") for h in history)
    # Answering stops the next-response clock and answers the urgent flag.
    _answer(agent, number, then="")
    t = ticket(webdesk.desk, number)
    assert (t.state, t.next_response_due, t.response_due) == (State.WAITING, None, None)
    assert Flag.URGENT.value not in t.flag_names


def test_the_thread_shows_history_lines_and_the_reply_keeps_the_customers_cc(
    webdesk: WebDesk, agent: Staff,
) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません", cc=[BOSS],
                         to=[DESK], message_id="cc@sakura-shoji.example.jp")
    page = agent.get(f"/tickets/{number}").text
    assert _form(page, "to") == YAMADA[1] and _form(page, "cc") == BOSS  # the desk dropped
    with webdesk.desk.factory() as s:
        me = s.scalars(select(StaffUser).where(StaffUser.login == "agent")).one()
    r = agent.post(f"/tickets/{number}/assign", {"assignee": str(me.id)})
    assert r.status_code == 303
    page = agent.get(f"/tickets/{number}").text
    assert re.search(r'class="history-line">.*佐藤 彩香.*担当者: 未割当 → 佐藤 彩香', page)
    assert "状態: 新規 → 対応中" in page


def test_pending_with_a_date_is_reminded_once_and_comes_back_to_the_desk(
    webdesk: WebDesk, agent: Staff,
) -> None:
    number = ingest_mail(webdesk.desk, subject="保留の件")
    soon = (datetime.now(JST) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    r = agent.post(f"/tickets/{number}/status", {"status": "pending", "pending_until": soon})
    assert r.status_code == 303
    t = ticket(webdesk.desk, number)
    assert t.state is State.PENDING and t.pending_until is not None
    past = agent.post(f"/tickets/{number}/status", {"status": "pending",
                                                   "pending_until": "2020-01-01T10:00"})
    assert "これから先の日時" in agent.get(past.headers["location"]).text
    daemon = Daemon(webdesk.desk)
    assert "pending reminders 0" in daemon.run_once().conversation  # not yet
    with transaction(webdesk.desk.factory) as s:  # the date comes
        found = ticket_by_number(s, number, follow_merges=False)
        assert found is not None
        found.pending_until = datetime.now(UTC) - timedelta(seconds=1)
    assert "pending reminders 1" in daemon.conversation_sweep()
    assert "pending reminders 0" in daemon.conversation_sweep()  # once
    t = ticket(webdesk.desk, number)
    assert t.state is State.OPEN and t.pending_until is None
    with webdesk.desk.factory() as s:
        kinds = [o.dedupe_key.split(":")[0] for o in s.scalars(select(OutboxMessage))]
    assert kinds.count("pending") == 1
    assert any("保留の再通知日時" in h for h in _history(webdesk, number))


def test_next_response_reminder_and_escalation_are_queued_once_each(
    webdesk: WebDesk, agent: Staff,
) -> None:
    number = ingest_mail(webdesk.desk, subject="返信の件")
    _answer(agent, number, then="")
    _follow_up(webdesk, number, datetime.now(UTC), "追加で質問です。")
    daemon = Daemon(webdesk.desk)
    with transaction(webdesk.desk.factory) as s:  # within the reminder's lead
        t = ticket_by_number(s, number, follow_merges=False)
        assert t is not None and t.state is State.CUSTOMER_REPLIED
        t.customer_replied_at = datetime.now(UTC) - timedelta(days=3)
        t.next_response_due = datetime.now(UTC) + timedelta(minutes=1)
    assert "next-response reminders 1" in daemon.conversation_sweep()
    assert "next-response reminders 0" in daemon.conversation_sweep()
    with transaction(webdesk.desk.factory) as s:  # overdue
        t = ticket_by_number(s, number, follow_merges=False)
        assert t is not None
        t.next_response_due = datetime.now(UTC) - timedelta(minutes=1)
    assert "escalations 1" in daemon.conversation_sweep()
    assert "escalations 0" in daemon.run_once().conversation
    with webdesk.desk.factory() as s:
        rows = s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind.in_(["reminder", "escalation"]))).all()
    assert sorted((o.kind, o.rcpt_to[0]) for o in rows) == [
        ("escalation", "chief@example.co.jp"), ("reminder", "team@example.co.jp")]
    assert sum("エスカレーション: 次回回答期限" in h for h in _history(webdesk, number)) == 1


def test_a_solved_ticket_silent_for_its_business_days_is_closed_once(
    webdesk: WebDesk, agent: Staff,
) -> None:
    number = ingest_mail(webdesk.desk, subject="解決の件")
    fresh = ingest_mail(webdesk.desk, subject="解決したばかり")
    for n in (number, fresh):
        assert agent.post(f"/tickets/{n}/status", {"status": "solved"}).status_code == 303
    with transaction(webdesk.desk.factory) as s:
        t = ticket_by_number(s, number, follow_merges=False)
        assert t is not None and t.state is State.SOLVED
        t.solved_at = datetime.now(UTC) - timedelta(days=14)  # > 5 business days
    daemon = Daemon(webdesk.desk)
    assert "auto-closed 1" in daemon.conversation_sweep()
    assert "auto-closed 0" in daemon.conversation_sweep()
    assert ticket(webdesk.desk, number).state is State.CLOSED
    assert ticket(webdesk.desk, number).closed_at is not None
    assert ticket(webdesk.desk, fresh).state is State.SOLVED
    assert any("自動クローズ" in h for h in _history(webdesk, number))


def test_export_and_tickets_show_carry_the_state_next_response_due_and_history(
    webdesk: WebDesk, agent: Staff, monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = ingest_mail(webdesk.desk, subject="エクスポートの件")
    _answer(agent, number, then="")
    _follow_up(webdesk, number, datetime.now(UTC), "ありがとうございます。もう一点。")
    quiet = ingest_mail(webdesk.desk, subject="静かな件")
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", webdesk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(webdesk.settings.storage_dir))
    result = CliRunner().invoke(app, ["export", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    records = {r["number"]: r for r in map(json.loads, result.output.splitlines())}
    mine, other = records[number], records[quiet]
    assert mine["state"] == "customer_replied" and mine["status"] == "open"
    assert datetime.fromisoformat(mine["next_response_due"]) == ticket(
        webdesk.desk, number).next_response_due
    assert all(set(h) == {"at", "by", "what"} for h in mine["history"])
    assert [h["by"] for h in mine["history"][:1]] == ["佐藤 彩香"]
    assert mine["history"][-1]["by"] == "madoguchi"
    assert datetime.fromisoformat(mine["history"][0]["at"]).tzinfo is not None
    assert (other["state"], other["next_response_due"], other["history"]) == ("new", None, [])
    shown = CliRunner().invoke(app, ["tickets", "show", number])
    assert shown.exit_code == 0, shown.output
    assert "state:          customer_replied (お客様から返信あり)" in shown.output
    assert "next response:  due" in shown.output and "--- history" in shown.output
    assert "佐藤 彩香: 状態: 新規 → 回答済・返信待ち" in shown.output


def test_history_records_merge_and_triage_with_who_did_it(webdesk: WebDesk) -> None:
    first = ingest_mail(webdesk.desk, subject="統合元")
    second = ingest_mail(webdesk.desk, subject="統合先")
    now = datetime.now(UTC)
    with transaction(webdesk.desk.factory) as s:
        source = ticket_by_number(s, first, follow_merges=False)
        assert source is not None
        actions.merge(s, source, second, None, now)
    assert any(h.startswith(f"統合: {second} に統合") for h in _history(webdesk, first))
    assert any(h.startswith(f"統合: {first} を") for h in _history(webdesk, second))
    assert ticket(webdesk.desk, first).state is State.CLOSED
    with webdesk.desk.factory() as s:
        by = s.scalars(select(TicketEvent.by).join(Ticket, Ticket.id == TicketEvent.ticket_id)
                       .where(Ticket.number == second)).all()
    assert set(by) == {actions.COMMAND_LINE}


def test_privacy_erase_takes_the_persons_name_out_of_the_history(
    webdesk: WebDesk, agent: Staff, monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = ingest_mail(webdesk.desk, subject="消去の件")
    _answer(agent, number, then="")
    _follow_up(webdesk, number, datetime.now(UTC), "追伸です。")
    assert any(YAMADA[0] in h for h in _history(webdesk, number))
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", webdesk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(webdesk.settings.storage_dir))
    result = CliRunner().invoke(app, ["privacy", "erase", "--email", YAMADA[1], "--yes"])
    assert result.exit_code == 0, result.output
    history = _history(webdesk, number)
    assert history and not any(YAMADA[0] in h or YAMADA[1] in h for h in history)
