"""A contract's pre-filled FAX form: printed, read back by the real reader, and served by
its signed link on the real web server."""

from __future__ import annotations

import io
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from typer.testing import CliRunner

from madoguchi.app import Desk
from madoguchi.cli import app
from madoguchi.config import Settings, SupportNumberSettings
from madoguchi.ocr import form
from madoguchi.ocr.pages import load_pages
from madoguchi.ocr.reader import read_fax
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.fax_forms import link_path
from madoguchi.ticketing.models import Contract, Customer
from madoguchi.web.auth import load_secret
from madoguchi.web_server import WebServer
from tests.conftest import make_settings
from tests.faxfactory import send_fax
from tests.test_web_kit import open_web

pytest_plugins = ["tests.test_web_kit"]

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parent.parent / "demo"
NUMBER = "203100010008"  # 株式会社さくら商事, 情報システム部, 山田 太郎 (demo/customers.csv)


def _import(desk: Desk) -> None:
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     desk.settings.support_number)
    with transaction(desk.factory) as session:
        import_rows(session, rows)


def _contract(desk: Desk, number: str = NUMBER) -> Contract:
    with desk.factory() as s:
        return s.scalars(select(Contract).where(Contract.support_number == number).options(
            selectinload(Contract.contacts),
            selectinload(Contract.customer).selectinload(Customer.contacts))).one()


def _form_pdf(desk: Desk, contract: Contract) -> bytes:
    buf = io.BytesIO()
    product = Deadlines.from_settings(desk.settings).product_for(contract)
    form.write_contract_form(buf, contract, product, desk.settings.support_number)
    return buf.getvalue()


def _squeeze(text: str) -> str:
    return re.sub(r"[ 　]", "", text)


def test_the_contracts_form_is_read_back_with_its_number_and_its_fields(
        desk: Desk, tmp_path: Path) -> None:
    _import(desk)
    pdf = _form_pdf(desk, _contract(desk))
    fax = send_fax(pdf, tmp_path / "form.tif", resolution="fine", container="g4", seed=3)
    reading = read_fax(load_pages(fax.read_bytes(), fax.name))
    assert reading.support_number is not None
    assert reading.support_number.digits == NUMBER
    lines = [_squeeze(line) for line in reading.text.splitlines()]
    for label, value in (("会社名", "株式会社さくら商事"), ("部署名", "情報システム部"),
                         ("ご担当者名", "山田太郎"), ("契約コード", "CL-2026-0412"),
                         ("ご住所", "東京都千代田区丸の内1-1-1")):
        assert f"{label}:{value}" in lines, (label, reading.text)
    # The new fields are laid out by their labels even where nothing is written.
    assert any(line.startswith("ご希望の回答方法:") for line in lines), reading.text
    assert any(line.startswith("FAX番号:") for line in lines), reading.text


def test_the_form_prints_the_products_hours_and_the_contracts_details(
        desk: Desk, tmp_path: Path) -> None:
    _import(desk)
    text = subprocess.run(["pdftotext", "-", "-"], input=_form_pdf(desk, _contract(desk)),
                          capture_output=True, check=True).stdout.decode()
    assert "受付時間 平日 9:30〜12:00、13:00〜17:30（土日祝・年末年始を除く）" in text
    for words in ("株式会社さくら商事", "情報システム部", "山田 太郎", "CL-2026-0412",
                  "東京都千代田区丸の内1-1-1", "ご希望の回答方法", "メール", "電話", "ご住所",
                  "契約コード", "12桁"):
        assert words in text, words


