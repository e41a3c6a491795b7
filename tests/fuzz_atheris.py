"""Coverage-guided fuzzing of the parse and identify steps with atheris (libFuzzer).

Needs ``atheris==3.0.0`` (``.venv/bin/pip install atheris==3.0.0``; a wheel for
CPython 3.11 on x86-64 Linux). Run by hand, for a bounded time:

    .venv/bin/python -m tests.fuzz_atheris --target parse --seconds 600
    .venv/bin/python -m tests.fuzz_atheris --target html --seconds 60 -- -max_len=65536

Targets: ``parse`` (raw bytes → ``parse_message``), ``identify`` (text → support
number, subject tags, quoted ticket numbers), ``filename`` (``safe_filename``)
and ``html`` (``sanitize_html``, ``html_to_text``). Each checks what
tests/test_fuzz.py checks; a broken property, an exception other than
``ParseError``, or one input taking over ``--input-timeout`` seconds is a
finding: libFuzzer stops, writes ``crash-…`` (or ``timeout-…``) into
``--workdir`` and exits non-zero. Run the file again to reproduce it:

    .venv/bin/python -m tests.fuzz_atheris --target parse var/fuzz/parse/crash-0a1b…

The corpus starts from realistic mails (tests/mailfactory.py) and the small
cases of tests/hostile.py, and grows in ``WORKDIR/corpus``. Anything after
``--`` goes to libFuzzer as it is. Two minutes of each target found nothing
more (the ``filename`` target's first finding, a blank left at the end of a
cut name, is fixed in ingest/filenames.py). tests/test_fuzz.py runs the
``parse`` target for ten seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

# What is imported here is instrumented for coverage; tests.hostile (below) then
# finds these modules loaded already.
with atheris.instrument_imports(include=["madoguchi"]):
    import madoguchi.ingest.parse  # noqa: F401  (called through parse_or_refuse)
    from madoguchi.config import SupportNumberSettings
    from madoguchi.config.settings import TICKET_LABELS
    from madoguchi.ingest.filenames import MAX_FILENAME_BYTES, safe_filename
    from madoguchi.ingest.htmltext import html_to_text, sanitize_html
    from madoguchi.ticketing.support_number import find_support_number, luhn_valid
    from madoguchi.ticketing.ticket_number import quoted_numbers, subject_tags

from tests.hostile import (
    SEED,
    assert_storable,
    build_corpus,
    filename_problems,
    html_problems,
    parse_or_refuse,
)
from tests.mailfactory import make_bounce, make_mail

NUMBERS = SupportNumberSettings()
LABELS = TICKET_LABELS
SEED_LIMIT = 64 * 1024  # larger corpus cases only slow the fuzzer down


def fuzz_parse(data: bytes) -> None:
    message = parse_or_refuse(data)
    if message is not None:
        assert_storable(message)
        for attachment in message.attachments:
            name = safe_filename(attachment.filename, attachment.content_type)
            assert filename_problems(name) == [], name


def fuzz_identify(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    subject = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 200))
    body = provider.ConsumeUnicodeNoSurrogates(len(data))
    found = find_support_number(subject, body, NUMBERS)
    if found.number is not None:
        assert luhn_valid(found.number.digits), found
    for number in [*subject_tags(subject, "T"), *quoted_numbers(body, "T", LABELS)]:
        assert number.startswith("T-") and len(number) == 13, number


def fuzz_filename(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    name = provider.ConsumeUnicode(len(data))  # surrogates included: 8-bit names carry them
    safe = safe_filename(name, "application/octet-stream")
    assert filename_problems(safe) == [], (name, safe)
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert safe_filename(safe, "application/octet-stream") == safe


def fuzz_html(data: bytes) -> None:
    html = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    clean = sanitize_html(html)
    assert html_problems(clean) == [], (html, clean)
    html_to_text(html)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "parse": fuzz_parse,
    "identify": fuzz_identify,
    "filename": fuzz_filename,
    "html": fuzz_html,
}


def seeds() -> list[bytes]:
    mails = [
        make_mail(),
        make_mail(charset="shift_jis", attachments=[("見積書.pdf", "application/pdf", b"%PDF")]),
        make_mail(charset="utf-8", body=None, html="<p>本文<a href='https://x'>x</a></p>"),
        make_mail(charset="euc-jp", in_reply_to="a@b.example", filename_style="rfc2047",
                  attachments=[("../名前.txt", "text/plain", b"a")]),
        make_bounce(make_mail()),
    ]
    hostile = [case.raw for case in build_corpus(SEED)
               if case.kind is None and len(case.raw) <= SEED_LIMIT]
    return mails + hostile


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    passed: list[str] = []  # after "--": libFuzzer's own flags
    if "--" in argv:
        cut = argv.index("--")
        argv, passed = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_atheris", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=sorted(TARGETS), default="parse")
    parser.add_argument("--seconds", type=int, default=60, help="total time (default 60)")
    parser.add_argument("--input-timeout", type=int, default=10,
                        help="seconds one input may take before it is a finding (default 10)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="corpus and findings (default var/fuzz/TARGET)")
    parser.add_argument("reproduce", nargs="*", help="finding files to run again")
    args = parser.parse_args(argv)
    workdir: Path = args.workdir or Path("var") / "fuzz" / args.target
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()) and args.target in ("parse", "html", "identify"):
        for i, seed in enumerate(seeds()):
            (corpus / f"seed-{i:03d}").write_bytes(seed)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-timeout={args.input_timeout}",
        f"-artifact_prefix={workdir}/",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        *passed,
        *(args.reproduce or [str(corpus)]),
    ]
    atheris.Setup(libfuzzer, TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
