"""Contracts as the desk edits them: their plan, details and periods; renewal; the history.

One reading of a contract's fields, for the CSV import and the web desk alike
(``read_details``: text in, checked values out, every problem a
``TermsError`` worded in English for the command line and in Japanese for
the web desk). ``apply_details`` writes them: the periods the plan gives,
merged into the stored history so that nothing earlier is lost
(``rules.periods.merge_periods``). ``renew`` adds the next period;
``describe`` lists the history, the automatic renewals of a cloud plan
included, as ``madoguchi contracts show`` and the web desk show it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from madoguchi.ticketing.models import Contract, ContractPeriod
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.rules.periods import (
    AUTO_RENEWING,
    PLAN_START,
    Period,
    PeriodKind,
    Plan,
    PlanError,
    PlanTerms,
    merge_periods,
    next_period,
    plan_periods,
    standing_on,
    timeline,
)
from madoguchi.ticketing.sla import FirstResponsePolicy

DATE_FIELDS = ("ordered_on", "purchased_on", "notified_on", "cancelled_on", "period_start",
               "period_end")
TEXT_FIELDS = {"contract_code": 100, "department": 200, "address": 400, "environment": 4000,
               "server_os": 200, "web_server": 200, "version": 200, "product": 200}
LABELS = {
    "product": N_("製品"), "plan": N_("プラン"), "ordered_on": N_("注文受付日"),
    "purchased_on": N_("初回ライセンス購入日"), "notified_on": N_("ご利用開始の通知日"),
    "cancelled_on": N_("解約日"), "period_start": N_("サポート開始日"),
    "period_end": N_("サポート終了日"), "contract_code": N_("契約コード"),
    "department": N_("部署"), "address": N_("住所"), "environment": N_("環境"),
    "server_os": N_("サーバーOS"), "web_server": N_("Webサーバー"),
    "version": N_("バージョン"), "users": N_("登録ユーザー数"),
    "sla_override": N_("契約の対応条件"),
}
_MESSAGES: dict[str, tuple[str, str]] = {
    # code: (English for the command line, str.format; Japanese for the desk, %-style and
    # marked for the web desk's catalogue); field, label and the error's own values fill them.
    "bad_date": ("{field} {value!r} is not a date (YYYY-MM-DD)",
                 N_("%(label)sは YYYY-MM-DD の形で入力してください")),
    "half_period": ("give both period_start and period_end, or neither",
                    N_("サポート開始日と終了日は両方入力するか、両方空にしてください")),
    "end_before_start": ("period_end {end} is before period_start {start}",
                         N_("サポート終了日は開始日より後にしてください")),
    "unknown_plan": ("plan {value!r} is not one of {known}",
                     N_("プラン「%(value)s」は %(known)s のいずれかにしてください")),
    "needs": ("plan {plan} needs {field} (or period_start and period_end)",
              N_("プラン %(plan)s には%(label)s（または証書のサポート開始日・終了日）が必要です")),
    "certificate_needs": ("plan certificate needs period_start and period_end",
                          N_("証書の期間（サポート開始日・終了日）を入力してください")),
    "not_used": ("{field} is not used by plan {plan}",
                 N_("%(label)sはプラン %(plan)s では使いません")),
    "cancel_before": ("cancelled_on is before the notice",
                      N_("解約日は通知日より後にしてください")),
    "bad_users": ("users {value!r} is not a whole number",
                  N_("登録ユーザー数は0以上の整数にしてください")),
    "bad_override": ("sla_override: {detail}",
                     N_("契約の対応条件（JSON）が正しくありません: %(detail)s")),
    "unknown_product": ("product {value!r} is not configured (known: {known})",
                        N_("製品「%(value)s」は設定されていません（%(known)s）")),
    "plan_not_offered": ("plan {plan} is not offered for {value}",
                         N_("製品 %(value)s にはプラン %(plan)s はありません")),
    "too_long": ("{field} is longer than {limit} characters",
                 N_("%(label)sは%(limit)s文字以内にしてください")),
    "auto_renewing": ("plan {plan} renews by itself each period until cancelled_on",
                      N_("プラン %(plan)s は解約日まで自動で更新されます")),
    "trial_not_renewed": ("a cloud_trial is not renewed: import the paid plan instead",
                          N_("無料トライアルは更新できません。有償プランを登録してください")),
    "cancelled": ("cancelled on {value}: no period after it",
                  N_("%(value)s に解約されているため、次の期間はありません")),
    "no_period": ("the contract has no period to renew from",
                  N_("更新元のサポート期間がありません")),
    "last_period": ("a contract keeps at least one period",
                    N_("最後のサポート期間は削除できません")),
}


class TermsError(ValueError):
    """A contract's field that will not do; ``english`` and ``japanese`` say why."""

    def __init__(self, code: str, field: str = "", **params: object) -> None:
        self.code, self.field, self.params = code, field, params
        super().__init__(self.english)

    @property
    def values(self) -> dict[str, object]:
        return {"field": self.field, "label": LABELS.get(self.field, self.field), **self.params}

    @property
    def message(self) -> str:
        """The Japanese message before its values (``%(label)s``…), for translating."""
        return _MESSAGES[self.code][1]

    @property
    def english(self) -> str:
        return _MESSAGES[self.code][0].format(**self.values)

    @property
    def japanese(self) -> str:
        return self.message % self.values


