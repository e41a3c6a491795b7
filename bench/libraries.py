"""The design card's libraries measured against what the desk runs instead.

    .venv/bin/pip install -e '.[bench]'      # mail-parser and pytesseract, exact pins
    .venv/bin/python bench/libraries.py > bench/results/libraries.txt

mail-parser against ``madoguchi.ingest.parse.parse_message``: the demo mails
of ``demo/mail/`` and Japanese mail built with ``tests/mailfactory.py`` in
every charset Japanese clients send (ISO-2022-JP, Shift_JIS and Windows-31J
with CP932 characters, EUC-JP, UTF-8), as text/plain, plain + HTML, HTML
only and with attachments. Each message is parsed by both in one process,
warmed up, the two taking turns; the figures are wall and CPU time per
message. Correctness: the decoded subject, sender name and body text (the
text/plain part; the HTML part when there is no other) against what the
factory encoded, exactly (line ends and the whitespace around the body aside).

pytesseract against the project's Tesseract wrapper: the calls the FAX reader
makes on the demo FAXes of ``demo/fax/`` are recorded (image and arguments)
and replayed through both, same image, same Tesseract, ``OMP_THREAD_LIMIT=1``.
Besides time: whether pytesseract's output carries what the reader reads
(TSV words with their confidences, hOCR character confidences) and what each
does when Tesseract cannot do the work. A benchmark, not a test: it reports,
it asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ["OMP_THREAD_LIMIT"] = "1"
ROOT = Path(__file__).resolve().parents[1]
# Run as a script from anywhere: the repository root holds the tests package.
sys.path.insert(0, str(ROOT))

import mailparser  # noqa: E402
import pytesseract  # noqa: E402
from PIL import Image  # noqa: E402

from madoguchi.config import Limits  # noqa: E402
from madoguchi.ingest.parse import parse_message  # noqa: E402
from madoguchi.ocr.reader import read_fax_document  # noqa: E402
from tests.mailfactory import make_mail  # noqa: E402

try:  # where the wrapper lives once the FAX reader is split along its seams
    from madoguchi.ocr._exec import tesseract
    from madoguchi.ocr._exec.tesseract_output import parse_hocr, parse_tsv
except ImportError:
    from madoguchi.ocr import tesseract
    from madoguchi.ocr.tesseract import _parse_hocr as parse_hocr
    from madoguchi.ocr.tesseract import _parse_tsv as parse_tsv

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


# --- the mail corpus ----------------------------------------------------------


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


@dataclass(frozen=True)
class Decoded:
    subject: str
    name: str
    body: str  # the text/plain part, or the HTML part of an HTML-only mail


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
    for charset in ("iso-2022-jp", "utf-8"):  # the size the docstring once quoted
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


def ours(raw: bytes, limits: Limits = Limits()) -> Decoded:  # noqa: B008 - built once
    parsed = parse_message(raw, limits)
    body = parsed.html if parsed.content_type == "text/html" and parsed.html else parsed.text
    return Decoded(parsed.subject, parsed.from_name, body)


def theirs(raw: bytes) -> Decoded:
    parsed = mailparser.parse_from_bytes(raw)
    plain, html = parsed.text_plain, parsed.text_html
    body = plain[0] if plain else html[0] if html else ""
    sender = parsed.from_
    return Decoded(parsed.subject or "", sender[0][0] if sender else "", body)


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def verdict(case: MailCase, read: Callable[[bytes], Decoded]) -> tuple[bool, bool, bool]:
    """Subject, sender name and body exactly right (an exception: all wrong)."""
    try:
        got = read(case.raw)
    except Exception:
        return (False, False, False)
    if case.exact_body:
        body_ok = _clean(got.body) == _clean(case.body)
    else:
        body_ok = case.body in got.body.replace("\r\n", "\n")
    return (got.subject == case.subject, got.name == case.name, body_ok)


# --- timing -------------------------------------------------------------------


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)  # seconds
    cpu: list[float] = field(default_factory=list)  # this process
    children: list[float] = field(default_factory=list)  # Tesseract's

    def add(self, wall: float, cpu: float, children: float = 0.0) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)
        self.children.append(children)


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


@contextmanager
def measured(into: Samples) -> Iterator[None]:
    before = os.times()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        cpu_used, wall_used = time.process_time() - cpu, time.perf_counter() - wall
        after = os.times()
        children = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        into.add(wall_used, cpu_used, children)


class LoadWatch:
    """The 1-minute load average, sampled as the benchmark goes."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        s = self.samples
        return f"min {min(s):.1f}, median {statistics.median(s):.1f}, max {max(s):.1f}"


