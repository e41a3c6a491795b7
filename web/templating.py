"""The Jinja2 environment of the web desk: autoescaped HTML, translated labels and times.

Templates are written in Japanese and mark their text with ``_()`` (Jinja's
``i18n`` extension, new-style gettext): ``web.i18n`` answers in the request's
language. The label tables below hold ``N_``-marked Japanese and are wrapped
in ``Labels``, which translates each value when a template reads it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_datetime

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr.preview import PREVIEW_TYPES
from madoguchi.ticketing.conversation import STATE_LABELS
from madoguchi.ticketing.delivery import STATE_LABELS as DELIVERY_STATE_LABELS
from madoguchi.ticketing.history import Entry
from madoguchi.ticketing.history_line import Line
from madoguchi.ticketing.rules.conversation import CHOOSABLE
from madoguchi.ticketing.support_number import format_number
from madoguchi.ticketing.ticket_fields import PRIORITIES
from madoguchi.web import badges, i18n
from madoguchi.web.i18n import N_, Labels
from madoguchi.web.i18n import gettext as _
from madoguchi.web.problems import problem_ja
from madoguchi.web.queue_rows import queue_rows
from madoguchi.web.timeleft import time_left

TEMPLATES = Path(__file__).resolve().parent / "templates"
_WEEKDAYS = "月火水木金土日"

STATUS_LABELS = {"open": N_("対応中"), "pending": N_("保留"), "closed": N_("完了"),
                 **{s.value: label for s, label in STATE_LABELS.items() if s.value not in
                    ("open", "pending", "closed")}}
CHANNEL_LABELS = {"email": N_("メール"), "fax": "FAX", "phone": N_("電話"), "note": N_("メモ")}
# What a ticket can have come by (the queue's filter): a note is a message, never a ticket.
TICKET_CHANNEL_LABELS = {k: v for k, v in CHANNEL_LABELS.items() if k != "note"}
FLAG_LABELS = {
    "unregistered_sender": N_("未登録の送信者"),
    "contract_expired": N_("契約期間外"),
    "unknown_support_number": N_("不明なサポート番号"),
    "unreadable_fax": N_("番号読取不可"),
    "contract_not_started": N_("契約開始前"),
    "unverified_sender": N_("送信者未確認"),
    "urgent": N_("至急"),
    "undelivered": N_("未達の送信あり"),
}
PLAN_LABELS = {
    "certificate": N_("証書の期間"), "annual": N_("年間（注文受付日の翌日から1年）"),
    "cloud_trial": N_("無料トライアル（30日間）"), "cloud_monthly": N_("月額（自動更新）"),
    "cloud_yearly": N_("年額（自動更新）"),
}
PERIOD_LABELS = {
    "certificate": N_("証書"), "annual": N_("年度"), "trial": N_("無料トライアル"),
    "free": N_("無償期間"), "monthly": N_("月額"), "yearly": N_("年額"),
}
STANDING_LABELS = {"in_force": N_("期間内"), "not_started": N_("開始前"), "expired": N_("期間外")}
ORIGIN_LABELS = {"migration": N_("移行"), "import": N_("CSV取込"), "renewal": N_("更新"),
                 "desk": N_("画面で登録"), "automatic": N_("自動更新")}
DIRECTION_LABELS = {"in": N_("受信"), "out": N_("送信"), "note": N_("社内メモ")}
ROLE_LABELS = {"agent": N_("担当者"), "supervisor": N_("管理者")}
# Ticket fields shown under the export's names.
FIELD_LABELS = {
    "support_number": N_("サポート番号"),
    "support_number_written": N_("記載されたサポート番号"),
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
        return (_("%(d)s日%(h)s時間") % {"d": days, "h": hours} if hours
                else _("%(d)s日") % {"d": days})
    return (_("%(h)s時間%(m)s分") % {"h": hours, "m": mins} if hours
            else _("%(m)s分") % {"m": mins})


def is_fax_page(attachment: object) -> bool:
    """A page image the FAX reader stored (shown inline), not a customer's file."""
    return getattr(attachment, "content_type", "") == "image/png" and str(
        getattr(attachment, "filename", "")).startswith("fax-page-")


