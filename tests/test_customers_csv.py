from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from madoguchi.cli import app
from madoguchi.config import Settings
from madoguchi.ticketing.customers_csv import CsvImportError, import_rows, read_rows
from madoguchi.ticketing.db import make_engine, session_factory, transaction
from madoguchi.ticketing.models import Contact, ContactEmail, Contract, Customer

HEADER = (
    "support_number,company,department,address,product,period_start,period_end,"
    "contact_name,contact_email,contact_phone,contact_fax\n"
)
ROWS = (
    "2031-0001-0008,株式会社さくら商事,情報システム部,東京都千代田区,ChatLuck,2026-04-01,2027-03-31,"
    "山田 太郎,yamada@sakura.example.jp,03-1234-5678,03-1234-5679\n"
    "2031-0001-0008,株式会社さくら商事,情報システム部,東京都千代田区,ChatLuck,2026-04-01,2027-03-31,"
    "髙橋 花子,Takahashi@Sakura.example.jp,03-1234-5680,\n"
    "２０３１－０００２－０００７,有限会社みなと製作所,総務課,横浜市,All Gather CRM,2026-01-01,"
    "2026-12-31,佐藤 一郎,sato@minato.example.jp;ichiro@minato.example.jp,045-640-1111,\n"
)


def _count(settings: Settings, model: type) -> int:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as s:
            return s.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


def _import(settings: Settings, text: str) -> None:
    engine = make_engine(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            import_rows(session, read_rows(text, settings.support_number))
    finally:
        engine.dispose()


def test_import_creates_customers_contracts_and_contacts(settings: Settings) -> None:
    _import(settings, HEADER + ROWS)
    assert _count(settings, Customer) == 2
    assert _count(settings, Contract) == 2
    assert _count(settings, Contact) == 3
    assert _count(settings, ContactEmail) == 4
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as s:
        emails = set(s.scalars(select(ContactEmail.email)))
        contract = s.scalar(select(Contract).where(Contract.support_number == "203100020007"))
        assert contract is not None and contract.customer.company == "有限会社みなと製作所"
    engine.dispose()
    assert "takahashi@sakura.example.jp" in emails  # stored lower-case


def test_reimport_updates_rather_than_duplicates(settings: Settings) -> None:
    _import(settings, HEADER + ROWS)
    changed = ROWS.replace("2027-03-31", "2028-03-31").replace("03-1234-5678", "03-9999-0000")
    _import(settings, HEADER + changed)
    assert (_count(settings, Customer), _count(settings, Contract), _count(settings, Contact)) == (
        2, 2, 3
    )
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as s:
        contract = s.scalar(select(Contract).where(Contract.support_number == "203100010008"))
        yamada = s.scalar(select(Contact).where(Contact.name == "山田 太郎"))
        assert contract is not None and str(contract.period_end) == "2028-03-31"
        assert yamada is not None and yamada.phone == "03-9999-0000"
    engine.dispose()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2031-0001-0009,A社,,,,2026-01-01,2026-12-31,名前,a@a.example.jp,,", "support_number"),
        ("2031-0001-0008,,,,,2026-01-01,2026-12-31,名前,a@a.example.jp,,", "company is empty"),
        ("2031-0001-0008,A社,,,,2026-13-01,2026-12-31,名前,a@a.example.jp,,", "period_start"),
        ("2031-0001-0008,A社,,,,2026-12-31,2026-01-01,名前,a@a.example.jp,,", "before"),
        ("2031-0001-0008,A社,,,,2026-01-01,2026-12-31,,a@a.example.jp,,", "contact_name"),
        ("2031-0001-0008,A社,,,,2026-01-01,2026-12-31,名前,not-an-address,,", "contact_email"),
        ("2031-0001-0008,A社,,,,2026-01-01,2026-12-31,名前,a@a.example.jp,,,extra", "more fields"),
    ],
)
def test_bad_row_is_reported_by_line_with_its_reason(row: str, message: str) -> None:
    from madoguchi.config import SupportNumberSettings

    good = "2031-0002-0007,B社,,,,2026-01-01,2026-12-31,名前,b@b.example.jp,,\n"
    with pytest.raises(CsvImportError) as err:
        read_rows(HEADER + good + row + "\n", SupportNumberSettings())
    assert [line for line, _ in err.value.errors] == [3]
    assert message in err.value.errors[0][1]


def test_same_number_for_two_companies_is_rejected() -> None:
    from madoguchi.config import SupportNumberSettings

    text = HEADER + (
        "2031-0001-0008,A社,,,,2026-01-01,2026-12-31,名前,a@a.example.jp,,\n"
        "2031-0001-0008,B社,,,,2026-01-01,2026-12-31,名前,b@b.example.jp,,\n"
    )
    with pytest.raises(CsvImportError, match="line 3"):
        read_rows(text, SupportNumberSettings())


def test_cli_import_with_a_bad_row_imports_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        HEADER + ROWS + "2031-0001-0009,C社,,,,2026-01-01,2026-12-31,名前,c@c.example.jp,,\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(app, ["customers", "import", str(csv_file)])
    assert result.exit_code == 1
    assert f"{csv_file}:5:" in result.output and "nothing imported" in result.output
    assert _count(settings, Customer) == 0

    csv_file.write_text(HEADER + ROWS, encoding="utf-8")
    result = CliRunner().invoke(app, ["customers", "import", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert _count(settings, Contact) == 3
