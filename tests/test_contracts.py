"""Contracts as the desk keeps them: CSV columns per plan, a history re-imports never lose,
renewals, the export, and the command line (``madoguchi contracts``, ``sla due --product``).

The plans' periods are the vendors' terms (tests/test_rules_periods.py quotes them);
here they are stored, shown and carried through files.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from typer.testing import CliRunner

from madoguchi.app import Desk
from madoguchi.cli import app
from madoguchi.config import Settings, SupportNumberSettings, load_settings
from madoguchi.ticketing.contracts import TermsError, describe, read_details, renew
from madoguchi.ticketing.customers_csv import (
    CsvImportError,
    ImportReport,
    export_csv,
    import_rows,
    read_rows,
)
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Contact, Contract
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.rules.periods import PeriodKind, Plan

DEMO = Path(__file__).resolve().parent.parent / "demo"
NUMBERS = SupportNumberSettings()
HEADER = ("support_number,company,department,address,product,plan,period_start,period_end,"
          "ordered_on,purchased_on,notified_on,cancelled_on,contract_code,sla_override,"
          "server_os,web_server,version,users,contact_name,contact_email,contact_phone,"
          "contact_fax\n")
# One row per plan, as README shows them.
PLANS = HEADER + (
    "2031-0001-0008,株式会社さくら商事,情報システム部,東京都千代田区,ChatLuck,annual,,,"
    "2026-03-31,2026-03-20,,,CL-0412,,RHEL 9,Apache 2.4,V6.2,300,山田 太郎,"
    "yamada@sakura.example.jp,03-1234-5678,\n"
    "2031-0002-0007,有限会社みなと製作所,総務課,横浜市,All Gather CRM,cloud_yearly,,,,,"
    "2026-12-15,,AG-1,\"{\"\"policy\"\": \"\"business_hours\"\", \"\"hours\"\": 4}\",,,,25,"
    "佐藤 一郎,sato@minato.example.jp,,\n"
    "2031-0005-0004,株式会社あさひ企画,営業部,福岡市,All Gather CRM,cloud_trial,,,,,"
    "2026-01-31,,,,,,,,田中 美咲,tanaka@asahi.example.jp,,\n"
    "2031-0006-0003,株式会社こだま物流,物流管理部,名古屋市,All Gather CRM,cloud_monthly,,,,,"
    "2026-09-14,2027-02-14,,,,,,,伊藤 健,ito@kodama.example.jp,,\n"
    "2031-0007-0002,株式会社こだま物流,情報システム課,名古屋市西区,ChatLuck,certificate,"
    "2026-07-01,2027-06-30,,,,,,,,,,,小林 誠,kobayashi@kodama.example.jp,,\n"
)


@pytest.fixture
def imported(desk: Desk) -> Desk:
    with transaction(desk.factory) as s:
        import_rows(s, read_rows(PLANS, NUMBERS), now=datetime(2026, 11, 24, tzinfo=UTC))
    return desk


def contract(s: Session, digits: str) -> Contract:
    return s.scalars(select(Contract).where(Contract.support_number == digits)
                     .options(selectinload(Contract.periods))).one()


def periods(desk: Desk, digits: str) -> list[tuple[str, date, date, date | None]]:
    with desk.factory() as s:
        return [(p.kind.value, p.starts_on, p.ends_on, p.support_from)
                for p in contract(s, digits).periods]


def test_each_plan_imports_the_periods_its_terms_give(imported: Desk) -> None:
    assert periods(imported, "203100010008") == [
        ("annual", date(2026, 4, 1), date(2027, 3, 31), date(2026, 3, 20))]
    assert periods(imported, "203100020007") == [
        ("free", date(2026, 12, 15), date(2026, 12, 31), None),
        ("yearly", date(2027, 1, 1), date(2027, 12, 31), None)]
    assert periods(imported, "203100050004") == [
        ("trial", date(2026, 1, 31), date(2026, 3, 1), None)]  # notified on the 31st
    assert periods(imported, "203100060003") == [
        ("free", date(2026, 9, 14), date(2026, 9, 30), None),
        ("monthly", date(2026, 10, 1), date(2026, 10, 31), None)]
    assert periods(imported, "203100070002") == [
        ("certificate", date(2026, 7, 1), date(2027, 6, 30), None)]
    with imported.factory() as s:
        k = contract(s, "203100010008")
        assert (k.plan, k.ordered_on, k.purchased_on, k.contract_code) == (
            Plan.ANNUAL, date(2026, 3, 31), date(2026, 3, 20), "CL-0412")
        assert (k.server_os, k.web_server, k.version, k.users) == ("RHEL 9", "Apache 2.4",
                                                                    "V6.2", 300)
        assert (k.period_start, k.period_end) == (date(2026, 4, 1), date(2027, 3, 31))
        assert contract(s, "203100020007").sla_override == {"policy": "business_hours",
                                                             "hours": 4}
        # One company, two contracts, each with its own department and address.
        crm, chat = contract(s, "203100060003"), contract(s, "203100070002")
        assert (crm.department, crm.address) == ("物流管理部", "名古屋市")
        assert (chat.department, chat.address) == ("情報システム課", "名古屋市西区")
        assert crm.customer_id == chat.customer_id
        # Registered per contract: each contact for the contract of its row only.
        ito = s.scalars(select(Contact).where(Contact.name == "伊藤 健")).one()
        assert [c.support_number for c in ito.contracts] == ["203100060003"]


def _import(desk: Desk, text: str) -> ImportReport:
    with transaction(desk.factory) as s:
        return import_rows(s, read_rows(text, NUMBERS), now=datetime(2027, 4, 2, tzinfo=UTC))


OLD_HEADER = ("support_number,company,department,address,product,period_start,period_end,"
              "contact_name,contact_email,contact_phone,contact_fax\n")


def test_a_reimport_adds_the_next_certificate_and_never_loses_the_earlier_one(
    desk: Desk,
) -> None:
    first = OLD_HEADER + ("2031-0001-0008,株式会社さくら商事,情報システム部,東京都,ChatLuck,"
                          "2026-04-01,2027-03-31,山田 太郎,yamada@sakura.example.jp,,\n")
    assert _import(desk, first).periods_changed == 1
    second = first.replace("2026-04-01,2027-03-31", "2027-04-01,2028-03-31")
    assert _import(desk, second).periods_changed == 1
    assert _import(desk, first).periods_changed == 0  # the old file again: nothing changes
    assert periods(desk, "203100010008") == [
        ("certificate", date(2026, 4, 1), date(2027, 3, 31), None),
        ("certificate", date(2027, 4, 1), date(2028, 3, 31), None)]
    with desk.factory() as s:
        k = contract(s, "203100010008")
        assert (k.period_start, k.period_end) == (date(2026, 4, 1), date(2028, 3, 31))
        assert [p.origin for p in k.periods] == ["import", "import"]
        assert k.in_force_on(date(2027, 4, 1)) and not k.in_force_on(date(2028, 4, 1))


def test_an_old_file_leaves_the_fields_it_has_no_column_for(imported: Desk) -> None:
    old = OLD_HEADER + ("2031-0001-0008,株式会社さくら商事,情報システム部,東京都千代田区,"
                        "ChatLuck,2026-04-01,2027-03-31,山田 太郎,yamada@sakura.example.jp,,\n")
    _import(imported, old)
    with imported.factory() as s:
        k = contract(s, "203100010008")
        # Plan, dates and environment stay; the certificate's dates win over the computed year.
        assert (k.plan, k.ordered_on, k.server_os, k.users) == (Plan.ANNUAL, date(2026, 3, 31),
                                                                "RHEL 9", 300)
        assert [(p.kind, p.support_from) for p in k.periods] == [
            (PeriodKind.CERTIFICATE, date(2026, 3, 20))]


def test_renewal_adds_the_next_period_and_a_reimport_keeps_it(imported: Desk) -> None:
    with transaction(imported.factory) as s:
        k = contract(s, "203100010008")
        second = renew(k, now=datetime(2027, 3, 1, tzinfo=UTC))
        third = renew(k, now=datetime(2028, 3, 1, tzinfo=UTC))
        assert (second.starts_on, second.ends_on) == (date(2027, 4, 1), date(2028, 3, 31))
        assert (third.starts_on, third.ends_on) == (date(2028, 4, 1), date(2029, 3, 31))
    _import(imported, PLANS)
    assert [p[1] for p in periods(imported, "203100010008")] == [
        date(2026, 4, 1), date(2027, 4, 1), date(2028, 4, 1)]
    with transaction(imported.factory) as s:
        for digits, code in (("203100060003", "auto_renewing"),
                             ("203100050004", "trial_not_renewed")):
            with pytest.raises(TermsError) as refused:
                renew(contract(s, digits), now=datetime(2027, 1, 1, tzinfo=UTC))
            assert refused.value.code == code


def test_the_export_reads_back_as_the_same_directory(imported: Desk, tmp_path: Path,
                                                     database_url: str) -> None:
    with transaction(imported.factory) as s:
        renew(contract(s, "203100010008"), now=datetime(2027, 3, 1, tzinfo=UTC))
    with imported.factory() as s:
        exported = export_csv(s, NUMBERS)
    assert exported.splitlines()[0] == HEADER.strip().replace(
        "users,contact_name", "users,environment,contact_name")
    # Read back onto the same desk: nothing changes.
    assert _import(imported, exported).periods_changed == 0
    with imported.factory() as s:
        assert export_csv(s, NUMBERS) == exported
    again = read_rows(exported, NUMBERS)
    assert {r.support_number for r in again} == {r.support_number for r in read_rows(PLANS,
                                                                                     NUMBERS)}


def test_a_row_without_a_contact_registers_the_contract_alone(desk: Desk) -> None:
    text = HEADER + ("2031-0005-0004,株式会社あさひ企画,,,All Gather CRM,cloud_trial,,,,,"
                     "2026-11-16,,,,,,,,,,,\n")
    report = _import(desk, text)
    assert (report.contracts_created, report.contacts_created) == (1, 0)
    with desk.factory() as s:
        assert contract(s, "203100050004").contacts == []
        assert export_csv(s, NUMBERS).splitlines()[1] == (
            "2031-0005-0004,株式会社あさひ企画,,,All Gather CRM,cloud_trial,,,,,2026-11-16"
            + "," * 12)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2031-0001-0008,A社,,,,annual,,,,,,,,,,,,,名前,a@a.example.jp,,",
         "plan annual needs ordered_on"),
        ("2031-0001-0008,A社,,,,monthly,,,,,,,,,,,,,名前,a@a.example.jp,,",
         "plan 'monthly' is not one of"),
        ("2031-0001-0008,A社,,,,cloud_trial,,,,,2026-13-01,,,,,,,,名前,a@a.example.jp,,",
         "notified_on '2026-13-01' is not a date"),
        ("2031-0001-0008,A社,,,,cloud_trial,,,2026-01-01,,2026-01-01,,,,,,,,名前,a@a.example.jp,,",
         "ordered_on is not used by plan cloud_trial"),
        ("2031-0001-0008,A社,,,,cloud_monthly,,,,,2026-05-01,2026-04-01,,,,,,,名前,"
         "a@a.example.jp,,", "cancelled_on is before"),
        ("2031-0001-0008,A社,,,,certificate,2026-01-01,,,,,,,,,,,,名前,a@a.example.jp,,",
         "give both period_start and period_end"),
        ("2031-0001-0008,A社,,,,,,,,,,,,,,,,,名前,a@a.example.jp,,",
         "plan certificate needs period_start and period_end"),
        ("2031-0001-0008,A社,,,,annual,,,2026-03-31,,,,,{hours: 4},,,,,名前,a@a.example.jp,,",
         "sla_override: not JSON"),
        ("2031-0001-0008,A社,,,,annual,,,2026-03-31,,,,,\"{\"\"hourz\"\": 4}\",,,,,名前,"
         "a@a.example.jp,,", "unknown key 'hourz'"),
        ("2031-0001-0008,A社,,,,annual,,,2026-03-31,,,,,,,,,many,名前,a@a.example.jp,,",
         "users 'many' is not a whole number"),
        ("2031-0001-0008,A社,,,,annual,,,2026-03-31,,,,,,,,,,,a@a.example.jp,,",
         "contact_name is empty"),
    ],
)
def test_a_bad_contract_field_is_reported_by_line_with_its_reason(row: str,
                                                                  message: str) -> None:
    good = "2031-0002-0007,B社,,,,annual,,,2026-03-31,,,,,,,,,,名前,b@b.example.jp,,\n"
    with pytest.raises(CsvImportError) as err:
        read_rows(HEADER + good + row + "\n", NUMBERS)
    assert [line for line, _ in err.value.errors] == [3]
    assert message in err.value.errors[0][1]


def test_the_rows_of_one_contract_must_agree_on_its_fields() -> None:
    text = HEADER + (
        "2031-0001-0008,A社,情報システム部,,,annual,,,2026-03-31,,,,,,,,,,甲,a@a.example.jp,,\n"
        "2031-0001-0008,A社,営業部,,,annual,,,2026-03-31,,,,,,,,,,乙,b@a.example.jp,,\n"
    )
    with pytest.raises(CsvImportError) as err:
        read_rows(text, NUMBERS)
    assert err.value.errors == [(3, "department of contract 2031-0001-0008 differs from line 2 "
                                    "(the rows of one contract must agree on its fields)")]


def test_with_products_configured_a_row_must_name_one_that_offers_its_plan() -> None:
    products = Products.from_settings(load_settings(None, sources=[], products=[
        {"preset": "chatluck", "aliases": ["チャットラック"]}, {"preset": "agcrm"}]))
    row = ("2031-0001-0008,A社,,,{product},{plan},,,{ordered},,{notified},,,,,,,,名前,"
           "a@a.example.jp,,\n")
    ok = read_rows(HEADER + row.format(product="ﾁｬｯﾄﾗｯｸ", plan="annual", ordered="2026-03-31",
                                       notified=""), NUMBERS, products)
    assert ok[0].details.product == "ChatLuck"  # an alias, stored by the product's name
    for product, plan, complaint in (
        ("desknet's NEO", "annual", "product \"desknet's NEO\" is not configured"),
        ("ChatLuck", "cloud_monthly", "plan cloud_monthly is not offered for ChatLuck"),
    ):
        with pytest.raises(CsvImportError, match=complaint):
            read_rows(HEADER + row.format(product=product, plan=plan, ordered="",
                                          notified="2026-03-31"), NUMBERS, products)


def test_the_web_desk_reads_the_same_fields_with_japanese_reasons() -> None:
    with pytest.raises(TermsError) as err:
        read_details({"plan": "annual", "users": "-3", "ordered_on": "2026-03-31"})
    assert err.value.japanese == "登録ユーザー数は0以上の整数にしてください"
    with pytest.raises(TermsError) as err:
        read_details({"plan": "cloud_trial"})
    assert err.value.japanese.startswith("プラン cloud_trial にはご利用開始の通知日")


def test_show_lists_the_periods_with_their_kind_and_the_automatic_renewals(
    imported: Desk,
) -> None:
    with imported.factory() as s:
        record = describe(contract(s, "203100060003"), date(2027, 1, 10))
    assert record["standing"] == "in_force" and record["plan"] == "cloud_monthly"
    assert [(p["kind"], p["starts_on"], p["origin"], p["covers_today"])
            for p in record["periods"]] == [
        ("free", "2026-09-14", "import", False),
        ("monthly", "2026-10-01", "import", False),
        ("monthly", "2026-11-01", "automatic", False),
        ("monthly", "2026-12-01", "automatic", False),
        ("monthly", "2027-01-01", "automatic", True),
    ]
    with imported.factory() as s:
        after = describe(contract(s, "203100060003"), date(2027, 3, 1))
    assert after["standing"] == "expired"  # cancelled on 2027-02-14: February was the last
    assert after["periods"][-1]["starts_on"] == "2027-02-01"


# -- the command line ---------------------------------------------------------------


@pytest.fixture
def cli(imported: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A two-product desk's configuration file, on the imported database."""
    config = tmp_path / "desk.toml"
    config.write_text(
        f'database_url = "{imported.settings.database_url}"\n'
        f'storage_dir = "{imported.settings.storage_dir}"\n'
        '[[products]]\npreset = "chatluck"\ndefault = true\n'
        '[products.fax_form]\nfax_number = "045-000-0001"\n'
        '[[products]]\npreset = "agcrm"\naliases = ["AGCRM"]\n'
        '[products.fax_form]\nfax_number = "045-000-0002"\n', encoding="utf-8")
    monkeypatch.delenv("MADOGUCHI_DATABASE_URL", raising=False)
    yield config