@dataclass(frozen=True)
class ContractDetails:
    """A contract's fields, checked: what a CSV row or the web form says of the contract."""

    product: str = ""
    plan: Plan = Plan.CERTIFICATE
    ordered_on: date | None = None
    purchased_on: date | None = None
    notified_on: date | None = None
    cancelled_on: date | None = None
    period_start: date | None = None  # the certificate's dates, when given
    period_end: date | None = None
    contract_code: str = ""
    department: str = ""
    address: str = ""
    environment: str = ""
    server_os: str = ""
    web_server: str = ""
    version: str = ""
    users: int | None = None
    sla_override: dict[str, Any] | None = None

    @property
    def terms(self) -> PlanTerms:
        return PlanTerms(self.plan, self.ordered_on, self.purchased_on, self.notified_on,
                         self.cancelled_on)

    @property
    def certificate(self) -> Period | None:
        if self.period_start is None or self.period_end is None:
            return None
        return Period(PeriodKind.CERTIFICATE, self.period_start, self.period_end)

    def periods(self) -> tuple[Period, ...]:
        """The periods these fields give (the certificate's dates winning)."""
        return plan_periods(self.terms, self.certificate)


def _date(values: Mapping[str, str], name: str) -> date | None:
    text = values.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise TermsError("bad_date", name, value=text) from None


