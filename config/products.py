"""Products: one desk, several vendors' products, each with its own terms.

A product has its own business calendar, first-response policy, licence-key
rule, acknowledgement voice and FAX form, and the mailboxes (sources and
addresses) that belong to it. A contract names its product (its ``product``,
the CSV column); a ticket gets that product's terms, and the contract's own
``sla_override`` wins over them. Mail with no contract takes the product of
the source or address it came to, else the default product.

Without any ``[[products]]`` the desk has one product made of the top-level
``[calendar]``, ``[sla]``, ``[license_key]``, ``[acknowledgement]`` and
``[fax_form]``: a one-product desk configures nothing new. Each key a
product does not give comes from its ``preset`` (the vendor's published
terms), else from those top-level sections.

TOML::

    [[products]]
    preset = "chatluck"                  # name, hours, rules from ChatLuck's terms
    default = true                       # mail that names no contract, no mailbox of another
    sources = ["chatluck-mail", "chatluck-fax"]   # or product = "ChatLuck" on each [[sources]]
    addresses = ["cltech@chatluck.com"]
    [products.acknowledgement]
    from_name = "ChatLuck サポート"
    [products.fax_form]
    fax_number = "045-000-0000"
    [products.smtp]                      # mail from its address goes through its own server
    host = "smtp.office365.com"
    port = 587

    [[products]]
    preset = "agcrm"
    aliases = ["AGCRM", "オールギャザー"]
    due_soon_minutes = 240               # the desk marks 期限間近 this long before (default:
                                         # [web] due_soon_minutes)
    [products.calendar]                  # the preset's hours with these closures
    closures = ["12-29..01-03", "2026-08-13..2026-08-16"]
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from madoguchi.config.business import CalendarSettings, CutoffSettings, SlaSettings
from madoguchi.config.mail import SmtpSettings, TemplateFile

PLAN_NAMES = ("certificate", "annual", "cloud_trial", "cloud_monthly", "cloud_yearly")
PlanName = Literal["certificate", "annual", "cloud_trial", "cloud_monthly", "cloud_yearly"]
OutOfScope = Literal["none", "notice"]


class LicenseKeySettings(CutoffSettings):
    """The licence-key rule, and how a licence-key request is recognised.

    ChatLuck サポートサービス約款 2(3): "当社営業日17時までの申請受理分につきましては
    その当日中に、また当社営業日17時以降および当社休業日の申請受理分につきましては、
    翌営業日に送付いたします。" A request is one whose subject or body holds one of
    ``keywords``, or a form line ``label: value`` (a web or FAX form) whose label
    is one of ``form_labels`` and whose value holds one of ``form_values``.
    Compared after NFKC, ignoring case and spaces.
    """

    model_config = ConfigDict(extra="forbid")

    cutoff: str = "17:00"
    keywords: list[str] = Field(default_factory=lambda: [
        "ライセンスキー申請", "ライセンスキーの申請", "ライセンスキー再発行",
        "ライセンスキーの再発行", "ライセンスキーの発行", "ライセンスキー発行",
        "ライセンスキーを発行", "ライセンスキーを再発行",
        "license key request", "license key reissue",
    ])
    form_labels: list[str] = Field(default_factory=lambda: [
        "お問合せ種別", "お問い合わせ種別", "問合せ種別", "ご依頼内容", "種別",
    ])
    form_values: list[str] = Field(default_factory=lambda: ["ライセンスキー", "license key"])


class FaxFormSettings(BaseModel):
    """What the FAX request form prints: whom it is for, and the FAX number to send it to.

    The hours it prints are the product's calendar's.
    """

    model_config = ConfigDict(extra="forbid")

    vendor_name: str = Field("サポートセンター", min_length=1, max_length=80)
    fax_number: str = Field("", max_length=40)


class ProductAckSettings(BaseModel):
    """A product's acknowledgement voice; a key not given is the desk's ``[acknowledgement]``."""

    model_config = ConfigDict(extra="forbid")

    from_name: str | None = Field(None, min_length=1)
    from_address: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    subject_label: str | None = Field(None, min_length=1)
    template: TemplateFile | None = None
    out_of_scope: OutOfScope | None = None
    notice_template: TemplateFile | None = None

    @field_validator("from_name", "subject_label")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("must be a single line")
        return value


class ProductFaxForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor_name: str | None = Field(None, min_length=1, max_length=80)
    fax_number: str | None = Field(None, max_length=40)


@dataclass(frozen=True)
class ProductPreset:
    """What a vendor's terms publish about its product."""

    name: str
    calendar: str  # a key of config.business.PRESETS
    policy: str  # the first-response policy of inquiries in general
    plans: tuple[str, ...]
    vendor_name: str
    addresses: tuple[str, ...]


PRODUCT_PRESETS: dict[str, ProductPreset] = {
    # ChatLuck サポートサービス約款: 受付時間 午前9:00~12:00 および 午後1:00~5:30; the
    # period "当社ご注文受付日の翌日から1年間"; 電子メール cltech@chatluck.com.
    "chatluck": ProductPreset(
        name="ChatLuck", calendar="chatluck", policy="next_business_hours",
        plans=("certificate", "annual"), vendor_name="ChatLuck サポート窓口",
        addresses=("cltech@chatluck.com",),
    ),
    # All Gather CRM ご利用ガイド: 9：30～12：00、13：00～17：30; "弊社営業時間外にメールを
    # 頂いた場合、原則として翌営業時間内の一次対応"; trial, monthly and yearly plans.
    "agcrm": ProductPreset(
        name="All Gather CRM", calendar="agcrm", policy="next_business_hours",
        plans=("certificate", "cloud_trial", "cloud_monthly", "cloud_yearly"),
        vendor_name="All Gather CRM サポート窓口", addresses=(),
    ),
}


