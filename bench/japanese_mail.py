"""Japanese support mail whose every decoded field is known: the inputs of bench/libraries.py.

Built with ``tests/mailfactory.py`` as Japanese clients put mail on the wire,
in each charset (ISO-2022-JP, Shift_JIS, Windows-31J, EUC-JP, UTF-8), with
JIS X 0208 text only or with the Windows characters as well, in four shapes;
and the demo mails of ``demo/mail/``, whose subject, sender and one sentence
of the body were read by eye.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from html import escape
from pathlib import Path

from tests.mailfactory import make_mail

ROOT = Path(__file__).resolve().parents[1]

CHARSETS = ("iso-2022-jp", "shift_jis", "cp932", "euc-jp", "utf-8")
LABELS = {
    "iso-2022-jp": "ISO-2022-JP",
    "shift_jis": "Shift_JIS",
    "cp932": "Windows-31J",
    "euc-jp": "EUC-JP",
    "utf-8": "UTF-8",
}
SHAPES = ("text/plain", "plain + HTML", "HTML only", "attachments")
BIG = "1 MB attachment"

# JIS X 0208 only: what every Japanese charset can carry.
JIS_SUBJECTS = (
    "ログインできない件について",
    "CSV出力の文字化けについて",
    "ライセンス更新のご相談",
    "バージョンアップ後にエラーが表示されます",
    "【至急】サーバーに接続できません（本番環境）",
    "Re: 管理画面の表示が遅い件",
    "見積依頼：年間保守契約の更新と追加ライセンス五十名分および導入支援作業について",
)
JIS_NAMES = ("山田 太郎", "佐藤 花子", "鈴木 一郎", "渡辺 美咲", "伊藤 健太")
JIS_LINES = (
    "いつもお世話になっております。",
    "株式会社サンプル システム部の山田です。",
    "サポートサービス番号: 2031-0001-0008",
    "本日朝より管理画面にログインできなくなりました。",
    "エラーメッセージは「認証に失敗しました」です。",
    "再起動しても改善しません。",
    "Windows 11 / Chrome 131 で発生しています。",
    "添付のログをご確認ください。",
    "ご確認のほど、よろしくお願いいたします。",
)
# What Windows clients put in as well: NEC and IBM extensions (CP932,
# CP50221, eucJP-ms), the Windows mapping of ～ and －, half-width kana.
WINDOWS_SUBJECTS = (
    "①CSV出力の文字化け（㈱サンプル）",
    "髙﨑様の件～再送です",
    "ﾊﾟｽﾜｰﾄﾞ再発行のお願い②",
    "Ⅲ期目の契約更新について～㈲みなと製作所",
    "【重要】①②③の手順でエラー～ﾛｸﾞ添付",
)
WINDOWS_NAMES = ("髙橋 花子", "山﨑 健太", "ﾔﾏﾀﾞ ﾀﾛｳ", "德永 剛")
WINDOWS_LINES = (
    "①の手順で設定しました。",
    "㈱サンプル 情報システム部の髙橋です。",
    "9:00～17:30の間にご連絡ください。",
    "ﾛｸﾞｲﾝ画面で「ｴﾗｰ」と表示されます。",
    "Ⅱ章の設定例どおりです。",
    "山﨑が担当いたします。",
    "費用は￥10,000－の見込みです。",
)
REPERTOIRES = {
    "JIS X 0208": (JIS_SUBJECTS, JIS_NAMES, JIS_LINES, ()),
    "+ CP932 chars": (WINDOWS_SUBJECTS, WINDOWS_NAMES, JIS_LINES, WINDOWS_LINES),
}
ATTACHMENT_NAMES = ("見積書.pdf", "エラー画面.png", "ログ①.txt", "設定ファイル.zip")

# The demo mails, read by eye: subject, sender name, one sentence of the body.
DEMO_TRUTH = {
    "01-login-trouble.eml": (
        "【2031-0001-0008】ChatLuckにログインできません",
        "山田 太郎",
        "株式会社さくら商事 情報システム部の山田です。",
    ),
    "02-csv-export.eml": (
        "CSV出力の文字化けについて①",
        "佐藤 一郎",
        "顧客一覧をCSVで出力すると、①②などの丸数字と「髙」が化けます。",
    ),
    "03-login-followup.eml": (
        "Re: 【2031-0001-0008】ChatLuckにログインできません",
        "山田 太郎",
        "ログインできないのはActive Directory連携ユーザーのみでした。",
    ),
    "04-expired-contract.eml": (
        "バージョンアップ手順の確認",
        "鈴木 次郎",
        "最新版へのバージョンアップ手順を教えてください。",
    ),
    "05-unregistered-sender.eml": (
        "パスワード再設定のお願い",
        "",
        "管理者パスワードを忘れてしまいました。",
    ),
    "06-vacation-notice.eml": ("不在通知: お知らせ", "", "11月30日まで不在にしております。"),
    "08-html-only.eml": (
        "ファイル共有の容量について",
        "髙橋 花子",
        "ファイル共有の<b>容量上限</b>を教えてください。",
    ),
    "09-stranger-quotes-ticket.eml": ("問い合わせの件", "", "この件の進捗を教えてください。"),
}
# 07-broken.eml is not mail at all: the desk quarantines it before parsing.


@dataclass(frozen=True)
class MailCase:
    group: str  # the timing row
    charset: str  # the correctness row ...
    repertoire: str  # ... and its sub-row
    raw: bytes
    subject: str
    name: str
    body: str  # the exact body, or for a demo mail one sentence it contains
    exact_body: bool = True


def _html(lines: list[str], charset: str) -> str:
    meta = f'<meta http-equiv="Content-Type" content="text/html; charset={LABELS[charset]}">'
    paragraphs = "\n".join(f"<p>{escape(line, quote=False)}</p>" for line in lines)
    return f"<html><head>{meta}</head>\n<body>\n{paragraphs}\n</body></html>\n"


def factory_case(rng: random.Random, charset: str, repertoire: str, shape: str) -> MailCase:
    subjects, names, lines, extra = REPERTOIRES[repertoire]
    subject, name = rng.choice(subjects), rng.choice(names)
    chosen = rng.sample(lines, rng.randint(3, 7)) + rng.sample(extra, min(len(extra), 3))
    rng.shuffle(chosen)
    body = "\n".join(chosen) + "\n"
    html = _html(chosen, charset)
    attachments = [
        (name_, "application/octet-stream", rng.randbytes(rng.randint(8_000, 40_000)))
        for name_ in rng.sample(ATTACHMENT_NAMES, 2)
    ]
    address = f"user{rng.randint(1, 999)}@customer.example.co.jp"
    raw = make_mail(
        subject,
        None if shape == "HTML only" else body,
        charset=charset,
        from_=(name, address),
        html=html if shape in ("plain + HTML", "HTML only") else None,
        attachments=attachments if shape == "attachments" else (),
        filename_style=rng.choice(("rfc2231", "rfc2047")),
    )
    truth = html if shape == "HTML only" else body
    return MailCase(shape, charset, repertoire, raw, subject, name, truth)


def mail_corpus(seed: int, per_cell: int) -> list[MailCase]:
    rng = random.Random(seed)
    cases = [
        factory_case(rng, charset, repertoire, shape)
        for charset in CHARSETS
        for repertoire in REPERTOIRES
        for shape in SHAPES
        for _ in range(per_cell)
    ]
    for charset in ("iso-2022-jp", "utf-8"):  # a large mail: where the base64 decoding dominates
        big = make_mail(
            charset=charset, attachments=[("manual.pdf", "application/pdf", rng.randbytes(1 << 20))]
        )
        cases.append(MailCase(BIG, charset, "JIS X 0208", big, "", "", "", False))
    for path in sorted((ROOT / "demo" / "mail").glob("*.eml")):
        if path.name in DEMO_TRUTH:
            subject, name, sentence = DEMO_TRUTH[path.name]
            raw = path.read_bytes()
            cases.append(MailCase("demo mails", "demo", "", raw, subject, name, sentence, False))
    return cases
