"""Two-character search terms: a morphological tokenizer's index against the desk's bigrams.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/tokenizers.py > bench/results/tokenizers.txt

Issue 15 asks for two-character terms (most Japanese words are two kanji) as
fast as the rest, e.g. with a morphological tokenizer feeding full-text
search. An index of tokens finds a term only where the tokenizer cut it out
as a token; the desk's bigram GIN (migration 0014) finds it wherever it
stands, and LIKE confirms it. This measures, on the Japanese text the
benchmarks and the demo use, how many of the places where a two-character
word occurs each tokenizer's tokens would find:

- terms: every two-kanji token that any of the tokenizers gives anywhere in
  the texts (the words a dictionary knows and staff type), and the bench's
  own (請求, 印刷, 障害, 容量, 再送);
- a place: a text whose folded form (``rules.search_text.fold``, as index
  and query are) contains the term; found when the term is among that
  text's tokens (SudachiPy with sudachidict_core, split modes A and C and
  both together; fugashi with unidic-lite), or among its bigrams
  (``rules.search_text.bigrams``, what the GIN indexes);
- cost: microseconds per text on one core to tokenize, against folding and
  taking the bigrams in Python (PostgreSQL computes them in C at write time).
"""

from __future__ import annotations

import email
import os
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from email.policy import default
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import japanese_mail, web_data  # noqa: E402
from madoguchi.ticketing.rules.search_text import bigrams, fold  # noqa: E402

BENCH_TERMS = ("請求", "印刷", "障害", "容量", "再送")
# Two kanji: inside a longer kanji word such a pair is that word still (請求 in 請求書,
# 再送 in 再送付). Two katakana are left out: inside a loanword they are mostly a piece
# of it, another word or none (ログ in ログイン, キー in モンキー).
WORD = re.compile(r"^[\u4e00-\u9fff々]{2}$")
# Sentences a desk receives where the bench's terms stand inside longer words, as they do
# in real mail (請求書, 印刷物, 障害報告, 容量制限, 再送付), beside the corpus's own text.
COMPOUNDS = (
    "請求書の再発行をお願いします。", "先月分の請求金額に誤りがあるようです。",
    "印刷物のレイアウトが崩れます。", "帳票印刷が途中で止まります。",
    "障害報告書を送付いたします。", "本日発生した通信障害について",
    "容量制限に達したと表示されます。", "ディスク容量が不足しています。",
    "見積書の再送付をお願いできますか。", "通知メールを再送しました。",
)


def texts() -> list[str]:
    """The Japanese text of the benchmarks' generators and the demo's mail, line by line."""
    found = [*web_data.PHRASES, web_data.RARE, *COMPOUNDS]
    for subjects, _names, lines, more in japanese_mail.REPERTOIRES.values():
        found += [*subjects, *lines, *more]
    for path in sorted((ROOT / "demo" / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default)
        found.append(str(message.get("Subject", "")))
        try:
            body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
            text = body.get_content() if body is not None else ""
        except (KeyError, LookupError, ValueError):
            text = ""  # the broken one
        found += [line for line in text.splitlines() if line.strip()]
    return list(dict.fromkeys(t for t in found if t.strip()))


def tokenizers() -> dict[str, Callable[[str], list[str]]]:
    import fugashi  # type: ignore[import-not-found]
    from sudachipy import Dictionary, SplitMode  # type: ignore[import-not-found]

    sudachi = Dictionary(dict="core")
    tagger = fugashi.Tagger()

    def with_mode(mode: object) -> Callable[[str], list[str]]:
        tokenizer = sudachi.tokenizer(mode=mode)
        return lambda text: [m.surface() for m in tokenizer.tokenize(text)]

    a, c = with_mode(SplitMode.A), with_mode(SplitMode.C)
    return {
        "SudachiPy A": a,
        "SudachiPy C": c,
        "SudachiPy A+C": lambda text: a(text) + c(text),
        "fugashi/unidic-lite": lambda text: [w.surface for w in tagger(text)],
    }


def main() -> None:
    corpus = texts()
    cut = tokenizers()
    tokens = {name: [{fold(t) for t in f(fold(text))} for text in corpus]
              for name, f in cut.items()}
    terms = set(BENCH_TERMS)
    for per_text in tokens.values():
        for found in per_text:
            terms |= {t for t in found if WORD.match(t)}
    folded = [fold(t) for t in corpus]
    places: Counter[str] = Counter()
    hits: dict[str, Counter[str]] = defaultdict(Counter)
    missed: dict[str, list[str]] = defaultdict(list)
    for i, text in enumerate(folded):
        pairs = set(bigrams(text))
        for term in terms:
            if term not in text:
                continue
            places[term] += 1
            assert term in pairs, (term, text)  # the GIN's bigrams hold every place
            hits["bigram GIN + LIKE (the desk)"][term] += 1
            for name, per_text in tokens.items():
                if term in per_text[i]:
                    hits[name][term] += 1
                elif len(missed[name]) < 8:
                    missed[name].append(f"{term} in {corpus[i]}")
    total = sum(places.values())
    print(f"# bench/tokenizers.py: Python {platform.python_version()}, {os.cpu_count()} CPUs; "
          f"{len(corpus)} texts, {len(terms)} two-character terms, {total} places")
    print(f"{'index':<30} {'places found':>14} {'share':>7} {'bench terms found':>18}  µs/text")
    bench_places = sum(places[t] for t in BENCH_TERMS)
    costs = {name: _cost(lambda text, f=f: f(fold(text)), corpus) for name, f in cut.items()}
    costs["bigram GIN + LIKE (the desk)"] = _cost(lambda text: bigrams(fold(text)), corpus)
    for name in ["bigram GIN + LIKE (the desk)", *cut]:
        found = sum(hits[name].values())
        bench_found = sum(hits[name][t] for t in BENCH_TERMS)
        print(f"{name:<30} {found:>8} / {total:<5} {found / total:>6.1%} "
              f"{bench_found:>8} / {bench_places:<8}  {costs[name]:7.1f}")
    print("# per bench term, places found (desk / Sudachi A / Sudachi C / A+C / fugashi):")
    for term in BENCH_TERMS:
        row = " / ".join(str(hits[n][term]) for n in ["bigram GIN + LIKE (the desk)", *cut])
        print(f"#   {term}: {places[term]} places: {row}")
    for name in cut:
        print(f"# {name} misses, e.g.: " + "; ".join(missed[name]))


def _cost(run: Callable[[str], object], corpus: list[str], rounds: int = 200) -> float:
    for text in corpus:
        run(text)
    started = time.process_time()
    for _ in range(rounds):
        for text in corpus:
            run(text)
    return (time.process_time() - started) / (rounds * len(corpus)) * 1e6


if __name__ == "__main__":
    main()
