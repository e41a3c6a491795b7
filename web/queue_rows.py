"""The queue's rows, drawn by Python rather than by the template.

A queue page is fifty rows of ten cells, some twenty values and eight calls a
row: drawn by Jinja each call and attribute goes through the template's
runtime, which was a third of the page's CPU (13 of 37 ms at 1 M tickets,
bench/web.py). ``queue.html`` calls ``queue_rows`` once for the ``<tbody>``;
the cells are the ones the template drew, every value escaped, every text
from the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from madoguchi.web.i18n import gettext as _

_LEFT_SHOWN = ("ok", "soon", "overdue")  # the states whose due time shows what is left


def queue_rows(
    tickets: Iterable[Any], *, now: datetime, sla: Callable[[Any], str], user_id: int,
    watching: Mapping[int, list[str]], moment: Callable[[datetime | None], str],
    left: Callable[[datetime | None, datetime], str], number: Callable[[str | None], str],
    sla_badge: Callable[[str], Markup], priority_badge: Callable[[str | None], Markup],
    channel_badge: Callable[[str], Markup], flag_badges: Callable[[Iterable[str]], Markup],
    conversation_badge: Callable[[Any, datetime], Markup],
) -> Markup:
    """The ``<tr>`` of each ticket (the template's globals and filters passed in)."""
    # The labels once a page, not once a row.
    l_due, l_customer, l_number, l_channel, l_flags, l_assignee, l_state = (
        escape(_(text)) for text in ("回答期限", "顧客", "サポート番号", "チャネル", "フラグ",
                                     "担当", "状態"))
    mine, viewing, comma = escape(_("自分に割り当て")), escape(_("表示中:")), _("、")
    untitled = _("（件名なし）")
    rows = []
    for i, t in enumerate(tickets):
        state = sla(t)
        n = escape(t.number)
        due = t.response_due
        shown_left = (f' <span class="left left-{state}">{escape(left(due, now))}</span>'
                      if state in _LEFT_SHOWN else "")
        viewers = watching.get(t.id)
        viewed = (f' <span class="badge watching">{viewing} {escape(comma.join(viewers))}</span>'
                  if viewers else "")
        first = ' id="first-ticket"' if i == 0 else ""
        take = (f' <button type="submit" form="bulk" name="only" value="{n}" class="small">'
                f'{mine}</button>'
                if t.assignee_id != user_id and t.status.value != "closed"
                and not t.merged_into_id else "")
        company = escape(t.customer.company) if t.customer else "—"
        assignee = escape(t.assignee.name) if t.assignee else "—"
        pick = escape(_("%(number)s を選択") % {"number": t.number})
        rows.append(
            f'    <tr class="sla-{state}" data-row>\n'
            f'      <td class="pick"><input type="checkbox" name="ticket" value="{n}" form="bulk"'
            f' aria-label="{pick}"></td>\n'
            f'      <td class="due" data-label="{l_due}">{escape(moment(due))}{shown_left}<br>'
            f'{sla_badge(state)}</td>\n'
            f'      <td class="number"><a href="/tickets/{n}"{first}>{n}</a></td>\n'
            f'      <td class="subject">{priority_badge(t.priority)}<a href="/tickets/{n}"'
            f' tabindex="-1">{escape(t.subject or untitled)}</a>{viewed}</td>\n'
            f'      <td class="company" data-label="{l_customer}">{company}</td>\n'
            f'      <td class="mono" data-label="{l_number}">{escape(number(t.support_number))}'
            f'</td>\n'
            f'      <td data-label="{l_channel}">{channel_badge(t.channel.value)}</td>\n'
            f'      <td class="flags" data-label="{l_flags}">{flag_badges(t.flag_names)}</td>\n'
            f'      <td class="assignee" data-label="{l_assignee}">{assignee}{take}</td>\n'
            f'      <td data-label="{l_state}">{conversation_badge(t, now)}</td>\n'
            f'    </tr>\n')
    return Markup("".join(rows))
