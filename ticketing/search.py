"""The desk's word search: one row per ticket, newest match first.

The web desk (``web/queries.py``) and ``madoguchi search`` both call
``search``. Terms are folded (``ticketing.rules.search_text.fold``: width,
case, dashes) and looked up in ``messages.search_text``, folded the same way
when the message was written; the dialect's index narrows it
(``ticketing/dialect.py``). Messages are grouped by ticket, so that

- a note counts by its own text only (its search_text holds no subject);
- a ticket merged into another never matches (its messages moved to the
  other; only its "merged" note stays behind).

Filters (``SearchFilters``) narrow by the ticket's status, channel, product,
received date and assignee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session, defer, lazyload

from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.history_line import Line, say
from madoguchi.ticketing.models import Message, Ticket
from madoguchi.ticketing.rules.search_text import document_fields, find, fold
from madoguchi.ticketing.search_filters import SearchFilters
from madoguchi.ticketing.vocabulary import Channel

MIN_TERM = 2
MAX_TERMS = 5
# Messages read from the index per round while filling a page of tickets.
_ROUND = 200
# With a filter (a join to the tickets) a round walks the newest messages checking each
# one's ticket, so its cost grows with its size: twice the page (1 M tickets, "open"
# only: 200 rows took 86 ms and held 125 tickets, 100 rows 50 ms; a rare phrase is
# read through the trigram index at either size).
_FILTERED_ROUND_PER_HIT = 2
_MAX_ROUNDS = 10
# A term in at least this share of the newest messages is read newest first; a rarer one
# through the text indexes (one in 250: where walking to 200 matches costs about what the
# index's bitmap of all of them does at 5 M messages).
_FREQUENT = 1 / 250


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
    problem: Line | None = None  # why nothing was searched, in the catalogue's words


def search_terms(query: str) -> tuple[list[str], Line | None]:
    """Whitespace-separated terms (all must occur), folded; each at least two characters."""
    terms = list(dict.fromkeys(t for t in (fold(w) for w in query.split()) if t.strip()))
    if not terms:
        return [], None
    if len(terms) > MAX_TERMS:
        return [], say("検索語は%(n)s個までです", n=str(MAX_TERMS))
    if any(len(t) < MIN_TERM for t in terms):
        return [], say("検索語はそれぞれ%(n)s文字以上にしてください", n=str(MIN_TERM))
    return terms, None


def _fields(message: Message) -> list[str]:
    return document_fields(
        note=message.channel == Channel.NOTE, subject=message.subject or "",
        text=message.text or "", sender=message.sender or "",
        sender_name=message.sender_name or "", recipients=list(message.recipients or []),
        cc=list(message.cc or []))


def _matches(message: Message, terms: Sequence[str]) -> bool:
    return all(t in (message.search_text or "") for t in terms)


def snippet(message: Message, terms: Sequence[str], width: int = 48) -> tuple[str, str, str]:
    """The text around the first term found, the original words marked (not the folded)."""
    for source in _fields(message):
        flat = " ".join(source.split())
        for term in terms:
            span = find(flat, term)
            if span is not None:
                at, end = span
                start = max(0, at - width)
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


def _hits_loaded(session: Session, ids: Sequence[int]) -> list[tuple[Message, Ticket]]:
    """The messages ``ids`` with their tickets, newest first."""
    if not ids:
        return []
    rows = session.execute(
        select(Message, Ticket).join(Ticket, Message.ticket_id == Ticket.id)
        .where(Message.id.in_(ids)).order_by(Message.id.desc())
        # What neither a hit nor its snippet shows is left in the database (loaded if
        # asked for): decoding JSON lists was a large part of a search.
        .options(defer(Message.html), defer(Message.fax_reading), defer(Message.references),
                 defer(Ticket.tags), lazyload(Message.attachments))
    ).all()
    return [(m, t) for m, t in rows]


def _take(session: Session, found: Sequence[Row[int, int]], seen: dict[int, SearchHit],
          rejected: set[int], result: SearchResult, terms: Sequence[str], before: int | None,
          limit: int) -> None:
    """One round's messages made hits: each new ticket's newest match, up to ``limit``."""
    # Only a ticket's newest match in this round can be its hit: the others are
    # never loaded (a round of 200 rows made into objects was most of a search).
    newest: dict[int, int] = {}
    for mid, tid in found:
        if tid not in seen and tid not in rejected:
            newest.setdefault(tid, mid)
    rejected |= _shown_before(session, set(newest), before, terms)
    candidates = [mid for tid, mid in newest.items() if tid not in rejected]
    while candidates and result.next_before is None:
        # As many as the page still needs, and one to know there is a next page.
        wanted = limit - len(seen) + 1
        chunk, candidates = candidates[:wanted], candidates[wanted:]
        for m, t in _hits_loaded(session, chunk):
            if t.merged_into_id is not None:
                rejected.add(t.id)
                continue
            if not _matches(m, terms):
                continue
            if len(seen) == limit:
                result.next_before = m.id + 1
                break
            seen[t.id] = SearchHit(m, t, snippet(m, terms))


def search(session: Session, query: str, *, before: int | None = None,
           limit: int = 50, filters: SearchFilters | None = None) -> SearchResult:
    """Tickets with a message containing every term, the newest match first."""
    terms, problem = search_terms(query)
    result = SearchResult(terms, problem=problem)
    if not terms:
        return result
    dialect = dialect_of(session)
    dialect.prefer_index_scans(session)
    filtered = filters is not None and filters.active()
    narrowed = filters.conditions() if filters is not None and filtered else []
    seen: dict[int, SearchHit] = {}
    cursor: int | None = before
    rejected: set[int] = set()
    size = limit * _FILTERED_ROUND_PER_HIT if filtered else _ROUND
    # The first round reads the newest ``window`` messages along the primary key; how
    # often the terms occur there says how the rest are read (dialect.read_messages).
    window, floor = (0 if filtered else dialect.frequency_window), None
    newest = False  # the messages are read newest first (by the dialect's word)
    if window:
        top = before if before is not None else (
            session.scalar(select(func.max(Message.id))) or 0) + 1
        if top - window > 1:
            floor, newest = top - window, True
            dialect.read_messages(session, "newest")
        else:
            window = 0  # a small desk: every message is in the window, nothing to judge
    try:
        for _ in range(_MAX_ROUNDS):
            page = select(Message.id, Message.ticket_id)
            if filtered:  # a join: the planner goes from the few messages found to their tickets
                page = page.join(Ticket, Message.ticket_id == Ticket.id)
            page = page.where(dialect.text_contains(terms, newest=newest), *narrowed)
            if cursor is not None:
                page = page.where(Message.id < cursor)
            probing, below = floor is not None, floor
            if below is not None:
                page = page.where(Message.id >= below)
                floor = None
            # Unfiltered, _ROUND rows a round; on PostgreSQL the plan is the one the first
            # round chose (read_messages), not what the LIMIT makes the planner guess.
            found = session.execute(page.order_by(Message.id.desc()).limit(size)).all()
            if probing:
                newest = len(found) >= size or len(found) >= window * _FREQUENT
                dialect.read_messages(session, "newest" if newest else "indexed")
            if not found and not probing:
                cursor = None
                break
            _take(session, found, seen, rejected, result, terms, before, limit)
            if probing and len(found) < size:  # the window is read whole: on below it
                cursor = below
                if result.next_before is not None:
                    break
                continue
            cursor = found[-1][0]
            if result.next_before is not None or len(found) < size:
                break
        else:
            result.next_before = cursor
    finally:
        if window:
            dialect.read_messages(session, "chosen")
    result.hits = list(seen.values())
    return result
