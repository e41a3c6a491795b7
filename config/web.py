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
    cookie_secure = false       # true behind HTTPS: the session cookie is then never sent in clear
    fax_outbound_dir = "var/fax-out"   # reply FAXes (PDF + JSON) for the FAX gateway
    page_size = 50              # tickets per queue page
    due_soon_minutes = 60       # a first response due within this is marked "due soon"
    send_outbox_after_reply = true     # try the outbox right after a reply (the daemon also does)
    login_max_failures = 5      # failed sign-ins per login name or address before a pause
    login_lockout_seconds = 300
    max_upload_bytes = 10485760 # the largest CSV the import page takes
    # metrics_token_env = "MADOGUCHI_METRICS_TOKEN"   # /metrics wants "Authorization: Bearer …"
    # metrics_token_file = "/etc/madoguchi/metrics-token"
    #                           # neither set: /metrics answers loopback clients only

The secret that signs session cookies lives in a file, never in the TOML;
so does the metrics token (or it is in the environment).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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
    cookie_secure: bool = False
    fax_outbound_dir: Path = Path("var/fax-out")
    page_size: int = Field(50, ge=10, le=500)
    due_soon_minutes: int = Field(60, ge=0)
    send_outbox_after_reply: bool = True
    login_max_failures: int = Field(5, gt=0)
    login_lockout_seconds: int = Field(300, ge=0)
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # The bearer token Prometheus sends to /metrics, from the environment or
    # a file (never the TOML). Neither set: only loopback clients may scrape.
    metrics_token_env: str | None = None
    metrics_token_file: Path | None = None

    def secret_path(self, storage_dir: Path) -> Path:
        return self.secret_key_file or Path(storage_dir) / "web-secret"

    def metrics_token(self) -> str | None:
        """The /metrics token, read at each scrape (a rotated file needs no restart).

        None when none is configured; ConfigError when one is configured but
        cannot be had, so that /metrics is refused rather than left open.
        """
        return read_secret("web.metrics_token", env=self.metrics_token_env,
                           file=self.metrics_token_file)
