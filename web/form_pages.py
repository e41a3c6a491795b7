"""The FAX request form on the web: the public, signed download link, and staff's own download.

``GET /fax-form/<contract id>/<expiry>/<signature>`` needs no sign-in: a
customer opens the link the desk sent (``madoguchi form --link``, or copied
from the contract page) and gets the form pre-filled for the contract. Any
link that is not valid — a changed character, an expired or unknown contract
— answers the same 404 page, so a probe learns nothing about contracts.
``GET /contracts/<id>/fax-form`` is the same PDF for signed-in staff.

Thin over ``ticketing.fax_forms`` (the signature) and ``ocr.form`` (the PDF).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.responses import Response

from madoguchi.ocr.form import write_contract_form
from madoguchi.ticketing.fax_forms import link_url, link_valid, parse_link
from madoguchi.ticketing.models import Contract, Customer
from madoguchi.web.http import SANDBOX_CSP, Ctx, endpoint, error_page
from madoguchi.web.i18n import N_
from madoguchi.web.i18n import gettext as _

_NOT_FOUND = N_("ページが見つかりません。")


@dataclass(frozen=True)
class FormLink:
    """What the contract page shows: the signed link and its expiry, or why there is none."""

    url: str
    expires: datetime | None
    download: str


def _load(ctx: Ctx, contract_id: int) -> Contract | None:
    return ctx.db.scalar(select(Contract).where(Contract.id == contract_id).options(
        selectinload(Contract.contacts),
        selectinload(Contract.customer).selectinload(Customer.contacts),
    ))


def _pdf(ctx: Ctx, contract: Contract) -> Response:
    buf = io.BytesIO()
    product = ctx.storage.deadlines.product_for(contract)
    write_contract_form(buf, contract, product, ctx.settings.support_number)
    return Response(buf.getvalue(), media_type="application/pdf", headers={
        "Content-Disposition": 'attachment; filename="fax-request-form.pdf"',
        "Content-Security-Policy": SANDBOX_CSP,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    })


def signed_link(ctx: Ctx, contract: Contract) -> FormLink:
    """The contract's signed form link (empty ``url`` without ``[web] public_url``)."""
    download = f"/contracts/{contract.id}/fax-form"
    if not ctx.web.public_url:
        return FormLink("", None, download)
    url, expires = link_url(ctx.web.public_url, ctx.state.secret, contract, ctx.now,
                            ctx.web.fax_form_link_days)
    return FormLink(url, expires, download)


@endpoint(auth=False)
def public_form(ctx: Ctx) -> Response:
    params = ctx.request.path_params
    parsed = parse_link(str(params["contract"]), str(params["expires"]))
    if parsed is None:
        return error_page(ctx.state, ctx.request, 404, _(_NOT_FOUND))
    contract_id, expires = parsed
    contract = _load(ctx, contract_id)
    number = contract.support_number if contract is not None else ""
    # Checked even for an unknown contract, so that both answers take as long.
    valid = link_valid(ctx.state.secret, contract_id, number, expires,
                       str(params["signature"]), ctx.now)
    if contract is None or not valid:
        return error_page(ctx.state, ctx.request, 404, _(_NOT_FOUND))
    return _pdf(ctx, contract)


@endpoint()
def staff_form(ctx: Ctx) -> Response:
    contract = _load(ctx, int(ctx.request.path_params["id"]))
    if contract is None:
        return error_page(ctx.state, ctx.request, 404, _("契約が見つかりません。"))
    return _pdf(ctx, contract)
