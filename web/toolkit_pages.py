"""The agent's toolkit on the web desk: text modules, signatures, calls, a ticket's fields.

Thin handlers over ``ticketing.text_modules``, ``signatures``, ``phone`` and
``ticket_fields``; ``ticket_context`` is what the ticket page shows of them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from madoguchi.ticketing import phone, signatures, text_modules, ticket_fields
from madoguchi.ticketing.actions import ActionError, set_status
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.models import Role, Ticket, TicketStatus
from madoguchi.ticketing.rules.placeholders import PLACEHOLDERS
from madoguchi.ticketing.toolkit_models import TextModule
from madoguchi.web.http import Ctx, endpoint, error_page
from madoguchi.web.i18n import Labels, error_text
from madoguchi.web.i18n import gettext as _


def ticket_context(ctx: Ctx, t: Ticket) -> dict[str, Any]:
    """What the ticket page shows of the toolkit: filled modules, the signature, calls."""
    assert ctx.user is not None
    product = signatures.product_of(t, ctx.storage.deadlines)
    return {
        "text_modules": text_modules.filled_modules(ctx.db, t, ctx.user, product.name,
                                                    ctx.settings.tz),
        "reply_signature": signatures.signature_for(ctx.db, t, ctx.user, ctx.settings,
                                                    ctx.storage.deadlines),
        "calls": phone.calls_of(ctx.db, t),
        "call_directions": Labels(phone.DIRECTIONS),
        "priorities": Labels(ticket_fields.PRIORITIES),
        "tag_categories": ctx.settings.tickets.tag_categories,
    }


def _ticket_form(ctx: Ctx, act: Any) -> Response:
    # The ticket page's one way to apply an action (stale view → 409, error → back).
    from madoguchi.web.routes import ticket_action  # routes registers this module

    return ticket_action(ctx, act)


def _call(ctx: Ctx) -> phone.Call:
    return phone.Call(direction=ctx.field("direction"), party=ctx.field("party"),
                      number=ctx.field("phone"), minutes=ctx.field("minutes"),
                      summary=ctx.field("text"))


@endpoint()
def log_call(ctx: Ctx) -> Response:
    def act(t: Ticket) -> str:
        phone.log_call(ctx.db, t, ctx.user, _call(ctx), ctx.now)
        status = ctx.field("then_status")
        if status:
            set_status(t, status, ctx.now, by=ctx.user)
        return _("電話対応を記録しました。")

    return _ticket_form(ctx, act)


@endpoint()
def ticket_fields_form(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user

    def act(t: Ticket) -> str:
        chosen = ctx.form.getlist("tag") if ctx.form is not None else []
        tags = ticket_fields.read_tags([v for v in chosen if isinstance(v, str)],
                                       ctx.field("free_tags"))
        ticket_fields.set_subject(ctx.db, t, ctx.field("subject"), user, ctx.now)
        ticket_fields.set_priority(t, ctx.field("priority"))
        ticket_fields.set_tags(t, tags)
        return _("件名・優先度・タグを保存しました。")

    return _ticket_form(ctx, act)


# -- a call that opens a ticket ------------------------------------------------


@endpoint()
def phone_page(ctx: Ctx) -> Response:
    q = ctx.param("q").strip()[:100]
    callers = phone.find_callers(ctx.db, q) if q else []
    return ctx.render("phone.html", nav="phone", q=q, callers=callers,
                      directions=Labels(phone.DIRECTIONS), error="")


@endpoint()
def open_phone_ticket(ctx: Ctx) -> Response:
    contact_id = parse_id(ctx.field("contact"))
    contract_id = parse_id(ctx.field("contract")) if ctx.field("contract") else None
    try:
        if contact_id is None:
            raise ActionError(_("お客様（窓口担当者）を選んでください"))
        t = phone.open_from_call(ctx.db, contact_id=contact_id, contract_id=contract_id,
                                 subject=ctx.field("subject"), call=_call(ctx), user=ctx.user,
                                 settings=ctx.settings, deadlines=ctx.storage.deadlines,
                                 now=ctx.now)
    except ActionError as exc:
        ctx.db.rollback()
        return ctx.redirect(f"/phone?q={quote(ctx.field('q'))}", error=error_text(exc))
    ctx.db.commit()
    return ctx.redirect(f"/tickets/{quote(t.number)}",
                        ok=_("電話のお問い合わせを %(number)s として受け付けました。") % {
                            "number": t.number})


# -- text modules and signatures (supervisors edit) ----------------------------


def _module_fields(ctx: Ctx) -> dict[str, Any]:
    return {"title": ctx.field("title"), "body": ctx.field("body"),
            "product": ctx.field("product"), "set_status": ctx.field("set_status"),
            "set_assignee": ctx.field("set_assignee"),
            "known_products": set(ctx.storage.deadlines.products.names) - {""}}


def _modules_page(ctx: Ctx, status: int = 200, error: str = "",
                  editing: TextModule | None = None) -> Response:
    return ctx.render("text_modules.html", status, nav="text_modules",
                      modules=text_modules.modules(ctx.db), editing=editing, error=error,
                      placeholders=Labels(PLACEHOLDERS),
                      assignees=Labels(text_modules.MACRO_ASSIGNEES),
                      statuses=[s.value for s in TicketStatus],
                      products=[n for n in ctx.storage.deadlines.products.names if n])


@endpoint()
def modules_page(ctx: Ctx) -> Response:
    editing = None
    wanted = parse_id(ctx.param("edit"))
    if wanted is not None:
        editing = ctx.db.get(TextModule, wanted)
    return _modules_page(ctx, editing=editing)


@endpoint(role=Role.SUPERVISOR)
def save_module(ctx: Ctx) -> Response:
    wanted = parse_id(ctx.field("id")) if ctx.field("id") else None
    module = ctx.db.get(TextModule, wanted) if wanted is not None else None
    if wanted is not None and module is None:
        return error_page(ctx.state, ctx.request, 404, _("定型文が見つかりません。"))
    try:
        saved = text_modules.save_module(ctx.db, module, now=ctx.now, **_module_fields(ctx))
    except ActionError as exc:
        ctx.db.rollback()
        return _modules_page(ctx, 400, error_text(exc), ctx.db.get(TextModule, wanted)
                             if wanted is not None else None)
    ctx.db.commit()
    return ctx.redirect("/text-modules", ok=_("定型文「%(title)s」を保存しました。")
                        % {"title": saved.title})


@endpoint(role=Role.SUPERVISOR)
def delete_module(ctx: Ctx) -> Response:
    module = ctx.db.get(TextModule, ctx.request.path_params["id"])
    if module is None:
        return error_page(ctx.state, ctx.request, 404, _("定型文が見つかりません。"))
    title = module.title
    text_modules.delete_module(ctx.db, module)
    ctx.db.commit()
    return ctx.redirect("/text-modules", ok=_("定型文「%(title)s」を削除しました。")
                        % {"title": title})


@endpoint(role=Role.SUPERVISOR)
def signatures_page(ctx: Ctx) -> Response:
    error = ""
    status = 200
    if ctx.request.method == "POST":
        try:
            signatures.save_signature(ctx.db, ctx.field("product"), ctx.field("text"),
                                      ctx.storage.deadlines, ctx.now)
        except ActionError as exc:
            ctx.db.rollback()
            error, status = error_text(exc), 400
        else:
            ctx.db.commit()
            return ctx.redirect("/signatures", ok=_("署名を保存しました。"))
    return ctx.render("signatures.html", status, nav="signatures", error=error,
                      rows=signatures.all_signatures(ctx.db, ctx.settings,
                                                     ctx.storage.deadlines),
                      placeholders=Labels(PLACEHOLDERS))


def routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route("/tickets/{number}/phone", log_call, methods=post),
        Route("/tickets/{number}/fields", ticket_fields_form, methods=post),
        Route("/phone", phone_page),
        Route("/phone/tickets", open_phone_ticket, methods=post),
        Route("/text-modules", modules_page),
        Route("/text-modules/save", save_module, methods=post),
        Route("/text-modules/{id:id}/delete", delete_module, methods=post),
        Route("/signatures", signatures_page, methods=["GET", "POST"]),
    ]
