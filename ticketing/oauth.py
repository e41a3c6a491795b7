"""Bearer tokens for IMAP and SMTP sign-in, and the SASL strings that carry them.

``TokenSource.token()`` hands out the access token, fetched again a margin
before it expires (``refresh_margin_seconds``) or after ``invalidate()``
(the server refused it). The protocol is a maintained library's:

- Microsoft: MSAL — ``acquire_token_for_client`` (app-only, the
  client-credentials flow), ``acquire_token_by_refresh_token`` (delegated),
  and the device-code flow of ``madoguchi auth login``;
- Google and any other provider: Authlib's ``OAuth2Session`` (refresh and
  client-credentials grants; the device-code grant of RFC 8628 is a
  ``fetch_token`` with its grant type).

A refresh token is kept by ``config.secrets`` (a 0600 file, encrypted when a
key is configured); one the provider rotates is written back at once. A
refused refresh token (``invalid_grant``: consent revoked, the password
changed, the token expired) is ``ConsentRevoked``, whose message says to
run ``madoguchi auth login`` again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from madoguchi.config.oauth import OAuthSettings
from madoguchi.config.secrets import read_secret_file, write_secret_file
from madoguchi.config.settings import ConfigError

log = logging.getLogger("madoguchi.oauth")

# The grant of RFC 8628 (device authorization).
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class OAuthError(Exception):
    """No token could be had: the provider refused, or could not be reached."""


class ConsentRevoked(OAuthError):
    """The refresh token (or the app's consent) was refused: sign in again."""


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float  # time.time()
    refresh_token: str | None = None


def sasl_xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial response (Google's and Microsoft's mechanism)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def sasl_oauthbearer(user: str, token: str) -> str:
    """The OAUTHBEARER initial response (RFC 7628)."""
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01"


def sasl_response(mechanism: str, user: str, token: str) -> str:
    return (sasl_oauthbearer if mechanism == "OAUTHBEARER" else sasl_xoauth2)(user, token)


class TokenSource:
    """The access token of one configured sign-in (``key``: its settings' name)."""

    def __init__(self, key: str, settings: OAuthSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._msal: Any = None

    def token(self) -> str:
        """A token valid for at least the margin; fetched when needed."""
        with self._lock:
            now = self._clock()
            if self._token is None or \
                    self._token.expires_at - self.settings.refresh_margin_seconds <= now:
                try:
                    self._token = self._fetch()
                except ConfigError as exc:  # the token file or a secret: the desk's setup
                    raise OAuthError(str(exc)) from exc
                log.info("%s: new access token, valid for %.0f s", self.key,
                         self._token.expires_at - now)
            return self._token.access_token

    def invalidate(self) -> None:
        """The server refused the token: the next ``token()`` fetches a new one."""
        with self._lock:
            self._token = None

    # -- the grants ---------------------------------------------------------

    def _fetch(self) -> Token:
        s = self.settings
        if s.flow == "client_credentials":
            return self._client_credentials()
        stored = read_secret_file(f"{self.key}.token_file", self._token_file(),
                                  encryption_key=s.token_key(self.key))
        if stored is None:
            raise ConsentRevoked(
                f"{self.key}: no refresh token in {s.token_file}: run "
                f"`madoguchi auth login {self.key.removeprefix('sources.')}` once")
        token = self._refresh(stored)
        if token.refresh_token and token.refresh_token != stored:
            self.keep_refresh_token(token.refresh_token)
        return token

    def _token_file(self) -> Any:
        assert self.settings.token_file is not None  # the settings' validator says so
        return self.settings.token_file

    def keep_refresh_token(self, refresh_token: str) -> None:
        write_secret_file(f"{self.key}.token_file", self._token_file(), refresh_token,
                          encryption_key=self.settings.token_key(self.key))

    def _client_credentials(self) -> Token:
        s = self.settings
        if s.provider == "microsoft":
            app = self.msal_app()
            # MSAL keeps the app token in its cache; after a refusal the
            # cache is emptied first, so the token really is new.
            if self._token is None:
                app.remove_tokens_for_client()
            return self._from_msal(app.acquire_token_for_client(scopes=s.scope_list()))
        session = self.authlib_session()
        return self._from_authlib(lambda: session.fetch_token(
            s.token_endpoint(), grant_type="client_credentials"))

    def _refresh(self, refresh_token: str) -> Token:
        s = self.settings
        if s.provider == "microsoft":
            result = self.msal_app().acquire_token_by_refresh_token(
                refresh_token, scopes=s.scope_list())
            return self._from_msal(result, refresh_token)
        session = self.authlib_session()
        return self._from_authlib(lambda: session.refresh_token(
            s.token_endpoint(), refresh_token=refresh_token), refresh_token)

    # -- the libraries -------------------------------------------------------

    def msal_app(self, *, public: bool = False) -> Any:
        """MSAL's application: confidential with a client secret, else (or ``public``) public.

        The device-code flow is a public client's (``madoguchi auth login``).
        """
        if self._msal is None or public:
            import msal

            s = self.settings
            secret = None if public else s.client_secret(self.key)
            # Another authority than Microsoft's own (a sovereign cloud, a
            # test's) is taken as given: no instance discovery at Microsoft.
            own = s.authority is None
            import requests

            options: dict[str, Any] = {
                "authority": s.authority_url(), "http_client": _pinned(requests.Session(), s),
                "validate_authority": own, "instance_discovery": None if own else False,
            }
            try:
                if secret:
                    app = msal.ConfidentialClientApplication(
                        s.client_id, client_credential=secret, **options)
                else:
                    app = msal.PublicClientApplication(s.client_id, **options)
            except (ValueError, OSError) as exc:
                raise OAuthError(f"{self.key}: {s.authority_url()}: {exc}") from exc
            if public:
                return app
            self._msal = app
        return self._msal

    def authlib_session(self) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        s = self.settings
        session = OAuth2Session(s.client_id, s.client_secret(self.key),
                                scope=" ".join(s.scope_list()) or None)
        return _pinned(session, s)

    def _from_msal(self, result: dict[str, Any], refresh_token: str | None = None) -> Token:
        if "access_token" not in result:
            raise refused(self.key, str(result.get("error")),
                          str(result.get("error_description", "")))
        return Token(result["access_token"], self._clock() + float(result["expires_in"]),
                     result.get("refresh_token") or refresh_token)

    def _from_authlib(self, call: Callable[[], dict[str, Any]],
                      refresh_token: str | None = None) -> Token:
        from authlib.integrations.base_client.errors import OAuthError as AuthlibError
        from requests import RequestException

        try:
            result = call()
        except AuthlibError as exc:
            raise refused(self.key, str(exc.error), str(exc.description or "")) from exc
        except RequestException as exc:
            raise OAuthError(f"{self.key}: the token endpoint failed: {exc}") from exc
        return Token(result["access_token"], self._clock() + float(result["expires_in"]),
                     result.get("refresh_token") or refresh_token)


def _pinned(session: Any, settings: OAuthSettings) -> Any:
    """``session`` with the timeout, and ``ca_file`` given on every request.

    Given per request because requests lets REQUESTS_CA_BUNDLE in the
    environment override a session's own ``verify`` (psf/requests#3829).
    """
    session.request = functools.partial(
        session.request, timeout=settings.timeout_seconds,
        verify=str(settings.ca_file) if settings.ca_file else True)
    return session


def refused(key: str, error: str, description: str) -> OAuthError:
    """The error for a provider's refusal: ConsentRevoked when signing in again is the cure."""
    text = f"{key}: the provider refused the token ({error}: {' '.join(description.split())})"
    if error in ("invalid_grant", "interaction_required", "consent_required",
                 "unauthorized_client", "invalid_client"):
        return ConsentRevoked(
            f"{text}. The consent was revoked, the app's secret or the user's password "
            f"changed, or the refresh token expired: run `madoguchi auth login "
            f"{key.removeprefix('sources.')}` again (or renew the client secret)")
    return OAuthError(text)


_SOURCES: dict[tuple[str, str], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(key: str, settings: OAuthSettings) -> TokenSource:
    """The process's one ``TokenSource`` for ``key`` and ``settings``: polls share its token."""
    with _SOURCES_LOCK:
        index = (key, settings.model_dump_json())
        found = _SOURCES.get(index)
        if found is None:
            found = _SOURCES[index] = TokenSource(key, settings)
        return found
