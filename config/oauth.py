"""OAuth 2.0 sign-in to a mailbox (IMAP) or a submission server (SMTP).

A source or ``[smtp]`` that has an ``[…oauth]`` table signs in with SASL
``XOAUTH2`` or ``OAUTHBEARER`` and a bearer token instead of a password::

    [sources.oauth]
    provider = "microsoft"          # "microsoft" (MSAL), "google" or "generic" (Authlib)
    flow = "client_credentials"     # app-only (Microsoft 365); or "refresh_token"
    tenant = "contoso.onmicrosoft.com"
    client_id = "00000000-…"
    client_secret_env = "MADOGUCHI_M365_SECRET"   # or client_secret_file
    # token_file = "/var/lib/madoguchi/oauth/support.token"  # refresh_token flow
    # token_key_env = "MADOGUCHI_TOKEN_KEY"   # a Fernet key: the token file encrypted

``madoguchi auth login SOURCE`` runs the device-code flow once and keeps
the refresh token in ``token_file`` (0600; encrypted with the key when one
is configured). Scopes and endpoints default to the provider's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from madoguchi.config.secrets import read_secret

Provider = Literal["microsoft", "google", "generic"]

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
# Delegated scopes (a person's consent, the refresh-token flow) and the
# app-only one (the client-credentials flow: the admin's consent to the app).
MICROSOFT_DELEGATED_SCOPES = (
    "https://outlook.office365.com/IMAP.AccessAsUser.All",
    "https://outlook.office365.com/SMTP.Send",
)
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default",)
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_DEVICE_URL = "https://oauth2.googleapis.com/device/code"
GOOGLE_SCOPES = ("https://mail.google.com/",)
GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"


class OAuthSettings(BaseModel):
    """How one mailbox or SMTP server gets its bearer tokens."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider
    flow: Literal["client_credentials", "refresh_token"] = "refresh_token"
    mechanism: Literal["XOAUTH2", "OAUTHBEARER"] = "XOAUTH2"
    client_id: str = Field(min_length=1)
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    # Microsoft: the directory (tenant id or domain); authority: another
    # cloud's sign-in host (https://login.microsoftonline.us) or a test's.
    tenant: str | None = None
    authority: str | None = None
    # Google and generic: the token and device-authorization endpoints.
    token_url: str | None = None
    device_url: str | None = None
    authorize_url: str | None = None
    # How ``madoguchi auth login`` signs in: "device_code" (a code to enter
    # anywhere) or "browser" (the authorization-code flow with PKCE and a
    # loopback redirect). Default: browser for Google, whose device flow does
    # not grant the Gmail scope; device_code for the others.
    login: Literal["device_code", "browser"] | None = None
    scopes: list[str] | None = None
    # Where the refresh token is kept (refresh_token flow); never in the repository.
    token_file: Path | None = None
    token_key_env: str | None = None
    token_key_file: Path | None = None
    # A private CA for the token endpoint (default: the system's).
    ca_file: Path | None = None
    # A token is renewed this long before it expires.
    refresh_margin_seconds: float = Field(300, ge=0)
    timeout_seconds: float = Field(30, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.provider == "microsoft" and not (self.tenant or self.authority):
            raise ValueError("provider microsoft: set tenant")
        if self.provider == "generic" and not self.token_url:
            raise ValueError("provider generic: set token_url")
        if self.flow == "client_credentials" and not (
                self.client_secret_env or self.client_secret_file):
            raise ValueError("flow client_credentials: set client_secret_env or "
                             "client_secret_file")
        if self.flow == "client_credentials" and self.provider == "google":
            raise ValueError("Google Workspace mailboxes have no client-credentials flow: "
                             "use flow = \"refresh_token\"")
        if self.flow == "refresh_token" and self.token_file is None:
            raise ValueError("flow refresh_token: set token_file (outside the repository)")
        return self

    def client_secret(self, key: str) -> str | None:
        return read_secret(f"{key}.client_secret", env=self.client_secret_env,
                           file=self.client_secret_file)

    def token_key(self, key: str) -> str | None:
        return read_secret(f"{key}.token_key", env=self.token_key_env,
                           file=self.token_key_file)

    def authority_url(self) -> str:
        base = (self.authority or MICROSOFT_AUTHORITY).rstrip("/")
        return f"{base}/{self.tenant}" if self.tenant else base

    def scope_list(self) -> list[str]:
        if self.scopes:
            return list(self.scopes)
        if self.provider == "microsoft":
            return list(MICROSOFT_APP_SCOPES if self.flow == "client_credentials"
                        else MICROSOFT_DELEGATED_SCOPES)
        if self.provider == "google":
            return list(GOOGLE_SCOPES)
        return []

    def token_endpoint(self) -> str:
        return self.token_url or GOOGLE_TOKEN_URL

    def login_flow(self) -> str:
        return self.login or ("browser" if self.provider == "google" else "device_code")

    def authorize_endpoint(self) -> str:
        return self.authorize_url or GOOGLE_AUTHORIZE_URL

    def device_endpoint(self) -> str | None:
        if self.device_url:
            return self.device_url
        return GOOGLE_DEVICE_URL if self.provider == "google" else None