def time_in_turns(
    items: list[Any],
    contenders: dict[str, Callable[[Any], object]],
    group_of: Callable[[Any], str],
    rounds: int,
    load: LoadWatch,
) -> dict[tuple[str, str], Samples]:
    """Each item through each contender ``rounds`` times, the order swapped every round.

    One untimed pass first (imports, caches, Tesseract's first model load).
    """
    names = list(contenders)
    for item in items:
        for name in names:
            _attempt(contenders[name], item)
    samples: dict[tuple[str, str], Samples] = {}
    for round_no in range(rounds):
        load.sample()
        gc.collect()
        order = names if round_no % 2 == 0 else names[::-1]
        for item in items:
            for name in order:
                with measured(samples.setdefault((group_of(item), name), Samples())):
                    _attempt(contenders[name], item)
    return samples


def _attempt(call: Callable[[Any], object], item: Any) -> None:
    try:
        call(item)
    except Exception:  # a failure costs its time like a success; correctness counts it
        return


# --- the Tesseract calls ------------------------------------------------------


@dataclass(frozen=True)
class OcrCall:
    image: Image.Image
    lang: str
    psm: int
    whitelist: str | None
    dpi: int
    chars: bool

    @property
    def kind(self) -> str:
        read = f"whitelist {self.whitelist}" if self.whitelist else "no whitelist"
        out = "hOCR char confidences" if self.chars else "TSV words"
        return f"{self.lang}, PSM {self.psm}, {read} -> {out}"


def reader_calls() -> list[OcrCall]:
    """Every Tesseract call the FAX reader makes on the demo FAXes, as it made it."""
    calls: list[OcrCall] = []
    original = tesseract.recognise

    def recording(image: Image.Image, **kwargs: Any) -> Any:
        calls.append(
            OcrCall(
                image.copy(),
                kwargs.get("lang", tesseract.ENGLISH),
                kwargs.get("psm", tesseract.PSM_BLOCK),
                kwargs.get("whitelist"),
                kwargs.get("dpi", 200),
                kwargs.get("chars", False),
            )
        )
        return original(image, **kwargs)

    tesseract.recognise = recording
    try:
        for path in sorted((ROOT / "demo" / "fax").iterdir()):
            read_fax_document(path.read_bytes(), path.name)
    finally:
        tesseract.recognise = original
    return calls


def by_wrapper(call: OcrCall) -> Any:
    return tesseract.recognise(
        call.image,
        lang=call.lang,
        psm=call.psm,
        whitelist=call.whitelist,
        dpi=call.dpi,
        chars=call.chars,
    )


def _config(call: OcrCall) -> str:
    config = f"--psm {call.psm} --dpi {call.dpi} -c preserve_interword_spaces=1"
    if call.whitelist is not None:
        config += f" -c tessedit_char_whitelist={call.whitelist}"
    return config


def by_pytesseract(call: OcrCall) -> str | bytes:
    """The same call through pytesseract: its raw output, which the reader would still parse."""
    if call.chars:
        return pytesseract.image_to_pdf_or_hocr(
            call.image,
            lang=call.lang,
            config=_config(call) + " -c hocr_char_boxes=1",
            extension="hocr",
        )
    return pytesseract.image_to_data(call.image, lang=call.lang, config=_config(call))


