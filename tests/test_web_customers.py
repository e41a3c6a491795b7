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
