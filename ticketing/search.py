"""The desk's word search: one row per ticket, newest match first.

The web desk (``web/queries.py``) and ``madoguchi search`` both call
``search``. The index is the dialect's (``ticketing/dialect.py``): it finds
messages; here they are grouped by ticket and checked once more, so that

- a note counts by its own text only (a note carries its ticket's subject,
  which would otherwise make every note match a subject word);
- a ticket merged into another never matches (its messages moved to the
  other; only its "merged" note stays behind).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.models import Channel, Message, Ticket

MIN_TERM = 2
MAX_TERMS = 5
# Messages read from the index per round while filling a page of tickets.
_ROUND = 200
_MAX_ROUNDS = 10


@dataclass
class SearchHit:
    message: Message  # the ticket's newest matching message
    ticket: Ticket
    snippet: tuple[str, str, str]  # before, the match, after


@dataclass
class SearchResult:
    terms: list[str]
    hits: list[SearchHit] = field(default_factory=list)
    next_before: int | None = None  # a message id: the next page starts below it
    problem: str | None = None


def search_terms(query: str) -> tuple[list[str], str | None]:
    """Whitespace-separated terms (all must occur); each at least two characters."""
    terms = list(dict.fromkeys(query.split()))
    if not terms:
        return [], None
    if len(terms) > MAX_TERMS:
        return [], f"検索語は{MAX_TERMS}個までです"
    if any(len(t) < MIN_TERM for t in terms):
        return [], f"検索語はそれぞれ{MIN_TERM}文字以上にしてください"
    return terms, None


def _searched_text(message: Message) -> list[str]:
    if message.channel == Channel.NOTE:
        return [message.text]
    return [message.text, message.subject]


def _matches(message: Message, terms: Sequence[str]) -> bool:
    lowered = "\n".join(_searched_text(message)).lower()
    return all(t.lower() in lowered for t in terms)


def snippet(message: Message, terms: Sequence[str], width: int = 48) -> tuple[str, str, str]:
    for source in _searched_text(message):
        flat = " ".join(source.split())
        lowered = flat.lower()
        for term in terms:
            at = lowered.find(term.lower())
            if at >= 0:
                start = max(0, at - width)
                end = at + len(term)
                return (
                    ("…" if start else "") + flat[start:at],
                    flat[at:end],
                    flat[end:end + width * 2] + ("…" if end + width * 2 < len(flat) else ""),
                )
    flat = " ".join(message.text.split())
    return ("", "", flat[: width * 2])


def _shown_before(session: Session, ticket_ids: set[int], below: int | None,
                  terms: Sequence[str]) -> set[int]:
    """Tickets among ``ticket_ids`` with a match at or above ``below`` (an earlier page's)."""
    if below is None or not ticket_ids:
        return set()
    rows = session.scalars(select(Message).where(
        Message.ticket_id.in_(ticket_ids), Message.id >= below))
    return {m.ticket_id for m in rows if _matches(m, terms)}


def search(session: Session, query: str, *, before: int | None = None,
           limit: int = 50) -> SearchResult:
    """Tickets with a message containing every term, the newest match first."""
    terms, problem = search_terms(query)
    result = SearchResult(terms, problem=problem)
    if not terms:
        return result
    dialect = dialect_of(session)
    seen: dict[int, SearchHit] = {}
    cursor: int | None = before
    rejected: set[int] = set()
    for _ in range(_MAX_ROUNDS):
        ids = dialect.matching_message_ids(session, terms, cursor, _ROUND)
        if not ids:
            cursor = None
            break
        rows = session.execute(
            select(Message, Ticket).join(Ticket, Message.ticket_id == Ticket.id)
            .where(Message.id.in_(ids)).order_by(Message.id.desc())
        ).all()
        fresh = {t.id for _, t in rows} - seen.keys() - rejected
        rejected |= _shown_before(session, fresh, before, terms)
        for m, t in rows:
            if t.id in seen or t.id in rejected or t.merged_into_id is not None:
                continue
            if not _matches(m, terms):
                continue
            if len(seen) == limit:
                result.next_before = m.id + 1
                break
            seen[t.id] = SearchHit(m, t, snippet(m, terms))
        cursor = ids[-1]
        if result.next_before is not None or len(ids) < _ROUND:
            break
    else:
        result.next_before = cursor
    result.hits = list(seen.values())
    return result