def bare(call: OcrCall, image_format: str) -> bytes:
    """The wrapper's command line run directly, the image on stdin as ``image_format``.

    Tells what the image format costs Tesseract apart from any library.
    """
    image = call.image if call.image.mode in ("1", "L") else call.image.convert("L")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    cmd = ["tesseract", "stdin", "stdout", "--psm", str(call.psm), "-l", call.lang]
    cmd += ["--dpi", str(call.dpi), "-c", "preserve_interword_spaces=1"]
    if call.whitelist is not None:
        cmd += ["-c", f"tessedit_char_whitelist={call.whitelist}"]
    cmd += ["-c", "hocr_char_boxes=1", "hocr"] if call.chars else ["tsv"]
    return subprocess.run(cmd, input=buffer.getvalue(), capture_output=True, check=True).stdout


@dataclass
class Agreement:
    calls: int = 0
    same: int = 0  # pytesseract's output, parsed the wrapper's way, equals the wrapper's result
    dict_words: int = 0  # words in pytesseract's Output.DICT
    dict_conf_changed: int = 0  # ... whose confidence is not Tesseract's
    hocr_chars: int = 0  # characters in Tesseract's hOCR
    kept_chars: int = 0  # ... that the wrapper's result holds


def agreement(calls: list[OcrCall]) -> dict[str, Agreement]:
    seen: dict[str, Agreement] = {}
    for call in calls:
        tally = seen.setdefault(call.kind, Agreement())
        tally.calls += 1
        wrapped = by_wrapper(call)
        raw = by_pytesseract(call)
        if isinstance(raw, bytes):
            text = raw.decode("utf-8")
            tally.same += parse_hocr(text) == wrapped
            tally.hocr_chars += text.count("class='ocrx_cinfo'")
            tally.kept_chars += len(wrapped.chars)
            continue
        tally.same += parse_tsv(raw) == wrapped
        # Output.DICT is pytesseract's parsed form of the words; it passes
        # every number through int(float()).
        as_dict = pytesseract.image_to_data(
            call.image, lang=call.lang, config=_config(call), output_type=pytesseract.Output.DICT
        )
        confs = [
            float(conf)
            for level, text, conf in zip(
                as_dict["level"], as_dict["text"], as_dict["conf"], strict=True
            )
            if level == 5 and str(text).strip()
        ]
        tally.dict_words += len(confs)
        truth = [w.conf for w in wrapped.words]
        tally.dict_conf_changed += sum(a != b for a, b in zip(truth, confs, strict=False))
    return seen


def failures(page: Image.Image) -> list[tuple[str, str, str]]:
    """What each reports when Tesseract cannot do the work."""

    def outcome(call: Callable[[], object]) -> str:
        try:
            call()
        except BaseException as exc:  # SystemExit included: pytesseract may raise it
            message = " ".join(str(exc).split())[:64]
            return f"{type(exc).__module__}.{type(exc).__name__}: {message}"
        return "no error"

    cases = [
        (
            "language data missing (lang='xyz')",
            lambda: tesseract.recognise(page, lang="xyz"),
            lambda: pytesseract.image_to_data(page, lang="xyz"),
        ),
        (
            "over its time limit (0.1 s, full page)",
            lambda: tesseract.recognise(page, lang="jpn+eng", psm=3, timeout=0.1),
            lambda: pytesseract.image_to_data(page, lang="jpn+eng", config="--psm 3", timeout=0.1),
        ),
    ]
    return [(what, outcome(ours_), outcome(theirs_)) for what, ours_, theirs_ in cases]


# --- the report ---------------------------------------------------------------


def correctness_lines(cases: list[MailCase]) -> list[str]:
    rows: dict[tuple[str, str], list[tuple[tuple[bool, ...], tuple[bool, ...]]]] = {}
    for case in cases:
        if case.group != BIG:
            rows.setdefault((case.charset, case.repertoire), []).append(
                (verdict(case, ours), verdict(case, theirs))
            )
    fields = "subj  name  body   all"
    out = [
        "Decoded exactly right, of n: subject, sender name, body text, all three",
        "(demo mails: the body holds a known sentence; HTML-only mail: the body is the HTML)",
        f"{'charset':12} {'characters':14} {'n':>4}   {'parse_message':^23}   {'mail-parser':^23}",
        f"{'':32}   {fields:^23}   {fields:^23}",
    ]
    every: list[tuple[tuple[bool, ...], tuple[bool, ...]]] = []
    for (charset, repertoire), results in rows.items():
        every += results
        out.append(_correctness_row(LABELS.get(charset, charset), repertoire, results))
    out.append(_correctness_row("all", "", every))
    return out


