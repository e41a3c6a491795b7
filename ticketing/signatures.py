"""Each product's reply signature: supervisors edit it, the reply box shows it, the mail carries it.

The signature staff see under the reply box is the one the mail is sent with:
the form carries the text it showed, and a reply whose signature changed
since the page was opened is refused, to be looked at again. Its first line
after ``--`` always names the ticket after 受付番号 (as the acknowledgement
does), so a reply that lost its tag and references still threads
(``ticket_number.quoted_numbers``); supervisors edit what follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from madoguchi.config import Settings
from madoguchi.ticketing.actions import ActionError, required_text
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.models import StaffUser, Ticket
from madoguchi.ticketing.products import Product
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.rules.placeholders import fill
from madoguchi.ticketing.text_modules import check_placeholders, facts_for
from madoguchi.ticketing.toolkit_models import Signature


def default_text(product: Product, settings: Settings) -> str:
    """What a product signs with until a supervisor writes its own (who the mail is from)."""
    name = product.voice.from_name if product.voice else settings.acknowledgement.from_name
    address = product.voice.from_address if product.voice else settings.desk_address
    return f"{name}\n担当: {{担当者名}}\n{address}"


def stored_text(session: Session, product: Product, settings: Settings) -> str:
    row = session.get(Signature, product.name)
    return row.text if row is not None else default_text(product, settings)


def product_of(ticket: Ticket, deadlines: Deadlines) -> Product:
    return deadlines.product_for(ticket.contract, product=ticket.product)


def signature_for(session: Session, ticket: Ticket, user: StaffUser, settings: Settings,
                  deadlines: Deadlines) -> str:
    """The signature of a reply on ``ticket`` by ``user``, as it is sent."""
    product = product_of(ticket, deadlines)
    values = facts_for(ticket, user, product.name, settings.tz).values()
    body = fill(stored_text(session, product, settings), values).strip("\n")
    return f"--\n受付番号：{ticket.number}\n{body}"


def check_shown(shown: str | None, current: str) -> None:
    """Refuse a reply whose signature is not the one its form showed."""
    if shown is None:
        return  # not from a form (the command line): the current one is the one sent
    if shown.replace("\r\n", "\n").strip() != current.strip():
        raise ActionError(N_("署名が更新されました。"
                             "表示された署名を確認して、もう一度送信してください"))


def _products(deadlines: Deadlines) -> tuple[Product, ...]:
    return deadlines.products.all or (deadlines.products.default,)


@dataclass(frozen=True)
class ProductSignature:
    product: str  # "" for a desk without products
    text: str
    customised: bool


def all_signatures(session: Session, settings: Settings,
                   deadlines: Deadlines) -> list[ProductSignature]:
    return [ProductSignature(p.name, stored_text(session, p, settings),
                             session.get(Signature, p.name) is not None)
            for p in _products(deadlines)]


def save_signature(session: Session, product: str, text: str, deadlines: Deadlines,
                   now: datetime) -> None:
    names = {p.name for p in _products(deadlines)}
    if product not in names:
        raise ActionError(N_("製品 %(product)s は設定にありません"), product=product)
    text = required_text(text, N_("署名"), 2000)
    check_placeholders(text)
    row = session.get(Signature, product)
    if row is None:
        session.add(Signature(product=product, text=text, updated_at=now))
    else:
        row.text, row.updated_at = text, now
