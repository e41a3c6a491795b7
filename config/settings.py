"""The desk's settings, validated at start-up.

Sources, strongest first: keyword arguments (tests), MADOGUCHI_* environment
variables, the TOML file given by ``--config`` (or MADOGUCHI_CONFIG), and the
defaults below, which the shipped ``config/madoguchi.toml`` documents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from madoguchi.config.business import CalendarSettings, SlaSettings
from madoguchi.config.conversation import ConversationSettings
from madoguchi.config.mail import AckSettings, SmtpSettings
from madoguchi.config.oauth import OAuthSettings
from madoguchi.config.outgoing import DkimSettings
from madoguchi.config.products import (
    FaxFormSettings,
    LicenseKeySettings,
    ProductSettings,
    check_products,
    resolve_source_products,
)
from madoguchi.config.retention import RetentionSettings
from madoguchi.config.secrets import read_secret
from madoguchi.config.tickets import TicketSettings
from madoguchi.config.web import WebSettings

DEFAULT_CONFIG_FILE = Path(__file__).with_name("madoguchi.toml")


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Section):
    max_message_bytes: int = Field(25 * 1024 * 1024, gt=0)
    max_attachments: int = Field(100, gt=0)
    imap_batch_size: int = Field(100, gt=0, le=5000)
    parse_workers: int | None = Field(None, ge=1, le=64)  # None: one per CPU core


class SupportNumberSettings(_Section):
    digits_pattern: str = r"^\d{12}$"
    # How the number is shown (4-4-4), and the FAX form's digit boxes (one per digit).
    display_groups: list[int] = Field([4, 4, 4], min_length=1)
    check: Literal["luhn", "none"] = "luhn"
    labels: list[str] = [
        "サポートサービス番号",
        "サポート番号",
        "サービス番号",
        "Support Service Number",
        "Support No",
    ]
    top_lines: int = Field(5, ge=0)

    @field_validator("display_groups")
    @classmethod
    def _groups_fit_the_form(cls, groups: list[int]) -> list[int]:
        if min(groups) < 1 or sum(groups) > 30:
            raise ValueError("display_groups: each group at least 1 digit, 30 digits in all")
        return groups


# The letters before a ticket number (T-2026-000123); the number's format is
# ticketing/ticket_number.py's.
TICKET_PREFIX_PATTERN = "[A-Z]{1,5}"


# The labels customers write before a ticket number they quote; the
# acknowledgement names the number after the first of them (受付番号).
TICKET_LABELS = (
    "受付番号", "受付No.", "問合せ番号", "問い合わせ番号", "お問い合わせ番号", "お問合せ番号",
    "問合わせ番号", "お問合わせ番号", "問い合せ番号", "問合番号", "Inquiry No.", "Inquiry number",
    "Ticket No.", "Ticket number", "Reference No.", "Case No.",
)


class ThreadingSettings(_Section):
    ticket_prefix: str = Field("T", pattern=f"^{TICKET_PREFIX_PATTERN}$")
    reopen_days: int = Field(14, ge=0)
    ticket_labels: list[str] = Field(list(TICKET_LABELS), min_length=1)

    @field_validator("ticket_labels")
    @classmethod
    def _labels_not_blank(cls, labels: list[str]) -> list[str]:
        if any(not label.strip() for label in labels):
            raise ValueError("a ticket label cannot be blank")
        return labels


# Below this a PDF page would be too coarse to read; such a page is refused.
MIN_PDF_DPI = 72


class FaxLimits(_Section):
    """How much a single FAX document may cost to open and read.

    The one FAX limits type: ``[fax]`` in the settings carries these keys
    (``FaxSettings``), and the reader in ocr/ takes them as they are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pages: int = Field(50, gt=0)
    # Per page. A4 at 400 dpi is 15.5 Mpx; a FAX page is about 4 Mpx.
    max_pixels: int = Field(40_000_000, gt=0)
    # Wall-clock budget for loading (and, in the reader, for reading) one document.
    timeout_seconds: float = Field(120.0, gt=0)
    # PDFs are rasterised at this resolution (square); close to FAX fine mode.
    pdf_dpi: int = Field(200, ge=MIN_PDF_DPI, le=600)


