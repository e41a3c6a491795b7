"""OAuth 2.0 sign-in against real servers: Dovecot's oauth2 passdb and an SMTP listener,
both checking tokens at a real authorisation server on loopback (tests/oauth_server.py).

MSAL (Microsoft) and Authlib (Google, generic) talk to that server over
HTTPS exactly as they talk to a provider: the client-credentials,
refresh-token and device-code grants, token rotation, expiry and revoked
consent.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from madoguchi.config import ImapSource
from madoguchi.config.mail import SmtpSettings
from madoguchi.config.oauth import OAuthSettings
from madoguchi.ingest.sources.mailbox import ImapCommandFailed, Mailbox
from madoguchi.ticketing import oauth
from madoguchi.ticketing.oauth_login import device_login
from madoguchi.ticketing.smtp_client import open_smtp
from tests.oauth_server import TENANT, OAuthServer
from tests.servers.dovecot import Dovecot, DovecotAccount
from tests.smtp_server import SmtpTestServer, TlsFiles, oauth_smtp_server

pytestmark = pytest.mark.integration

APP_ID, APP_SECRET = "madoguchi-app", "app-secret-1"
DESKTOP_ID = "madoguchi-desk"  # a public client: the device-code flow


@pytest.fixture(scope="module")
def oauth_server(tls_files: TlsFiles) -> Iterator[OAuthServer]:
    server = OAuthServer(tls_files.server_context()).start()
    server.add_client(DESKTOP_ID)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oauth_dovecot(oauth_server: OAuthServer) -> Iterator[Dovecot]:
    with Dovecot(introspection_url=oauth_server.introspection_url) as server:
        yield server


@pytest.fixture
def mailbox(oauth_dovecot: Dovecot, request: pytest.FixtureRequest) -> DovecotAccount:
    oauth_dovecot.ensure_running()
    return oauth_dovecot.add_user(f"o{abs(hash(request.node.name)) % 10**8}")


@pytest.fixture(autouse=True)
def _fresh_token_sources() -> None:
    oauth._SOURCES.clear()


@pytest.fixture(autouse=True)
def _server_defaults(oauth_server: OAuthServer) -> None:
    oauth_server.state.lifetime = 3600
    oauth_server.state.rotate = True


def microsoft_app(server: OAuthServer, tls: TlsFiles, tmp_path: Path,
                  **extra: Any) -> OAuthSettings:
    secret = tmp_path / "app-secret"
    secret.write_text(APP_SECRET, encoding="utf-8")
    return OAuthSettings(provider="microsoft", flow="client_credentials", client_id=APP_ID,
                         client_secret_file=secret, tenant=TENANT, authority=server.authority,
                         ca_file=tls.cert, **extra)


def delegated(server: OAuthServer, tls: TlsFiles, tmp_path: Path, provider: str = "microsoft",
              **extra: Any) -> OAuthSettings:
    endpoints: dict[str, Any] = (
        {"tenant": TENANT, "authority": server.authority} if provider == "microsoft"
        else {"token_url": server.token_url, "device_url": server.device_url,
              "authorize_url": server.authorize_url})
    return OAuthSettings(provider=provider, flow="refresh_token",  # type: ignore[arg-type]
                         client_id=DESKTOP_ID, token_file=tmp_path / "oauth" / "desk.token",
                         ca_file=tls.cert, scopes=["mail"], **endpoints, **extra)


def source(account: DovecotAccount, settings: OAuthSettings) -> ImapSource:
    return ImapSource(kind="imap", name="support", host=account.host, port=account.port,
                      security="plain", username=account.username, oauth=settings,
                      after_commit="flag")


def signed_in(src: ImapSource) -> int:
    """Sign in and select INBOX as a poll does; the messages in it."""
    box = Mailbox(src)
    try:
        box.open()
        return len(box.uids_after(0))
    finally:
        box.close()


def test_app_only_sign_in_with_msal_client_credentials_and_xoauth2(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    oauth_server.add_client(APP_ID, APP_SECRET, app_mailbox=mailbox.username)
    mailbox.append(b"Subject: hello\r\n\r\nbody\r\n")
    assert signed_in(source(mailbox, microsoft_app(oauth_server, tls_files, tmp_path))) == 1
    assert oauth_server.grants("client_credentials", mailbox.username) == 1


def test_a_wrong_client_secret_is_a_clear_error(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    oauth_server.add_client(APP_ID, APP_SECRET, app_mailbox=mailbox.username)
    settings = microsoft_app(oauth_server, tls_files, tmp_path)
    (tmp_path / "app-secret").write_text("not-the-secret", encoding="utf-8")
    with pytest.raises(ImapCommandFailed, match=r"invalid_client.*renew the client secret"):
        signed_in(source(mailbox, settings))


def test_refresh_token_flow_with_oauthbearer_keeps_the_rotated_token(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    settings = delegated(oauth_server, tls_files, tmp_path, "google", mechanism="OAUTHBEARER")
    first = oauth_server.consent(mailbox.username)
    oauth.TokenSource("sources.support", settings).keep_refresh_token(first)
    assert signed_in(source(mailbox, settings)) == 0
    kept = settings.token_file
    assert kept is not None
    assert kept.read_text(encoding="utf-8") not in ("", first)  # rotated, written back
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.parent.stat().st_mode & 0o777 == 0o700
    assert oauth_server.grants("refresh_token", mailbox.username) == 1


def test_msal_refresh_token_flow_signs_in_with_xoauth2(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    settings = delegated(oauth_server, tls_files, tmp_path)
    oauth.TokenSource("sources.support", settings).keep_refresh_token(
        oauth_server.consent(mailbox.username))
    assert signed_in(source(mailbox, settings)) == 0
    assert oauth_server.grants("refresh_token", mailbox.username) == 1


def test_a_token_is_renewed_before_it_expires(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    oauth_server.add_client(APP_ID, APP_SECRET, app_mailbox=mailbox.username)
    oauth_server.state.lifetime = 301  # inside the 300 s margin after one second
    src = source(mailbox, microsoft_app(oauth_server, tls_files, tmp_path))
    signed_in(src)
    signed_in(src)  # still well within its life: the same token
    assert oauth_server.grants("client_credentials", mailbox.username) == 1
    time.sleep(1.2)
    signed_in(src)
    assert oauth_server.grants("client_credentials", mailbox.username) == 2


def test_a_token_the_server_refuses_is_fetched_again_and_the_poll_goes_on(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = delegated(oauth_server, tls_files, tmp_path, "generic")
    oauth.TokenSource("sources.support", settings).keep_refresh_token(
        oauth_server.consent(mailbox.username))
    src = source(mailbox, settings)
    mailbox.append(b"Subject: one\r\n\r\nbody\r\n")
    assert signed_in(src) == 1
    oauth_server.expire_all()  # the desk still believes its token good for an hour
    assert signed_in(src) == 1
    assert oauth_server.grants("refresh_token", mailbox.username) == 2
    assert "refused the token" in caplog.text


def test_revoked_consent_stops_the_poll_with_a_clear_error(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    settings = delegated(oauth_server, tls_files, tmp_path)
    oauth.TokenSource("sources.support", settings).keep_refresh_token(
        oauth_server.consent(mailbox.username))
    src = source(mailbox, settings)
    signed_in(src)
    oauth_server.revoke(mailbox.username)
    with pytest.raises(ImapCommandFailed,
                       match=r"AADSTS65001.*consent was revoked.*madoguchi auth login support"):
        signed_in(src)


def test_no_refresh_token_yet_says_to_sign_in(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    with pytest.raises(ImapCommandFailed, match="run `madoguchi auth login support` once"):
        signed_in(source(mailbox, delegated(oauth_server, tls_files, tmp_path)))


@pytest.mark.parametrize("provider", ["microsoft", "generic"])
def test_device_login_keeps_the_refresh_token_encrypted_and_the_mailbox_opens(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, provider: str,
) -> None:
    monkeypatch.setenv("MADOGUCHI_TEST_TOKEN_KEY", Fernet.generate_key().decode())
    settings = delegated(oauth_server, tls_files, tmp_path, provider,
                         token_key_env="MADOGUCHI_TEST_TOKEN_KEY")
    tokens = oauth.TokenSource("sources.support", settings)
    shown: list[str] = []
    errors: list[BaseException] = []

    def login() -> None:
        try:
            device_login(tokens, shown.append, sleep=lambda _s: time.sleep(0.05))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=login)
    thread.start()
    deadline = time.monotonic() + 10
    while not oauth_server.approve(mailbox.username):  # the person enters the code
        assert not errors, errors
        assert time.monotonic() < deadline
        time.sleep(0.05)
    thread.join(15)
    assert not errors and shown and "code" in shown[0]
    kept = settings.token_file
    assert kept is not None and kept.stat().st_mode & 0o777 == 0o600
    assert kept.read_bytes().startswith(b"gAAAA")  # a Fernet token, not the refresh token
    assert signed_in(source(mailbox, settings)) == 0


@pytest.mark.parametrize("answer", ["consent", "decline"])
def test_google_login_in_the_browser_with_pkce_and_a_loopback_redirect(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
    answer: str,
) -> None:
    import requests

    settings = delegated(oauth_server, tls_files, tmp_path, "google")
    assert settings.login_flow() == "browser"
    tokens = oauth.TokenSource("sources.support", settings)
    shown: list[str] = []
    errors: list[BaseException] = []

    def login() -> None:
        try:
            device_login(tokens, shown.append)
        except BaseException as exc:
            errors.append(exc)

    oauth_server.state.signing_in = mailbox.username if answer == "consent" else None
    thread = threading.Thread(target=login)
    thread.start()
    deadline = time.monotonic() + 10
    while not shown:
        assert time.monotonic() < deadline and not errors, errors
        time.sleep(0.02)
    url = shown[0].rsplit("\n", 1)[1]
    assert "code_challenge_method=S256" in url and "access_type=offline" in url
    # The person's browser: the consent page, then back to the desk's loopback listener.
    page = requests.get(url, verify=str(tls_files.cert), timeout=10)
    thread.join(15)
    oauth_server.state.signing_in = None
    if answer == "decline":
        assert len(errors) == 1 and "access_denied" in str(errors[0])
        return
    assert not errors and "サインインを受け付けました" in page.text
    assert oauth_server.grants("authorization_code", mailbox.username) == 1
    assert signed_in(source(mailbox, settings)) == 0


def test_a_token_file_readable_by_others_is_refused(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    settings = delegated(oauth_server, tls_files, tmp_path)
    oauth.TokenSource("sources.support", settings).keep_refresh_token("x")
    assert settings.token_file is not None
    settings.token_file.chmod(0o644)
    with pytest.raises(ImapCommandFailed, match="readable by others"):
        signed_in(source(mailbox, settings))


@pytest.fixture
def smtp_oauth(oauth_server: OAuthServer, request: pytest.FixtureRequest) -> SmtpTestServer:
    return oauth_smtp_server(request, oauth_server.active_user)


def test_smtp_xoauth2_with_an_app_token_and_a_refused_one_fetched_again(
    oauth_server: OAuthServer, smtp_oauth: SmtpTestServer, tls_files: TlsFiles,
    tmp_path: Path,
) -> None:
    oauth_server.add_client(APP_ID, APP_SECRET, app_mailbox="support@desk.example.jp")
    settings = SmtpSettings.model_validate(smtp_oauth.smtp_settings(
        username="support@desk.example.jp",
        oauth=microsoft_app(oauth_server, tls_files, tmp_path)))
    for _ in range(2):
        conn = open_smtp(settings)
        conn.sendmail("support@desk.example.jp", ["c@example.jp"], b"Subject: x\r\n\r\nx\r\n")
        conn.quit()
        oauth_server.expire_all()
    assert [m.authenticated for m in smtp_oauth.messages] == [True, True]
    assert oauth_server.grants("client_credentials", "support@desk.example.jp") == 2


def test_smtp_with_revoked_consent_is_refused(
    oauth_server: OAuthServer, smtp_oauth: SmtpTestServer, tls_files: TlsFiles,
    tmp_path: Path,
) -> None:
    oauth_server.add_client(APP_ID, APP_SECRET, app_mailbox="gone@desk.example.jp")
    oauth_server.revoke("gone@desk.example.jp")
    settings = SmtpSettings.model_validate(smtp_oauth.smtp_settings(
        username="gone@desk.example.jp",
        oauth=microsoft_app(oauth_server, tls_files, tmp_path)))
    with pytest.raises(smtplib.SMTPAuthenticationError, match="no consent"):
        open_smtp(settings)


def _config(tmp_path: Path, server: OAuthServer, tls: TlsFiles, account: DovecotAccount) -> Path:
    path = tmp_path / "madoguchi.toml"
    path.write_text(f"""\
