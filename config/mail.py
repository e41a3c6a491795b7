"""Settings of outgoing mail: the SMTP server and the acknowledgement.

TOML, all keys optional::

    [smtp]
    host = "smtp.example.co.jp"
    port = 587
    security = "starttls"          # the default; "ssl" (implicit TLS, port 465) or "plain"
    username = "support"           # omit for a relay that needs no login
    password_env = "MADOGUCHI_SMTP_PASSWORD"   # or password_file = "/etc/madoguchi/smtp"
    # ca_file = "/etc/madoguchi/relay-ca.pem"  # a private CA; default: the system's
    # helo_name = "desk.example.co.jp"         # default: this machine's name
    timeout_seconds = 30
    max_attempts = 8               # a temporary failure is retried this often in all
    backoff_base_seconds = 60      # 1, 2, 4, 8... minutes between attempts,
    backoff_max_seconds = 3600     # never more than an hour, each with jitter

    [acknowledgement]
    enabled = true
    # template = "/etc/madoguchi/acknowledgement.txt.j2"  # default: the shipped one
    from_name = "サポートセンター"
    subject_label = "受付のお知らせ"
    # Tickets carrying any of these flags get no acknowledgement: staff decide
    # first. Flags: unregistered_sender, unknown_support_number,
    # contract_expired, unreadable_fax.
    skip_flagged = ["unregistered_sender"]
    max_per_sender_per_hour = 3
    # Tickets out of scope (unregistered_sender, contract_expired,
    # contract_not_started) are never promised a deadline: "none" sends them
    # nothing, "notice" a polite notice worded for their case.
    out_of_scope = "none"
    # notice_template = "/etc/madoguchi/out_of_scope.txt.j2"

Passwords never live in the TOML: ``password_env`` names an environment
variable, ``password_file`` a file outside the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from madoguchi.config.oauth import OAuthSettings
from madoguchi.config.secrets import read_secret

# The ticket flags (madoguchi.ticketing.models.Flag) by name; config does not
# import the storage layer, so the names are repeated here and a test keeps
# them in step.
FLAG_NAMES = frozenset(
    {"unregistered_sender", "unknown_support_number", "contract_expired", "unreadable_fax",
     "contract_not_started", "unverified_sender", "urgent",
     "undelivered"}
)


def _existing(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"template file not found: {value}")
    return value


# A template the desk names: it must be there at start-up.
TemplateFile = Annotated[Path, AfterValidator(_existing)]


class SmtpSettings(BaseModel):
    """The SMTP server the desk sends through."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(25, gt=0, le=65535)
    # STARTTLS with the certificate verified unless told otherwise.
    security: Literal["plain", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    helo_name: str | None = None
    timeout_seconds: float = Field(30, gt=0)
    # How long to wait for the reply to the end of the message (the final
    # dot): RFC 5321 4.5.3.2.6 asks for 10 minutes, as a server may check the
    # message before it answers. No reply by then, or the connection lost
    # before it: the mail is left for staff to check, never sent again.
    data_timeout_seconds: float = Field(600, gt=0)
    max_attempts: int = Field(8, ge=1)
    # OAuth 2.0 instead of a password (config/oauth.py); username is the mailbox.
    oauth: OAuthSettings | None = None
    backoff_base_seconds: float = Field(60, gt=0)
    backoff_max_seconds: float = Field(3600, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.oauth is not None and not self.username:
            raise ValueError("oauth is set: set username (the mailbox that signs in)")
        if self.username and self.oauth is None and not (self.password_env or self.password_file):
            raise ValueError("username is set: set password_env or password_file too")
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds is smaller than backoff_base_seconds")
        return self

    def password(self) -> str:
        """The password, read from the environment or a file when needed; never from TOML."""
        # Imported here: config.settings imports this module.
        from madoguchi.config.settings import ConfigError

        value = read_secret("smtp.password", env=self.password_env, file=self.password_file)
        if value is None:
            raise ConfigError("smtp: set password_env or password_file")
        return value


class AckSettings(BaseModel):
    """The automatic acknowledgement (受付のお知らせ) of a new ticket."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A Jinja2 text template; None means the shipped
    # ticketing/templates/acknowledgement.txt.j2.
    template: TemplateFile | None = None
    # The display name in From and the signature.
    from_name: str = Field("サポートセンター", min_length=1)
    # Subject: "[T-2026-000123] <subject_label>: <the customer's subject>".
    subject_label: str = Field("受付のお知らせ", min_length=1)
    # Flags (see the module docstring) whose tickets get no acknowledgement.
    skip_flagged: list[str] = ["unregistered_sender"]
    # Acknowledgements to one address within a rolling hour, at most; stops
    # a loop with a responder that our auto-reply headers do not stop.
    max_per_sender_per_hour: int = Field(3, ge=0)
    # What an out-of-scope ticket's sender gets: nothing, or a notice that
    # promises no deadline (ticketing/templates/out_of_scope.txt.j2 by default).
    out_of_scope: Literal["none", "notice"] = "none"
    notice_template: TemplateFile | None = None

    @field_validator("skip_flagged")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - FLAG_NAMES)
        if unknown:
            raise ValueError(
                f"unknown flag(s) {', '.join(unknown)}; known: {', '.join(sorted(FLAG_NAMES))}"
            )
        return value

    @field_validator("from_name", "subject_label")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be a single line")
        return value
