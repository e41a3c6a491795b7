"""A real OAuth 2.0 authorisation server on loopback, for the sign-in tests.

It issues and checks tokens as a provider does: the client-credentials,
refresh-token and device-code grants at its token endpoint, RFC 8628 device
authorisation, an OpenID configuration document where MSAL looks for one
(``/<tenant>/v2.0/.well-known/openid-configuration``), and RFC 7662
introspection, which Dovecot's ``oauth2`` passdb and the test SMTP listener
ask. Tokens expire after ``lifetime`` seconds; ``revoke(user)`` withdraws a
user's consent (its refresh and access tokens stop working), as an admin
revoking the app does. Clients speak HTTPS (MSAL insists on it); the
introspection endpoint is served over plain HTTP too, for Dovecot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TENANT = "madoguchi-test"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class _Access:
    user: str
    expires_at: float
    revoked: bool = False


@dataclass
class _State:
    lifetime: float = 3600.0
    clients: dict[str, str | None] = field(default_factory=dict)  # id -> secret (None: public)
    app_mailbox: dict[str, str] = field(default_factory=dict)  # client id -> mailbox (app-only)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    access: dict[str, _Access] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # device code -> flow
    revoked_users: set[str] = field(default_factory=set)
    grants: list[tuple[str, str]] = field(default_factory=list)  # (grant, user) issued
    signing_in: str | None = None  # who consents at the authorization endpoint
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> user,
    # PKCE challenge, redirect_uri
    introspected: int = 0
    rotate: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class OAuthServer:
    """The running server: its addresses, and what a test does to its tokens."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.state = _State()
        self._https = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True)
                         for s in (self._https, self._http)]

    def start(self) -> OAuthServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self._https.server_address[1]}"

    @property
    def authority(self) -> str:
        """What MSAL's ``authority`` is set to (the tenant goes after it)."""
        return self.base

    @property
    def token_url(self) -> str:
        return f"{self.base}/{TENANT}/oauth2/v2.0/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.base}/{TENANT}/oauth2/v2.0/authorize"

    @property
    def device_url(self) -> str:
        return f"{self.base}/{TENANT}/oauth2/v2.0/devicecode"

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/introspect"

    def add_client(self, client_id: str, secret: str | None = None,
                   app_mailbox: str | None = None) -> None:
        with self.state.lock:
            self.state.clients[client_id] = secret
            if app_mailbox:
                self.state.app_mailbox[client_id] = app_mailbox

    def consent(self, user: str) -> str:
        """A refresh token for ``user``, as after a sign-in."""
        token = secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.refresh[token] = user
            self.state.revoked_users.discard(user)
        return token

    def approve(self, user: str) -> bool:
        """The person enters the shown code and consents: the pending device flow is theirs."""
        with self.state.lock:
            for flow in self.state.devices.values():
                if flow["user"] is None:
                    flow["user"] = user
                    return True
        return False

    def revoke(self, user: str) -> None:
        with self.state.lock:
            self.state.revoked_users.add(user)
            for access in self.state.access.values():
                if access.user == user:
                    access.revoked = True

    def expire_all(self) -> None:
        """Every access token issued so far expires now (the clock moved on)."""
        with self.state.lock:
            for access in self.state.access.values():
                access.expires_at = 0

    def active_user(self, token: str) -> str | None:
        """Whom an access token names while it is valid (the introspection's answer)."""
        return _introspect(self.state, token)

    def grants(self, kind: str, user: str) -> int:
        """How many tokens of grant ``kind`` were issued for ``user``."""
        with self.state.lock:
            return sum(1 for grant, who in self.state.grants if (grant, who) == (kind, user))


def _introspect(state: _State, token: str) -> str | None:
    with state.lock:
        state.introspected += 1
        access = state.access.get(token)
        if access is None or access.revoked or access.expires_at <= time.time():
            return None
        return access.user


