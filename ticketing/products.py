"""The products the desk serves, ready to use: each one's calendar, rules, voice and FAX form.

Built once from the settings (``config/products.py`` says what is
configured and what each key defaults to). A contract names its product by
name or alias; a message without a contract takes the product of the source
or address it came to; anything else, and any name not configured, is the
default product's. ``ticketing.deadlines`` asks it for a ticket's calendar
and policy; the acknowledgement for the voice; the FAX form for its details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from madoguchi.config import Settings
from madoguchi.config.business import CalendarSettings, SlaSettings
from madoguchi.config.mail import AckSettings
from madoguchi.config.products import (
    PLAN_NAMES,
    FaxFormSettings,
    LicenseKeySettings,
    ProductAckSettings,
    ProductSettings,
    product_key,
)
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.japanese import format_open_hours_ja
from madoguchi.ticketing.rules.inquiry import InquiryWords
from madoguchi.ticketing.sla import FirstResponsePolicy
from madoguchi.ticketing.vocabulary import InquiryKind

__all__ = ["AckVoice", "FaxFormDetails", "Product", "Products"]


@dataclass(frozen=True)
class AckVoice:
    """Who the product's acknowledgement comes from, and its wording."""

    from_name: str
    from_address: str
    subject_label: str
    template: Path | None
    out_of_scope: str  # "none" or "notice"
    notice_template: Path | None


@dataclass(frozen=True)
class FaxFormDetails:
    vendor_name: str
    fax_number: str
    # As printed, from the calendar:
    # "受付時間 平日 9:00〜12:00、13:00〜17:30（土日祝・年末年始を除く）"
    hours: str


@dataclass(frozen=True, eq=False)
class Product:
    """One product's terms. ``name`` is "" for the one product of a desk without products."""

    name: str
    calendar: BusinessCalendar
    policies: Mapping[InquiryKind, FirstResponsePolicy]
    words: InquiryWords
    voice: AckVoice | None = None  # None: the desk's [acknowledgement] as it is
    fax_form: FaxFormDetails | None = None
    plans: tuple[str, ...] = PLAN_NAMES
    sources: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()
    keys: frozenset[str] = field(default_factory=frozenset)
    # After the first response: the next response's policy, and the silence (business
    # days) that closes a solved ticket (0: never). None: the desk's [conversation].
    next_response: FirstResponsePolicy | None = None
    auto_close_days: int = 5
    # How long before the due time the desk marks 期限間近; None: the desk's [web] window.
    due_soon: timedelta | None = None

    def policy(self, kind: InquiryKind) -> FirstResponsePolicy:
        return self.policies.get(kind) or self.policies[InquiryKind.GENERAL]


def _voice(ack: AckSettings, desk_address: str, product: ProductSettings | None) -> AckVoice:
    """The product's own keys, else the desk's ``[acknowledgement]`` (and its address)."""
    own = product.acknowledgement if product is not None else ProductAckSettings()
    return AckVoice(
        from_name=own.from_name or ack.from_name,
        from_address=own.from_address or desk_address,
        subject_label=own.subject_label or ack.subject_label,
        template=own.template or ack.template,
        out_of_scope=own.out_of_scope or ack.out_of_scope,
        notice_template=own.notice_template or ack.notice_template,
    )


def _policies(sla: SlaSettings, license_key: LicenseKeySettings
              ) -> dict[InquiryKind, FirstResponsePolicy]:
    general = FirstResponsePolicy.from_settings(sla)
    return {
        InquiryKind.GENERAL: general,
        InquiryKind.LICENSE_KEY: replace(general, kind="next_business_day_close",
                                         cutoff=license_key.cutoff_time()),
    }


def _words(license_key: LicenseKeySettings) -> InquiryWords:
    return InquiryWords.of(license_key.keywords, license_key.form_labels,
                           license_key.form_values)


def _build(settings: Settings, calendar: CalendarSettings, sla: SlaSettings,
           license_key: LicenseKeySettings, fax_form: FaxFormSettings,
           product: ProductSettings | None) -> Product:
    business = BusinessCalendar.from_settings(calendar, settings.tz)
    return Product(
        name=product.name if product is not None else "",
        calendar=business,
        policies=_policies(sla, license_key),
        words=_words(license_key),
        voice=_voice(settings.acknowledgement, settings.desk_address, product),
        fax_form=FaxFormDetails(fax_form.vendor_name, fax_form.fax_number,
                                format_open_hours_ja(business.weekly_hours,
                                                     business.closed_days_ja())),
        plans=product.effective_plans() if product is not None else PLAN_NAMES,
        sources=frozenset(product.sources if product is not None else ()),
        addresses=frozenset(product.effective_addresses() if product is not None else ()),
        keys=frozenset(product.keys if product is not None else ()),
        next_response=FirstResponsePolicy.from_settings(
            product.next_response if product is not None and product.next_response
            else settings.conversation.next_response),
        auto_close_days=(product.auto_close_business_days if product is not None
                         and product.auto_close_business_days is not None
                         else settings.conversation.auto_close_business_days),
        due_soon=timedelta(minutes=product.due_soon_minutes)
        if product is not None and product.due_soon_minutes is not None else None,
    )


class Products:
    """The desk's products; ``default`` answers for everything no other claims."""

    def __init__(self, products: Sequence[Product], default: Product) -> None:
        self.all = tuple(products)
        self.default = default
        self._by_key = {key: p for p in self.all for key in p.keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> Products:
        configured = settings.products
        if not configured:
            single = _build(settings, settings.calendar, settings.sla, settings.license_key,
                            settings.fax_form, None)
            return cls((), single)
        built = [
            _build(settings, p.effective_calendar(settings.calendar),
                   p.effective_sla(settings.sla), p.license_key or settings.license_key,
                   p.effective_fax_form(settings.fax_form), p)
            for p in configured
        ]
        default = next((b for b, p in zip(built, configured, strict=True) if p.default),
                       built[0])
        return cls(built, default)

    @classmethod
    def single(cls, calendar: BusinessCalendar, policy: FirstResponsePolicy) -> Products:
        """One product of this calendar and policy (a desk built by hand, as tests do)."""
        license_key = LicenseKeySettings()
        policies = {
            InquiryKind.GENERAL: policy,
            InquiryKind.LICENSE_KEY: replace(policy, kind="next_business_day_close",
                                             cutoff=license_key.cutoff_time()),
        }
        return cls((), Product("", calendar, policies, _words(license_key)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.all)

    def named(self, name: str | None) -> Product | None:
        """The product of that name or alias; None when none is (or none is configured)."""
        if not name:
            return None
        return self._by_key.get(product_key(name))

    def get(self, name: str | None) -> Product:
        """The product of that name, else the default."""
        return self.named(name) or self.default

    def for_mail(self, source: str, addresses: Iterable[str]) -> Product:
        """The product whose source the message came from, else whose address it was sent to."""
        for product in self.all:
            if source in product.sources:
                return product
        wanted = {a.strip().lower() for a in addresses}
        for product in self.all:
            if product.addresses & wanted:
                return product
        return self.default

    def own_addresses(self) -> frozenset[str]:
        """The desk addresses its products send from (mail from them is the desk's own)."""
        return frozenset(p.voice.from_address.lower() for p in (*self.all, self.default)
                         if p.voice is not None)
