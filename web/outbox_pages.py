"""Delivery you can see, and replies that survive: the outbox page for supervisors (filter
by state, send again, take back), each outgoing message's state on the ticket page, and
the reply drafts the page saves while an agent types (``/static/desk.js``).

Thin over ``ticketing.delivery`` and ``ticketing.reply_drafts``, which the command line
(``madoguchi outbox``) calls too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from madoguchi.ticketing import delivery, reply_drafts
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.draft_models import ReplyDraft
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.models import Channel, Direction, Role, Ticket
from madoguchi.ticketing.rules.delivery import DeliveryState
from madoguchi.web import queries
from madoguchi.web.http import Ctx, csrf_token, current_user, endpoint
from madoguchi.web.i18n import error_text
from madoguchi.web.i18n import gettext as _

PAGE = 100


def ticket_context(ctx: Ctx, t: Ticket) -> dict[str, Any]:
    """What the ticket page shows of deliveries and the agent's draft (``routes.ticket``)."""
    assert ctx.user is not None
    rows = delivery.ticket_deliveries(ctx.db, t.id)
    fax = {
        m.id: delivery.fax_result(ctx.web.fax_outbound_dir, a.filename)
        for m in t.messages if m.direction is Direction.OUT and m.channel is Channel.FAX
        for a in m.attachments[:1]
    }
    draft = reply_drafts.open_draft(ctx.db, t.id, ctx.user.id)
    return {
        "deliveries": {d.message_id: d for d in rows},
        "ticket_deliveries": rows,
        "fax_results": fax,
        "draft": draft,
        "idempotency_key": draft.token if draft else reply_drafts.new_token(),
    }


# -- the outbox page ---------------------------------------------------------


@endpoint(role=Role.SUPERVISOR)
def outbox_page(ctx: Ctx) -> Response:
    wanted = ctx.param("state")
    try:
        state = delivery.parse_state(wanted)
    except ActionError as exc:
        return ctx.redirect("/outbox", error=error_text(exc))
    before = parse_id(ctx.param("before"))
    rows = delivery.outbox_list(ctx.db, state, before=before, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    params = {"state": state.value} if state else {}
    next_url = (f"/outbox?{urlencode({**params, 'before': str(rows[-1].id)})}"
                if more and rows else None)
    return ctx.render("outbox.html", nav="outbox", rows=rows, state=state.value if state else "",
                      states=list(DeliveryState), next_url=next_url)


def _act(ctx: Ctx, action: Any) -> Response:
    row_id = parse_id(str(ctx.request.path_params["id"]))
    back = ctx.field("back")
    if not back.startswith("/outbox") and not back.startswith("/tickets/"):
        back = "/outbox"
    if row_id is None:
        return ctx.redirect(back, error=_("送信が見つかりません"))
    try:
        outcome = action(ctx.db, [row_id], ctx.user, ctx.now)[0]
    except ActionError as exc:
        ctx.db.rollback()
        return ctx.redirect(back, error=error_text(exc))
    ctx.db.commit()
    if outcome.done and ctx.state.on_reply is not None and action is delivery.retry:
        response = ctx.redirect(back, ok=outcome.text)
        response.background = BackgroundTask(ctx.state.on_reply)
        return response
    return ctx.redirect(back, ok=outcome.text) if outcome.done else \
        ctx.redirect(back, error=outcome.text)


@endpoint(role=Role.SUPERVISOR)
def outbox_retry(ctx: Ctx) -> Response:
    return _act(ctx, delivery.retry)


@endpoint(role=Role.SUPERVISOR)
def outbox_cancel(ctx: Ctx) -> Response:
    return _act(ctx, delivery.cancel)


# -- drafts ------------------------------------------------------------------


def _signed_out() -> JSONResponse:
    return JSONResponse({"error": "signed_out",
                         "message": _(
                             "ログインの有効期限が切れました。入力した文章はこの画面に"
                             "残っています。ログインし直すと保存を再開します。")},
                        status_code=401)


def _draft_json(draft: ReplyDraft | None, csrf: str) -> dict[str, Any]:
    return {"csrf": csrf, "token": draft.token if draft else None,
            "saved_at": draft.updated_at.isoformat() if draft else None}


@endpoint(auth=False)
def draft(ctx: Ctx) -> Response:
    """GET: the signed-in agent's draft and a fresh CSRF token (after signing in again);
    POST: save what is typed. JSON either way: 401 when the session is over."""
    user = current_user(ctx.request, ctx.db, ctx.state)
    if user is None:
        return _signed_out()
    t = queries.ticket_for_update(ctx.db, ctx.request.path_params["number"])
    if t is None:
        return JSONResponse({"error": "not_found", "message": _("チケットが見つかりません")}, 404)
    if ctx.request.method == "GET":
        return JSONResponse(_draft_json(reply_drafts.open_draft(ctx.db, t.id, user.id),
                                        csrf_token(ctx.request)))
    text = reply_drafts.DraftText(to=ctx.field("to"), cc=ctx.field("cc"),
                                  body=ctx.field("body"))
    try:
        saved = reply_drafts.save_draft(ctx.db, t, user, ctx.field("idempotency_key"), text,
                                        ctx.now)
    except reply_drafts.DraftSent as exc:
        ctx.db.rollback()
        return JSONResponse({"error": "sent", "message": _("この下書きは送信済みです。"),
                             "url": f"/tickets/{t.number}#m{exc.message_id}"}, 409)
    except ActionError as exc:
        ctx.db.rollback()
        return JSONResponse({"error": "refused", "message": error_text(exc)}, 400)
    ctx.db.commit()
    return JSONResponse(_draft_json(saved, csrf_token(ctx.request)))


def routes() -> list[BaseRoute]:
    return [
        Route("/outbox", outbox_page),
        Route("/outbox/{id:id}/retry", outbox_retry, methods=["POST"]),
        Route("/outbox/{id:id}/cancel", outbox_cancel, methods=["POST"]),
        Route("/tickets/{number}/draft", draft, methods=["GET", "POST"]),
    ]