def _issue(state: _State, grant: str, user: str, *, refresh: bool) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    state.access[token] = _Access(user, time.time() + state.lifetime)
    state.grants.append((grant, user))
    answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                              "expires_in": int(state.lifetime), "scope": "mail"}
    if refresh:
        rt = secrets.token_urlsafe(24)
        state.refresh[rt] = user
        answer["refresh_token"] = rt
    return answer


def _error(code: str, description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": code, "error_description": description}


def _client_ok(state: _State, form: dict[str, str], headers: Any) -> str | None:
    """The client id when it authenticated (basic or in the body; none for a public one)."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    auth = headers.get("Authorization", "")
    if auth.startswith("Basic "):
        client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
    if client_id not in state.clients:
        return None
    expected = state.clients[client_id]
    return client_id if expected is None or expected == secret else None


def _token(state: _State, form: dict[str, str], headers: Any) -> tuple[int, dict[str, Any]]:
    grant = form.get("grant_type", "")
    with state.lock:
        client = _client_ok(state, form, headers)
        if client is None:
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        if grant == "client_credentials":
            mailbox = state.app_mailbox.get(client)
            if mailbox is None or mailbox in state.revoked_users:
                return _error("unauthorized_client", "AADSTS700016: the app has no consent")
            return 200, _issue(state, grant, mailbox, refresh=False)
        if grant == "refresh_token":
            user = state.refresh.get(form.get("refresh_token", ""))
            if user is None or user in state.revoked_users:
                return _error("invalid_grant", "AADSTS65001: the user or administrator "
                              "has not consented to use the application")
            if state.rotate:
                del state.refresh[form["refresh_token"]]
            answer = _issue(state, grant, user, refresh=state.rotate)
            return 200, answer
        if grant == "authorization_code":
            user, challenge, redirect = state.codes.pop(form.get("code", ""), ("", "", ""))
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if not user or digest.rstrip(b"=").decode() != challenge \
                    or form.get("redirect_uri") != redirect:
                return _error("invalid_grant", "bad code, PKCE verifier or redirect_uri")
            return 200, _issue(state, grant, user, refresh=True)
        if grant in (DEVICE_GRANT, "device_code"):
            flow = state.devices.get(form.get("device_code", ""))
            if flow is None:
                return _error("expired_token", "no such device code")
            if flow["user"] is None:
                return _error("authorization_pending", "the user has not signed in yet")
            del state.devices[form["device_code"]]
            return 200, _issue(state, "device_code", flow["user"], refresh=True)
        return _error("unsupported_grant_type", grant)


def _device(state: _State) -> dict[str, Any]:
    code = secrets.token_urlsafe(16)
    user_code = secrets.token_hex(4).upper()
    with state.lock:
        state.devices[code] = {"user": None}
    return {"device_code": code, "user_code": user_code, "expires_in": 60, "interval": 1,
            "verification_uri": "https://microsoft.com/devicelogin",
            "message": f"To sign in, enter the code {user_code}"}


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.startswith(f"/{TENANT}/oauth2/v2.0/authorize"):
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                code = secrets.token_urlsafe(16)
                with state.lock:
                    user = state.signing_in
                    if user:
                        state.codes[code] = (user, query.get("code_challenge", ""),
                                             query.get("redirect_uri", ""))
                answer = (f"code={code}&state={query.get('state', '')}" if user
                          else "error=access_denied&error_description=declined")
                self.send_response(302)
                self.send_header("Location", f"{query.get('redirect_uri')}?{answer}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.endswith("/.well-known/openid-configuration"):
                host = f"https://{self.headers['Host']}/{TENANT}"
                self._send(200, {
                    "issuer": f"{host}/v2.0",
                    "authorization_endpoint": f"{host}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{host}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{host}/oauth2/v2.0/devicecode",
                })
                return
            self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            if self.path.endswith("/introspect"):
                user = _introspect(state, form.get("token", ""))
                self._send(200, {"active": True, "username": user} if user
                           else {"active": False})
            elif self.path.endswith("/token"):
                self._send(*_token(state, form, self.headers))
            elif self.path.endswith("/devicecode"):
                self._send(200, _device(state))
            else:
                self._send(404, {"error": "not_found"})

    return Handler
