"""Customers, contracts and contacts in the web desk: list, view, edit, CSV import."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from madoguchi.ticketing.models import Contact, Contract, Customer
from tests.test_web_kit import (
    Staff,
    WebDesk,
    ingest_mail,
)

HEADER = ("support_number,company,department,address,product,period_start,period_end,"
          "contact_name,contact_email,contact_phone,contact_fax\n")

pytest_plugins = ["tests.test_web_kit"]


def _ids(wd: WebDesk) -> tuple[int, int, int]:
    with wd.desk.factory() as s:
        customer = s.scalars(select(Customer).where(Customer.company == "株式会社さくら商事")).one()
        contract = s.scalars(select(Contract).where(Contract.customer_id == customer.id)).one()
        contact = s.scalars(select(Contact).where(Contact.name == "山田 太郎")).one()
        return customer.id, contract.id, contact.id


def test_customers_are_listed_searched_and_shown_with_contracts_contacts_and_tickets(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, subject="帳票の件")
    listing = agent.get("/customers").text
    for company in ("株式会社さくら商事", "有限会社みなと製作所", "合同会社ひかりソフト"):
        assert company in listing
    assert "期間外" in listing  # ひかりソフト's contract ended
    found = agent.get("/customers?q=みなと").text
    assert "有限会社みなと製作所" in found and "さくら" not in found
    assert "有限会社みなと製作所" in agent.get("/customers?q=2031-0002-0007").text
    customer, _contract, _contact = _ids(webdesk)
    page = agent.get(f"/customers/{customer}").text
    for text in ("2031-0001-0008", "ChatLuck", "2026-04-01 〜 2027-03-31", "山田 太郎",
                 "髙橋 花子", "takahashi@sakura-shoji.example.jp", number):
        assert text in page
    assert "/edit" not in page  # an agent reads only
    assert agent.get("/customers/99999").status_code == 404


def test_a_supervisor_edits_customer_contract_and_contact(webdesk: WebDesk, boss: Staff) -> None:
    customer, contract, contact = _ids(webdesk)
    assert "編集" in boss.get(f"/customers/{customer}").text
    r = boss.post(f"/customers/{customer}/edit", {"company": "株式会社さくら商事HD",
                                                  "department": "情報システム本部",
                                                  "address": "東京都千代田区"})
    assert r.status_code == 303 and "保存しました" in boss.get(r.headers["location"]).text
    r = boss.post(f"/customers/{customer}/edit", {"company": "有限会社みなと製作所"})
    assert r.status_code == 400 and "別の顧客で使われています" in r.text
    r = boss.post(f"/contracts/{contract}/edit", {"product": "ChatLuck Pro", "environment":
                                                  "RHEL 9 / Apache 2.4 / 300ユーザー",
                                                  "period_start": "2026-04-01",
                                                  "period_end": "2028-03-31"})
    assert r.status_code == 303
    r = boss.post(f"/contracts/{contract}/edit", {"period_start": "2026-04-01",
                                                  "period_end": "2025-01-01"})
    assert r.status_code == 400 and "開始日より後" in r.text
    r = boss.post(f"/contacts/{contact}/edit", {"name": "山田 太郎", "phone": "03-0000-0000",
                                                "fax": "", "emails":
                                                "Yamada@Sakura-Shoji.example.jp\nt.yamada@sakura-shoji.example.jp"})
    assert r.status_code == 303
    r = boss.post(f"/contacts/{contact}/edit", {"name": "山田 太郎", "emails": "not-an-address"})
    assert r.status_code == 400 and "メールアドレスが正しくありません" in r.text
    with webdesk.desk.factory() as s:
        c = s.get_one(Customer, customer)
        assert (c.company, c.department) == ("株式会社さくら商事HD", "情報システム本部")
        k = s.get_one(Contract, contract)
        assert (k.product, k.period_end) == ("ChatLuck Pro", date(2028, 3, 31))
        p = s.get_one(Contact, contact)
        assert sorted(e.email for e in p.emails) == [
            "t.yamada@sakura-shoji.example.jp", "yamada@sakura-shoji.example.jp"]
        assert p.phone == "03-0000-0000"


def test_the_csv_import_reports_every_bad_line_or_imports_everything(
    webdesk: WebDesk, boss: Staff
) -> None:
    bad = HEADER + (
        "2031-0004-0005,株式会社あおば,総務部,仙台市,ChatLuck,2026-01-01,2026-12-31,"
        "青葉 一郎,aoba@aoba.example.jp,022-000-0000,\n"
        "9999-9999-9999,株式会社わかば,総務部,札幌市,ChatLuck,2026-01-01,2026-12-31,"
        "若葉 二郎,not-an-address,,\n"
    )
    r = boss.post("/customers/import", files={"file": ("c.csv", bad.encode(), "text/csv")})
    assert r.status_code == 400 and "3行目" in r.text
    assert "株式会社あおば" not in boss.get("/customers").text
    good = HEADER + (
        "2031-0004-0005,株式会社あおば,総務部,仙台市,ChatLuck,2026-01-01,2026-12-31,"
        "青葉 一郎,aoba@aoba.example.jp,022-000-0000,\n"
    )
    r = boss.post("/customers/import",
                  files={"file": ("c.csv", ("\ufeff" + good).encode(), "text/csv")})
    assert r.status_code == 200 and "1行を取り込みました" in r.text
    assert "株式会社あおば" in boss.get("/customers").text
    r = boss.post("/customers/import", files={"file": ("c.csv", "あ".encode("cp932"),
                                                       "text/csv")})
    assert r.status_code == 400 and "UTF-8" in r.text


# -- contracts: their terms, periods, renewal; contacts per contract; the export --------


def _contract_id(wd: WebDesk, digits: str) -> int:
    with wd.desk.factory() as s:
        return s.scalars(select(Contract.id).where(Contract.support_number == digits)).one()


def test_a_contract_page_lists_its_periods_with_their_kind(webdesk: WebDesk, agent: Staff) -> None:
    monthly = _contract_id(webdesk, "203100060003")
    page = agent.get(f"/contracts/{monthly}").text
    assert "月額（自動更新）" in page and "2026-09-14" in page  # the plan and its notice
    assert "無償期間" in page and "2026-09-14 〜 2026-09-30" in page
    assert "2026-10-01 〜 2026-10-31" in page
    # Renewed by itself month by month (this holds on any day from December 2026 on).
    assert page.count("2026-11-01 〜 2026-11-30") == 1 and "<td>自動更新</td>" in page
    assert "/renew" not in page and "削除" not in page  # an agent reads only
    chat = _contract_id(webdesk, "203100010008")
    page = agent.get(f"/contracts/{chat}").text
    assert "年間（注文受付日の翌日から1年）" in page and "2026-03-20" in page  # support from
    assert agent.get("/contracts/99999").status_code == 404


def test_a_supervisor_renews_a_contract_and_removes_a_mistaken_period(
    webdesk: WebDesk, boss: Staff
) -> None:
    chat = _contract_id(webdesk, "203100010008")
    r = boss.post(f"/contracts/{chat}/renew")
    assert r.status_code == 303
    page = boss.get(r.headers["location"]).text
    assert "2027-04-01 〜 2028-03-31 の期間を追加しました" in page and "更新" in page
    monthly = _contract_id(webdesk, "203100060003")
    refused = boss.get(boss.post(f"/contracts/{monthly}/renew").headers["location"]).text
    assert "解約日まで自動で更新されます" in refused
    with webdesk.desk.factory() as s:
        k = s.get_one(Contract, chat)
        assert [(p.starts_on, p.origin) for p in k.periods] == [
            (date(2026, 4, 1), "import"), (date(2027, 4, 1), "renewal")]
        second, first = k.periods[1].id, k.periods[0].id
    r = boss.post(f"/contracts/{chat}/periods/{second}/delete")
    assert "の期間を削除しました" in boss.get(r.headers["location"]).text
    r = boss.post(f"/contracts/{chat}/periods/{first}/delete")
    assert "最後のサポート期間は削除できません" in boss.get(r.headers["location"]).text
    assert boss.post(f"/contracts/{chat}/periods/999999/delete").status_code == 404


def test_a_supervisor_sets_the_plan_the_details_and_the_contracts_terms(
    webdesk: WebDesk, boss: Staff
) -> None:
    trial = _contract_id(webdesk, "203100050004")
    form = boss.get(f"/contracts/{trial}/edit").text
    assert 'value="cloud_trial" selected' in form and 'value="2026-11-16"' in form
    fields = {"product": "All Gather CRM", "plan": "cloud_monthly", "notified_on": "2026-12-15",
              "contract_code": "AG-20001", "department": "営業企画部", "address": "福岡市",
              "server_os": "—", "web_server": "", "version": "", "users": "12",
              "sla_override": '{"policy": "business_hours", "hours": 2}', "environment": ""}
    bad = boss.post(f"/contracts/{trial}/edit", {**fields, "sla_override": '{"hourz": 2}'})
    assert bad.status_code == 400 and "契約の対応条件（JSON）が正しくありません" in bad.text
    assert 'value="AG-20001"' in bad.text  # what was typed is kept
    bad = boss.post(f"/contracts/{trial}/edit", {**fields, "notified_on": ""})
    assert bad.status_code == 400 and "ご利用開始の通知日" in bad.text
    r = boss.post(f"/contracts/{trial}/edit", fields)
    assert r.status_code == 303
    with webdesk.desk.factory() as s:
        k = s.get_one(Contract, trial)
        assert (k.plan.value, k.contract_code, k.users) == ("cloud_monthly", "AG-20001", 12)
        assert k.sla_override == {"policy": "business_hours", "hours": 2}
        # The trial stays in the history; the paid plan's periods are added.
        assert [(p.kind.value, p.starts_on) for p in k.periods] == [
            ("trial", date(2026, 11, 16)), ("free", date(2026, 12, 15)),
            ("monthly", date(2027, 1, 1))]
        assert [p.origin for p in k.periods] == ["import", "desk", "desk"]


def test_a_supervisor_registers_a_contact_for_the_companys_contracts(
    webdesk: WebDesk, boss: Staff
) -> None:
    with webdesk.desk.factory() as s:
        ito = s.scalars(select(Contact).where(Contact.name == "伊藤 健")).one()
        ito_id, emails = ito.id, "\n".join(e.email for e in ito.emails)
    form = boss.get(f"/contacts/{ito_id}/edit").text
    assert "2031-0006-0003" in form and "2031-0007-0002" in form
    both = [str(_contract_id(webdesk, d)) for d in ("203100060003", "203100070002")]
    r = boss.post(f"/contacts/{ito_id}/edit", {"name": "伊藤 健", "emails": emails,
                                               "contracts_listed": "1", "contract": both})
    assert r.status_code == 303
    with webdesk.desk.factory() as s:
        assert sorted(k.support_number for k in s.get_one(Contact, ito_id).contracts) == [
            "203100060003", "203100070002"]
    # A form without the list (an older page) leaves the registrations as they are.
    boss.post(f"/contacts/{ito_id}/edit", {"name": "伊藤 健", "emails": emails})
    with webdesk.desk.factory() as s:
        assert len(s.get_one(Contact, ito_id).contracts) == 2


def test_the_hint_for_another_contracts_contact_is_shown_to_staff(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, from_=("伊藤 健", "ito@kodama-butsuryu.example.jp"),
                         body="サポートサービス番号: 2031-0007-0002\n\n既読表示の件です。\n")
    hint = "送信者は同じ会社の別の契約（2031-0006-0003）の窓口担当者です。"
    assert hint in agent.get(f"/tickets/{number}").text
    assert hint in agent.get("/triage").text.split("確認が必要なお問い合わせ")[1]


def test_a_supervisor_downloads_the_directory_as_csv(webdesk: WebDesk, boss: Staff,
                                                     agent: Staff) -> None:
    r = boss.get("/customers/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("support_number,company,department,address,product,"
                                           "plan,period_start,period_end,ordered_on")
    assert "2031-0005-0004,株式会社あさひ企画,営業企画部" in text
    assert agent.get("/customers/export").status_code == 403
