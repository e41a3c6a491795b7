"""``madoguchi auth login``: sign in once, keep the refresh token.

The device-code flow (RFC 8628) by default; for Google, whose device flow
does not grant the Gmail scope, the authorization-code flow with PKCE and
a loopback redirect (``login = "browser"``).

The desk shows a code and an address; the mailbox's owner (or an admin)
opens the address anywhere, enters the code and consents. The refresh token
that comes back is kept by ``TokenSource.keep_refresh_token`` (a 0600 file,
encrypted when a key is configured). Microsoft's side is MSAL's
(``initiate_device_flow``, ``acquire_token_by_device_flow``); any other
provider's is Authlib's session posting to the device endpoint and polling
the token endpoint with the device grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from madoguchi.ticketing.oauth import DEVICE_GRANT, OAuthError, TokenSource, refused


def device_login(source: TokenSource, show: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the device-code flow for ``source`` and keep its refresh token; raise OAuthError."""
    s = source.settings
    if s.flow != "refresh_token":
        raise OAuthError(f"{source.key}: flow is client_credentials: the app signs in by "
                         "itself, there is nothing to authorise here")
    if s.login_flow() == "browser":
        refresh_token = _browser(source, show)
    elif s.provider == "microsoft":
        refresh_token = _msal_device(source, show)
    else:
        refresh_token = _authlib_device(source, show, sleep)
    if not refresh_token:
        raise OAuthError(f"{source.key}: the provider gave no refresh token (for Microsoft "
                         "ask for offline_access; for Google the device client must be a "
                         "\"TVs and Limited Input devices\" client)")
    source.keep_refresh_token(refresh_token)
    source.invalidate()


def _msal_device(source: TokenSource, show: Callable[[str], None]) -> str | None:
    app = source.msal_app(public=True)
    flow = app.initiate_device_flow(scopes=source.settings.scope_list())
    if "user_code" not in flow:
        raise refused(source.key, str(flow.get("error")), str(flow.get("error_description", "")))
    show(str(flow["message"]))
    result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise refused(source.key, str(result.get("error")),
                      str(result.get("error_description", "")))
    return result.get("refresh_token")


def _browser(source: TokenSource, show: Callable[[str], None],
             wait_seconds: float = 600) -> str | None:
    """The authorization-code flow with PKCE (RFC 7636) and a loopback redirect (RFC 8252).

    The consent page sends the browser back to a one-shot listener on
    127.0.0.1; from another machine, forward its port (``ssh -L``).
    """
    from authlib.common.security import generate_token
    from authlib.integrations.base_client.errors import OAuthError as AuthlibError
    from requests import RequestException

    got: dict[str, str] = {}

    class Back(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            got.update({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write("Madoguchi: サインインを受け付けました。この画面は閉じてください。\n"
                             .encode())

    s = source.settings
    with HTTPServer(("127.0.0.1", 0), Back) as listener:
        redirect = f"http://127.0.0.1:{listener.server_address[1]}/"
        session = source.authlib_session()
        session.redirect_uri = redirect
        session.code_challenge_method = "S256"
        verifier = generate_token(48)
        url, state = session.create_authorization_url(
            s.authorize_endpoint(), code_verifier=verifier, access_type="offline",
            prompt="consent")
        show(f"Open this address in a browser on this machine (from another one: ssh -L "
             f"{listener.server_address[1]}:127.0.0.1:{listener.server_address[1]}) "
             f"and sign in:\n{url}")
        listener.timeout = 1.0
        deadline = time.monotonic() + wait_seconds
        while "code" not in got and "error" not in got and time.monotonic() < deadline:
            listener.handle_request()
    if "code" not in got:
        raise refused(source.key, got.get("error", "timeout"),
                      got.get("error_description", "nobody signed in in time"))
    if got.get("state") != state:
        raise OAuthError(f"{source.key}: the answer's state does not match: not ours")
    try:
        token = session.fetch_token(s.token_endpoint(), code=got["code"],
                                    code_verifier=verifier, redirect_uri=redirect)
    except AuthlibError as exc:
        raise refused(source.key, str(exc.error), str(exc.description or "")) from exc
    except RequestException as exc:
        raise OAuthError(f"{source.key}: the token endpoint failed: {exc}") from exc
    refresh_token: str | None = token.get("refresh_token")
    return refresh_token


def _authlib_device(source: TokenSource, show: Callable[[str], None],
                    sleep: Callable[[float], None]) -> str | None:
    from authlib.integrations.base_client.errors import OAuthError as AuthlibError
    from requests import RequestException

    s = source.settings
    endpoint = s.device_endpoint()
    if endpoint is None:
        raise OAuthError(f"{source.key}: set device_url (the device authorization endpoint)")
    session = source.authlib_session()
    try:
        answer = session.post(endpoint, data={"client_id": s.client_id,
                                              "scope": " ".join(s.scope_list())},
                              withhold_token=True)
        flow = answer.json()
    except (RequestException, ValueError) as exc:
        raise OAuthError(f"{source.key}: the device endpoint failed: {exc}") from exc
    if "device_code" not in flow:
        raise refused(source.key, str(flow.get("error")), str(flow.get("error_description", "")))
    address = flow.get("verification_uri") or flow.get("verification_url")
    show(f"Open {address} and enter the code {flow['user_code']}")
    interval = float(flow.get("interval", 5))
    deadline = time.monotonic() + float(flow.get("expires_in", 900))
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            token = session.fetch_token(s.token_endpoint(), grant_type=DEVICE_GRANT,
                                        device_code=flow["device_code"])
        except AuthlibError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5
                continue
            raise refused(source.key, str(exc.error), str(exc.description or "")) from exc
        except RequestException as exc:
            raise OAuthError(f"{source.key}: the token endpoint failed: {exc}") from exc
        refresh_token: str | None = token.get("refresh_token")
        return refresh_token
    raise OAuthError(f"{source.key}: nobody entered the code in time; run the command again")
