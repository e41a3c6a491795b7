"""One desk, two products: each contract gets its product's calendar and rules.

The hours and rules are the vendors' own: ChatLuck サポートサービス約款 2(1)
"<受付時間> 午前9:00~12:00 および 午後1:00~5:30" and 2(3) the licence-key cut-off;
All Gather CRM ご利用ガイド 5 "9：30～12：00、13：00～17：30" and "弊社営業時間外にメールを
頂いた場合、原則として翌営業時間内の一次対応となります".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from madoguchi.config import ConfigError, Settings, load_settings
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.rules.inquiry import InquiryWords, classify_inquiry
from madoguchi.ticketing.vocabulary import InquiryKind

JST = ZoneInfo("Asia/Tokyo")
TWO = [{"preset": "chatluck", "default": True, "aliases": ["チャットラック"]},
       {"preset": "agcrm", "aliases": ["AGCRM"]}]


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)  # type: ignore[misc]


@dataclass(frozen=True)
class Terms:
    support_number: str
    sla_override: dict[str, object] | None
    product: str


def two_products(**more: object) -> Settings:
    return load_settings(None, products=TWO, sources=[], **more)


CHATLUCK = Terms("203100010008", None, "ChatLuck")
AGCRM = Terms("203100020007", None, "All Gather CRM")


@pytest.mark.parametrize(
    ("contract", "opening"),
    [(CHATLUCK, jst(2026, 11, 24, 9, 0)), (AGCRM, jst(2026, 11, 24, 9, 30)),
     (Terms("1", None, "チャットラック"), jst(2026, 11, 24, 9, 0)),
     (Terms("1", None, "agcrm"), jst(2026, 11, 24, 9, 30)),
     # A product nobody configured: the default product's terms (ChatLuck here).
     (Terms("1", None, "desknet's NEO"), jst(2026, 11, 24, 9, 0))],
)
def test_a_desk_with_both_products_opens_at_each_products_hour(
    contract: Terms, opening: datetime
) -> None:
    deadlines = Deadlines.from_settings(two_products())
    # Monday 2026-11-23 is 勤労感謝の日: work starts on Tuesday at the product's opening.
    deadline = deadlines.first_response(jst(2026, 11, 23, 10, 0), contract)
    assert deadline.starts_at == opening
    assert deadline.due_at == jst(2026, 11, 24, 17, 30)


def test_without_a_contract_the_product_named_or_the_default_applies() -> None:
    deadlines = Deadlines.from_settings(two_products())
    early = jst(2026, 11, 24, 8, 0)
    assert deadlines.first_response(early).starts_at == jst(2026, 11, 24, 9, 0)
    assert deadlines.first_response(early, product="All Gather CRM").starts_at == jst(
        2026, 11, 24, 9, 30)


@pytest.mark.parametrize(
    ("received", "kind", "due"),
    [
        # Licence keys: before 17:00 on a business day → that day; from 17:00 → the next.
        (jst(2026, 11, 24, 16, 59), InquiryKind.LICENSE_KEY, jst(2026, 11, 24, 17, 30)),
        (jst(2026, 11, 24, 17, 0), InquiryKind.LICENSE_KEY, jst(2026, 11, 25, 17, 30)),
        (jst(2026, 11, 23, 10, 0), InquiryKind.LICENSE_KEY, jst(2026, 11, 24, 17, 30)),
        # Anything else: within the business hours it arrived in, else the next ones.
        (jst(2026, 11, 24, 17, 0), InquiryKind.GENERAL, jst(2026, 11, 24, 17, 30)),
        (jst(2026, 11, 24, 17, 29), InquiryKind.GENERAL, jst(2026, 11, 24, 17, 30)),
        (jst(2026, 11, 24, 17, 30), InquiryKind.GENERAL, jst(2026, 11, 25, 17, 30)),
        (jst(2026, 11, 24, 12, 30), InquiryKind.GENERAL, jst(2026, 11, 24, 17, 30)),
        (jst(2026, 11, 28, 10, 0), InquiryKind.GENERAL, jst(2026, 11, 30, 17, 30)),
        (jst(2026, 12, 28, 18, 0), InquiryKind.GENERAL, jst(2027, 1, 4, 17, 30)),
    ],
)
def test_each_kind_of_inquiry_gets_its_own_rule(
    received: datetime, kind: InquiryKind, due: datetime
) -> None:
    """ChatLuck 2(3): "当社営業日17時までの申請受理分につきましてはその当日中に、また当社営業日
    17時以降および当社休業日の申請受理分につきましては、翌営業日に送付いたします。"
    All Gather CRM 5 メール: "弊社営業時間外にメールを頂いた場合、原則として翌営業時間内の
    一次対応となります"."""
    deadlines = Deadlines.from_settings(two_products())
    for contract in (CHATLUCK, AGCRM):
        assert deadlines.first_response(received, contract, kind=kind).due_at == due


