"""The triage page: unreadable FAXes get their number, flagged mail is accepted or set aside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from madoguchi.cli import app as cli_app
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import (
    Channel,
    Contact,
    ContactEmail,
    Contract,
    Direction,
    Flag,
    Message,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.rules.entitlement import Entitlement
from madoguchi.ticketing.support_number import luhn_check_digit
from madoguchi.ticketing.triage import ACCEPT_CLEARS, accepted_by_staff
from tests.test_web_kit import (
    SAKURA_NUMBER,
    YAMADA,
    Staff,
    WebDesk,
    ingest_mail,
    make_ticket,
    png,
    ticket,
)

STRANGER = ("見知らぬ 人", "someone@other.example.jp")

pytest_plugins = ["tests.test_web_kit"]


def _fax(wd: WebDesk, text: str = "ライセンスキーの再発行をお願いします。",
         received_at: datetime | None = None) -> str:
    return make_ticket(wd.desk, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,), page=png(),
                       subject="FAX: ライセンスについて", text=text, received_at=received_at)


def _contact_id(wd: WebDesk, email: str) -> int:
    with wd.desk.factory() as s:
        return s.scalars(select(Contact.id).join(ContactEmail)
                         .where(ContactEmail.email == email)).one()


def test_an_unreadable_fax_is_shown_with_its_page_and_text_until_its_number_is_entered(
    webdesk: WebDesk, agent: Staff
) -> None:
    # The page names its sender, a registered contact of the contract (as the form asks).
    number = _fax(webdesk, f"{YAMADA[0]}\nライセンスキーの再発行をお願いします。")
    page = agent.get("/triage").text
    section = page.split('id="triage-' + number)[1].split("</article>")[0]
    assert '<img src="/attachments/' in section and "/view" in section
    assert "ライセンスキーの再発行をお願いします。" in section
    # The reader's problem in the desk's words, no English.
    assert "サポートサービス番号が見つかりません" in section
    assert "no support service number found" not in section
    assert 'list="contracts"' in section and "株式会社さくら商事" in page  # the contract picker

    # A wrong check digit: the page again, the number as typed, the reason beside its field.
    r = agent.post(f"/tickets/{number}/support-number",
                   {"support_number": "2031-0001-0009", "back": "triage"})
    assert r.status_code == 400
    form = r.text.split('id="triage-' + number)[1].split("</form>")[0]
    assert 'value="2031-0001-0009"' in form and 'aria-invalid="true"' in form
    assert "チェックディジット" in form.split('class="field-error"')[1]
    assert '<p class="flash error"' not in r.text
    assert ticket(webdesk.desk, number).flag_names == ["unreadable_fax"]

    agent.post(f"/tickets/{number}/support-number",
               {"support_number": "２０３１－０００１－０００８", "back": "triage"})
    t = ticket(webdesk.desk, number)
    assert t.flag_names == [] and t.contract_id is not None and t.customer_id is not None
    assert t.contact_id == _contact_id(webdesk, YAMADA[1])
    assert t.support_number == SAKURA_NUMBER.replace("-", "")
    page = agent.get("/triage").text
    assert 'id="triage-' + number not in page and "確認待ちのFAXはありません" in page
    assert "2031-0001-0008 と確認しました" in agent.get(f"/tickets/{number}").text


def test_a_fax_page_that_names_no_registered_contact_is_flagged_as_the_pipeline_would(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = _fax(webdesk)
    agent.post(f"/tickets/{number}/support-number", {"support_number": SAKURA_NUMBER})
    t = ticket(webdesk.desk, number)
    assert t.flag_names == ["unregistered_sender"] and t.contact_id is None
    assert t.contract_id is not None and t.customer_id is not None
    # Out of the FAX section, into the flagged one: staff accept it or set it aside there.
    section = agent.get("/triage").text.split("確認が必要なお問い合わせ")[1]
    assert number in section and "未登録の送信者" in section


def test_a_fax_number_of_no_contract_moves_to_the_flagged_section(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = _fax(webdesk)
    unknown = "20319999000" + luhn_check_digit("20319999000")
    agent.post(f"/tickets/{number}/support-number", {"support_number": unknown})
    # A number of no contract, and so no contact the page could name (as the pipeline flags it).
    assert ticket(webdesk.desk, number).flag_names == ["unknown_support_number",
                                                       "unregistered_sender"]
    section = agent.get("/triage").text.split("確認が必要なお問い合わせ")[1]
    assert number in section and "不明なサポート番号" in section


def test_mail_from_a_stranger_is_accepted_as_the_customer_and_the_sender_registered(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, from_=STRANGER, subject="導入後の質問")
    assert ticket(webdesk.desk, number).flag_names == ["unregistered_sender"]
    section = agent.get("/triage").text.split("確認が必要なお問い合わせ")[1]
    assert number in section and "未登録の送信者" in section and STRANGER[1] in section

    r = agent.post(f"/tickets/{number}/accept", {"support_number": "2031-0002-0008",
                                                 "back": "triage"})
    assert r.status_code == 400 and 'value="2031-0002-0008"' in r.text
    assert "正しくありません" in r.text.split('class="field-error"')[1]
    agent.post(f"/tickets/{number}/accept", {"support_number": SAKURA_NUMBER,
                                             "register_sender": "1", "back": "triage"})
    t = ticket(webdesk.desk, number)
    assert t.flag_names == [] and t.contract_id is not None and t.contact_id is not None
    with webdesk.desk.factory() as s:
        contact = s.scalars(select(Contact).join(ContactEmail)
                            .where(ContactEmail.email == STRANGER[1])).one()
        assert contact.name == STRANGER[0] and contact.customer_id == t.customer_id
    assert f"triage-{number}" not in agent.get("/triage").text
    # Registered now: the sender's next inquiry is not flagged.
    again = ingest_mail(webdesk.desk, from_=STRANGER, subject="別の質問")
    assert ticket(webdesk.desk, again).flag_names == []


def test_mail_under_an_expired_contract_can_be_accepted_without_registering(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(
        webdesk.desk, from_=("鈴木 次郎", "suzuki@hikari-soft.example.jp"),
        body="サポートサービス番号: 2031-0003-0006\n\n更新前ですが質問です。\n",
    )
    assert ticket(webdesk.desk, number).flag_names == ["contract_expired"]
    agent.post(f"/tickets/{number}/accept", {"support_number": "2031-0003-0006"})
    assert ticket(webdesk.desk, number).flag_names == []


def test_out_of_scope_needs_a_reason_and_closes_the_ticket_with_it(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, from_=STRANGER, subject="営業のご案内")
    r = agent.post(f"/tickets/{number}/out-of-scope", {"reason": "  ", "back": "triage"})
    assert "理由を入力してください" in agent.get(r.headers["location"]).text
    agent.post(f"/tickets/{number}/out-of-scope", {"reason": "営業メールのため", "back": "triage"})
    t = ticket(webdesk.desk, number)
    assert t.status == TicketStatus.CLOSED and t.flag_names == ["unregistered_sender"]
    with webdesk.desk.factory() as s:
        note = s.scalars(select(Message).where(Message.direction == Direction.NOTE)).one()
    assert "営業メールのため" in note.text and f"triage-{number}" not in agent.get("/triage").text


def test_the_web_and_the_command_line_give_a_fax_the_same_ticket_state(
    webdesk: WebDesk, agent: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = f"{YAMADA[0]}\nライセンスキーの再発行をお願いします。"
    # Both arrived at the same moment, so their deadlines can be compared whatever the hour.
    received = datetime.now(UTC) - timedelta(hours=1)
    by_web, by_cli = _fax(webdesk, text, received), _fax(webdesk, text, received)
    agent.post(f"/tickets/{by_web}/support-number", {"support_number": SAKURA_NUMBER})
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", webdesk.settings.database_url)
    monkeypatch.setenv("MADOGUCHI_STORAGE_DIR", str(webdesk.settings.storage_dir))
    result = CliRunner().invoke(cli_app, ["triage", "assign", by_cli, SAKURA_NUMBER])
    assert result.exit_code == 0, result.output

    def state(number: str) -> tuple[object, ...]:
        t = ticket(webdesk.desk, number)
        with webdesk.desk.factory() as s:
            notes = s.scalars(select(Message.text).join(Ticket)
                              .where(Ticket.number == number,
                                     Message.direction == Direction.NOTE)).all()
        return (t.support_number, t.contract_id, t.customer_id, t.contact_id, t.flag_names,
                t.work_starts_at, t.first_response_due, notes)

    assert state(by_web) == state(by_cli)


def test_accepting_takes_the_senders_contact_as_the_rule_decides_and_the_contracts_terms(
    webdesk: WebDesk, agent: Staff
) -> None:
    suzuki = ("鈴木 次郎", "suzuki@hikari-soft.example.jp")
    number = ingest_mail(webdesk.desk, from_=suzuki,
                         body="サポートサービス番号: 2031-0003-0006\n\n更新前ですが質問です。\n")
    with transaction(webdesk.desk.factory) as s:
        contract = s.scalars(select(Contract)
                             .where(Contract.support_number == "203100030006")).one()
        contract.sla_override = {"calendar": "24x7", "policy": "business_hours", "hours": 2}
    # Out of scope until accepted: nothing is due, so nothing is reminded or escalated.
    assert ticket(webdesk.desk, number).first_response_due is None
    before = datetime.now(UTC)
    agent.post(f"/tickets/{number}/accept", {"support_number": "2031-0003-0006"})
    after = datetime.now(UTC)
    t = ticket(webdesk.desk, number)
    assert t.flag_names == [] and t.contact_id == _contact_id(webdesk, suzuki[1])
    assert t.first_response_due is not None and t.work_starts_at is not None
    # The contract's terms (24x7, 2 business hours), counted from the acceptance.
    assert before <= t.work_starts_at <= after
    assert t.first_response_due - t.work_starts_at == timedelta(hours=2)


def test_staff_accepting_overrides_only_the_review_flags_of_the_rules_decision() -> None:
    decision = Entitlement(1, 2, None, frozenset({Flag.UNREGISTERED_SENDER,
                                                  Flag.CONTRACT_EXPIRED}))
    assert accepted_by_staff(decision) == Entitlement(1, 2, None, frozenset())
    assert {Flag.UNREGISTERED_SENDER, Flag.CONTRACT_EXPIRED, Flag.CONTRACT_NOT_STARTED,
                             Flag.UNKNOWN_SUPPORT_NUMBER} == ACCEPT_CLEARS
