"""Settings of the staff web desk (``madoguchi web``).

TOML, all keys optional::

    [web]
    host = "127.0.0.1"          # where `madoguchi web` (and the daemon, if serve_in_daemon) listens
    port = 8080
    serve_in_daemon = false     # also serve the desk from `madoguchi daemon`
    # secret_key_file = "/etc/madoguchi/web-secret"   # default: STORAGE_DIR/web-secret,
    #                                                 # created (mode 0600) when missing
    session_idle_minutes = 60   # signed out after this long without a request
    session_max_hours = 12      # and this long after signing in, whatever happens
    # public_url = "https://desk.example.co.jp"   # how staff reach the desk; https turns on
    #                           # the Secure cookie and HSTS
    cookie_secure = false       # true behind HTTPS (also implied by an https public_url)
    hsts_max_age = 31536000     # Strict-Transport-Security whenever served over HTTPS
    trusted_proxies = []        # e.g. ["127.0.0.1"]: whose X-Forwarded-For/-Proto is believed
    fax_outbound_dir = "var/fax-out"   # reply FAXes (PDF + JSON) for the FAX gateway
    page_size = 50              # tickets per queue page
    due_soon_minutes = 60       # a first response due within this is marked "due soon"
    send_outbox_after_reply = true     # try the outbox right after a reply (the daemon also does)
    login_max_failures = 5      # failed sign-ins per address (or per account) before pauses
    login_lockout_seconds = 900 # the longest pause: 1 s, 2 s, 4 s ... up to this
    login_failure_window_seconds = 900 # failures older than this are forgotten
    login_tracked_keys = 10000  # addresses and accounts the throttle remembers (LRU)
    max_password_checks = 4     # Argon2 checks at once (64 MiB each); the rest wait
    # The server (uvicorn) against slow or endless clients:
    header_timeout_seconds = 10 # a request's line, headers and body must arrive within this
    keep_alive_seconds = 5      # an idle keep-alive connection is closed after this
    max_requests_per_connection = 1000
    max_connections = 1000      # open connections; more are closed at once
    max_connections_per_client = 64    # per client address (behind a proxy: set the proxy's)
    max_concurrent_requests = 256      # more at once are answered 503
    max_concurrent_requests_per_client = 8     # ... and more than this from one address
    max_upload_bytes = 10485760 # the largest CSV the import page takes
    # The live desk (queue and ticket pages told of changes; who else is on a ticket):
    live_updates = true         # false: pages are as before, reloaded by hand
    live_max_connections = 400  # open live streams (one per open page), apart from requests
    live_max_connections_per_client = 32   # ... from one address (behind a proxy: per client)
    live_poll_seconds = 0.5     # SQLite: how often each web process reads the change feed
    live_stream_minutes = 10    # a stream ends after this; the browser reconnects (re-checked)
    fax_form_link_days = 90     # a signed link to a contract's FAX form is valid this long
    # metrics_token_env = "MADOGUCHI_METRICS_TOKEN"   # /metrics wants "Authorization: Bearer …"
    # metrics_token_file = "/etc/madoguchi/metrics-token"
    #                           # neither set: /metrics answers loopback clients only

The secret that signs session cookies lives in a file, never in the TOML;
so does the metrics token (or it is in the environment).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from madoguchi.config.secrets import read_secret


class WebSettings(BaseModel):
    """The ``[web]`` section."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, gt=0, le=65535)
    serve_in_daemon: bool = False
    secret_key_file: Path | None = None
    session_idle_minutes: int = Field(60, gt=0)
    session_max_hours: float = Field(12, gt=0)
    public_url: str = Field("", pattern=r"^(|https?://[^\s/]+(/\S*)?)$")
    cookie_secure: bool = False
    hsts_max_age: int = Field(31536000, ge=0)
    trusted_proxies: list[str] = []
    fax_outbound_dir: Path = Path("var/fax-out")
    page_size: int = Field(50, ge=10, le=500)
    due_soon_minutes: int = Field(60, ge=0)
    send_outbox_after_reply: bool = True
    login_max_failures: int = Field(5, gt=0)
    login_lockout_seconds: int = Field(900, ge=0)
    login_failure_window_seconds: int = Field(900, gt=0)
    login_tracked_keys: int = Field(10_000, ge=100)
    max_password_checks: int = Field(4, gt=0)
    header_timeout_seconds: float = Field(10, gt=0)
    keep_alive_seconds: float = Field(5, gt=0)
    max_requests_per_connection: int = Field(1000, gt=0)
    max_connections: int = Field(1000, gt=0)
    max_connections_per_client: int = Field(64, gt=0)
    max_concurrent_requests: int = Field(256, gt=0)
    max_concurrent_requests_per_client: int = Field(8, gt=0)
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)
    live_updates: bool = True
    live_max_connections: int = Field(400, ge=0)
    live_max_connections_per_client: int = Field(32, ge=0)
    live_poll_seconds: float = Field(0.5, ge=0.05, le=30)
    live_stream_minutes: float = Field(10, gt=0, le=24 * 60)
    fax_form_link_days: int = Field(90, ge=1, le=3650)
    # The bearer token Prometheus sends to /metrics, from the environment or
    # a file (never the TOML). Neither set: only loopback clients may scrape.
    metrics_token_env: str | None = None
    metrics_token_file: Path | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an address or network: {item!r}") from exc
        return value

    @property
    def secure_cookie(self) -> bool:
        """The session cookie is sent over HTTPS only."""
        return self.cookie_secure or self.public_url.lower().startswith("https://")

    def secret_path(self, storage_dir: Path) -> Path:
        return self.secret_key_file or Path(storage_dir) / "web-secret"

    def metrics_token(self) -> str | None:
        """The /metrics token, read at each scrape (a rotated file needs no restart).

        None when none is configured; ConfigError when one is configured but
        cannot be had, so that /metrics is refused rather than left open.
        """
        return read_secret("web.metrics_token", env=self.metrics_token_env,
                           file=self.metrics_token_file)