def _moment(value: datetime | None, tz: ZoneInfo, *, year: bool = True) -> str:
    if value is None:
        return "—"
    local = value.astimezone(tz)
    if i18n.current_locale() == "en":
        # "Wed 2 Dec 2026 18:22": Babel's names, never the process's C locale.
        pattern = "EEE d MMM y HH:mm" if year else "EEE d MMM HH:mm"
        return format_datetime(local, pattern, locale="en")
    day = f"{local.month}月{local.day}日({_WEEKDAYS[local.weekday()]}) {local:%H:%M}"
    return f"{local.year}年{day}" if year else day


def _said(line: Line, tz: ZoneInfo) -> str:
    """A sentence in the catalogue's words (``ticketing.history_line``) in the reader's
    language: its marked parts translated, its moments in the reader's format."""
    return line.text(i18n.gettext, partial(_moment, tz=tz, year=False))


def _history_text(entry: Entry, tz: ZoneInfo) -> str:
    """A history line in the reader's language; the stored Japanese text when that is the
    reader's language (or the line has no parts: an older line)."""
    if entry.line is None or i18n.current_locale() == i18n.SOURCE_LOCALE:
        return entry.what
    return _said(entry.line, tz)


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
        extensions=["jinja2.ext.i18n"],
        # Templates are read once: an include inside a loop (a queue row) does not stat
        # its file again for every row. A changed template shows after a restart.
        auto_reload=False,
    )
    # New-style gettext: _("…%(name)s", name=v) escapes v; the language is the request's.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext)
    env.filters["moment"] = partial(_moment, tz=tz)
    env.filters["short_moment"] = partial(_moment, tz=tz, year=False)
    env.filters["size"] = _size
    env.filters["history_text"] = partial(_history_text, tz=tz)
    env.filters["said"] = partial(_said, tz=tz)
    env.filters["waited"] = waited
    env.filters["time_left"] = time_left
    env.filters["problem_ja"] = problem_ja
    env.filters["support_number"] = lambda d: format_number(d, numbers) if d else "—"
    env.tests["fax_page"] = is_fax_page
    # One translating table each, read by the templates and by the badges alike.
    statuses, states = Labels(STATUS_LABELS), Labels({s.value: label
                                                      for s, label in STATE_LABELS.items()})
    channels, flags, priorities = Labels(CHANNEL_LABELS), Labels(FLAG_LABELS), Labels(PRIORITIES)
    drawn: dict[str, Any] = {
        "sla_badge": badges.sla_badge,
        "priority_badge": partial(badges.priority_badge, labels=priorities),
        "channel_badge": partial(badges.channel_badge, labels=channels),
        "flag_badges": partial(badges.flag_badges, labels=flags),
        "conversation_badge": partial(badges.conversation_badge, labels=states, waited=waited,
                                      moment=env.filters["short_moment"]),
    }
    env.globals.update(
        **drawn,
        status_badge=partial(badges.status_badge, labels=statuses),
        queue_rows=partial(queue_rows, moment=env.filters["short_moment"], left=time_left,
                           number=env.filters["support_number"], **drawn),
        STATUS_LABELS=statuses,
        STATE_LABELS=states,
        CHOOSABLE_STATES=[s.value for s in CHOOSABLE],
        CHANNEL_LABELS=channels,
        TICKET_CHANNEL_LABELS=Labels(TICKET_CHANNEL_LABELS),
        PREVIEW_TYPES=PREVIEW_TYPES,
        FLAG_LABELS=flags,
        DIRECTION_LABELS=Labels(DIRECTION_LABELS),
        ROLE_LABELS=Labels(ROLE_LABELS),
        FIELD_LABELS=Labels(FIELD_LABELS),
        PLAN_LABELS=Labels(PLAN_LABELS),
        PERIOD_LABELS=Labels(PERIOD_LABELS),
        STANDING_LABELS=Labels(STANDING_LABELS),
        ORIGIN_LABELS=Labels(ORIGIN_LABELS),
        PRIORITY_LABELS=priorities,
        DELIVERY_LABELS=Labels(DELIVERY_STATE_LABELS),
        current_locale=i18n.current_locale,
        LOCALES=i18n.LOCALES,
        LOCALE_NAMES=i18n.LOCALE_NAMES,
    )
    return env
