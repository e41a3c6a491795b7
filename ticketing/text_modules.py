"""Text modules (定型文) and macros: kept, edited by supervisors, filled for one ticket.

A module's body has placeholders (``rules/placeholders.py``), filled on the
server for the ticket and the agent, so what the reply box receives is the
finished text. A macro is a module that also sets the ticket's status and
assignee when the reply it went into is sent (``apply_macro``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.ticketing import actions
from madoguchi.ticketing.actions import ActionError, required_text
from madoguchi.ticketing.japanese import format_moment_ja
from madoguchi.ticketing.models import StaffUser, Ticket, TicketStatus
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.rules.placeholders import (
    PLACEHOLDERS,
    PlaceholderFacts,
    fill,
    unknown_placeholders,
)
from madoguchi.ticketing.toolkit_models import TextModule

_OPENING = ("{会社名}\n{お客様名}\n\nいつもお世話になっております。\n"
            "{製品名} サポート窓口の{担当者名}でございます。\n\n")
_CLOSING = "\n\n今後ともよろしくお願い申し上げます。\n"

# (title, body, status set, assignee set): shipped, seeded by migration 0011.
DEFAULTS: tuple[tuple[str, str, str, str], ...] = (
    ("お問い合わせへのお礼", _OPENING
     + "このたびはお問い合わせいただき、誠にありがとうございます。\n"
     "受付番号 {受付番号} にて承りました。\n"
     "内容を確認のうえ、{回答期限}までにご連絡いたします。"
     "恐れ入りますが、今しばらくお待ちくださいますようお願い申し上げます。" + _CLOSING,
     "", "me"),
    ("調査中のご連絡", _OPENING
     + "お問い合わせいただいた件につきまして、現在調査を進めております。\n"
     "お待たせしており誠に申し訳ございませんが、今しばらくお時間を頂戴できますでしょうか。\n"
     "進展がございましたら、改めてご連絡いたします。" + _CLOSING,
     "open", ""),
    ("追加情報のお願い", _OPENING
     + "調査を進めるにあたり、恐れ入りますが以下の情報をお知らせいただけますでしょうか。\n\n"
     "・ご利用のバージョン\n"
     "・事象が発生した日時と、表示されたエラーメッセージ（画面の写しがあればお添えください）\n"
     "・事象に至るまでの操作の手順\n\n"
     "お手数をおかけいたしますが、何卒よろしくお願いいたします。" + _CLOSING,
     "pending", ""),
    ("解決のご確認", _OPENING
     + "先日ご案内いたしました方法にて、事象は解消いたしましたでしょうか。\n"
     "解消しておりましたら、本件はこれにて完了とさせていただきます。\n"
     "ご不明な点がございましたら、本メールにご返信いただけますと幸いです。" + _CLOSING,
     "pending", ""),
    ("対象外のご案内", _OPENING
     + "誠に恐れ入りますが、お問い合わせいただいた内容は、"
     "サポートサービスの対象外となっております。\n"
     "ご期待に沿えず誠に申し訳ございませんが、何卒ご了承くださいますようお願い申し上げます。"
     + _CLOSING,
     "closed", ""),
    ("回答のご連絡", _OPENING
     + "お問い合わせいただいた件につきまして、ご回答申し上げます。\n\n"
     "（回答内容）\n\n"
     "ご不明な点がございましたら、お気軽にお問い合わせください。" + _CLOSING,
     "", ""),
)
MACRO_ASSIGNEES = {"": N_("変更しない"), "me": N_("送信した担当者"), "none": N_("未割当に戻す")}


@dataclass(frozen=True)
class FilledModule:
    """A module ready for one ticket's reply box."""

    id: int
    title: str
    text: str
    set_status: str
    set_assignee: str


def modules(session: Session, product: str | None = None) -> list[TextModule]:
    """Every module, or those for ``product`` and for every product."""
    query = select(TextModule).order_by(TextModule.title)
    if product is not None:
        query = query.where(TextModule.product.in_(["", product]))
    return list(session.scalars(query))


def facts_for(ticket: Ticket, user: StaffUser, product: str, tz: ZoneInfo) -> PlaceholderFacts:
    due = ticket.first_response_due
    return PlaceholderFacts(
        company=ticket.customer.company if ticket.customer else "",
        contact_name=ticket.contact.name if ticket.contact else "",
        ticket_number=ticket.number,
        product=product,
        due=f"{format_moment_ja(due, tz)}" if due is not None else "",
        agent=user.name,
    )


def filled_modules(session: Session, ticket: Ticket, user: StaffUser, product: str,
                   tz: ZoneInfo) -> list[FilledModule]:
    values = facts_for(ticket, user, product, tz).values()
    return [FilledModule(m.id, m.title, fill(m.body, values), m.set_status, m.set_assignee)
            for m in modules(session, ticket.product or "")]


def check_placeholders(text: str) -> None:
    unknown = unknown_placeholders(text)
    if unknown:
        raise ActionError(N_("使えない差し込み項目があります: %(unknown)s"
                             "（使える項目: %(known)s）"),
                          unknown="、".join(f"{{{u}}}" for u in unknown),
                          known="、".join(f"{{{p}}}" for p in PLACEHOLDERS))


def _checked(title: str, body: str, product: str, set_status: str, set_assignee: str,
             known_products: set[str]) -> tuple[str, str, str, str, str]:
    title = required_text(title, N_("題名"), 200)
    body = required_text(body, N_("本文"))
    check_placeholders(body)
    product = product.strip()
    if product and product not in known_products:
        raise ActionError(N_("製品 %(product)s は設定にありません"), product=product)
    if set_status and set_status not in {s.value for s in TicketStatus}:
        raise ActionError(N_("ステータスが正しくありません"))
    if set_assignee not in MACRO_ASSIGNEES:
        raise ActionError(N_("担当者の設定が正しくありません"))
    return title, body, product, set_status, set_assignee


def save_module(session: Session, module: TextModule | None, *, title: str, body: str,
                product: str, set_status: str, set_assignee: str, known_products: set[str],
                now: datetime) -> TextModule:
    """Add a module (``module`` None) or change one; the title must be unique."""
    fields = _checked(title, body, product, set_status, set_assignee, known_products)
    clash = session.scalar(select(TextModule).where(TextModule.title == fields[0]))
    if clash is not None and clash is not module:
        raise ActionError(N_("題名「%(title)s」の定型文はすでにあります"), title=fields[0])
    if module is None:
        module = TextModule(title=fields[0], body=fields[1], updated_at=now)
        session.add(module)
    module.title, module.body, module.product, module.set_status, module.set_assignee = fields
    module.updated_at = now
    session.flush()
    return module


def delete_module(session: Session, module: TextModule) -> None:
    session.delete(module)


def apply_macro(session: Session, ticket: Ticket, module_id: int | None, user: StaffUser,
                now: datetime) -> TextModule | None:
    """What the module sets on the ticket, once its reply is sent; None if it sets nothing."""
    if module_id is None:
        return None
    module = session.get(TextModule, module_id)
    if module is None:
        raise ActionError(N_("定型文が見つかりません（削除された可能性があります）"))
    if module.set_status:
        actions.set_status(ticket, module.set_status, now, by=user)
    if module.set_assignee == "me":
        actions.assign(session, ticket, str(user.id), by=user, now=now)
    elif module.set_assignee == "none":
        actions.assign(session, ticket, "", by=user, now=now)
    return module
