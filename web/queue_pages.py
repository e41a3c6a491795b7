"""The queue's views with their live counts, and what staff do to the tickets they tick.

A view is a preset of the queue's filters (``queries.QueueFilters``), so a
view's list and its count are the same query. The six counts (the views and
トリアージ) are one statement, one index-only pass over the tickets not closed
(``queries.view_counts``, migration 0016), kept until a ticket changes
(``web.count_cache``). The actions on ticked tickets are
``ticketing.bulk``: each
ticket goes through the same single-ticket action as its own page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response

from madoguchi.ticketing import bulk
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.queues import ANY_TRIAGE
from madoguchi.web import queries
from madoguchi.web.http import Ctx, endpoint
from madoguchi.web.i18n import N_, error_text
from madoguchi.web.i18n import gettext as _


@dataclass(frozen=True)
class View:
    key: str
    label: str
    params: tuple[tuple[str, str], ...]
    hint: str


# In the order they are shown; the first is what "mine" means to most staff.
VIEWS = (
    View("mine", N_("自分の担当"), (("assignee", "me"),), N_("自分が担当の未完了チケット")),
    View("unassigned", N_("未割当"), (("assignee", "none"),), N_("担当者のいない未完了チケット")),
    View("today", N_("今日が期限"), (("due", "today"),),
         N_("一次回答がまだで、期限が今日中のもの（超過を含む）")),
    View("waiting", N_("当方対応待ち"), (("status", "open"),),
         N_("ステータスが対応中（保留＝お客様待ちを除く）")),
    View("all", N_("未完了すべて"), (), N_("完了していないすべてのチケット")),
)


@dataclass(frozen=True)
class ViewLink:
    key: str
    label: str
    hint: str
    url: str
    count: int
    current: bool


def day_end(ctx: Ctx) -> datetime:
    """Midnight at the end of today on the desk's clock ("due today" means before it)."""
    tz = ctx.settings.tz
    today = ctx.now.astimezone(tz).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)


def view_links(ctx: Ctx, filters: queries.QueueFilters) -> list[ViewLink]:
    """The saved views with their counts; the one the filters are is ``current``."""
    assert ctx.user is not None
    end = day_end(ctx)
    shown = filters.params()
    user_id = ctx.user.id
    presets = [queries.QueueFilters.from_params(dict(view.params)) for view in VIEWS]
    # The five views and トリアージ counted in one statement, kept by the process until a
    # ticket changes (web.count_cache: cleared by the change feed and by any action here).
    *counts, triage = ctx.state.counts.counts(
        (user_id, end), lambda: queries.view_counts(ctx.db, presets, user_id=user_id,
                                                     day_end=end, also=[ANY_TRIAGE]))
    links = [
        ViewLink(view.key, _(view.label), _(view.hint),
                 f"/queue?{urlencode(dict(view.params))}" if view.params else "/queue",
                 count, shown == dict(view.params))
        for view, count in zip(VIEWS, counts, strict=True)
    ]
    links.insert(4, ViewLink("triage", _("トリアージ"),
                             _("番号を読めなかったFAXと確認が必要なお問い合わせ"),
                             "/triage", triage, False))
    return links


def _back(ctx: Ctx) -> str:
    """Where the form came from: a queue page (its filters kept), nothing else."""
    back = ctx.field("back")
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or parts.path != "/queue" or "\\" in back:
        return "/queue"
    return back


def _summary(verb: str, result: bulk.BulkResult) -> tuple[str | None, str | None]:
    ok = verb % {"n": len(result.done)} if result.done else None
    refused = _("、").join(_("%(number)s（%(why)s）") % {
        "number": n, "why": error_text(result.reasons[n]) if n in result.reasons else _(why)}
        for n, why in result.refused[:10])
    more = _(" ほか%(n)s件") % {"n": len(result.refused) - 10} if len(result.refused) > 10 else ""
    error = _("%(n)s件は変更できませんでした: %(refused)s%(more)s") % {
        "n": len(result.refused), "refused": refused, "more": more} if result.refused else None
    return ok, error


def _act(ctx: Ctx, action: str, numbers: list[str]) -> tuple[str, bulk.BulkResult]:
    assert ctx.user is not None
    if action == "assign_me":
        return _("%(n)s件を自分に割り当てました。"), bulk.assign(ctx.db, numbers, str(ctx.user.id))
    if action == "assign":
        who = ctx.field("assignee")
        verb = _("%(n)s件の担当者を変更しました。") if who else _("%(n)s件の担当者を外しました。")
        return verb, bulk.assign(ctx.db, numbers, who)
    if action == "status":
        return _("%(n)s件のステータスを変更しました。"), bulk.set_status(
            ctx.db, numbers, ctx.field("status"), ctx.now)
    if action == "close":
        return _("%(n)s件を完了にしました。"), bulk.close(ctx.db, numbers, ctx.now)
    if action == "merge":
        return _("%(n)s件を統合しました。"), bulk.merge(ctx.db, numbers, ctx.field("target"),
                                                    ctx.user, ctx.now)
    raise ActionError(_("操作を選んでください"))


@endpoint()
def bulk_action(ctx: Ctx) -> Response:
    """The queue's form: the ticked tickets and one action, or one row's 自分に割り当て."""
    back = _back(ctx)
    only = ctx.field("only")
    if only:
        action, numbers = "assign_me", [only]
    else:
        ticked = ctx.form.getlist("ticket") if ctx.form is not None else []
        action, numbers = ctx.field("action"), [v for v in ticked if isinstance(v, str)]
    try:
        verb, result = _act(ctx, action, numbers)
    except ActionError as exc:
        ctx.db.rollback()
        return ctx.redirect(back, error=error_text(exc))
    ctx.db.commit()
    ok, error = _summary(verb, result)
    return ctx.redirect(back, ok=ok, error=error)
