"""DKIM keys for the desk's outgoing mail (acknowledgements, replies, reminders).

TOML, one table per signing domain (the domain of the From address)::

    [[dkim]]
    domain = "chatluck.com"
    selector = "madoguchi2026"          # the DNS record madoguchi2026._domainkey.chatluck.com
    key_file = "/etc/madoguchi/dkim/chatluck.pem"   # or key_env; never in the repository

Mail whose From is on a configured domain is signed (rsa-sha256, relaxed/
relaxed) when it is handed to SMTP; other mail goes unsigned.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from madoguchi.config.secrets import read_secret

# The headers signed: those a receiver shows or threads by, and the kind headers.
SIGNED_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To",
                  "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
                  "Auto-Submitted")


class DkimSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(pattern=r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
    selector: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    key_env: str | None = None
    key_file: Path | None = None

    @field_validator("domain")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    def private_key(self) -> bytes:
        """The PEM private key, read from the environment or the file; never from TOML."""
        from madoguchi.config.settings import ConfigError

        key = read_secret(f"dkim.{self.domain}.key", env=self.key_env, file=self.key_file)
        if key is None:
            raise ConfigError(f"dkim.{self.domain}: set key_file or key_env")
        return key.encode("ascii") + b"\n"
