"""The triage page and its two number forms: a FAX's number, accepting a flagged inquiry.

A number the desk refuses (a wrong check digit, no such contract) is shown
again as it was typed, with the reason beside its field, on the triage page
itself (400): nothing typed is lost and the eye need not go to the top.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from starlette.responses import Response

from madoguchi.ticketing import triage, versions
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.models import Ticket
from madoguchi.web import live, queries
from madoguchi.web.http import Ctx, endpoint, error_page
from madoguchi.web.i18n import error_text
from madoguchi.web.i18n import gettext as _

_KEPT = ("support_number", "register_sender", "contact_name")


def render(ctx: Ctx, status: int = 200, typed: dict[str, dict[str, str]] | None = None,
           errors: dict[str, str] | None = None) -> Response:
    return ctx.render(
        "triage.html", status, nav="triage", faxes=triage.fax_triage(ctx.db),
        mails=triage.mail_triage(ctx.db), contracts=queries.contract_choices(ctx.db),
        typed=typed or {}, field_errors=errors or {},
        version=lambda t: versions.version_of(ctx.db, t).encode(),
    )


@endpoint()
def triage_page(ctx: Ctx) -> Response:
    return render(ctx)


def _act(ctx: Ctx, action: Callable[[Ticket], str]) -> Response:
    number = ctx.request.path_params["number"]
    from_triage = ctx.field("back") == "triage"
    t = queries.ticket_for_update(ctx.db, number)
    if t is None:
        return error_page(ctx.state, ctx.request, 404, _("チケットが見つかりません。"))
    try:
        versions.check(ctx.db, t, live.page_version(ctx))
        done = action(t)
    except versions.StaleView as exc:
        # Someone changed the ticket since this page was drawn: nothing is done,
        # the typed values stay, and what changed is said beside the ticket.
        ctx.db.rollback()
        changed = "、".join(live.describe(exc.changes, ctx.state))
        typed = {t.number: {k: ctx.field(k) for k in _KEPT}}
        return render(ctx, 409, typed, {t.number: _(
            "表示した後にこのチケットが更新されました（%(changed)s）。"
            "内容を確かめてもう一度送信してください。") % {"changed": changed}})
    except ActionError as exc:
        ctx.db.rollback()
        if not from_triage:
            return ctx.redirect(f"/tickets/{quote(number)}", error=error_text(exc))
        typed = {t.number: {k: ctx.field(k) for k in _KEPT}}
        return render(ctx, 400, typed, {t.number: error_text(exc)})
    ctx.db.commit()
    return ctx.redirect("/triage" if from_triage else f"/tickets/{quote(number)}", ok=done)


@endpoint()
def triage_number(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user

    def act(t: Ticket) -> str:
        number = triage.read_support_number(ctx.field("support_number"), ctx.settings)
        triage.assign_fax_number(ctx.db, t, number, user, ctx.settings, ctx.storage.deadlines,
                                 ctx.now)
        return _("%(number)s にサポートサービス番号を設定しました。") % {"number": t.number}

    return _act(ctx, act)


@endpoint()
def triage_accept(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user

    def act(t: Ticket) -> str:
        number = triage.read_support_number(ctx.field("support_number"), ctx.settings)
        contract = triage.accept_as_customer(
            ctx.db, t, number, ctx.field("register_sender") == "1", user, ctx.settings,
            ctx.storage.deadlines, ctx.now, contact_name=ctx.field("contact_name"),
        )
        return _("%(number)s を %(company)s のお問い合わせとして受け付けました。") % {
            "number": t.number, "company": contract.customer.company}

    return _act(ctx, act)