class FaxSettings(FaxLimits):
    model_config = ConfigDict(extra="forbid", frozen=False)

    # Mail from these addresses is a FAX-to-email gateway's: its PDF/TIFF
    # attachments are FAX pages, and the ticket's channel is "fax".
    gateway_addresses: list[str] = []

    @property
    def limits(self) -> FaxLimits:
        """The bounds alone (small, immutable, picklable), for the reader."""
        return FaxLimits(**{name: getattr(self, name) for name in FaxLimits.model_fields})


class DaemonSettings(_Section):
    # Seconds between two deliveries of the outbox, and between two looks for
    # tickets whose reminder or escalation must be scheduled.
    outbox_interval_seconds: float = Field(30, gt=0)
    sla_sweep_seconds: float = Field(60, gt=0)
    # A job that could not run on time (daemon down) still runs when it is
    # back within this grace; missed runs of one job are coalesced into one.
    misfire_grace_seconds: int = Field(3600, gt=0)
    # The reminder goes this many business minutes before the due time.
    reminder_lead_minutes: int = Field(60, ge=0)
    # Who is reminded (the team, until tickets have assignees) and who
    # receives escalations; empty disables that mail.
    team_address: str = ""
    supervisor_address: str = ""
    # A daily backup to this folder at this local time; empty disables it.
    backup_dir: Path | None = None
    backup_time: str = Field("03:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # How often a standby daemon tries to become the scheduler.
    leader_retry_seconds: float = Field(5, gt=0)
    # How often the leader confirms its lease (madoguchi.ticketing.leadership).
    lease_renew_seconds: float = Field(2, gt=0)
    # Supervision (madoguchi.supervision): how often heartbeats are written,
    # how overdue a beat is LATE, how long busy without progress is wedged.
    heartbeat_seconds: float = Field(5, gt=0)
    component_late_seconds: float = Field(60, gt=0)
    wedged_seconds: float = Field(600, gt=0)
    # A source whose poll fails is polled again after a backoff instead of
    # its interval: base, 2 x base, 4 x base... up to the max, each between
    # half and all of that (jitter: daemons that lost one server do not come
    # back in step); its first good poll goes back to the interval.
    source_backoff_base_seconds: float = Field(10, gt=0)
    source_backoff_max_seconds: float = Field(600, gt=0)

    @model_validator(mode="after")
    def _backoff_in_order(self) -> Self:
        if self.source_backoff_max_seconds < self.source_backoff_base_seconds:
            raise ValueError(
                "source_backoff_max_seconds is smaller than source_backoff_base_seconds"
            )
        return self


class _SourceBase(_Section):
    name: str = Field(min_length=1)
    interval_seconds: float = Field(60, gt=0)
    # The product (name or alias in [[products]]) whose mailbox this is: the same as
    # listing the source in that product's ``sources`` (config/products.py).
    product: str | None = Field(None, min_length=1)


class ImapSource(_SourceBase):
    kind: Literal["imap"]
    host: str
    port: int = 993
    security: Literal["ssl", "starttls", "plain"] = "ssl"
    username: str
    password_env: str | None = None
    password_file: Path | None = None
    folder: str = "INBOX"
    after_commit: Literal["move", "flag", "none"] = "move"
    move_to: str = "Madoguchi/Processed"
    flag: str = r"\Seen"
    timeout_seconds: float = Field(30, gt=0)
    # OAuth 2.0 instead of a password (config/oauth.py): XOAUTH2 / OAUTHBEARER.
    oauth: OAuthSettings | None = None
    # IMAP IDLE: new mail is taken as soon as the server announces it (the
    # poll every interval_seconds stays, as the fallback). IDLE is issued
    # again every idle_seconds (RFC 2177: servers may drop it after 30 min).
    # On by default; false for a server whose IDLE misbehaves (the poll alone).
    idle: bool = True
    idle_seconds: float = Field(1500, gt=0, le=1740)

    def password(self) -> str:
        """The password, read from the environment or a file; never from the TOML."""
        value = read_secret(f"sources.{self.name}.password", env=self.password_env,
                            file=self.password_file)
        if value is None:
            raise ConfigError(f"sources.{self.name}: set password_env or password_file")
        return value


class MaildirSource(_SourceBase):
    kind: Literal["maildir"]
    path: Path


class EmlDirSource(_SourceBase):
    kind: Literal["eml_dir"]
    path: Path


class FaxSpoolSource(_SourceBase):
    """A folder a FAX server or scanner drops .pdf/.tif/.tiff files into."""

    kind: Literal["fax_spool"]
    path: Path
    # A file is taken once its size and mtime have not changed for this long
    # (a FAX server still writing it is left alone). Names ending in .part or
    # .tmp, or starting with a dot, are never taken: write under such a name
    # and rename when complete to have files taken at once.
    stable_seconds: float = Field(5, ge=0)


Source = Annotated[
    ImapSource | MaildirSource | EmlDirSource | FaxSpoolSource, Field(discriminator="kind")
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MADOGUCHI_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: str = "sqlite:///var/madoguchi.db"
    storage_dir: Path = Path("var/storage")
    timezone: str = "Asia/Tokyo"
    desk_address: str = "support@example.co.jp"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "json": one JSON object per line (madoguchi/logs.py), for a log shipper.
    log_format: Literal["text", "json"] = "text"
    # authserv-ids of the desk's own mail servers: their Authentication-Results
    # header is believed (a DMARC or SPF failure makes the sender untrusted).
    trusted_authserv_ids: list[str] = []
    # Their header counts only above this many Received headers from the top
    # (the desk's own MTA's): lower down, the sender wrote it.
    trusted_results_above_received: int = Field(1, ge=1, le=20)
    limits: Limits = Limits()
    support_number: SupportNumberSettings = SupportNumberSettings()
    threading: ThreadingSettings = ThreadingSettings()
    sources: list[Source] = []
    calendar: CalendarSettings = CalendarSettings()
    sla: SlaSettings = SlaSettings()
    # After the first response: next-response due, auto-close, urgent words.
    conversation: ConversationSettings = ConversationSettings()
    smtp: SmtpSettings = SmtpSettings()
    acknowledgement: AckSettings = AckSettings()
    # DKIM keys of the desk's sending domains (config/outgoing.py).
    dkim: list[DkimSettings] = []
    daemon: DaemonSettings = DaemonSettings()
    fax: FaxSettings = FaxSettings()
    web: WebSettings = WebSettings()
    # The one product of a desk without [[products]]; the defaults of each product.
    license_key: LicenseKeySettings = LicenseKeySettings()
    fax_form: FaxFormSettings = FaxFormSettings()
    # The products the desk serves (config/products.py); none: one product.
    products: list[ProductSettings] = []
    tickets: TicketSettings = TicketSettings()

    @model_validator(mode="after")
    def _products_consistent(self) -> Settings:
        resolve_source_products(self.products, [(s.name, s.product) for s in self.sources])
        check_products(self.products, {s.name for s in self.sources})
        return self
    retention: RetentionSettings = RetentionSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(path: Path | str | None = None, **overrides: object) -> Settings:
    """Read and validate the configuration; raise ConfigError naming the bad key."""
    if path is None:
        path = os.environ.get("MADOGUCHI_CONFIG") or DEFAULT_CONFIG_FILE
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        loaded = _FromFile(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {path}: {problems}") from exc
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    return loaded
