"""The web desk's pages and actions: thin handlers over its queries and the desk actions of
ticketing (actions, triage, replies, directory), which the command line calls too."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlencode

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from madoguchi.ingest.htmltext import sanitize_html
from madoguchi.ticketing import (
    access_log,
    actions,
    directory,
    replies,
    reply_drafts,
    search_filters,
    triage,
    versions,
)
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.customers_csv import CsvImportError, import_rows, read_rows
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.models import (
    Attachment,
    Contact,
    Customer,
    Message,
    Role,
    Ticket,
)
from madoguchi.ticketing.rules.conversation import CHOOSABLE, chosen_state
from madoguchi.web import (
    contract_pages,
    conversation_pages,
    form_pages,
    live,
    locale_pages,
    outbox_pages,
    preview_pages,
    queries,
    queue_pages,
    signin,
    toolkit_pages,
    triage_pages,
)
from madoguchi.web.http import SANDBOX_CSP, Ctx, endpoint, error_page
from madoguchi.web.i18n import N_, error_text
from madoguchi.web.i18n import gettext as _
from madoguchi.web.metrics import metrics

log = logging.getLogger("madoguchi.web")

STATIC = Path(__file__).resolve().parent / "static"
_INLINE_IMAGES = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "image/gif": b"GIF8",
}
_SAFE_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_BACK = {"triage": "/triage"}


def _not_found(ctx: Ctx, what: str = N_("ページ")) -> Response:
    message = _("%(what)sが見つかりません。") % {"what": _(what)}
    return error_page(ctx.state, ctx.request, 404, message)


@endpoint()
def home(ctx: Ctx) -> Response:
    return RedirectResponse("/queue", status_code=303)


# -- the queue ---------------------------------------------------------------


def _url(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


@endpoint()
def queue(ctx: Ctx) -> Response:
    assert ctx.user is not None
    filters = queries.QueueFilters.from_params(ctx.request.query_params)
    after = queries.Cursor.decode(ctx.param("after"))
    before = queries.Cursor.decode(ctx.param("before")) if after is None else None
    page = queries.queue_page(ctx.db, filters, user_id=ctx.user.id, after=after, before=before,
                              limit=ctx.web.page_size, day_end=queue_pages.day_end(ctx))
    kept = filters.params()
    return ctx.render(
        "queue.html", nav="queue", page=page, filters=filters,
        views=queue_pages.view_links(ctx, filters), here=str(ctx.request.url.path) + (
            f"?{ctx.request.url.query}" if ctx.request.url.query else ""),
        staff=queries.active_staff(ctx.db), statuses=queries.STATUS_CHOICES,
        first_url=_url("/queue", kept),
        next_url=_url("/queue", {**kept, "after": page.next.encode()}) if page.next else None,
        prev_url=_url("/queue", {**kept, "before": page.prev.encode()}) if page.prev else None,
        **live.queue_context(ctx, page.tickets),
    )


# -- one ticket --------------------------------------------------------------


@endpoint()
def ticket(ctx: Ctx) -> Response:
    return _ticket_page(ctx)


def _ticket_page(ctx: Ctx, status: int = 200, stale: list[str] | None = None) -> Response:
    view = queries.ticket_view(ctx.db, ctx.request.path_params["number"])
    if view is None:
        return _not_found(ctx, N_("チケット"))
    t = view.ticket
    access_log.opened(ctx.db, ctx.user, t.id, "ticket", ctx.now)
    wanted = ctx.param("reply_to") or (ctx.field("reply_to") if stale else "")
    target = next((m for m in t.messages if str(m.id) == wanted), None) if wanted else None
    target = target or replies.default_reply_target(t)
    return ctx.render(
        "ticket.html", status, nav="queue", view=view, t=t, staff=queries.active_staff(ctx.db),
        reply_target=target, **conversation_pages.ticket_context(ctx, t, target),
        reply_subject=replies.reply_subject(t, target.subject if target else t.subject),
        fax_to=t.contact.fax if t.contact else "",
        fax_name=t.customer.company if t.customer else "",
        statuses=[s.value for s in CHOOSABLE], **toolkit_pages.ticket_context(ctx, t),
        **live.ticket_context(ctx, t, stale),
        **outbox_pages.ticket_context(ctx, t),
    )


def stale_ticket_page(ctx: Ctx, exc: versions.StaleView) -> Response:
    """The ticket page again (409): what changed since it was drawn, the typed text kept."""
    return _ticket_page(ctx, 409, live.describe(exc.changes, ctx.state))


def ticket_action(ctx: Ctx, action: Callable[[Ticket], str]) -> Response:
    """Apply ``action`` to the ticket of the URL unless the page was stale (409, text kept)."""
    number = ctx.request.path_params["number"]
    back = _BACK.get(ctx.field("back"), f"/tickets/{quote(number)}")
    t = queries.ticket_for_update(ctx.db, number)
    if t is None:
        return _not_found(ctx, N_("チケット"))
    try:
        versions.check(ctx.db, t, live.page_version(ctx))
        done = action(t)
    except versions.StaleView as exc:
        ctx.db.rollback()
        return stale_ticket_page(ctx, exc)
    except ActionError as exc:
        ctx.db.rollback()
        return ctx.redirect(back, error=error_text(exc))
    ctx.db.commit()
    return ctx.redirect(back, ok=done)


@endpoint()
def add_note(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user

    def act(t: Ticket) -> str:
        actions.add_note(ctx.db, t, user, ctx.field("text"), ctx.now)
        return _("社内メモを追加しました。")

    return ticket_action(ctx, act)


def _then_status(ctx: Ctx, t: Ticket) -> None:
    status = ctx.field("then_status")
    if status:
        actions.set_status(t, status, ctx.now, by=ctx.user,
                           pending_until=conversation_pages.pending_until(ctx))


@endpoint()
def reply_mail(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user
    outcome: dict[str, bool] = {}

    def act(t: Ticket) -> str:
        original = None
        wanted = ctx.field("reply_to")
        if wanted:
            message_id = parse_id(wanted)
            original = ctx.db.get(Message, message_id) if message_id is not None else None
            if original is None or original.ticket_id != t.id:
                raise ActionError(_("返信元のメッセージが見つかりません"))
        reply = replies.MailReply(
            to=ctx.field("to"), cc=ctx.field("cc"), body=ctx.field("body"),
            include_quote=ctx.field("quote") == "1",
            idempotency_key=ctx.field("idempotency_key"),
            # A form without the field (not the desk's own) gets the current signature.
            signature=ctx.field("signature") if ctx.form and "signature" in ctx.form else None,
            macro=parse_id(ctx.field("macro")),
        )
        sent = reply_drafts.send_reply(ctx.db, t, original, user, reply, ctx.settings,
                                       ctx.storage.deadlines, ctx.now)
        anchor["at"] = f"#m{sent.message.id}"
        if not sent.new:
            return _("この返信は送信済みです（二重送信は行いません）。"
                     "送信済みの返信を表示しています。")
        _then_status(ctx, t)
        outcome["queued"] = True
        # Queued, not yet sent: the message's delivery state says what became of it.
        return _("返信メールを送信キューに入れました（まだ送信されていません）。"
                 "配信の結果はメッセージの「送信状況」に表示されます。")

    anchor: dict[str, str] = {}
    response = ticket_action(ctx, act)
    if anchor and response.status_code == 303:
        response.headers["location"] += anchor["at"]
    if outcome.get("queued") and ctx.state.on_reply is not None:
        response.background = BackgroundTask(ctx.state.on_reply)
    return response


@endpoint()
def reply_fax(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user
    written: list[Path] = []

    def act(t: Ticket) -> str:
        # Everything that may refuse comes before the files are written; the state
        # chosen is set after the reply (which itself leaves the ticket waiting).
        if ctx.field("then_status") and chosen_state(ctx.field("then_status")) is None:
            raise ActionError(_("ステータスが正しくありません"))
        conversation_pages.pending_until(ctx)
        reply = replies.FaxReply(fax_number=ctx.field("fax_number"),
                                 to_name=ctx.field("to_name"), body=ctx.field("body"))
        _message, files = replies.send_fax_reply(ctx.db, t, user, reply, ctx.settings,
                                                 ctx.web.fax_outbound_dir, ctx.storage.blobs,
                                                 ctx.now)
        written.extend(files)
        _then_status(ctx, t)
        return _("FAXの送信原稿を送信フォルダーに置きました。")

    try:
        return ticket_action(ctx, act)
    except BaseException:
        # Not recorded, so not sent: take the files back from the gateway's folder.
        for path in written:
            path.unlink(missing_ok=True)
        raise


@endpoint()
def set_status(ctx: Ctx) -> Response:
    def act(t: Ticket) -> str:
        actions.set_status(t, ctx.field("status"), ctx.now, by=ctx.user,
                           pending_until=conversation_pages.pending_until(ctx))
        return _("ステータスを変更しました。")

    return ticket_action(ctx, act)


@endpoint()
def assign(ctx: Ctx) -> Response:
    assert ctx.user is not None
    me = ctx.user

    def act(t: Ticket) -> str:
        value = ctx.field("assignee")
        who = actions.assign(ctx.db, t, str(me.id) if value == "me" else value, by=me,
                             now=ctx.now)
        if who is None:
            return _("担当者を外しました。")
        return _("担当者を %(name)s にしました。") % {"name": who.name}

    return ticket_action(ctx, act)


@endpoint()
def merge(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user
    number = ctx.request.path_params["number"]
    t = queries.ticket_for_update(ctx.db, number)
    if t is None:
        return _not_found(ctx, N_("チケット"))
    try:
        versions.check(ctx.db, t, live.page_version(ctx))
        target = actions.merge(ctx.db, t, ctx.field("target"), user, ctx.now)
    except versions.StaleView as exc:
        ctx.db.rollback()
        return stale_ticket_page(ctx, exc)
    except ActionError as exc:
        ctx.db.rollback()
        return ctx.redirect(f"/tickets/{quote(number)}", error=error_text(exc))
    ctx.db.commit()
    return ctx.redirect(f"/tickets/{quote(target.number)}",
                        ok=_("%(source)s を %(target)s に統合しました。") % {
                            "source": number, "target": target.number})


@endpoint()
def triage_out_of_scope(ctx: Ctx) -> Response:
    assert ctx.user is not None
    user = ctx.user

    def act(t: Ticket) -> str:
        triage.mark_out_of_scope(ctx.db, t, ctx.field("reason"), user, ctx.now)
        return _("%(number)s を対象外として完了しました。") % {"number": t.number}

    return ticket_action(ctx, act)


# -- what customers sent: HTML, attachments ----------------------------------


@endpoint()
def message_html(ctx: Ctx) -> Response:
    message = ctx.db.get(Message, ctx.request.path_params["id"])
    if message is None or not message.html:
        return _not_found(ctx, N_("HTML本文"))
    access_log.opened(ctx.db, ctx.user, message.ticket_id, "html", ctx.now)
    # Sanitised at ingest; again here in case a row came from elsewhere. It is
    # shown in a sandboxed frame: no script runs, nothing is fetched, its
    # styles stay inside the frame.
    body = sanitize_html(message.html)
    document = (
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\">"
        "<style>body{font-family:sans-serif;font-size:14px;line-height:1.6;margin:8px;"
        "overflow-wrap:anywhere}img{max-width:100%}</style></head><body>"
        f"{body}</body></html>"
    )
    return Response(document, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy":
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
        "X-Frame-Options": "SAMEORIGIN",
    })


def _content_disposition(kind: str, filename: str) -> str:
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_"
                       for c in filename) or "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _attachment(ctx: Ctx) -> tuple[Attachment, Path] | None:
    a = ctx.db.get(Attachment, ctx.request.path_params["id"])
    if a is None:
        return None
    path = ctx.storage.blobs.path_for(a.sha256)
    if not path.is_file():
        return None
    access_log.opened(ctx.db, ctx.user, a.message.ticket_id, "attachment", ctx.now)
    return a, path


@endpoint()
def download(ctx: Ctx) -> Response:
    found = _attachment(ctx)
    if found is None:
        return _not_found(ctx, N_("添付ファイル"))
    a, path = found
    media = a.content_type.lower() if _SAFE_TYPE.match(a.content_type.lower()) else \
        "application/octet-stream"
    return FileResponse(path, media_type=media, headers={
        "Content-Disposition": _content_disposition("attachment", a.filename),
        "Content-Security-Policy": SANDBOX_CSP,
    })


@endpoint()
def view_image(ctx: Ctx) -> Response:
    found = _attachment(ctx)
    if found is None:
        return _not_found(ctx, N_("画像"))
    a, path = found
    magic = _INLINE_IMAGES.get(a.content_type.lower())
    with open(path, "rb") as fh:
        head = fh.read(8)
    if magic is None or not head.startswith(magic):
        return _not_found(ctx, N_("画像"))
    return FileResponse(path, media_type=a.content_type.lower(), headers={
        "Content-Disposition": _content_disposition("inline", a.filename),
        "Content-Security-Policy": SANDBOX_CSP,
        "Cache-Control": "private, max-age=3600",
    })


# -- search ------------------------------------------------------------------


@endpoint()
def search(ctx: Ctx) -> Response:
    q = ctx.param("q").strip()[:200]
    number = queries.ticket_number_in(q)
    if number and queries.ticket_for_update(ctx.db, number) is not None:
        return RedirectResponse(f"/tickets/{quote(number)}", status_code=303)
    form = {name: ctx.param(name)[:200] for name in search_filters.FILTER_NAMES}
    filters, problem = search_filters.parse_filters(form, ctx.settings.tz)
    result = queries.search(ctx.db, q, before=parse_id(ctx.param("before")), filters=filters) \
        if q and not problem else None
    next_url = _url("/search", {"q": q, **form, "before": str(result.next_before)}) \
        if result and result.next_before else None
    return ctx.render("search.html", 400 if problem else 200, nav="search", q=q, result=result,
                      next_url=next_url, form=form, problem=problem,
                      choices=search_filters.choices(ctx.db))


# -- customers, contracts, contacts ------------------------------------------


@endpoint()
def customers(ctx: Ctx) -> Response:
    q = ctx.param("q").strip()[:200]
    page = min(parse_id(ctx.param("page")) or 0, 100_000)
    rows, more = queries.customers_page(ctx.db, q, page)
    return ctx.render(
        "customers.html", nav="customers", customers=rows, q=q,
        next_url=_url("/customers", {"q": q, "page": str(page + 1)} if q else
                      {"page": str(page + 1)}) if more else None,
        prev_url=_url("/customers", {"q": q, "page": str(page - 1)} if q else
                      {"page": str(page - 1)}) if page else None,
    )


@endpoint()
def customer(ctx: Ctx) -> Response:
    c = queries.customer_detail(ctx.db, ctx.request.path_params["id"])
    if c is None:
        return _not_found(ctx, N_("顧客"))
    return ctx.render("customer.html", nav="customers", c=c,
                      tickets=queries.customer_tickets(ctx.db, c.id))


_Row = TypeVar("_Row", Customer, Contact)


def _edit(ctx: Ctx, model: type[_Row], template: str, apply: Callable[[_Row], None],
          customer_id: Callable[[_Row], int]) -> Response:
    row = ctx.db.get(model, ctx.request.path_params["id"])
    if row is None:
        return _not_found(ctx)
    if ctx.request.method == "GET":
        return ctx.render(template, nav="customers", row=row, error="")
    try:
        apply(row)
    except ActionError as exc:
        ctx.db.rollback()
        row = ctx.db.get_one(model, ctx.request.path_params["id"])
        return ctx.render(template, 400, nav="customers", row=row, error=error_text(exc))
    ctx.db.commit()
    return ctx.redirect(f"/customers/{customer_id(row)}", ok=_("保存しました。"))


@endpoint(role=Role.SUPERVISOR)
def edit_customer(ctx: Ctx) -> Response:
    return _edit(ctx, Customer, "customer_edit.html", lambda c: directory.update_customer(
        ctx.db, c, company=ctx.field("company"), department=ctx.field("department"),
        address=ctx.field("address"),
    ), lambda c: c.id)


@endpoint(role=Role.SUPERVISOR)
def edit_contact(ctx: Ctx) -> Response:
    # The form lists the company's contracts as checkboxes; "contracts_listed" says it did.
    ticked = ctx.form.getlist("contract") if ctx.form is not None else []
    chosen = [int(v) for v in ticked if isinstance(v, str) and v.isdigit()]
    listed = ctx.field("contracts_listed") == "1"
    return _edit(ctx, Contact, "contact_edit.html", lambda p: directory.update_contact(
        ctx.db, p, name=ctx.field("name"), phone=ctx.field("phone"), fax=ctx.field("fax"),
        emails=ctx.field("emails"), contract_ids=chosen if listed else None,
    ), lambda p: p.customer_id)


@endpoint(role=Role.SUPERVISOR)
def import_customers(ctx: Ctx) -> Response:
    if ctx.request.method == "GET":
        return ctx.render("import.html", nav="customers", errors=[], report=None)
    upload = ctx.upload("file")
    if upload is None or not upload.filename:
        return ctx.render("import.html", 400, nav="customers", report=None,
                          errors=[(0, _("CSVファイルを選んでください"))])
    data = upload.file.read(ctx.web.max_upload_bytes + 1)
    if len(data) > ctx.web.max_upload_bytes:
        return ctx.render("import.html", 400, nav="customers", report=None,
                          errors=[(0, _("ファイルが大きすぎます"))])
    try:
        rows = read_rows(data.decode("utf-8-sig"), ctx.settings.support_number,
                         ctx.storage.deadlines.products)
        report = import_rows(ctx.db, rows, now=ctx.now)
    except UnicodeDecodeError:
        return ctx.render("import.html", 400, nav="customers", report=None,
                          errors=[(0, _("UTF-8 のCSVファイルを選んでください"))])
    except CsvImportError as exc:
        ctx.db.rollback()
        return ctx.render("import.html", 400, nav="customers", report=None, errors=exc.errors)
    ctx.db.commit()
    log.info("%s imported %s customer rows", ctx.user.login if ctx.user else "-", report.rows)
    return ctx.render("import.html", nav="customers", errors=[], report=report)


# -- the rest ----------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route("/", home),
        Route("/healthz", healthz),
        # No session: Prometheus sends a bearer token, or scrapes over loopback.
        Route("/metrics", metrics),
        *signin.routes(),
        *live.routes(),
        Route("/queue", queue),
        Route("/queue/bulk", queue_pages.bulk_action, methods=post),
        Route("/triage", triage_pages.triage_page),
        *toolkit_pages.routes(),
        Route("/search", search),
        Route("/tickets/{number}", ticket),
        Route("/tickets/{number}/note", add_note, methods=post),
        Route("/tickets/{number}/reply", reply_mail, methods=post),
        Route("/tickets/{number}/fax", reply_fax, methods=post),
        Route("/tickets/{number}/status", set_status, methods=post),
        Route("/tickets/{number}/assign", assign, methods=post),
        Route("/tickets/{number}/merge", merge, methods=post),
        Route("/tickets/{number}/support-number", triage_pages.triage_number, methods=post),
        Route("/tickets/{number}/accept", triage_pages.triage_accept, methods=post),
        Route("/tickets/{number}/out-of-scope", triage_out_of_scope, methods=post),
        Route("/messages/{id:id}/html", message_html),
        Route("/attachments/{id:id}", download),
        Route("/attachments/{id:id}/view", view_image),
        Route("/attachments/{id:id}/preview", preview_pages.attachment_preview),
        Route("/customers", customers),
        Route("/customers/import", import_customers, methods=["GET", "POST"]),
        Route("/customers/{id:id}", customer),
        Route("/customers/{id:id}/edit", edit_customer, methods=["GET", "POST"]),
        Route("/customers/export", contract_pages.export_customers),
        Route("/contracts/{id:id}", contract_pages.contract_page),
        Route("/contracts/{id:id}/fax-form", form_pages.staff_form),
        Route("/fax-form/{contract}/{expires}/{signature}", form_pages.public_form),
        Route("/contracts/{id:id}/edit", contract_pages.edit_contract, methods=["GET", "POST"]),
        Route("/contracts/{id:id}/renew", contract_pages.renew_contract, methods=post),
        Route("/contracts/{id:id}/periods/{period:id}/delete", contract_pages.delete_period,
              methods=post),
        Route("/contacts/{id:id}/edit", edit_contact, methods=["GET", "POST"]),
        *outbox_pages.routes(),
        *locale_pages.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
