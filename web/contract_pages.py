"""The web desk's contract pages: a contract with its periods; supervisors edit its fields and
terms, renew it, take out a mistaken period, and export the directory as CSV.

Thin over ``ticketing.directory`` and ``ticketing.contracts``, which the command
line (``madoguchi contracts``, ``madoguchi customers export``) calls too.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.responses import Response

from madoguchi.ticketing import directory
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.contracts import TermsError, describe, remove_period
from madoguchi.ticketing.customers_csv import export_csv
from madoguchi.ticketing.models import Contract, Role
from madoguchi.ticketing.support_number import format_number
from madoguchi.web import form_pages
from madoguchi.web.http import Ctx, endpoint, error_page
from madoguchi.web.i18n import error_text
from madoguchi.web.i18n import gettext as _

# The fields of the contract form, named as the CSV's columns.
FORM_FIELDS = ("product", "plan", "ordered_on", "purchased_on", "notified_on", "cancelled_on",
               "period_start", "period_end", "contract_code", "department", "address",
               "environment", "server_os", "web_server", "version", "users", "sla_override")


def _contract(ctx: Ctx) -> Contract | None:
    return ctx.db.scalar(
        select(Contract).where(Contract.id == ctx.request.path_params["id"]).options(
            selectinload(Contract.periods), selectinload(Contract.customer),
            selectinload(Contract.contacts),
        )
    )


def _missing(ctx: Ctx) -> Response:
    return error_page(ctx.state, ctx.request, 404, _("契約が見つかりません。"))


def _form_values(contract: Contract) -> dict[str, str]:
    """What the edit form shows: the contract's fields as text, the certificate's dates empty."""
    values = {name: "" for name in FORM_FIELDS}
    for name in ("product", "contract_code", "department", "address", "environment",
                 "server_os", "web_server", "version"):
        values[name] = getattr(contract, name)
    values["plan"] = contract.plan.value
    for name in ("ordered_on", "purchased_on", "notified_on", "cancelled_on"):
        day = getattr(contract, name)
        values[name] = day.isoformat() if day else ""
    values["users"] = "" if contract.users is None else str(contract.users)
    values["sla_override"] = json.dumps(contract.sla_override, ensure_ascii=False) \
        if contract.sla_override else ""
    return values


@endpoint()
def contract_page(ctx: Ctx) -> Response:
    contract = _contract(ctx)
    if contract is None:
        return _missing(ctx)
    today = ctx.now.astimezone(ctx.settings.tz).date()
    record = describe(contract, today, lambda d: format_number(d, ctx.settings.support_number))
    return ctx.render("contract.html", nav="customers", k=contract, record=record,
                      form_link=form_pages.signed_link(ctx, contract))


def _render_edit(ctx: Ctx, contract: Contract, values: dict[str, str], error: str = "",
                 status: int = 200) -> Response:
    return ctx.render("contract_edit.html", status, nav="customers", row=contract, v=values,
                      products=ctx.storage.deadlines.products.names, error=error)


@endpoint(role=Role.SUPERVISOR)
def edit_contract(ctx: Ctx) -> Response:
    contract = _contract(ctx)
    if contract is None:
        return _missing(ctx)
    if ctx.request.method == "GET":
        return _render_edit(ctx, contract, _form_values(contract))
    values = {name: ctx.field(name) for name in FORM_FIELDS}
    try:
        directory.update_contract(contract, values, products=ctx.storage.deadlines.products,
                                  now=ctx.now)
    except ActionError as exc:
        ctx.db.rollback()
        return _render_edit(ctx, contract, values, error_text(exc), 400)
    ctx.db.commit()
    return ctx.redirect(f"/contracts/{contract.id}", ok=_("保存しました。"))


def _contract_action(ctx: Ctx, act: Callable[[Contract], str | None]) -> Response:
    """Do ``act`` on the contract and go back to its page with what it says (None: not found)."""
    contract = _contract(ctx)
    if contract is None:
        return _missing(ctx)
    back = f"/contracts/{contract.id}"
    try:
        done = act(contract)
    except (ActionError, TermsError) as exc:
        ctx.db.rollback()
        refused = ActionError(exc.message, **exc.values) if isinstance(exc, TermsError) else exc
        return ctx.redirect(back, error=error_text(refused))
    if done is None:
        return error_page(ctx.state, ctx.request, 404, _("サポート期間が見つかりません。"))
    ctx.db.commit()
    return ctx.redirect(back, ok=done)


@endpoint(role=Role.SUPERVISOR)
def renew_contract(ctx: Ctx) -> Response:
    def act(contract: Contract) -> str:
        period = directory.renew_contract(contract, ctx.now)
        return _("%(start)s 〜 %(end)s の期間を追加しました。") % {
            "start": period.starts_on, "end": period.ends_on}

    return _contract_action(ctx, act)


@endpoint(role=Role.SUPERVISOR)
def delete_period(ctx: Ctx) -> Response:
    def act(contract: Contract) -> str | None:
        removed = remove_period(contract, int(ctx.request.path_params["period"]))
        if removed is None:
            return None
        return _("%(start)s 〜 %(end)s の期間を削除しました。") % {
            "start": removed.starts_on, "end": removed.ends_on}

    return _contract_action(ctx, act)


@endpoint(role=Role.SUPERVISOR)
def export_customers(ctx: Ctx) -> Response:
    text = export_csv(ctx.db, ctx.settings.support_number)
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="customers.csv"',
        "Cache-Control": "no-store",
    })