database_url = "sqlite:///{tmp_path}/desk.db"
[[sources]]
kind = "imap"
name = "support"
host = "{account.host}"
port = {account.port}
security = "plain"
username = "{account.username}"
[sources.oauth]
provider = "generic"
client_id = "{DESKTOP_ID}"
token_url = "{server.token_url}"
device_url = "{server.device_url}"
token_file = "{tmp_path}/oauth/support.token"
ca_file = "{tls.cert}"
""", encoding="utf-8")
    return path


def test_auth_login_command_authorises_a_source_once(
    oauth_server: OAuthServer, mailbox: DovecotAccount, tls_files: TlsFiles, tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from madoguchi.cli import app

    config = _config(tmp_path, oauth_server, tls_files, mailbox)
    def approve() -> None:  # the person enters the code shown
        deadline = time.monotonic() + 10
        while not oauth_server.approve(mailbox.username) and time.monotonic() < deadline:
            time.sleep(0.05)

    approver = threading.Thread(target=approve)
    approver.start()
    result = CliRunner().invoke(app, ["--config", str(config), "auth", "login", "support"])
    approver.join(15)
    assert result.exit_code == 0, result.output
    assert "enter the code" in result.output and "support: signed in" in result.output
    assert (tmp_path / "oauth" / "support.token").stat().st_mode & 0o777 == 0o600

    unknown = CliRunner().invoke(app, ["--config", str(config), "auth", "login", "sales"])
    assert unknown.exit_code == 1
    assert "no source named 'sales' (configured: support, smtp)" in unknown.output
