"""The design card's libraries measured against what the desk runs instead.

    .venv/bin/pip install -e '.[bench]'      # mail-parser and pytesseract, exact pins
    .venv/bin/python bench/libraries.py > bench/results/libraries.txt

mail-parser against ``madoguchi.ingest.parse.parse_message``, with the stdlib
beneath both for reference (its own decoding, ``policy.default``; and the bare
``compat32`` parse parse_message starts from, timed only): the demo mails and
Japanese mail built with ``tests/mailfactory.py`` (``bench/japanese_mail.py``)
in every charset Japanese clients send, as text/plain, plain + HTML, HTML only
and with attachments. All parse each message in one process, warmed up,
taking turns; the figures are wall time per message. Correctness: the decoded
subject, sender name and body text (the text/plain part; the HTML part when
there is no other) against what the factory encoded, exactly (line ends and
the whitespace around the body aside).

pytesseract against the project's Tesseract wrapper: the calls the FAX reader
makes on the demo FAXes of ``demo/fax/`` are recorded (image and arguments)
and replayed through both, same image, same Tesseract, ``OMP_THREAD_LIMIT=1``;
and through the wrapper's command line alone with the image as PNM and as
PNG, to tell the image format's cost from the library's. Besides time:
whether pytesseract's output carries what the reader reads (TSV words with
their confidences, hOCR character confidences) and what each does when
Tesseract cannot do the work. A benchmark, not a test: it reports, it asserts
nothing.
"""

from __future__ import annotations

import argparse
import email
import gc
import io
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.policy import compat32
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ["OMP_THREAD_LIMIT"] = "1"
ROOT = Path(__file__).resolve().parents[1]
# Run as a script from anywhere: the repository root holds the bench and tests packages.
sys.path.insert(0, str(ROOT))

import mailparser  # noqa: E402
import pytesseract  # noqa: E402
from PIL import Image  # noqa: E402

from bench.japanese_mail import BIG, LABELS, SHAPES, MailCase, mail_corpus  # noqa: E402
from madoguchi.config import Limits  # noqa: E402
from madoguchi.ingest.parse import parse_message  # noqa: E402
from madoguchi.ocr.reader import read_fax_document  # noqa: E402

try:  # where the wrapper lives once the FAX reader is split along its seams
    from madoguchi.ocr._exec import tesseract
    from madoguchi.ocr._exec.tesseract_output import parse_hocr, parse_tsv
except ImportError:
    from madoguchi.ocr import tesseract
    from madoguchi.ocr.tesseract import _parse_hocr as parse_hocr
    from madoguchi.ocr.tesseract import _parse_tsv as parse_tsv


@dataclass(frozen=True)
class Decoded:
    subject: str
    name: str
    body: str  # the text/plain part, or the HTML part of an HTML-only mail


LIMITS = Limits()


def by_parse_message(raw: bytes) -> Decoded:
    parsed = parse_message(raw, LIMITS)
    body = parsed.html if parsed.content_type == "text/html" and parsed.html else parsed.text
    return Decoded(parsed.subject, parsed.from_name, body)


def by_mail_parser(raw: bytes) -> Decoded:
    parsed = mailparser.parse_from_bytes(raw)
    plain, html = parsed.text_plain, parsed.text_html
    body = plain[0] if plain else html[0] if html else ""
    sender = parsed.from_
    return Decoded(parsed.subject or "", sender[0][0] if sender else "", body)


def by_stdlib(raw: bytes) -> Decoded:
    """The stdlib's own decoding (``policy.default``): what Python's codecs make of the mail."""
    message = email.message_from_bytes(raw, policy=policy.default)
    sender = message["from"]
    addresses = sender.addresses if sender is not None else ()
    part = message.get_body(("plain", "html"))
    body = part.get_content() if part is not None else ""
    name = addresses[0].display_name if addresses else ""
    return Decoded(str(message["subject"] or ""), name, body)


def structure_only(raw: bytes) -> Message:
    """The MIME tree that parse_message starts from (``compat32``), nothing decoded."""
    return email.message_from_bytes(raw, policy=compat32)


DECODERS: dict[str, Callable[[bytes], Decoded]] = {
    "parse_message": by_parse_message,
    "mail-parser": by_mail_parser,
    "stdlib default": by_stdlib,
}
# Timed, not judged: the floor a parser built on the stdlib cannot go below.
FLOOR = "stdlib compat32"


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