def _correctness_row(
    charset: str, repertoire: str, results: list[tuple[tuple[bool, ...], tuple[bool, ...]]]
) -> str:
    def counts(side: int) -> str:
        per_field = [sum(r[side][i] for r in results) for i in range(3)]
        return " ".join(f"{n:5d}" for n in [*per_field, sum(all(r[side]) for r in results)])

    return f"{charset:12} {repertoire:14} {len(results):4d}   {counts(0)}   {counts(1)}"


def timing_lines(cases: list[MailCase], samples: dict[tuple[str, str], Samples]) -> list[str]:
    rows = [(group, [group]) for group in (*SHAPES, BIG, "demo mails")]
    rows.append(("all factory mail", list(SHAPES)))
    out = [
        "Milliseconds per message: wall median, wall p95, CPU median",
        f"{'mail':18} {'n':>4} {'KB':>7}   {'parse_message':^26}   {'mail-parser':^26}   ratio",
    ]
    for label, groups in rows:
        members = [c for c in cases if c.group in groups]
        mine, other = (_merged(samples, groups, name) for name in ("ours", "mail-parser"))
        kb = statistics.median(len(c.raw) for c in members) / 1024
        ratio = statistics.median(other.wall) / statistics.median(mine.wall)
        out.append(
            f"{label:18} {len(members):4d} {kb:7.1f}   {_ms(mine)}   {_ms(other)}   {ratio:4.1f}x"
        )
    out.append("(ratio: mail-parser's wall median over parse_message's)")
    return out


def _merged(samples: dict[tuple[str, str], Samples], groups: list[str], name: str) -> Samples:
    merged = Samples()
    for group in groups:
        merged.wall += samples[(group, name)].wall
        merged.cpu += samples[(group, name)].cpu
    return merged


def _ms(s: Samples) -> str:
    median, high, cpu = statistics.median(s.wall), p95(s.wall), statistics.median(s.cpu)
    return f"{median * 1e3:8.2f} {high * 1e3:8.2f} {cpu * 1e3:8.2f}"


def _kinds(calls: list[OcrCall]) -> list[str]:
    return list(dict.fromkeys(c.kind for c in calls))


def ocr_timing_lines(
    calls: list[OcrCall], samples: dict[tuple[str, str], Samples], left: str, right: str
) -> list[str]:
    out = [
        "Seconds per call: wall median, wall p95, CPU median of this process, of Tesseract",
        f"{'call (as the reader makes it)':60} {'n':>2}   {left:^27}   {right:^27}  wall",
    ]
    for kind in _kinds(calls):
        mine, other = samples[(kind, left)], samples[(kind, right)]
        n = sum(c.kind == kind for c in calls)
        extra = statistics.median(other.wall) / statistics.median(mine.wall) - 1
        out.append(f"{kind:60} {n:2d}   {_seconds(mine)}   {_seconds(other)}  {extra:+4.0%}")
    return out


def _seconds(s: Samples) -> str:
    wall, high = statistics.median(s.wall), p95(s.wall)
    cpu, children = statistics.median(s.cpu), statistics.median(s.children)
    return f"{wall:6.3f} {high:6.3f} {cpu:6.3f} {children:6.3f}"


def agreement_lines(tallies: dict[str, Agreement]) -> list[str]:
    out = ["pytesseract's output read by the wrapper's own parser, against the wrapper's result"]
    for kind, t in tallies.items():
        out.append(f"  {kind}: identical in {t.same} of {t.calls} calls")
        if t.dict_words:
            out.append(
                f"    its Output.DICT: {t.dict_conf_changed} of {t.dict_words} word confidences"
                " are not Tesseract's (cut to whole numbers)"
            )
        if t.hocr_chars != t.kept_chars:
            out.append(
                f"    characters in Tesseract's hOCR: {t.hocr_chars}; in the wrapper's result:"
                f" {t.kept_chars} (its parser skips lines classed ocr_header)"
            )
    return out


