"""The desk's languages: a complete English catalogue, no English in the Japanese desk,
no Japanese chrome in the English desk, and the language chosen per user."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select

from madoguchi.ticketing.actions import ActionError, required_text
from madoguchi.ticketing.contracts import TermsError
from madoguchi.ticketing.models import Channel, Customer, Flag, StaffUser
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.toolkit_models import TextModule
from madoguchi.web import i18n
from madoguchi.web.problems import problem_ja
from madoguchi.web.templating import waited
from madoguchi.web.timeleft import time_left
from tests.test_web_kit import Staff, WebDesk, csrf_in, make_ticket, png

pytest_plugins = ["tests.test_web_kit"]

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "web" / "locale" / "en" / "LC_MESSAGES" / "messages.po"
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uff01-\uff5e]")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _extracted() -> dict[tuple[str, str | None], list[str]]:
    """Every (msgid, context) in the web desk's templates and Python (as scripts/i18n.sh
    extracts them)."""
    found: dict[tuple[str, str | None], list[str]] = {}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "say": None,
                "pgettext": ((1, "c"), 2)}
    sources = (
        (ROOT / "web", [("templates/**.html", "jinja2"), ("**.py", "python")],
         {"templates/**.html": {"trim_blocks": "True", "lstrip_blocks": "True"}}),
        (ROOT / "ticketing", [("**.py", "python")], {}),
        (ROOT / "ingest", [("**.py", "python")], {}),
    )
    for folder, method_map, options in sources:
        for filename, lineno, message, _comments, context in extract_from_dir(
                folder, method_map, options, keywords=keywords):
            msgid = message if isinstance(message, str) else message[0]
            found.setdefault((msgid, context), []).append(f"{folder.name}/{filename}:{lineno}")
    return found


def test_every_marked_string_has_an_english_translation_with_the_same_placeholders() -> None:
    with PO.open("rb") as fh:
        catalog = read_po(fh, locale="en")
    extracted = _extracted()
    assert len(extracted) > 400  # the extractor saw the templates, not an empty folder
    missing, fuzzy, mismatched = [], [], []
    for (msgid, context), where in extracted.items():
        entry = catalog.get(msgid, context=context)
        if entry is None or not entry.string:
            missing.append(f"{msgid!r} ({where[0]})")
        elif entry.fuzzy:
            fuzzy.append(msgid)
        elif set(_PLACEHOLDER.findall(msgid)) != set(_PLACEHOLDER.findall(str(entry.string))):
            mismatched.append(msgid)
    assert not missing, "run scripts/i18n.sh and translate:\n" + "\n".join(missing)
    assert not fuzzy and not mismatched, (fuzzy, mismatched)
    # Jinja marks a translation safe (it is the template's own HTML): a quote, "<" or "&"
    # the Japanese text has not would break the attribute or the element it stands in.
    unsafe = [m.id for m in catalog if m.id and any(
        c in str(m.string) and c not in m.id for c in '"<>&')]
    assert not unsafe, unsafe
    # English text, not Japanese copied across (names in examples are data, and allowed).
    copied = [m.id for m in catalog if m.id and _JAPANESE.search(str(m.string))
              and not re.search(r"山田|やまだ|受付番号|様|11月25日|、", str(m.string))]
    assert not copied, copied


def test_times_and_reader_problems_in_both_languages() -> None:
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    i18n.set_locale("ja")
    assert time_left(now + timedelta(hours=3), now) == "あと3時間"
    assert time_left(now - timedelta(minutes=15), now) == "15分超過"
    assert waited(now - timedelta(hours=2, minutes=5), now) == "2時間5分"
    assert problem_ja("no support service number found") == "サポートサービス番号が見つかりません"
    decided = ("page 1: the support number boxes cannot be decided (203100010008 is only 23 "
               "times as likely as 203100010016)")
    assert problem_ja(decided) == (
        "1ページ目: サポートサービス番号の記入欄の読みを決められません（203100010008 は "
        "203100010016 の 23 倍しか確からしくありません（1,000 倍必要））")
    i18n.set_locale("en")
    assert problem_ja(decided) == (
        "Page 1: the support number boxes cannot be decided (203100010008 is only 23 times "
        "as likely as 203100010016 (1,000 times needed))")
    try:
        assert time_left(now + timedelta(hours=3), now) == "3 h left"
        assert time_left(now - timedelta(days=3), now) == "3 d overdue"
        assert waited(now - timedelta(days=2, hours=4), now) == "2 d 4 h"
        assert problem_ja("page 2: read 123 once and 456 the second time") == (
            "Page 2: read 123 the first time and 456 the second; they differ")
        assert problem_ja("something new") == "Reading problem (something new)"
    finally:
        i18n.set_locale("ja")


# -- what staff see -------------------------------------------------------------


class _Visible(HTMLParser):
    """The text a person sees or hears: text nodes and the attributes read out or shown,
    without scripts and without <code>/<kbd>/.mono (identifiers, keys, numbers)."""

    SPOKEN = ("title", "alt", "placeholder", "aria-label", "data-confirm", "data-label",
              "data-macro-label")  # data-label: the card labels at 390 px (CSS attr())

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style", "code", "kbd") or "mono" in (values.get("class") or ""):
            self._skip.append(tag)
            return
        if self._skip and tag == self._skip[-1]:
            self._skip.append(tag)  # the same tag nested inside a skipped one
        if tag in ("input", "img", "br", "meta", "link", "source") and self._skip \
                and self._skip[-1] == tag:
            self._skip.pop()  # a void element has no end tag
        # data-t-*: what the script will say (base.html)
        self.parts.extend(v for k, v in attrs
                          if (k in self.SPOKEN or k.startswith("data-t-")) and v)
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


# Names and abbreviations the Japanese desk writes in Latin letters on purpose.
_ALLOWED = {"Madoguchi", "FAX", "CSV", "PDF", "HTML", "OCR", "QR", "SLA", "TEL", "IMAP",
            "Web", "OS", "UTF", "JSON", "KB", "MB", "PP", "ChatLuck", "All", "Gather", "CRM",
            "Enter", "Esc", "Ctrl", "Q", "T", "C",
            # the mail header's name, a reply's subject as mail writes it, a language's own name
            "CC", "Re", "English"}
_DATA = (re.compile(r"[\w.+-]+@[\w.-]+"),  # e-mail addresses (data)
         re.compile(r"\b[A-Z]-\d{4}-\d+\b"),  # ticket numbers
         re.compile(r"%\(\w+\)s"))  # the values the script fills in (data-t-*)


def english_words(text: str) -> list[str]:
    for pattern in _DATA:
        text = pattern.sub(" ", text)
    return sorted({w for w in re.findall(r"[A-Za-z]+", text) if w not in _ALLOWED})


def _pages(wd: WebDesk) -> dict[str, str]:
    now = datetime.now(UTC)
    with wd.desk.factory() as s:
        sakura = s.scalars(select(Customer.id).where(
            Customer.company == "株式会社さくら商事")).one()
    mail = make_ticket(wd.desk, subject="ログインできません", due=now + timedelta(hours=3),
                       customer_id=sakura, flags=(Flag.URGENT,),
                       assignee_id=wd.users["agent"])
    fax = make_ticket(wd.desk, subject="FAXでのお問い合わせ（1枚）", channel=Channel.FAX,
                      flags=(Flag.UNREADABLE_FAX,), page=png(), due=now - timedelta(hours=1))
    return {"mail": mail, "fax": fax}


def _japanese_pages(staff: Staff, numbers: dict[str, str]) -> dict[str, str]:
    return {path: staff.get(path).text for path in (
        "/queue", "/queue?status=all", "/triage", f"/tickets/{numbers['mail']}",
        f"/tickets/{numbers['fax']}", "/me", "/customers", "/search?q=ログイン")}


def test_no_english_word_leaks_into_the_japanese_queue_ticket_and_triage_pages(
        sqlite_webdesk: WebDesk) -> None:
    numbers = _pages(sqlite_webdesk)
    agent = sqlite_webdesk.sign_in("agent")
    for path, html in _japanese_pages(agent, numbers).items():
        assert '<html lang="ja">' in html, path
        words = english_words(visible_text(html))
        assert not words, f"{path}: {words}"
    # The test sees a leak: the reader's English problem would be one.
    assert english_words("no support service number found") == [
        "found", "no", "number", "service", "support"]


def _data_strings(wd: WebDesk) -> list[str]:
    """What the pages show from the database (names, subjects): Japanese, and not chrome."""
    with wd.desk.factory() as s:
        names = [*s.scalars(select(StaffUser.name)), *s.scalars(select(Customer.company)),
                 *s.scalars(select(Customer.department)), *s.scalars(select(TextModule.title))]
        # The shipped text modules' lines, as the page shows them (white space folded).
        names += [" ".join(line.split()) for body in s.scalars(select(TextModule.body))
                  for line in body.splitlines() if line.strip()]
    # The signature goes to customers as written (Japanese), like the shipped text modules.
    signature = [wd.settings.acknowledgement.from_name, "担当:"]
    return sorted([*names, *signature, *wd.settings.tickets.tag_categories, "受付番号：",
                   "ログインできません", "ログイン", "できません",  # a search term and its hit
                   "FAXでのお問い合わせ（1枚）", "見本 太郎", "本文です。",
                   "山田 太郎", "山田", "やまだ",  # examples of what to type: Japanese names, kana
                   "様", "窓口"], key=len, reverse=True)


def test_a_user_switched_to_english_sees_the_desk_in_english_and_back(
        sqlite_webdesk: WebDesk) -> None:
    numbers = _pages(sqlite_webdesk)
    agent = sqlite_webdesk.sign_in("agent")
    page = agent.get("/me").text
    assert "個人設定" in page and '<option value="en" lang="en" >English' in page
    r = agent.post("/me/locale", {"locale": "en"})
    assert r.status_code == 303 and r.headers["location"] == "/me"
    settings_page = agent.get("/me").text
    assert '<html lang="en">' in settings_page
    assert "Display language changed." in settings_page
    data = _data_strings(sqlite_webdesk)
    for path in ("/queue", "/triage", f"/tickets/{numbers['mail']}",
                 f"/tickets/{numbers['fax']}", "/customers", "/search?q=ログイン", "/phone",
                 "/text-modules"):
        html = agent.get(path).text
        assert '<html lang="en">' in html, path
        text = visible_text(html)
        for value in data:
            text = text.replace(value, " ")
        left = sorted(set(_JAPANESE.findall(text)))
        assert not left, f"{path}: Japanese chrome left in English: {left} in {text[:2000]}"
    queue = agent.get("/queue").text
    for english in ("Queue", "Response due", "Overdue", "Urgent", "Open", "left"):
        assert english in visible_text(queue), english
    triage = visible_text(agent.get("/triage").text)
    assert "No support service number found" in triage
    # Signing out keeps the sign-in page in the user's language; back to Japanese.
    agent.post("/logout")
    assert '<html lang="en">' in agent.get("/login").text
    agent = sqlite_webdesk.sign_in("agent")
    agent.post("/me/locale", {"locale": "ja"})
    queue = agent.get("/queue").text
    assert '<html lang="ja">' in queue and "回答期限" in queue and "Response due" not in queue


def test_a_bad_language_changes_nothing_and_says_so(sqlite_webdesk: WebDesk) -> None:
    agent = sqlite_webdesk.sign_in("agent")
    r = agent.post("/me/locale", {"locale": "fr"})
    assert r.status_code == 303
    page = agent.get("/me").text
    assert "表示言語を選んでください。" in page and '<html lang="ja">' in page
    with sqlite_webdesk.desk.factory() as s:
        assert s.get(StaffUser, sqlite_webdesk.users["agent"]).locale == "ja"


def test_a_supervisor_sets_a_users_language_and_an_agent_may_not(
        sqlite_webdesk: WebDesk) -> None:
    boss = sqlite_webdesk.sign_in("boss")
    agent = sqlite_webdesk.sign_in("agent")
    agent_id = str(sqlite_webdesk.users["agent"])
    refused = agent.post("/staff/locale", {"staff_id": agent_id, "locale": "en"})
    assert refused.status_code == 403
    sessions = boss.get("/staff/sessions").text
    assert 'action="/staff/locale"' in sessions
    r = boss.post("/staff/locale", {"staff_id": agent_id, "locale": "en"})
    assert r.status_code == 303
    assert "佐藤 彩香 の表示言語をEnglishにしました。" in boss.get("/staff/sessions").text
    # The agent's next page is English, without signing in again.
    assert '<html lang="en">' in agent.get("/queue").text
    missing = boss.post("/staff/locale", {"staff_id": "999999", "locale": "en"})
    assert missing.status_code == 303
    assert "対象が見つかりません。" in boss.get("/staff/sessions").text
    # The sessions page itself stays in the supervisor's language.
    assert '<html lang="ja">' in boss.get("/staff/sessions").text
    assert csrf_in(boss.get("/me").text)


def test_a_refusal_from_the_desk_actions_is_shown_in_the_users_language() -> None:
    with pytest.raises(ActionError) as caught:
        required_text("  ", N_("件名"))
    assert str(caught.value) == "件名を入力してください"  # the rules' own words, unchanged
    i18n.set_locale("en")
    try:
        assert i18n.error_text(caught.value) == "Please fill in: Subject"
        assert i18n.error_text(ActionError(N_("タグは%(n)s個までです"), n=20)) == "At most 20 tags"
        # A message nobody marked is shown as it is, never lost.
        assert i18n.error_text(ActionError("未登録の文")) == "未登録の文"
    finally:
        i18n.set_locale("ja")
    assert i18n.error_text(caught.value) == "件名を入力してください"


def test_an_unknown_page_is_refused_in_the_users_language(sqlite_webdesk: WebDesk) -> None:
    agent = sqlite_webdesk.sign_in("agent")
    assert "ページが見つかりません。" in agent.get("/no-such-page").text
    agent.post("/me/locale", {"locale": "en"})
    missing = agent.get("/no-such-page")
    assert missing.status_code == 404
    assert "Page not found." in missing.text and '<html lang="en">' in missing.text
    assert "Ticket not found." in agent.get("/tickets/T-2026-999999").text


def test_a_contract_refusal_keeps_its_japanese_and_english_and_is_translated() -> None:
    exc = TermsError("too_long", "department", limit=200)
    assert exc.japanese == "部署は200文字以内にしてください"
    assert exc.english == "department is longer than 200 characters"  # the command line's
    i18n.set_locale("en")
    try:
        assert i18n.error_text(ActionError(exc.message, **exc.values)) == (
            "Department: at most 200 characters")
    finally:
        i18n.set_locale("ja")


def test_a_bulk_action_and_its_refusals_in_english(sqlite_webdesk: WebDesk) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    numbers = [make_ticket(sqlite_webdesk.desk, due=due) for _ in range(2)]
    merged = make_ticket(sqlite_webdesk.desk, due=due)
    agent = sqlite_webdesk.sign_in("agent")
    agent.post(f"/tickets/{merged}/merge", {"target": numbers[0]})
    agent.post("/me/locale", {"locale": "en"})
    agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "close",
                                           "ticket": [*numbers, merged, "T-2026-999999"]})
    page = agent.get("/queue").text
    assert "Closed 2 ticket(s)." in page
    assert (f"2 ticket(s) could not be changed: {merged} (This ticket has been merged. "
            "Please work on the ticket it was merged into), T-2026-999999 (Ticket not found)"
            ) in page