def _children_cpu() -> float:
    # getrusage, not os.times(): that counts in clock ticks of 10 ms.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured(into: Samples) -> Iterator[None]:
    children = _children_cpu()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        cpu_used, wall_used = time.process_time() - cpu, time.perf_counter() - wall
        into.add(wall_used, cpu_used, _children_cpu() - children)


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
    """Each item through each contender ``rounds`` times, the order reversed every round.

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
        hocr: bytes = pytesseract.image_to_pdf_or_hocr(
            call.image,
            lang=call.lang,
            config=_config(call) + " -c hocr_char_boxes=1",
            extension="hocr",
        )
        return hocr
    tsv: str = pytesseract.image_to_data(call.image, lang=call.lang, config=_config(call))
    return tsv


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
    rows: dict[tuple[str, str], list[list[tuple[bool, ...]]]] = {}
    for case in cases:
        if case.group != BIG:
            rows.setdefault((case.charset, case.repertoire), []).append(
                [verdict(case, read) for read in DECODERS.values()]
            )
    fields = "subj  name  body   all"
    out = [
        "Decoded exactly right, of n: subject, sender name, body text, all three",
        "(demo mails: the body holds a known sentence; HTML-only mail: the body is the HTML)",
        f"{'charset':12} {'characters':14} {'n':>4}"
        + "".join(f"   {name:^23}" for name in DECODERS),
        f"{'':32}" + f"   {fields:^23}" * len(DECODERS),
    ]
    every: list[list[tuple[bool, ...]]] = []
    for (charset, repertoire), results in rows.items():
        every += results
        out.append(_correctness_row(LABELS.get(charset, charset), repertoire, results))
    out.append(_correctness_row("all", "", every))
    return out


def _correctness_row(charset: str, repertoire: str, results: list[list[tuple[bool, ...]]]) -> str:
    def counts(side: int) -> str:
        per_field = [sum(r[side][i] for r in results) for i in range(3)]
        return " ".join(f"{n:5d}" for n in [*per_field, sum(all(r[side]) for r in results)])

    sides = "".join(f"   {counts(side)}" for side in range(len(DECODERS)))
    return f"{charset:12} {repertoire:14} {len(results):4d}{sides}"


def timing_lines(cases: list[MailCase], samples: dict[tuple[str, str], Samples]) -> list[str]:
    rows = [(group, [group]) for group in (*SHAPES, BIG, "demo mails")]
    rows.append(("all factory mail", list(SHAPES)))
    names = [*DECODERS, FLOOR]
    out = [
        "Milliseconds per message: wall median, wall p95, CPU median",
        f"{'mail':18} {'n':>4} {'KB':>7}" + "".join(f"  {name:^20}" for name in names) + "  ratio",
    ]
    for label, groups in rows:
        members = [c for c in cases if c.group in groups]
        kb = statistics.median(len(c.raw) for c in members) / 1024
        merged = [_merged(samples, groups, name) for name in names]
        ratio = statistics.median(merged[1].wall) / statistics.median(merged[0].wall)
        figures = "".join(f"  {_ms(m)}" for m in merged)
        out.append(f"{label:18} {len(members):4d} {kb:7.1f}{figures}  {ratio:4.1f}x")
    out.append("(ratio: mail-parser's wall median over parse_message's)")
    return out


def _ms(s: Samples) -> str:
    median, high, cpu = statistics.median(s.wall), p95(s.wall), statistics.median(s.cpu)
    return f"{median * 1e3:6.2f} {high * 1e3:6.2f} {cpu * 1e3:6.2f}"


def _merged(samples: dict[tuple[str, str], Samples], groups: list[str], name: str) -> Samples:
    merged = Samples()
    for group in groups:
        merged.wall += samples[(group, name)].wall
        merged.cpu += samples[(group, name)].cpu
    return merged


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


def _on_raw(read: Callable[[bytes], object]) -> Callable[[MailCase], object]:
    return lambda case: read(case.raw)


def measure(args: argparse.Namespace, load: LoadWatch) -> Figures:
    cases = mail_corpus(args.seed, args.per_cell)
    print(f"mail: {len(cases)} messages", file=sys.stderr)
    readers = {name: _on_raw(read) for name, read in {**DECODERS, FLOOR: structure_only}.items()}
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
        f" of a page {args.page_rounds}; each round reverses the order the contenders go in"
    )
    print()
    print(
        "== mail-parser against madoguchi.ingest.parse.parse_message (and the stdlib beneath both)"
    )
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
    parser.add_argument("--page-rounds", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # it logs every odd header
    load = LoadWatch()
    started = time.perf_counter()
    figures = measure(args, load)
    load.sample()
    header = (
        "# .venv/bin/python bench/libraries.py  (it sets OMP_THREAD_LIMIT=1)"
        f"  ({_versions()}; wall {time.perf_counter() - started:.0f} s on cores shared with"
        f" other work; 1-min load average during the run: {load.summary()})"
    )
    report(figures, args, header)


if __name__ == "__main__":
    main()