def test_the_boxes_follow_the_configured_number_format() -> None:
    layout = form.layout_for(SupportNumberSettings(digits_pattern=r"^\d{10}$",
                                                   display_groups=[3, 3, 4]))
    assert layout.count == 10 and layout.groups == (3, 3, 4)
    gaps = [round(b.x0 - a.x1, 3) for a, b in zip(layout.boxes, layout.boxes[1:], strict=False)]
    assert gaps == [0, 0, 6.0, 0, 0, 6.0, 0, 0, 0]
    wide = form.digit_layout([4, 4, 4, 4])
    assert wide.row.x1 <= 152.0 and len(wide.boxes) == 16  # narrower boxes, clear of the QR
    cfg = SupportNumberSettings(digits_pattern=r"^\d{10}$", display_groups=[3, 3, 4],
                                check="none")
    buf = io.BytesIO()
    form.write_form(buf, "123-456-7890", settings=cfg)
    reading = read_fax(load_pages(buf.getvalue(), "ten.pdf"), settings=cfg)
    assert reading.support_number is not None and reading.support_number.digits == "1234567890"
    # The reader cut the ten boxes where the form drew them (not only the QR code).
    assert "1234567890" in [r.raw for r in reading.reads if r.method == "zonal"]
    loose = SupportNumberSettings(digits_pattern=r"^\d{10,12}$", display_groups=[3, 3, 4],
                                  check="none")
    with pytest.raises(ValueError, match="boxes"):
        form.write_form(io.BytesIO(), "2031-1234-5673", settings=loose)


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[WebServer, Settings, bytes]]:
    settings = make_settings(database_url, tmp_path, web={
        "secret_key_file": str(tmp_path / "web-secret"), "public_url": "https://desk.example.jp"})
    desk = Desk.open(settings)
    _import(desk)
    server = WebServer(settings, desk=desk, host="127.0.0.1", port=0).start()
    try:
        yield server, settings, load_secret(tmp_path / "web-secret")
    finally:
        server.stop()
        desk.close()


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_the_signed_link_serves_the_filled_form_and_nothing_else(
        served: tuple[WebServer, Settings, bytes]) -> None:
    server, settings, secret = served
    desk = Desk.open(settings)
    try:
        contract = _contract(desk)
        other = _contract(desk, "203100020007")
    finally:
        desk.close()
    now = datetime.now(UTC)
    path = link_path(secret, contract, now + timedelta(days=90))
    status, headers, body = _get(server.url + path)
    assert status == 200 and body.startswith(b"%PDF-")
    assert headers["content-type"] == "application/pdf"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    text = subprocess.run(["pdftotext", "-", "-"], input=body, capture_output=True,
                          check=True).stdout.decode()
    assert "株式会社さくら商事" in text and "山田 太郎" in text

    _, cid, expires, sig = path.rsplit("/", 3)
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    expired = link_path(secret, contract, now - timedelta(seconds=1))
    for bad in (f"/fax-form/{cid}/{expires}/{flipped}",
                f"/fax-form/{cid}/{int(expires) + 1}/{sig}",
                f"/fax-form/{other.id}/{expires}/{sig}",
                f"/fax-form/999999/{expires}/{sig}",
                f"/fax-form/x{cid}/{expires}/{sig}",
                expired,
                link_path(b"another desk's secret, 32 chars+", contract,
                          now + timedelta(days=1))):
        status, headers, body = _get(server.url + bad)
        assert status == 404, bad
        assert "ページが見つかりません" in body.decode()
        assert "さくら" not in body.decode() and NUMBER not in body.decode()
        assert headers["x-frame-options"] == "DENY"


def test_the_cli_prints_a_link_the_desk_accepts(
        served: tuple[WebServer, Settings, bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, settings, _ = served
    config = tmp_path / "desk.toml"
    config.write_text(
        f'database_url = "{settings.database_url}"\nstorage_dir = "{settings.storage_dir}"\n'
        f'[web]\nsecret_key_file = "{tmp_path / "web-secret"}"\n'
        'public_url = "https://desk.example.jp/"\nfax_form_link_days = 30\n', encoding="utf-8")
    monkeypatch.delenv("MADOGUCHI_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["--config", str(config), "form", "--link",
                                      "--contract", "2031-0001-0008"])
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[0]
    assert url.startswith("https://desk.example.jp/fax-form/")
    expires = int(url.rsplit("/", 2)[1])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30)).timestamp()) < 120
    status, _, body = _get(server.url + url.removeprefix("https://desk.example.jp"))
    assert status == 200 and body.startswith(b"%PDF-")
    no_contract = CliRunner().invoke(app, ["--config", str(config), "form", "--link"])
    assert no_contract.exit_code == 2
    out = tmp_path / "filled.pdf"
    wrote = CliRunner().invoke(app, ["--config", str(config), "form", str(out),
                                     "--contract", "2031-0001-0008"])
    assert wrote.exit_code == 0, wrote.output
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True,
                          check=True).stdout.decode()
    assert "株式会社さくら商事" in text and "情報システム部" in text


def test_the_contract_page_offers_the_link_and_the_download(tmp_path: Path, settings: Settings,
                                                            desk: Desk,
                                                            quick_hashing: None) -> None:
    # http: an https public_url makes the session cookie Secure, which the test client drops.
    wd = open_web(settings, desk, tmp_path, public_url="http://desk.example.jp")
    agent = wd.sign_in()
    contract = _contract(desk)
    page = agent.get(f"/contracts/{contract.id}").text
    found = re.search(r'value="(http://desk\.example\.jp/fax-form/[^"]+)"', page)
    assert found is not None, page
    assert f'href="/contracts/{contract.id}/fax-form"' in page
    served = wd.anonymous().get(found.group(1).removeprefix("http://desk.example.jp"))
    assert served.status_code == 200 and served.content.startswith(b"%PDF-")
    customer = agent.get(f"/customers/{contract.customer_id}").text
    assert f'href="/contracts/{contract.id}/fax-form"' in customer
    download = agent.get(f"/contracts/{contract.id}/fax-form")
    assert download.status_code == 200 and download.content.startswith(b"%PDF-")
    # Staff's download wants a sign-in.
    assert wd.anonymous().get(f"/contracts/{contract.id}/fax-form").status_code == 303