def run(config: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    assert result.exit_code == code, result.output
    return result.output


def test_contracts_show_as_json_and_renew(cli: Path) -> None:
    shown = json.loads(run(cli, "contracts", "show", "2031-0001-0008", "--format", "json",
                           "--on", "2026-03-25"))
    assert (shown["support_number"], shown["plan"], shown["standing"]) == (
        "2031-0001-0008", "annual", "in_force")  # bought on 3/20, the year starts on 4/1
    assert [(p["kind"], p["starts_on"], p["ends_on"], p["support_from"])
            for p in shown["periods"]] == [("annual", "2026-04-01", "2027-03-31", "2026-03-20")]
    assert run(cli, "contracts", "renew", "2031-0001-0008").strip() == (
        "2031-0001-0008: annual 2027-04-01 – 2028-03-31 added")
    text = run(cli, "contracts", "show", "203100010008", "--on", "2027-04-01")
    assert "on 2027-04-01: in_force" in text
    assert "annual       2027-04-01 – 2028-03-31" in text and "renewal" in text
    refused = run(cli, "contracts", "renew", "2031-0006-0003", code=1)
    assert "renews by itself" in refused
    assert "no contract 2031-0004-0005" in run(cli, "contracts", "show", "2031-0004-0005",
                                               code=1)
    assert "not a valid" in run(cli, "contracts", "show", "2031-0001-0009", code=2)


@pytest.mark.parametrize(
    ("args", "starts", "due", "product"),
    [
        # Monday 2026-11-23 is a holiday: Tuesday, at each product's opening.
        (["--support-number", "2031-0001-0008"], "2026-11-24T09:00:00+09:00",
         "2026-11-24T17:30:00+09:00", "ChatLuck"),
        (["--support-number", "2031-0005-0004"], "2026-11-24T09:30:00+09:00",
         "2026-11-24T17:30:00+09:00", "All Gather CRM"),
        (["--product", "AGCRM"], "2026-11-24T09:30:00+09:00", "2026-11-24T17:30:00+09:00",
         "All Gather CRM"),
        ([], "2026-11-24T09:00:00+09:00", "2026-11-24T17:30:00+09:00", "ChatLuck"),
        # The contract's own terms: 4 business hours from the opening (lunch excluded).
        (["--support-number", "2031-0002-0007", "--product", "All Gather CRM"],
         "2026-11-24T09:30:00+09:00", "2026-11-24T14:30:00+09:00", "All Gather CRM"),
    ],
)
def test_sla_due_answers_with_the_products_and_the_contracts_terms(
    cli: Path, args: list[str], starts: str, due: str, product: str
) -> None:
    out = json.loads(run(cli, "sla", "due", "2026-11-23T10:00+09:00", "--format", "json", *args))
    assert (out["starts_at"], out["due_at"], out["product"]) == (starts, due, product)


def test_sla_due_applies_the_licence_key_rule_when_asked(cli: Path) -> None:
    late = "2026-11-24T17:10+09:00"
    general = json.loads(run(cli, "sla", "due", late, "--format", "json"))
    key = json.loads(run(cli, "sla", "due", late, "--format", "json", "--kind", "license_key"))
    assert general["due_at"] == "2026-11-24T17:30:00+09:00"
    assert key["due_at"] == "2026-11-25T17:30:00+09:00"
    assert "no product 'desknet'" in run(cli, "sla", "due", late, "--product", "desknet", code=2)
    assert "is for ChatLuck, not All Gather CRM" in run(
        cli, "sla", "due", late, "--support-number", "2031-0001-0008", "--product", "AGCRM",
        code=2)


def test_customers_export_writes_what_import_reads(cli: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    run(cli, "customers", "export", "--output", str(out))
    assert "2031-0006-0003,株式会社こだま物流,物流管理部" in out.read_text(encoding="utf-8")
    assert "0 periods added or corrected" in run(cli, "customers", "import", str(out))


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def test_the_fax_form_states_the_products_hours_and_fax_number(cli: Path, tmp_path: Path) -> None:
    run(cli, "form", str(tmp_path / "crm.pdf"), "--contract", "2031-0005-0004")
    crm = _pdf_text(tmp_path / "crm.pdf")
    assert "9:30〜12:00、13:00〜17:30" in crm and "045-000-0002" in crm
    assert "All Gather CRM サポート窓口" in crm
    run(cli, "form", str(tmp_path / "chat.pdf"), "--product", "ChatLuck")
    chat = _pdf_text(tmp_path / "chat.pdf")
    assert "9:00〜12:00、13:00〜17:30" in chat and "045-000-0001" in chat


def test_a_one_product_desks_form_prints_its_own_calendars_hours(tmp_path: Path,
                                                                 settings: Settings) -> None:
    result = CliRunner().invoke(app, ["form", str(tmp_path / "f.pdf")])
    assert result.exit_code == 0, result.output
    assert "平日 9:30〜12:00、13:00〜17:30" in _pdf_text(tmp_path / "f.pdf")