def _versions() -> str:
    first = subprocess.run(
        ["tesseract", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    return (
        f"mail-parser {metadata.version('mail-parser')}, "
        f"pytesseract {metadata.version('pytesseract')}, {first}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores"
    )


@dataclass
class Figures:
    cases: list[MailCase]
    mail: dict[tuple[str, str], Samples]
    calls: list[OcrCall]
    ocr: dict[tuple[str, str], Samples]
    formats: dict[tuple[str, str], Samples]
    tallies: dict[str, Agreement]
    failed: list[tuple[str, str, str]]


def measure(args: argparse.Namespace, load: LoadWatch) -> Figures:
    cases = mail_corpus(args.seed, args.per_cell)
    print(f"mail: {len(cases)} messages", file=sys.stderr)
    readers = {"ours": lambda c: ours(c.raw), "mail-parser": lambda c: theirs(c.raw)}
    mail = time_in_turns(cases, readers, lambda c: c.group, args.mail_rounds, load)

    calls = reader_calls()
    print(f"ocr: {len(calls)} calls", file=sys.stderr)
    lines = [c for c in calls if c.image.width * c.image.height < 1_000_000]
    pages = [c for c in calls if c not in lines]
    ocr: dict[tuple[str, str], Samples] = {}
    formats: dict[tuple[str, str], Samples] = {}
    for group, rounds in ((lines, args.line_rounds), (pages, args.page_rounds)):
        ocr |= time_in_turns(
            group,
            {"wrapper": by_wrapper, "pytesseract": by_pytesseract},
            lambda c: c.kind,
            rounds,
            load,
        )
        formats |= time_in_turns(
            group,
            {"PNM on stdin": lambda c: bare(c, "PPM"), "PNG on stdin": lambda c: bare(c, "PNG")},
            lambda c: c.kind,
            rounds,
            load,
        )
    print("ocr: agreement", file=sys.stderr)
    return Figures(cases, mail, calls, ocr, formats, agreement(calls), failures(pages[0].image))


def report(figures: Figures, args: argparse.Namespace, header: str) -> None:
    print(header)
    print(
        f"seed {args.seed}; rounds: mail {args.mail_rounds}, OCR of a line {args.line_rounds},"
        f" of a page {args.page_rounds}; every round swaps which of the two goes first"
    )
    print()
    print("== mail-parser against madoguchi.ingest.parse.parse_message")
    print("\n".join(correctness_lines(figures.cases)))
    print()
    print("\n".join(timing_lines(figures.cases, figures.mail)))
    print()
    print(f"== pytesseract against the wrapper, {tesseract.__name__}.recognise")
    print(f"The {len(figures.calls)} Tesseract calls the FAX reader made on demo/fax/, replayed")
    print("\n".join(ocr_timing_lines(figures.calls, figures.ocr, "wrapper", "pytesseract")))
    print("(pytesseract: the call that gives the raw output; the wrapper: that, parsed)")
    print()
    print("The same calls by the wrapper's command line alone: the image format's cost")
    formats = ocr_timing_lines(figures.calls, figures.formats, "PNM on stdin", "PNG on stdin")
    print("\n".join(formats))
    print()
    print("\n".join(agreement_lines(figures.tallies)))
    print()
    print("When Tesseract cannot do the work")
    for what, mine, other in figures.failed:
        print(f"  {what}\n    wrapper:     {mine}\n    pytesseract: {other}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--per-cell", type=int, default=5, help="mails per charset, chars, shape")
    parser.add_argument("--mail-rounds", type=int, default=30)
    parser.add_argument("--line-rounds", type=int, default=15)
    parser.add_argument("--page-rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # it logs every odd header
    load = LoadWatch()
    started = time.perf_counter()
    figures = measure(args, load)
    load.sample()
    header = (
        "# OMP_THREAD_LIMIT=1 .venv/bin/python bench/libraries.py"
        f"   ({_versions()}; wall {time.perf_counter() - started:.0f} s on cores shared with"
        f" other work; 1-min load average during the run: {load.summary()})"
    )
    report(figures, args, header)


if __name__ == "__main__":
    main()