def _override(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TermsError("bad_override", "sla_override", detail=f"not JSON ({exc.msg})") from None
    try:
        FirstResponsePolicy.from_override(value, FirstResponsePolicy())
    except ValueError as exc:
        raise TermsError("bad_override", "sla_override", detail=str(exc)) from None
    return value if value else None


def _users(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise TermsError("bad_users", "users", value=text)
    return int(text)


def _plan(text: str) -> Plan:
    try:
        return Plan(text.strip() or Plan.CERTIFICATE.value)
    except ValueError:
        raise TermsError("unknown_plan", "plan", value=text.strip(),
                         known=", ".join(p.value for p in Plan)) from None


def _product(text: str, plan: Plan, products: Products | None) -> str:
    if products is None or not products.all or not text:
        return text
    product = products.named(text)
    if product is None:
        raise TermsError("unknown_product", "product", value=text, known=", ".join(products.names))
    if plan.value not in product.plans:
        raise TermsError("plan_not_offered", "plan", value=product.name, plan=plan.value)
    return product.name


def read_details(values: Mapping[str, str], products: Products | None = None) -> ContractDetails:
    """Check a contract's fields given as text (missing keys: empty); TermsError if one is bad.

    With ``products`` configured, the product must be one of them (its name or
    an alias; stored by its name) and offer the plan.
    """
    text = {k: " ".join(values.get(k, "").split()) for k in TEXT_FIELDS}
    text["environment"] = values.get("environment", "").strip()
    for name, limit in TEXT_FIELDS.items():
        if len(text[name]) > limit:
            raise TermsError("too_long", name, limit=limit)
    plan = _plan(values.get("plan", ""))
    dates = {name: _date(values, name) for name in DATE_FIELDS}
    start, end = dates.pop("period_start"), dates.pop("period_end")
    if (start is None) != (end is None):
        raise TermsError("half_period", "period_start")
    if start is not None and end is not None and end < start:
        raise TermsError("end_before_start", "period_end", start=start, end=end)
    details = ContractDetails(
        product=_product(text["product"], plan, products), plan=plan,
        ordered_on=dates["ordered_on"], purchased_on=dates["purchased_on"],
        notified_on=dates["notified_on"], cancelled_on=dates["cancelled_on"],
        period_start=start, period_end=end, contract_code=text["contract_code"],
        department=text["department"], address=text["address"],
        environment=text["environment"], server_os=text["server_os"],
        web_server=text["web_server"], version=text["version"],
        users=_users(values.get("users", "")),
        sla_override=_override(values.get("sla_override", "")),
    )
    if start is None:
        if plan is Plan.CERTIFICATE:
            raise TermsError("certificate_needs", "period_start")
        needed = PLAN_START[plan]
        if getattr(details, needed) is None:
            raise TermsError("needs", needed, plan=plan.value)
    try:
        details.periods()
    except PlanError as exc:
        raise TermsError(exc.code, exc.field, plan=plan.value) from None
    return details


def _span(contract: Contract) -> None:
    if contract.periods:
        contract.period_start = min(p.starts_on for p in contract.periods)
        contract.period_end = max(p.ends_on for p in contract.periods)


def _row(period: Period, origin: str, now: datetime) -> ContractPeriod:
    return ContractPeriod(kind=period.kind, starts_on=period.starts_on, ends_on=period.ends_on,
                          support_from=period.support_from, origin=origin, created_at=now)


# The contract's own columns a ContractDetails sets (the certificate's dates go to periods).
DETAIL_FIELDS = ("product", "plan", "ordered_on", "purchased_on", "notified_on", "cancelled_on",
                 "contract_code", "department", "address", "environment", "server_os",
                 "web_server", "version", "users", "sla_override")


def apply_details(contract: Contract, details: ContractDetails, *, origin: str, now: datetime,
                  given: Collection[str] | None = None) -> int:
    """Write ``details`` on the contract and merge the periods they give into its history.

    ``given``: the fields that were given (a CSV file's columns); the others
    keep the contract's values. Returns how many periods were added or
    corrected; none is ever removed.
    """
    for name in DETAIL_FIELDS:
        if given is None or name in given:
            setattr(contract, name, getattr(details, name))
    stored = list(contract.periods)
    changes = merge_periods([p.as_period() for p in stored], details.periods())
    for index, period in changes:
        if index is None:
            contract.periods.append(_row(period, origin, now))
            continue
        row = stored[index]
        row.kind, row.ends_on, row.support_from = period.kind, period.ends_on, period.support_from
    contract.periods.sort(key=lambda p: p.starts_on)
    _span(contract)
    return len(changes)


def renew(contract: Contract, *, now: datetime, origin: str = "renewal") -> ContractPeriod:
    """Add the period after the contract's last one (a year; a cloud plan renews by itself)."""
    terms = contract.terms
    if terms.plan in AUTO_RENEWING:
        raise TermsError("auto_renewing", "plan", plan=terms.plan.value)
    if not contract.periods:
        raise TermsError("no_period")
    last = max(contract.periods, key=lambda p: p.ends_on)
    try:
        period = next_period(terms, last.as_period())
    except PlanError as exc:
        raise TermsError(exc.code, exc.field, value=terms.cancelled_on) from None
    row = _row(period, origin, now)
    contract.periods.append(row)
    contract.periods.sort(key=lambda p: p.starts_on)
    _span(contract)
    return row


def remove_period(contract: Contract, period_id: int) -> ContractPeriod | None:
    """Take one period out of the history (staff correcting a mistake); None if not there."""
    row = next((p for p in contract.periods if p.id == period_id), None)
    if row is None:
        return None
    if len(contract.periods) == 1:
        raise TermsError("last_period")
    contract.periods.remove(row)
    _span(contract)
    return row


def describe(contract: Contract, today: date,
             display: Callable[[str], str] = str) -> dict[str, Any]:
    """The contract and its periods, the automatic renewals through ``today`` included."""
    terms, stored = contract.terms, contract.stored_periods
    standing, current = standing_on(today, stored, terms)
    counted = set(timeline(stored, terms, today))
    rows: list[dict[str, Any]] = [
        {**_period_record(p.as_period(), p.origin, today, counts=p.as_period() in counted),
         "id": p.id}
        for p in contract.periods
    ]
    rows += [{**_period_record(p, "automatic", today), "id": None}
             for p in timeline(stored, terms, today) if p.auto]
    rows.sort(key=lambda r: str(r["starts_on"]))
    return {
        "support_number": display(contract.support_number),
        "company": contract.customer.company,
        "product": contract.product,
        "plan": contract.plan.value,
        **{name: _iso(getattr(contract, name))
           for name in ("ordered_on", "purchased_on", "notified_on", "cancelled_on")},
        **{name: getattr(contract, name)
           for name in ("contract_code", "department", "address", "environment", "server_os",
                        "web_server", "version", "users", "sla_override")},
        "standing": standing.value,
        "current_period": _period_record(current, "", today) if current else None,
        "periods": rows,
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _period_record(period: Period, origin: str, today: date, *,
                   counts: bool = True) -> dict[str, Any]:
    return {
        "kind": period.kind.value,
        "starts_on": period.starts_on.isoformat(),
        "ends_on": period.ends_on.isoformat(),
        "support_from": _iso(period.support_from),
        "origin": origin,
        "counts": counts,  # False: it starts after the cancellation
        "covers_today": counts and period.covers(today),
    }


def render_contract(record: dict[str, Any], day: date) -> str:
    """``describe``'s record as ``madoguchi contracts show`` prints it."""
    dates = ", ".join(f"{k} {record[k]}" for k in ("ordered_on", "purchased_on", "notified_on",
                                                    "cancelled_on") if record[k])
    lines = [
        f"{record['support_number']}  {record['company']}  {record['product'] or '-'}  "
        f"plan {record['plan']}" + (f" ({dates})" if dates else ""),
        f"on {day}: {record['standing']}",
    ]
    for p in record["periods"]:
        support = f"support from {p['support_from']}" if p["support_from"] else ""
        note = "now" if p["covers_today"] else ("cancelled" if not p["counts"] else "")
        lines.append(f"  {p['kind']:<12} {p['starts_on']} – {p['ends_on']}  {support:<25} "
                     f"{p['origin']:<10} {note}".rstrip())
    return "\n".join(lines)