def product_key(name: str) -> str:
    """A product's name as compared: NFKC, case and spaces ignored."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


class ProductSettings(BaseModel):
    """One product the desk serves (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    # As contracts name it (the CSV column ``product``); default: the preset's.
    name: str = Field("", max_length=200)
    preset: Literal["chatluck", "agcrm"] | None = None
    aliases: list[str] = []  # other names contracts may give it
    default: bool = False
    # The plans its contracts may have; default: the preset's, else all.
    plans: list[PlanName] | None = None
    # Sources (by name) and desk addresses (To/Cc) whose mail is this product's.
    sources: list[str] = []
    addresses: list[str] = []
    calendar: CalendarSettings | None = None
    sla: SlaSettings | None = None
    # After the first response (config/conversation.py); not given: [conversation]'s.
    next_response: SlaSettings | None = None
    auto_close_business_days: int | None = Field(None, ge=0, le=365)
    license_key: LicenseKeySettings | None = None
    acknowledgement: ProductAckSettings = ProductAckSettings()
    fax_form: ProductFaxForm = ProductFaxForm()
    # How long before its first-response due the desk marks a ticket 期限間近;
    # None: [web] due_soon_minutes.
    due_soon_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    # Its own submission server for mail from its address (acknowledgement.from_address);
    # none: the desk's [smtp].
    smtp: SmtpSettings | None = None

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.name:
            if self.preset is None:
                raise ValueError("give the product a name (or a preset)")
            self.name = PRODUCT_PRESETS[self.preset].name
        self.addresses = [a.strip().lower() for a in self.addresses]
        if self.smtp is not None and not self.acknowledgement.from_address:
            raise ValueError("smtp: set acknowledgement.from_address too (the address "
                             "whose mail goes through it)")
        return self

    @property
    def keys(self) -> list[str]:
        """Its name and aliases as compared."""
        return [product_key(n) for n in (self.name, *self.aliases)]

    def effective_calendar(self, desk: CalendarSettings) -> CalendarSettings:
        """Its calendar: its own section, else the desk's; hours from its preset unless given."""
        own = self.calendar
        base = own if own is not None else desk
        if self.preset is None or (own is not None and (own.hours or own.preset)):
            return base
        preset = PRODUCT_PRESETS[self.preset].calendar
        return base.model_copy(update={"hours": None, "preset": preset})

    def effective_sla(self, desk: SlaSettings) -> SlaSettings:
        if self.sla is not None:
            return self.sla
        if self.preset is not None:
            return desk.model_copy(update={"policy": PRODUCT_PRESETS[self.preset].policy})
        return desk

    def effective_plans(self) -> tuple[str, ...]:
        if self.plans is not None:
            return tuple(self.plans)
        if self.preset is not None:
            return PRODUCT_PRESETS[self.preset].plans
        return PLAN_NAMES

    def effective_addresses(self) -> tuple[str, ...]:
        preset = PRODUCT_PRESETS[self.preset].addresses if self.preset else ()
        return tuple(dict.fromkeys((*self.addresses, *preset)))

    def effective_fax_form(self, desk: FaxFormSettings) -> FaxFormSettings:
        vendor = self.fax_form.vendor_name or (
            PRODUCT_PRESETS[self.preset].vendor_name if self.preset else desk.vendor_name
        )
        number = self.fax_form.fax_number if self.fax_form.fax_number is not None else (
            desk.fax_number
        )
        return FaxFormSettings(vendor_name=vendor, fax_number=number)


def resolve_source_products(products: list[ProductSettings],
                            sources: list[tuple[str, str | None]]) -> None:
    """Fold each source's ``product = "NAME"`` into that product's ``sources``; ValueError if
    the name is no product's (name or alias, compared as ``product_key``).

    The one place a source's own ``product`` is read: after it, a product's
    ``sources`` lists its mailboxes whichever way they were named, and the
    lookup by source (``ticketing.products.Products.for_mail``) sees both.
    """
    by_key = {key: p for p in products for key in p.keys}
    for name, wanted in sources:
        if wanted is None:
            continue
        product = by_key.get(product_key(wanted))
        if product is None:
            known = ", ".join(repr(p.name) for p in products) or "none: add [[products]]"
            raise ValueError(f"sources.{name}: product {wanted!r} is not a product's name "
                             f"or alias (products: {known})")
        if name not in product.sources:
            product.sources.append(name)


def check_products(products: list[ProductSettings], source_names: set[str]) -> None:
    """Names and aliases unique, at most one default, sources that exist; ValueError if not."""
    seen: dict[str, str] = {}
    for product in products:
        for key in product.keys:
            if key in seen:
                raise ValueError(f"products: {product.name!r} and {seen[key]!r} share a name")
            seen[key] = product.name
        unknown = [s for s in product.sources if s not in source_names]
        if unknown:
            raise ValueError(f"products.{product.name}: no source named {unknown[0]!r}")
    defaults = [p.name for p in products if p.default]
    if len(defaults) > 1:
        raise ValueError(f"products: only one may be the default, not {', '.join(defaults)}")
    owners: dict[str, str] = {}
    for product in products:
        for where in (*product.sources, *product.effective_addresses()):
            if where in owners and owners[where] != product.name:
                raise ValueError(f"products: {where!r} belongs to both {owners[where]!r} "
                                 f"and {product.name!r}")
            owners[where] = product.name
