"""The Jinja2 environment of the web desk: autoescaped HTML, Japanese labels and times."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr.preview import PREVIEW_TYPES
from madoguchi.ticketing.conversation import STATE_LABELS
from madoguchi.ticketing.delivery import STATE_LABELS as DELIVERY_STATE_LABELS
from madoguchi.ticketing.rules.conversation import CHOOSABLE
from madoguchi.ticketing.support_number import format_number
from madoguchi.ticketing.ticket_fields import PRIORITIES
from madoguchi.web.problems import problem_ja
from madoguchi.web.timeleft import time_left

TEMPLATES = Path(__file__).resolve().parent / "templates"
_WEEKDAYS = "月火水木金土日"

STATUS_LABELS = {"open": "対応中", "pending": "保留", "closed": "完了",
                 **{s.value: label for s, label in STATE_LABELS.items() if s.value not in
                    ("open", "pending", "closed")}}
CHANNEL_LABELS = {"email": "メール", "fax": "FAX", "phone": "電話", "note": "メモ"}
# What a ticket can have come by (the queue's filter): a note is a message, never a ticket.
TICKET_CHANNEL_LABELS = {k: v for k, v in CHANNEL_LABELS.items() if k != "note"}
FLAG_LABELS = {
    "unregistered_sender": "未登録の送信者",
    "contract_expired": "契約期間外",
    "unknown_support_number": "不明なサポート番号",
    "unreadable_fax": "番号読取不可",
    "contract_not_started": "契約開始前",
    "unverified_sender": "送信者未確認",
    "urgent": "至急",
    "undelivered": "未達の送信あり",
}
PLAN_LABELS = {
    "certificate": "証書の期間", "annual": "年間（注文受付日の翌日から1年）",
    "cloud_trial": "無料トライアル（30日間）", "cloud_monthly": "月額（自動更新）",
    "cloud_yearly": "年額（自動更新）",
}
PERIOD_LABELS = {
    "certificate": "証書", "annual": "年度", "trial": "無料トライアル", "free": "無償期間",
    "monthly": "月額", "yearly": "年額",
}
STANDING_LABELS = {"in_force": "期間内", "not_started": "開始前", "expired": "期間外"}
ORIGIN_LABELS = {"migration": "移行", "import": "CSV取込", "renewal": "更新", "desk": "画面で登録",
                 "automatic": "自動更新"}
DIRECTION_LABELS = {"in": "受信", "out": "送信", "note": "社内メモ"}
ROLE_LABELS = {"agent": "担当者", "supervisor": "管理者"}
# Ticket fields shown under the export's names.
FIELD_LABELS = {
    "support_number": "サポート番号",
    "support_number_written": "記載されたサポート番号",
}


def sla_state(ticket: object, now: datetime, soon: timedelta) -> str:
    """"responded", "overdue", "soon", "ok" or "none", for the first response (or, once
    the customer replied to an answer, for the next response)."""
    replied = getattr(ticket, "state", None) == "customer_replied"
    if getattr(ticket, "first_responded_at", None) is not None and not replied:
        return "responded"
    due = getattr(ticket, "next_response_due" if replied else "first_response_due", None)
    if due is None or getattr(ticket, "status", None) == "closed":
        return "none"
    if due < now:
        return "overdue"
    if due < now + soon:
        return "soon"
    return "ok"


def waited(since: datetime | None, now: datetime) -> str:
    """How long the customer has waited, in the desk's words: "3時間12分", "2日4時間"."""
    if since is None:
        return "—"
    minutes = max(0, int((now - since).total_seconds() // 60))
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}日{hours}時間" if hours else f"{days}日"
    return f"{hours}時間{mins}分" if hours else f"{mins}分"


def is_fax_page(attachment: object) -> bool:
    """A page image the FAX reader stored (shown inline), not a customer's file."""
    return getattr(attachment, "content_type", "") == "image/png" and str(
        getattr(attachment, "filename", "")).startswith("fax-page-")


def _moment(value: datetime | None, tz: ZoneInfo, *, year: bool = True) -> str:
    if value is None:
        return "—"
    local = value.astimezone(tz)
    day = f"{local.month}月{local.day}日({_WEEKDAYS[local.weekday()]}) {local:%H:%M}"
    return f"{local.year}年{day}" if year else day


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def environment(tz: ZoneInfo, numbers: SupportNumberSettings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # Every value is escaped unless a template says otherwise (none does).
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["moment"] = partial(_moment, tz=tz)
    env.filters["short_moment"] = partial(_moment, tz=tz, year=False)
    env.filters["size"] = _size
    env.filters["waited"] = waited
    env.filters["time_left"] = time_left
    env.filters["problem_ja"] = problem_ja
    env.filters["support_number"] = lambda d: format_number(d, numbers) if d else "—"
    env.tests["fax_page"] = is_fax_page
    env.globals.update(
        STATUS_LABELS=STATUS_LABELS,
        STATE_LABELS={s.value: label for s, label in STATE_LABELS.items()},
        CHOOSABLE_STATES=[s.value for s in CHOOSABLE],
        CHANNEL_LABELS=CHANNEL_LABELS,
        TICKET_CHANNEL_LABELS=TICKET_CHANNEL_LABELS,
        PREVIEW_TYPES=PREVIEW_TYPES,
        FLAG_LABELS=FLAG_LABELS,
        DIRECTION_LABELS=DIRECTION_LABELS,
        ROLE_LABELS=ROLE_LABELS,
        FIELD_LABELS=FIELD_LABELS,
        PLAN_LABELS=PLAN_LABELS,
        PERIOD_LABELS=PERIOD_LABELS,
        STANDING_LABELS=STANDING_LABELS,
        ORIGIN_LABELS=ORIGIN_LABELS,
        PRIORITY_LABELS=PRIORITIES,
        DELIVERY_LABELS=DELIVERY_STATE_LABELS,
    )
    return env
