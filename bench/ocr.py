"""Measure the FAX reader on a seeded corpus: how often it is right, never wrong, how fast.

    OMP_THREAD_LIMIT=1 .venv/bin/python bench/ocr.py [--scale 1.0] [--workers 2]

Prints, per resolution and per kind of page: the exact-match rate of the
support number, false accepts (a wrong number accepted: must be 0), the share
sent to triage, and seconds per page on one core, both for reading the
number (load + marks + QR + zonal, or full-page OCR when the number needs
it) and for the full-page text that becomes the message body.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
# Run as a script from anywhere: the repository root holds the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import fax_corpus, pagetext
from madoguchi.config.settings import FaxLimits
from madoguchi.ocr.errors import FaxDocumentError
from madoguchi.ocr.reader import read_fax_document

# Items per kind and resolution at --scale 1.
DEFAULT_COUNTS = {
    "form_printed": 110,
    "form_typed": 110,
    "freeform": 100,
    "form_handwritten": 110,
    "followup": 60,
    "neg_missing": 30,
    "neg_smudged": 30,
    "neg_checkdigit": 30,
}


@dataclass(frozen=True)
class Outcome:
    item: dict[str, object]
    number: str | None
    ticket: str | None
    method: str | None
    confidence: float
    problems: list[str]
    error: str | None
    number_s: float  # CPU seconds (this process and Tesseract) to load and read the number
    text_s: float  # CPU seconds for the full-page text
    wall_s: float  # wall seconds for the whole document
    sender: str | None = None  # the sending machine's number as read
    by_registry: bool = False  # the boxes were decided by the registered numbers
    recall: float = 0.0  # share of the inquiry's characters the page text kept, in order


@dataclass(frozen=True)
class Registry:
    """The desk's closed set, as the bench plays it: the contracts and contacts' FAX numbers.

    Every corpus customer is registered: a positive item's number is its
    contract, a negative item's customer has a contract of another (random)
    number; 2,000 more random contracts stand for the rest of the desk.
    """

    numbers: frozenset[str]
    by_fax: dict[str, str]  # a contact's FAX number (digits) → their contract's number


def _make(job: tuple[str, str, str, int, str]) -> dict[str, object]:
    kind, resolution, container, seed, out_dir = job
    return fax_corpus.make_item(kind, resolution, container, seed, Path(out_dir)).to_json()


def registry(items: list[dict[str, object]], seed: int) -> Registry:
    rng = random.Random(seed)
    by_fax = {}
    for item in items:
        number = str(item["expected_number"] or fax_corpus.random_number(rng))
        by_fax["".join(ch for ch in str(item["sender_fax"]) if ch.isdigit())] = number
    decoys = {fax_corpus.random_number(rng) for _ in range(2000)}
    return Registry(frozenset(decoys | set(by_fax.values())), by_fax)


def _read(job: tuple[dict[str, object], Registry]) -> Outcome:
    item, known = job
    path = Path(str(item["path"]))
    data = path.read_bytes()
    try:
        reading = read_fax_document(data, path.name, FaxLimits())
    except FaxDocumentError as exc:
        return Outcome(item, None, None, None, 0.0, [], exc.reason_code, 0.0, 0.0, 0.0)
    sender = reading.sender.digits if reading.sender else None
    own = {known.by_fax[sender]} if sender in known.by_fax else set()
    settled, choice = reading.settled(known.numbers, own)
    by_registry = choice is not None and choice.digits is not None
    reading = settled
    return Outcome(
        item=item,
        number=reading.support_number.digits if reading.support_number else None,
        ticket=reading.ticket_number,
        method=reading.method,
        confidence=reading.confidence,
        problems=reading.problems,
        error=None,
        number_s=reading.timings["load_cpu"] + reading.timings["number_cpu"],
        text_s=reading.timings["text_cpu"],
        wall_s=reading.timings["load"] + reading.timings["number"] + reading.timings["text"],
        sender=sender,
        by_registry=by_registry,
        recall=pagetext.recall(str(item.get("inquiry", "")), reading.text),
    )


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:6.1f}%" if whole else "     -"


def _row(label: str, outs: list[Outcome]) -> str:
    n = len(outs)
    pages = sum(int(o.item["pages"]) for o in outs)
    positives = [o for o in outs if o.item["expected_number"]]
    negatives = [o for o in outs if not o.item["expected_number"]]
    exact = sum(1 for o in positives if o.number == o.item["expected_number"])
    refused = sum(1 for o in negatives if o.number is None)
    false_accepts = sum(
        1 for o in outs if o.number is not None and o.number != o.item["expected_number"]
    )
    triage = sum(1 for o in outs if o.number is None)
    tickets = [o for o in outs if o.item["expected_ticket"]]
    ticket_ok = sum(1 for o in tickets if o.ticket == o.item["expected_ticket"])
    wrong_ticket = sum(
        1 for o in outs if o.ticket is not None and o.ticket != o.item["expected_ticket"]
    )
    per_page_number = [o.number_s / int(o.item["pages"]) for o in outs]
    per_page_text = [o.text_s / int(o.item["pages"]) for o in outs]
    per_page_wall = [o.wall_s / int(o.item["pages"]) for o in outs]
    p95 = (
        statistics.quantiles(per_page_number, n=20)[-1]
        if len(per_page_number) >= 20
        else max(per_page_number, default=0.0)
    )
    exact_cell = _pct(exact, len(positives)) if positives else _pct(refused, len(negatives))
    typed = [o.recall for o in outs if o.item.get("inquiry")]
    recall = f"{100 * statistics.median(typed):6.1f}%" if typed else "      -"
    return (
        f"{label:<26}{n:>5}{pages:>6}  {exact_cell:>8}{false_accepts:>6}  {_pct(triage, n):>8}"
        f"  {_pct(ticket_ok, len(tickets)) if tickets else '     -':>8}{wrong_ticket:>5}"
        f"  {statistics.fmean(per_page_number) if outs else 0:6.2f}{p95:7.2f}"
        f"  {statistics.fmean(per_page_text) if outs else 0:6.2f}"
        f"  {statistics.fmean(per_page_wall) if outs else 0:6.2f}  {recall}"
    )


def _fonts_line() -> str:
    missing = fax_corpus.missing_fonts()
    if not missing:
        return f"corpus fonts: all {len(fax_corpus._FONT_FILES)} present"
    return (
        f"corpus fonts MISSING: {', '.join(missing)} (other fonts were drawn instead: this "
        f"corpus differs from one made with them; see {fax_corpus.FONT_DIRS_ENV})"
    )


def report(outs: list[Outcome], seed: int, wall: float, workers: int) -> str:
    lines = [
        "FAX reader benchmark (bench/ocr.py)",
        f"seed {seed}; {len(outs)} documents, {sum(int(o.item['pages']) for o in outs)} pages; "
        f"{workers} worker process(es), OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')}; "
        f"wall {wall:.0f} s; {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        _fonts_line(),
        "",
        "exact = number read and equal to the truth (for neg_*: correctly refused);",
        "FA = false accepts (a wrong number accepted); triage = sent to unreadable_fax;",
        "ticket = 問合せ番号 read right (followup); badT = a wrong ticket number returned;",
        "s/page number = CPU seconds per page (ours + Tesseract's) to load the file and read the",
        "  number: marks + QR + zonal OCR, plus full-page OCR when the number needs it (free-form",
        "  pages: their text then comes free); mean and p95. text = CPU s/page of full-page",
        "  OCR for the message body (our form: its fields by PP-OCR; other pages: Tesseract",
        "  jpn+eng); wall = wall s/page of everything (machine shared); recall = median share",
        "  of the inquiry's characters the page text kept, in order (typed inquiries).",
        "",
        f"{'resolution / kind':<26}{'docs':>5}{'pages':>6}  {'exact':>8}{'FA':>6}  {'triage':>8}"
        f"  {'ticket':>8}{'badT':>5}  {'s/page number':>13}  {'text':>6}  {'wall':>6}"
        f"  {'recall':>7}",
    ]
    by_res: dict[str, list[Outcome]] = defaultdict(list)
    for o in outs:
        by_res[str(o.item["resolution"])].append(o)
    for resolution in fax_corpus.RESOLUTIONS:
        group = by_res.get(resolution, [])
        if not group:
            continue
        lines.append(
            f"-- {resolution} ({int(fax_corpus.FAX_X_DPI)}x"
            f"{int(fax_corpus.RESOLUTIONS[resolution])} dpi)"
        )
        by_kind: dict[str, list[Outcome]] = defaultdict(list)
        for o in group:
            by_kind[str(o.item["kind"])].append(o)
        for kind in fax_corpus.KINDS:
            if by_kind.get(kind):
                lines.append(_row(f"  {kind}", by_kind[kind]))
        forms = [o for o in group if o.item["kind"] in fax_corpus.FORM_KINDS]
        lines.append(_row("  all form pages", forms))
        followup_forms = [
            o for o in group if o.item["kind"] == "followup" and o.item["layout"] == "form"
        ]
        lines.append(_row("  forms incl. follow-ups", forms + followup_forms))
        lines.append(_row("  all", group))
    lines.append("-- form pages by how the number was put in (style), per resolution")
    by_style: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    for o in outs:
        if o.item["kind"] in fax_corpus.FORM_KINDS:
            key = (str(o.item["kind"]), str(o.item.get("style", "")), str(o.item["resolution"]))
            by_style[key].append(o)
    for (kind, style, resolution), group in sorted(by_style.items()):
        lines.append(_row(f"  {kind[5:]}/{style[:12]}/{resolution[:4]}", group))
    by_container: dict[str, list[Outcome]] = defaultdict(list)
    for o in outs:
        by_container[str(o.item["container"])].append(o)
    lines.append("-- by container (both resolutions)")
    for container in fax_corpus.CONTAINERS:
        if by_container.get(container):
            lines.append(_row(f"  {container}", by_container[container]))
    lines.append(_row("TOTAL", outs))

    heard = [o for o in outs if o.item.get("sender_fax")]
    right = sum(
        1 for o in heard
        if o.sender == "".join(ch for ch in str(o.item["sender_fax"]) if ch.isdigit())
    )
    unreadable = [o for o in heard if o.number is None and o.item["expected_number"]]
    identified = sum(
        1 for o in unreadable
        if o.sender == "".join(ch for ch in str(o.item["sender_fax"]) if ch.isdigit())
    )
    lines += [
        "",
        f"sender's FAX number (header line) read right: {right} of {len(heard)} documents; "
        f"of {len(unreadable)} positives sent to triage, {identified} identified by it",
        f"decided by the registered numbers (boxes read box by box): "
        f"{sum(o.by_registry for o in outs)} documents",
    ]
    methods: dict[str, int] = defaultdict(int)
    for o in outs:
        methods[o.method or "(unreadable)"] += 1
    lines += [
        "",
        "accepted by method: " + ", ".join(f"{k} {v}" for k, v in sorted(methods.items())),
    ]
    misses = [o for o in outs if o.number != o.item["expected_number"] or o.error]
    if misses:
        lines += ["", "misses (truth -> read; why):"]
        for o in misses:
            lines.append(
                f"  {Path(str(o.item['path'])).name}: {o.item['expected_number']} -> {o.number}; "
                f"{o.error or '; '.join(o.problems)[:150]}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20260115)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply corpus sizes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=None, help="keep the corpus here")
    parser.add_argument("--json", type=Path, default=None, help="write every outcome here")
    parser.add_argument(
        "--kinds", default="", help="only these kinds, comma-separated (default: all)"
    )
    args = parser.parse_args(argv)

    wanted = set(filter(None, args.kinds.split(","))) or set(DEFAULT_COUNTS)
    counts = {
        k: max(1, round(v * args.scale)) for k, v in DEFAULT_COUNTS.items() if k in wanted
    }
    with tempfile.TemporaryDirectory(prefix="fax-corpus-") as tmp:
        out_dir = args.corpus or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(*job, str(out_dir)) for job in fax_corpus.plan(counts, args.seed)]
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            items = list(pool.map(_make, jobs, chunksize=4))
            made = time.perf_counter()
            known = registry(items, args.seed)
            outs = list(pool.map(_read, [(i, known) for i in items], chunksize=2))
        wall = time.perf_counter() - made
        print(f"corpus generated in {made - start:.0f} s", file=sys.stderr)
    text = report(outs, args.seed, wall, args.workers)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps([o.__dict__ for o in outs], ensure_ascii=False, indent=1, default=str)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