def test_the_cut_off_and_hours_are_each_products_to_configure() -> None:
    products = [
        {"preset": "chatluck", "license_key": {"cutoff": "16:00"},
         "calendar": {"hours": ["08:30-17:00"]}},
        {"preset": "agcrm", "sla": {"policy": "business_hours", "business_hours": 2}},
    ]
    deadlines = Deadlines.from_settings(load_settings(None, products=products, sources=[]))
    lk = deadlines.first_response(jst(2026, 11, 24, 16, 0), CHATLUCK, kind=InquiryKind.LICENSE_KEY)
    assert (lk.starts_at, lk.due_at) == (jst(2026, 11, 24, 16, 0), jst(2026, 11, 25, 17, 0))
    general = deadlines.first_response(jst(2026, 11, 24, 16, 0), AGCRM)
    assert general.due_at == jst(2026, 11, 25, 10, 0)  # 16:00-17:30, then 9:30-10:00


def test_the_contracts_own_terms_win_over_its_products() -> None:
    deadlines = Deadlines.from_settings(two_products())
    own = Terms("203100020007", {"calendar": "24x7", "policy": "business_hours", "hours": 4},
                "All Gather CRM")
    assert deadlines.first_response(jst(2026, 11, 28, 22, 0), own).due_at == jst(
        2026, 11, 29, 2, 0)


def test_a_desk_without_products_keeps_its_one_calendar_and_rule() -> None:
    deadlines = Deadlines.from_settings(load_settings(None))
    assert deadlines.products.all == () and deadlines.products.default.name == ""
    # Every contract, whatever its product's name: the [calendar] and [sla] of the desk.
    for contract in (CHATLUCK, AGCRM):
        d = deadlines.first_response(jst(2026, 11, 24, 17, 10), contract)
        assert (d.starts_at, d.due_at) == (jst(2026, 11, 24, 17, 10), jst(2026, 11, 25, 17, 30))
    assert deadlines.first_response(jst(2026, 11, 24, 8, 0)).starts_at == jst(2026, 11, 24, 9, 30)


def test_mail_without_a_contract_takes_the_product_of_its_mailbox() -> None:
    settings = load_settings(None, sources=[
        {"name": "cl", "kind": "maildir", "path": "/tmp/cl"},
        {"name": "ag", "kind": "maildir", "path": "/tmp/ag"},
    ], products=[{"preset": "chatluck", "sources": ["cl"]},
                 {"preset": "agcrm", "sources": ["ag"], "addresses": ["AG@Example.jp"]}])
    products = Deadlines.from_settings(settings).products
    assert products.for_mail("ag", []).name == "All Gather CRM"
    assert products.for_mail("cl", ["ag@example.jp"]).name == "ChatLuck"
    assert products.for_mail("elsewhere", ["ag@example.jp"]).name == "All Gather CRM"
    assert products.for_mail("elsewhere", ["cltech@chatluck.com"]).name == "ChatLuck"  # preset
    assert products.for_mail("elsewhere", []).name == "ChatLuck"  # the first is the default


