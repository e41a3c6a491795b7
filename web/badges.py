"""The small labelled badges of the desk's pages (status, channel, flags, deadline, state).

Functions, not Jinja macros: a queue page draws some 300 of them, and a macro
call costs a new template context each time (half of the queue's rendering).
Each returns escaped ``Markup``; the labels come from ``web.templating``'s
tables, translated at the call like any other text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from madoguchi.web.i18n import N_
from madoguchi.web.i18n import gettext as _

# The deadline badge's text by state (web.templating.sla_state); "ok"/"none" show none.
_SLA = {"overdue": N_("期限超過"), "soon": N_("期限間近"), "responded": N_("一次回答済")}


def _span(cls: str, label: str, extra: str = "") -> Markup:
    return Markup(f'<span class="{escape(cls)}"{extra}>{escape(label)}</span>')


def sla_badge(state: str) -> Markup:
    if state not in _SLA:
        return Markup("")
    return _span(f"badge sla {state}", _(_SLA[state]))


def status_badge(value: str, labels: Mapping[str, str]) -> Markup:
    return _span(f"badge status status-{value}", labels.get(value, value))


def channel_badge(value: str, labels: Mapping[str, str]) -> Markup:
    return _span(f"channel channel-{value}", labels.get(value, value))


def priority_badge(value: str | None, labels: Mapping[str, str]) -> Markup:
    if not value or value == "normal":
        return Markup("")
    return _span(f"badge priority priority-{value}", labels.get(value, value))


def flag_badges(names: Iterable[str], labels: Mapping[str, str]) -> Markup:
    return Markup("").join(
        _span(f"badge flag flag-{name}", labels.get(name, name), f' data-flag="{escape(name)}"')
        for name in names)


def conversation_badge(ticket: Any, now: datetime, labels: Mapping[str, str],
                       waited: Callable[[datetime | None, datetime], str],
                       moment: Callable[[datetime | None], str]) -> Markup:
    """The conversation's state in a queue row: whose turn, and how long the customer
    has waited (``waited`` and ``moment`` are the templates' filters of those names)."""
    state = ticket.state.value
    if state == "customer_replied":
        return Markup('{} <small class="waited">{}</small>').format(
            _span("badge state state-customer_replied", _("お客様から返信あり")),
            _("%(time)s待ち") % {"time": waited(ticket.customer_replied_at, now)})
    badge = _span(f"badge state state-{state}", labels.get(state, state))
    if state == "pending" and ticket.pending_until:
        badge += Markup(' <small class="waited">{} {}</small>').format(
            _("再通知"), moment(ticket.pending_until))
    return badge
