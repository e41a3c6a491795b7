"""A sign-in from a place the throttle makes wait, refused before anything costly runs.

While ``web.throttle`` makes an address wait, every ``POST /login`` from it
gets the same answer: 429, the "wait a while" page, ``Retry-After``. A flood
of guesses is almost only such requests, so they are answered on two early
paths, both of which only *ask* the throttle (``address_wait``) and change
nothing:

- ``RawRefusal`` — from the raw bytes a connection received, before uvicorn's
  HTTP parser and the application (``madoguchi.web_guard`` calls it): a
  complete ``POST /login`` at the front of the bytes, from a peer that must
  wait, is answered with the pre-rendered response written straight to the
  transport; the keep-alive connection stays open for the next request.
  Whatever it does not recognise for certain — a request split across reads,
  chunked or ``Expect: 100-continue`` bodies, ``Connection: close``,
  HTTP/1.0, a malformed header, a peer that is a trusted proxy (whose client
  is in ``X-Forwarded-For``) — goes on to uvicorn as before;
- ``EarlyRefusal`` — the same refusal as the application's outermost layer,
  for what the raw path left alone: outside the session, form and CSRF
  layers, so it costs no cookie, no form parsing, no worker thread.

The page is rendered once per language at start (``RefusalPage``); an
anonymous visitor gets the desk's default language, Japanese, as the sign-in
page does before anyone chose. It carries every security header the desk's
responses carry (``web.http.security_headers``) and no session cookie.
"""

from __future__ import annotations

import contextvars
import email.utils
import math
import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from madoguchi.web import i18n
from madoguchi.web.client import client_address, from_trusted_proxy, over_https
from madoguchi.web.http import DeskWeb, error_html, security_headers
from madoguchi.web.i18n import N_
from madoguchi.web.throttle import address_key

PAUSED = N_("失敗が続いたため、しばらく時間をおいてからお試しください。")
BACK = N_("ログイン画面へ戻る")

LOGIN = b"/login"
MAX_HEAD = 8 * 1024  # a sign-in's request line and headers: more is left to uvicorn
MAX_BODY = 4 * 1024  # the sign-in form (login, password, csrf, next)
# A header name as RFC 9110 allows it (h11 refuses the rest: uvicorn answers 400).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# Headers after which the raw path cannot answer for certain what uvicorn would.
_LEAVE = frozenset((b"transfer-encoding", b"expect", b"upgrade"))


def _wait_header(wait: float) -> bytes:
    return str(max(1, math.ceil(wait))).encode()


class RefusalPage:
    """The 429 page of a sign-in made to wait, rendered once per language."""

    def __init__(self, state: DeskWeb) -> None:
        self.hsts = state.web.hsts_max_age
        self.pages = {locale: self._render(state, locale).encode() for locale in i18n.LOCALES}
        self.default = self.pages[i18n.SOURCE_LOCALE]

    @staticmethod
    def _render(state: DeskWeb, locale: str) -> str:
        def render() -> str:
            i18n.set_locale(locale)
            return error_html(state, 429, i18n.gettext(PAUSED),
                              back=("/login", i18n.gettext(BACK)))

        return contextvars.copy_context().run(render)  # the caller's language unchanged

    def headers(self, wait: float, *, https: bool, secured: bool
                ) -> list[tuple[bytes, bytes]]:
        """The page's headers; with ``secured`` the security headers too (the raw path's
        response passes no SecurityHeaders layer)."""
        headers = [(b"content-type", b"text/html; charset=utf-8"),
                   (b"content-length", str(len(self.default)).encode()),
                   (b"retry-after", _wait_header(wait))]
        if secured:
            headers += security_headers({name for name, _ in headers}, static=False,
                                        hsts=self.hsts if https else None)
        return headers


class RawRefusal:
    """Answers a sign-in that must wait from the bytes of its request alone."""

    def __init__(self, state: DeskWeb, page: RefusalPage) -> None:
        self.throttle = state.throttle
        self.proxies = tuple(state.web.trusted_proxies)
        self.public_https = state.web.public_url.lower().startswith("https://")
        self.page = page
        self._date = (0, b"")
        self._heads: dict[tuple[bytes, bool], bytes] = {}

    def key_for(self, peer: str) -> str | None:
        """The throttle's key for a connection's peer, or None to leave it all to uvicorn."""
        if not peer or from_trusted_proxy(peer, self.proxies):
            return None  # behind a trusted proxy the client is in X-Forwarded-For
        return address_key(peer)

    def answer(self, data: bytes, key: str, *, tls: bool) -> tuple[bytes, int] | None:
        """The whole response to the request at the front of ``data`` and the bytes it
        took, when it is a sign-in the throttle makes ``key`` wait; else None."""
        if not data.startswith(b"POST /login"):
            return None
        length = request_length(data)
        if length is None:
            return None
        wait = self.throttle.address_wait(key)
        if not wait:
            return None
        return self._head(_wait_header(wait), tls or self.public_https) + self.page.default, length

    def _head(self, retry_after: bytes, https: bool) -> bytes:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True).encode())
            self._heads.clear()
        head = self._heads.get((retry_after, https))
        if head is None:
            lines = [b"HTTP/1.1 429 Too Many Requests", b"date: " + self._date[1]]
            lines += [name + b": " + value for name, value in
                      self.page.headers(float(retry_after), https=https, secured=True)]
            head = self._heads[(retry_after, https)] = b"\r\n".join(lines) + b"\r\n\r\n"
        return head


def request_length(data: bytes) -> int | None:
    """The length of the complete ``POST /login`` HTTP/1.1 request at the front of ``data``
    (headers and Content-Length body all there), or None for anything else."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if (len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1"
            or parts[1].partition(b"?")[0] != LOGIN):
        return None
    length: int | None = None
    host = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return None  # malformed, or a folded line: h11's to refuse
        name, value = name.lower(), value.strip(b" \t")
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 6:
                return None
            length = int(value)
        elif name == b"host":
            if host:
                return None
            host = True
        elif name in _LEAVE or (name == b"connection" and b"close" in value.lower()):
            return None
    if length is None or not host or length > MAX_BODY or len(data) < end + 4 + length:
        return None
    return end + 4 + length


class EarlyRefusal:
    """The same refusal as the application's outermost layer, for requests the raw path
    left to uvicorn (behind a trusted proxy, split across reads, …)."""

    def __init__(self, app: ASGIApp, state: DeskWeb, page: RefusalPage) -> None:
        self.app = app
        self.state = state
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/login":
            await self.app(scope, receive, send)
            return
        proxies = tuple(self.state.web.trusted_proxies)
        wait = self.state.throttle.address_wait(address_key(client_address(scope, proxies)))
        if not wait:
            await self.app(scope, receive, send)
            return
        more = True
        while more:  # read the small form away, so that the connection stays usable
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        https = over_https(scope, proxies, self.state.web.public_url)
        # The SecurityHeaders layer outside adds the security headers.
        await send({"type": "http.response.start", "status": 429,
                    "headers": self.page.headers(wait, https=https, secured=False)})
        await send({"type": "http.response.body", "body": self.page.default})
