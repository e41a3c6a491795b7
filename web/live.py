"""The live desk: pages told of changes as they happen, who else is on a ticket, and the
words for what changed under a stale page.

``GET /live/queue`` and ``GET /live/tickets/{number}`` are server-sent event
streams (``text/event-stream``, read by ``static/desk.js`` with EventSource,
same origin, so ``connect-src 'self'`` of the page's CSP covers them). The
queue's stream says ``changed`` when any ticket changed (coalesced over
``COALESCE`` seconds, at most once per ``QUEUE_EVERY``); a ticket's says
``changed`` with what changed since the version the page showed, and
``presence`` with who else has it open. A stream holds no worker thread while
it waits (the database is read in short calls from the thread pool), is not
counted among the requests under way (``madoguchi.web_guard`` caps live
streams apart), does not keep the session alive (an open page is not activity:
the idle limit still holds), and ends after ``[web] live_stream_minutes``,
when the browser reconnects and is checked again. ``POST
/live/tickets/{number}/typing`` says the signed-in user is typing a reply
there.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from madoguchi.ticketing import presence, sessions, versions
from madoguchi.ticketing.change_feed import PRESENCE, TICKET
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import Ticket
from madoguchi.web import i18n
from madoguchi.web.http import Ctx, DeskWeb, endpoint
from madoguchi.web.i18n import N_
from madoguchi.web.i18n import gettext as _
from madoguchi.web.live_hub import LiveHub, Subscriber
from madoguchi.web.templating import STATUS_LABELS

log = logging.getLogger("madoguchi.web.live")

PREFIX = "/live/"
# The hub's words to a stream, beside the change feed's kinds.
BEAT, END = "beat", "end"
COALESCE = 1.0  # seconds: a batch of mail is one queue update, not fifty
# At most one queue update per page this often: each makes the browser fetch the queue
# page again, and a hundred open queues on a busy desk would otherwise fetch it a hundred
# times for every mail (bench/live.py measures what they cost).
QUEUE_EVERY = 5.0
RETRY_MS = 3000  # EventSource waits this long before it reconnects
# The streams' sessions are looked at again this often (a revoked or idle one ends its
# streams): one statement for all of a process's streams (``StreamRounds``).
SESSION_CHECK = 60.0
_T = TypeVar("_T")

_MESSAGE_LABELS = {
    ("in", "email"): N_("お客様からのメール"), ("in", "fax"): N_("お客様からのFAX"),
    ("out", "email"): N_("メールでの返信"), ("out", "fax"): N_("FAXでの返信"),
    ("out", "phone"): N_("電話対応"), ("in", "phone"): N_("電話対応"),
    ("note", "note"): N_("社内メモ"),
}


def hub(request: Request) -> LiveHub:
    found: LiveHub = request.app.state.live
    return found


def describe(changes: versions.Changes, state: DeskWeb) -> list[str]:
    """What changed, one Japanese line each, as the stale notice shows it."""
    lines = []
    for m in changes.messages:
        label = _(_MESSAGE_LABELS.get((m.direction, m.channel), N_("メッセージ")))
        when = m.at.astimezone(state.settings.tz).strftime("%m/%d %H:%M")
        lines.append(_("%(label)s（%(who)s、%(when)s）: %(preview)s") % {
            "label": label, "who": m.who or "—", "when": when, "preview": m.preview})
    if changes.status:
        before, now = changes.status
        lines.append(_("ステータス: %(before)s → %(after)s") % {
            "before": _(STATUS_LABELS.get(before, before)),
            "after": _(STATUS_LABELS.get(now, now))})
    if changes.assignee:
        before_name, now_name = changes.assignee
        lines.append(_("担当者: %(before)s → %(after)s") % {
            "before": before_name or _("未割当"), "after": now_name or _("未割当")})
    if changes.other:
        lines.append(_("フラグ・契約・統合などの情報が変わりました。"))
    return lines


def others_text(viewers: list[presence.Viewer], me: int) -> str:
    """"鈴木 部長 が返信を入力中、田中 が表示中", without oneself; "" when nobody else."""
    parts = [(_("%(name)s が返信を入力中") if v.typing else _("%(name)s が表示中"))
             % {"name": v.name} for v in viewers if v.staff_id != me]
    return _("、").join(parts)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@dataclass(frozen=True)
class Viewer:
    """Who a live stream is for, read without touching their session."""

    staff_id: int
    ticket_id: int | None
    token: str


def _who(request: Request, state: DeskWeb, number: str | None) -> Viewer | None:
    token = request.session.get("sid")
    if not isinstance(token, str):
        return None
    with state.storage.factory() as db:
        row = sessions.live_session(db, token, datetime.now(UTC), state.limits)
        staff_id = row.staff_id if row is not None else None
        ticket = ticket_by_number(db, number, follow_merges=False) if number else None
        ticket_id = ticket.id if ticket is not None else None
        # Neither "seen again" nor "expired" is written from here: a page left open is
        # not activity, and the next real request settles an expiry.
        db.rollback()
    if staff_id is None or (number is not None and ticket_id is None):
        return None
    return Viewer(staff_id, ticket_id, token)


async def _thread(fn: Callable[..., _T], *args: Any) -> _T:
    return await run_in_threadpool(fn, *args)


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _refused(status: int, text: str) -> Response:
    # EventSource stops on anything but 200: the page falls back to its reload notice.
    return PlainTextResponse(text, status_code=status)


async def queue_stream(request: Request) -> Response:
    state: DeskWeb = request.app.state.desk
    if not state.web.live_updates:
        return _refused(404, "live updates are off")
    viewer = await _thread(_who, request, state, None)
    if viewer is None:
        return _refused(401, "not signed in")
    # The hub tells the queues together, coalesced and spaced (COALESCE, QUEUE_EVERY).
    sub = hub(request).subscribe(None, token=viewer.token)

    async def body() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n: live\n\n"
            async for kinds in _heard(state, sub):
                if TICKET in kinds:
                    yield _event("changed", {})
                elif BEAT in kinds:
                    yield ": beat\n\n"  # keeps proxies from closing a quiet stream
        finally:
            hub(request).unsubscribe(sub)

    return _stream(body())


async def _heard(state: DeskWeb, sub: Subscriber) -> AsyncIterator[set[str]]:
    """What the subscriber hears (the hub's beats included); ends when the stream's time
    is up or the hub found its session over."""
    ends = time.monotonic() + state.web.live_stream_minutes * 60
    while time.monotonic() < ends:
        kinds = await sub.wait(max(0.0, ends - time.monotonic()))
        if END in kinds:
            return
        if kinds:
            yield kinds


class StreamRounds:
    """The hub's ``tend``: what every open stream of this process needs now and then, done
    for all of them at once, in the hub's thread. Every beat (``presence.BEAT``) one
    transaction beats the presence rows of every open ticket page and reads who is on
    those tickets; every ``SESSION_CHECK`` one statement checks every stream's session.
    Two hundred streams doing it each took the server 0.06 CPU-s a second, 0.02 done so
    (bench/results/live.txt, runs 4 and 5)."""

    def __init__(self, state: DeskWeb) -> None:
        self.state = state
        self.next_check = time.monotonic() + SESSION_CHECK

    def __call__(self, subs: list[Subscriber]) -> Callable[[], None]:
        now = datetime.now(UTC)
        pages = [(s.view[0], s.ticket_id, s.view[1]) for s in subs
                 if s.view is not None and s.ticket_id is not None]
        check = time.monotonic() >= self.next_check
        live: set[str] | None = None
        with self.state.storage.factory() as db:
            presence.beat_all(db, pages, now)
            db.commit()
            on = presence.viewers_by_ticket(db, [t for _, t, _ in pages], now)
            if check:
                self.next_check = time.monotonic() + SESSION_CHECK
                live = sessions.live_tokens(db, {s.token for s in subs}, now,
                                            self.state.limits)
            db.rollback()

        def told() -> None:
            for s in subs:
                if live is not None and s.token not in live:
                    s.tell(END)
                    continue
                if s.ticket_id is not None:
                    s.viewers = on.get(s.ticket_id, [])
                s.tell(BEAT)

        return told


class _TicketLive:
    """One ticket page's stream: its presence row, and what it last told the page."""

    def __init__(self, state: DeskWeb, viewer: Viewer, version: str) -> None:
        assert viewer.ticket_id is not None
        self.state, self.staff_id, self.ticket_id = state, viewer.staff_id, viewer.ticket_id
        self.version = version
        self.view_key = secrets.token_hex(16)
        self.told: tuple[str, ...] = ()
        self.others: str | None = None

    def arrive(self) -> str:
        """Its row written (the others told), and who else is on the ticket."""
        now = datetime.now(UTC)
        with self.state.storage.factory() as db:
            presence.beat(db, self.view_key, self.ticket_id, self.staff_id, now)
            db.commit()
            return others_text(presence.viewers(db, self.ticket_id, now), self.staff_id)

    def _others(self) -> str:
        with self.state.storage.factory() as db:
            return others_text(presence.viewers(db, self.ticket_id, datetime.now(UTC)),
                               self.staff_id)

    def _changes(self) -> tuple[str, ...]:
        with self.state.storage.factory() as db:
            t = db.get(Ticket, self.ticket_id)
            if t is None:
                return (_("このチケットは見つからなくなりました。"),)
            return tuple(describe(versions.changes_since(db, t, self.version), self.state))

    def leave(self) -> None:
        with self.state.storage.factory() as db:
            presence.leave(db, self.view_key)
            db.commit()

    async def events(self, kinds: set[str], sub: Subscriber) -> list[str]:
        """The events for what was heard: each told once, a comment at a quiet beat."""
        out = []
        if TICKET in kinds:
            lines = await _thread(self._changes)
            if lines and lines != self.told:
                self.told = lines
                out.append(_event("changed", {"lines": list(lines)}))
        others = None
        if PRESENCE in kinds:  # someone came, went or typed: asked now
            others = await _thread(self._others)
        elif BEAT in kinds:  # the hub's beat read who is on the ticket
            others = others_text(sub.viewers, self.staff_id)
        if others is not None and others != self.others:
            self.others = others
            out.append(_event("presence", {"text": others}))
        if not out and BEAT in kinds:
            out.append(": beat\n\n")  # keeps proxies from closing a quiet stream
        return out


async def ticket_stream(request: Request) -> Response:
    state: DeskWeb = request.app.state.desk
    if not state.web.live_updates:
        return _refused(404, "live updates are off")
    # The stream speaks the language the pages of this session were drawn in (web.http).
    i18n.set_locale(request.session.get("locale"))
    viewer = await _thread(_who, request, state, request.path_params["number"])
    if viewer is None or viewer.ticket_id is None:
        return _refused(401, "not signed in, or no such ticket")
    live = _TicketLive(state, viewer, request.query_params.get("v", "")[:100])
    sub = hub(request).subscribe(viewer.ticket_id, token=viewer.token,
                                 view=(live.view_key, viewer.staff_id))

    async def body() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            # It may have changed before this stream opened (or while it reconnected).
            for chunk in await live.events({TICKET}, sub):
                yield chunk
            live.others = await _thread(live.arrive)
            yield _event("presence", {"text": live.others})
            async for kinds in _heard(state, sub):
                for chunk in await live.events(kinds, sub):
                    yield chunk
        finally:
            hub(request).unsubscribe(sub)
            with anyio.CancelScope(shield=True):
                await _thread(live.leave)

    return _stream(body())


# -- what the pages carry -------------------------------------------------------


def page_version(ctx: Ctx) -> str | None:
    """The ticket's version the submitted form was rendered with; None when the form
    carries none (the triage list acts on tickets it shows no thread of)."""
    if ctx.form is None or "version" not in ctx.form:
        return None
    return ctx.field("version")


def _nothing_kept(form: str, name: str) -> str:
    return ""


def _kept(ctx: Ctx) -> Callable[[str, str], str]:
    """What the refused form held, for that form only: ``kept("reply", "body")``."""
    sent = ctx.request.url.path.rsplit("/", 1)[-1]

    def kept(form: str, name: str) -> str:
        return ctx.field(name) if form == sent else ""

    return kept


def ticket_context(ctx: Ctx, t: Ticket, stale: list[str] | None) -> dict[str, Any]:
    """The ticket page's version token (in every form), live stream, viewers, stale notice."""
    assert ctx.user is not None
    version = versions.version_of(ctx.db, t).encode()
    on = ctx.web.live_updates
    return {
        "version": version,
        "live_url": f"{PREFIX}tickets/{quote(t.number)}?v={quote(version)}" if on else "",
        "typing_url": f"{PREFIX}tickets/{quote(t.number)}/typing" if on else "",
        "others": others_text(presence.viewers(ctx.db, t.id, ctx.now), ctx.user.id),
        "stale": stale or [],
        "kept": _kept(ctx) if stale else _nothing_kept,
    }


def queue_context(ctx: Ctx, tickets: list[Ticket]) -> dict[str, Any]:
    """The queue's live stream, and who has each ticket of the page open."""
    return {
        "live_url": f"{PREFIX}queue" if ctx.web.live_updates else "",
        "watching": presence.viewers_of(ctx.db, [t.id for t in tickets], ctx.now),
    }


@endpoint()
def typing(ctx: Ctx) -> Response:
    assert ctx.user is not None
    t = ticket_by_number(ctx.db, ctx.request.path_params["number"], follow_merges=False)
    if t is None:
        return PlainTextResponse("", status_code=404)
    presence.typing(ctx.db, t.id, ctx.user.id, ctx.now)
    ctx.db.commit()
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}queue", queue_stream),
        Route(PREFIX + "tickets/{number}", ticket_stream),
        Route(PREFIX + "tickets/{number}/typing", typing, methods=["POST"]),
    ]
