"""Which support number do a FAX form's digit boxes hold? The evidence weighed, or none.

Pure functions over facts. The boxes' recogniser gives, for each box, a
probability for each digit (``ocr/ppocr.py``). Every way of reading the
twelve boxes that passes the check digit is a *valid reading*; its weight
is the product of its digits' probabilities. A reading is accepted only when:

* it is a registered number (the closed set: the desk's contracts), and
* its weight beats every other valid reading, registered or not, by
  ``MARGIN`` to one, and
* no box of it is below ``MIN_DIGIT``: every digit was seen.

The sending machine's FAX number, when it is a registered contact's, is a
prior: the numbers of that contact's customer weigh ``SENDER_PRIOR`` times
more (a customer mostly writes their own number). It can tip a near thing
between two readings, never make a reading out of nothing: the margin and
the digit floor still hold. When unsure, nothing is accepted: triage.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

# The accepted reading must be this many times as likely as any other valid one.
MARGIN = 1000.0
# Every digit of the accepted reading must have at least this probability.
MIN_DIGIT = 0.05
# How much more likely a number of the sender's own customer is, a priori.
SENDER_PRIOR = 20.0
# How many valid readings are kept, best first (the registered set is asked about them).
TOP_K = 40
# The reader's problem for boxes it could not read alone (``ocr/decide.py``), which the
# decision replaces (``boxes_decided``).
BOXES_UNREAD = "the support number boxes cannot be read"


@dataclass(frozen=True)
class Reading:
    """One valid way of reading the boxes, and the log of its weight."""

    digits: str
    log_weight: float


def _luhn_add(digit: int, doubled: bool) -> int:
    if not doubled:
        return digit
    d = digit * 2
    return d - 9 if d > 9 else d


def valid_readings(
    probabilities: Sequence[Sequence[float]], *, luhn: bool = True, k: int = TOP_K
) -> list[Reading]:
    """The ``k`` most probable readings that pass the check digit, best first.

    ``probabilities[i][d]`` is box i's probability (left to right) for digit
    d. Exact k-best search over the check digit's running sum (mod 10).
    """
    n = len(probabilities)
    if n == 0:
        return []
    logs = [[math.log(max(p, 1e-12)) for p in row] for row in probabilities]
    # beams[state] = best partial readings (log weight, digits), rightmost box first.
    beams: dict[int, list[tuple[float, str]]] = {0: [(0.0, "")]}
    for step in range(n):
        box = n - 1 - step
        doubled = step % 2 == 1
        grown: dict[int, list[tuple[float, str]]] = {}
        for state, partials in beams.items():
            for d in range(10):
                new_state = (state + _luhn_add(d, doubled)) % 10 if luhn else 0
                entry = grown.setdefault(new_state, [])
                for weight, digits in partials:
                    entry.append((weight + logs[box][d], str(d) + digits))
        beams = {s: sorted(v, reverse=True)[:k] for s, v in grown.items()}
    final = sorted(beams.get(0, []), reverse=True)[:k]
    return [Reading(digits, weight) for weight, digits in final]


@dataclass(frozen=True)
class Choice:
    """The decision: the number accepted (or None), and why, in words for the record."""

    digits: str | None
    reason: str
    margin: float = 0.0  # the winner's weight over the best other valid reading's, as a ratio


def clear_reading(
    readings: Sequence[Reading], probabilities: Sequence[Sequence[float]]
) -> str | None:
    """The likeliest valid reading when it is clear without the registered numbers.

    Clear: ``MARGIN`` times as likely as the next valid reading, and no digit
    of it below ``MIN_DIGIT``. For a reading another method made of the
    same boxes (Tesseract's line): agreeing with an unclear reading is no
    confirmation, since both may have seen the same damaged digit.
    """
    if not readings:
        return None
    best = readings[0]
    if len(readings) > 1 and best.log_weight - readings[1].log_weight < math.log(MARGIN):
        return None
    if min(probabilities[i][int(d)] for i, d in enumerate(best.digits)) < MIN_DIGIT:
        return None
    return best.digits


def choose_number(
    readings: Sequence[Reading],
    probabilities: Sequence[Sequence[float]],
    registered: Collection[str],
    sender_numbers: Collection[str] = (),
) -> Choice:
    """The registered reading that wins by the margin, or None; see the module's rules.

    ``readings`` are ``valid_readings`` of ``probabilities``; ``registered``
    the ones among them that are contracts' numbers; ``sender_numbers`` the
    numbers of the customer whose registered FAX number sent the page.
    """
    if not readings:
        return Choice(None, "no reading of the boxes passes the check digit")
    prior = math.log(SENDER_PRIOR)
    scored = sorted(
        ((r.log_weight + (prior if r.digits in sender_numbers else 0.0), r) for r in readings),
        key=lambda pair: pair[0],
        reverse=True,
    )
    best_score, best = scored[0]
    ratio = math.exp(min(50.0, best_score - scored[1][0])) if len(scored) > 1 else math.inf
    if best.digits not in registered:
        registered_best = next((r.digits for _, r in scored if r.digits in registered), None)
        also = f"; the best registered reading is {registered_best}" if registered_best else ""
        return Choice(None, f"the likeliest reading {best.digits} is no registered number{also}")
    if ratio < MARGIN:
        return Choice(
            None,
            f"{best.digits} is only {ratio:.0f} times as likely as {scored[1][1].digits}",
            ratio,
        )
    weakest = min(probabilities[i][int(d)] for i, d in enumerate(best.digits))
    if weakest < MIN_DIGIT:
        return Choice(None, f"{best.digits}: a digit of it has probability {weakest:.3f}", ratio)
    by_sender = " (the sender's customer's number)" if best.digits in sender_numbers else ""
    shown = "over 1e21" if ratio == math.inf or ratio > 1e21 else f"{ratio:.3g}"
    return Choice(best.digits, f"registered; {shown} times as likely as any other{by_sender}",
                  ratio)


def boxes_decided(problems: Sequence[str], page: int, choice: Choice) -> list[str]:
    """The problems once the registered numbers have decided the boxes (``choose_number``).

    Accepted: the boxes' problems are gone. Not: page ``page``'s (the boxes decided on)
    gives the decision's reason (the likeliest reading no registered number, short of
    the margin, a digit unseen) in place of the first reader's note ("read 13 digits"),
    which is not why the page went to triage; other pages' problems stay.
    """
    if choice.digits is not None:
        return [p for p in problems if BOXES_UNREAD not in p]
    own = f"page {page}: {BOXES_UNREAD}"
    return [f"page {page}: the support number boxes cannot be decided ({choice.reason})",
            *(p for p in problems if not p.startswith(own))]