@pytest.mark.parametrize(
    ("products", "complaint"),
    [
        ([{"preset": "chatluck"}, {"name": "chatluck"}], "share a name"),
        ([{"preset": "chatluck", "default": True}, {"preset": "agcrm", "default": True}],
         "only one may be the default"),
        ([{"preset": "chatluck", "sources": ["nowhere"]}], "no source named 'nowhere'"),
        ([{"hours": 4}], "hours"),
        ([{}], "give the product a name"),
        ([{"preset": "agcrm", "plans": ["monthly"]}], "plans"),
        ([{"preset": "chatluck", "addresses": ["a@b.jp"]},
          {"preset": "agcrm", "addresses": ["A@b.jp"]}], "belongs to both"),
        ([{"preset": "chatluck", "due_soon_minutes": -5}], "due_soon_minutes"),
    ],
)
def test_a_bad_products_configuration_names_the_problem(
    products: list[dict[str, object]], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_settings(None, products=products, sources=[])


def test_products_come_from_the_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "desk.toml"
    toml.write_text(
        '[[products]]\npreset = "agcrm"\n[products.fax_form]\nfax_number = "03-0000-0000"\n'
        '[[products]]\nname = "ChatLuck"\npreset = "chatluck"\ndefault = true\n',
        encoding="utf-8")
    products = Deadlines.from_settings(load_settings(toml)).products
    assert products.names == ("All Gather CRM", "ChatLuck")
    assert products.default.name == "ChatLuck"
    form = products.get("All Gather CRM").fax_form
    assert form is not None and form.fax_number == "03-0000-0000"
    assert form.hours == "受付時間 平日 9:30〜12:00、13:00〜17:30（土日祝・年末年始を除く）"
    chat = products.get("ChatLuck").fax_form
    assert chat is not None
    assert chat.hours == "受付時間 平日 9:00〜12:00、13:00〜17:30（土日祝・年末年始を除く）"


def test_the_forms_hours_line_follows_the_calendar(tmp_path: Path) -> None:
    toml = tmp_path / "desk.toml"
    toml.write_text(
        '[calendar]\nhours = { mon = ["09:00-17:30"], tue = ["09:00-17:30"], '
        'wed = ["09:00-17:30"], thu = ["09:00-17:30"], fri = ["09:00-17:30"], '
        'sat = ["10:00-12:00"] }\nnational_holidays = false\n'
        'closures = ["08-13..08-16", "2026-05-01"]\n', encoding="utf-8")
    form = Deadlines.from_settings(load_settings(toml)).products.default.fax_form
    assert form is not None
    assert form.hours == ("受付時間 月〜金 9:00〜17:30 / 土 10:00〜12:00"
                          "（日・8/13〜8/16・弊社休業日を除く）")


WORDS = InquiryWords.of(
    ["ライセンスキー再発行", "ライセンスキーの再発行", "license key request"],
    ["お問合せ種別", "種別"], ["ライセンスキー"],
)


@pytest.mark.parametrize(
    ("subject", "body", "kind"),
    [
        ("ライセンスキー再発行のお願い", "サーバーを移行しました。", InquiryKind.LICENSE_KEY),
        ("サーバー移行", "ライセンスキーの 再発行 をお願いします。", InquiryKind.LICENSE_KEY),
        ("ＬＩＣＥＮＳＥ ＫＥＹ ＲＥＱＵＥＳＴ", "", InquiryKind.LICENSE_KEY),  # full width
        ("お問い合わせ", "会社名: さくら商事\n種別：ライセンスキー申請\n", InquiryKind.LICENSE_KEY),
        ("お問い合わせ", "【お問合せ種別】ライセンスキー\n", InquiryKind.LICENSE_KEY),
        # Mentioning a licence key is not asking for one.
        ("ログインできません", "ライセンスキーを入力しても起動しません。", InquiryKind.GENERAL),
        ("お問い合わせ", "種別: 操作方法\nライセンスキーの画面について", InquiryKind.GENERAL),
        ("", "", InquiryKind.GENERAL),
    ],
)
def test_a_licence_key_request_is_recognised_by_subject_body_or_form_field(
    subject: str, body: str, kind: InquiryKind
) -> None:
    """ChatLuck 1(3)/2(3): "ライセンスキー再発行" requests get their own rule."""
    assert classify_inquiry(subject, body, WORDS) is kind
