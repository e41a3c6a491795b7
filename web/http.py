"""The plumbing every page shares: sign-in check, CSRF, security headers, rendering.

Handlers are plain functions of a ``Ctx`` (request, database session, staff
user, form); ``endpoint`` runs them in a worker thread (SQLAlchemy sessions
block), after it has read the form, checked the CSRF token of every POST and
found the signed-in user. A GET without a session is sent to the sign-in
page; a POST without a valid token is refused with 403 before anything is
read from the database.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from madoguchi.config import Settings
from madoguchi.config.web import WebSettings
from madoguchi.ticketing import sessions
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.models import Role, StaffUser
from madoguchi.ticketing.storage import Storage
from madoguchi.web import i18n
from madoguchi.web.auth import PasswordChecks
from madoguchi.web.client import client_address, over_https
from madoguchi.web.count_cache import CountCache
from madoguchi.web.i18n import gettext as _
from madoguchi.web.metrics import Collector
from madoguchi.web.templating import sla_state
from madoguchi.web.throttle import SignInThrottle

log = logging.getLogger("madoguchi.web")

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
# For what staff open but the desk did not write (mail HTML, attachments):
# nothing runs, nothing is fetched, and it is its own opaque origin.
SANDBOX_CSP = "default-src 'none'; sandbox; frame-ancestors 'self'; base-uri 'none'"
_HEADERS = {
    b"content-security-policy": PAGE_CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
    # every POST, and the origin check could not tell our forms from a sandboxed frame.
    b"referrer-policy": b"same-origin",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), payment=()",
}


def security_headers(present: set[bytes], *, static: bool, hsts: int | None
                     ) -> list[tuple[bytes, bytes]]:
    """The headers to add to a response that has the headers ``present``."""
    added = [(name, value) for name, value in _HEADERS.items() if name not in present]
    if b"cache-control" not in present and not static:
        # Pages carry customers' data: no copy on disk or in a proxy.
        added.append((b"cache-control", b"no-store"))
    if hsts is not None and b"strict-transport-security" not in present:
        added.append((b"strict-transport-security", f"max-age={hsts}".encode()))
    return added


class SecurityHeaders:
    """Adds the desk's security headers to every response that has not set its own.

    It wraps the whole application (errors included, ``web.app``): a 500 or a
    refused request carries them too. HSTS is sent over HTTPS only.
    """

    def __init__(self, app: ASGIApp, web: WebSettings | None = None) -> None:
        self.app = app
        self.web = web or WebSettings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        web = self.web
        hsts = web.hsts_max_age if over_https(scope, tuple(web.trusted_proxies),
                                              web.public_url) else None

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                message["headers"] = headers + security_headers(present, static=static,
                                                                hsts=hsts)
            await send(message)

        await self.app(scope, receive, send_wrapper)


@dataclass
class DeskWeb:
    """What the web desk needs at hand, built once by create_app."""

    settings: Settings
    web: WebSettings
    storage: Storage
    templates: jinja2.Environment
    secret: bytes
    throttle: SignInThrottle
    # At most [web] max_password_checks Argon2 checks at once, one kept for clean addresses.
    password_checks: PasswordChecks
    on_reply: Callable[[], None] | None = None
    # What /metrics reports, given by the application (madoguchi.health); None: no /metrics.
    metrics: Collector | None = None
    # The queue views' counts until a ticket changes (web.count_cache); set by create_app.
    counts: CountCache = field(default_factory=lambda: CountCache(lambda: False))

    @property
    def limits(self) -> sessions.Limits:
        return sessions.Limits(timedelta(minutes=self.web.session_idle_minutes),
                               timedelta(hours=self.web.session_max_hours))

    def client(self, request: Request) -> str:
        return client_address(request.scope, tuple(self.web.trusted_proxies))


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _same_origin(request: Request) -> bool:
    # Browsers send Origin with every POST; a form posted from a sandboxed
    # frame (an HTML mail) says "null" and is refused.
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def csrf_ok(request: Request, form: FormData) -> bool:
    expected = request.session.get("csrf")
    given = form.get("csrf")
    if not isinstance(expected, str) or not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(expected, given) and _same_origin(request)


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


def current_user(request: Request, db: Session, state: DeskWeb) -> StaffUser | None:
    """The signed-in staff user, or None: the session's row decides, not the cookie."""
    token = request.session.get("sid")
    if not isinstance(token, str):
        return None
    row = sessions.live_session(db, token, _now(), state.limits)
    user = row.staff if row is not None else None
    if db.dirty and request.headers.get("x-madoguchi-live") == "1":
        # A page redrawing itself (the live queue) is not activity: the idle limit holds.
        db.rollback()
    elif db.dirty:
        db.commit()  # expired, or seen again: a short write
    if user is None:
        request.session.pop("sid", None)
        return None
    return user


def start_session(request: Request, db: Session, user: StaffUser, state: DeskWeb) -> None:
    """A new session for a user who just signed in (never the anonymous one continued)."""
    flashes = request.session.get("flash", [])
    token = sessions.open_session(db, user, _now(), client=state.client(request),
                                  user_agent=request.headers.get("user-agent", ""))
    db.commit()
    request.session.clear()
    request.session.update({"sid": token, "csrf": secrets.token_urlsafe(32), "flash": flashes})


def end_session(request: Request, db: Session) -> None:
    """Sign-out: the row is revoked, so a copy of the cookie is worth nothing."""
    token = request.session.get("sid")
    if isinstance(token, str):
        sessions.revoke(db, token, _now())
        db.commit()
    locale = request.session.get("locale")
    request.session.clear()
    if locale is not None:
        request.session["locale"] = locale  # the sign-in page stays in the user's language


@dataclass
class Ctx:
    request: Request
    db: Session
    state: DeskWeb
    user: StaffUser | None
    form: FormData | None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def web(self) -> WebSettings:
        return self.state.web

    @property
    def storage(self) -> Storage:
        return self.state.storage

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def upload(self, name: str) -> UploadFile | None:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, UploadFile) else None

    def param(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def flash(self, text: str, kind: str = "ok") -> None:
        self.request.session["flash"] = [*self.request.session.get("flash", []), [kind, text]]

    def redirect(self, url: str, *, ok: str | None = None, error: str | None = None) -> Response:
        if ok:
            self.flash(ok, "ok")
        if error:
            self.flash(error, "error")
        return RedirectResponse(url, status_code=303)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        flashes = self.request.session.pop("flash", [])
        products = self.storage.deadlines.products
        window = timedelta(minutes=self.web.due_soon_minutes)

        def soon(ticket: Any) -> timedelta:
            return products.get(getattr(ticket, "product", None)).due_soon or window

        html = self.state.templates.get_template(template).render(
            user=self.user,
            csrf=csrf_token(self.request),
            flashes=flashes,
            now=self.now,
            today=self.now.astimezone(self.settings.tz).date(),
            sla=lambda t: sla_state(t, self.now, soon(t)),
            nav=context.pop("nav", ""),
            **context,
        )
        return HTMLResponse(html, status_code=status)


Handler = Callable[[Ctx], Response]


def error_html(state: DeskWeb, status: int, message: str,
               back: tuple[str, str] | None = None) -> str:
    """An error page's HTML; ``message`` and ``back`` are already in the current language."""
    back = back or ("/queue", _("キューへ戻る"))
    return state.templates.get_template("error.html").render(
        user=None, csrf="", flashes=[], nav="", status=status, message=message, back=back
    )


def error_page(state: DeskWeb, request: Request, status: int, message: str,
               back: tuple[str, str] | None = None) -> HTMLResponse:
    """An error page; ``message`` and ``back`` are already in the request's language."""
    return HTMLResponse(error_html(state, status, message, back), status_code=status)


def choose_locale(request: Request, user: StaffUser | None) -> None:
    """The language of this request: the user's own choice; without a user (the sign-in
    page) the last choice made in this browser's session; else Japanese.

    ``Accept-Language`` is not followed: the desk is Japanese first, and a browser set
    to English (a test browser's default) would get an English sign-in page."""
    if user is not None:
        chosen = i18n.valid_locale(user.locale) or i18n.SOURCE_LOCALE
        if request.session.get("locale") != chosen:
            request.session["locale"] = chosen
    else:
        chosen = i18n.valid_locale(request.session.get("locale")) or i18n.SOURCE_LOCALE
    i18n.set_locale(chosen)


def _run(fn: Handler, request: Request, form: FormData | None, state: DeskWeb,
         auth: bool, role: Role | None) -> Response:
    with state.storage.factory() as db:
        user = current_user(request, db, state) if auth else None
        choose_locale(request, user)
        if auth and user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/queue"
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if role is not None and user is not None and user.role != role:
            return error_page(state, request, 403, _("この操作には管理者の権限が必要です。"))
        try:
            return fn(Ctx(request, db, state, user, form))
        finally:
            if request.method == "POST":  # an action here: the next page counts afresh
                state.counts.clear()


class IdConvertor(Convertor[int]):
    """``{id:id}`` in a route: ASCII digits of a 64-bit id; anything else is no such page."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        found = parse_id(value)
        # 0 or beyond 2^63 - 1 names no row: -1 is looked up and not found.
        return found if found is not None else -1

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())


def _has_nul(request: Request, form: FormData | None) -> bool:
    # A NUL byte is in no name, number or text the desk keeps (PostgreSQL refuses it).
    values: list[object] = [*request.query_params.values(), *request.path_params.values()]
    if form is not None:
        values.extend(form.values())
    return any(isinstance(v, str) and "\x00" in v for v in values)


def endpoint(*, auth: bool = True, role: Role | None = None,
             ) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A handler run in a worker thread after the form, CSRF and sign-in checks."""
    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            state: DeskWeb = request.app.state.desk
            form: FormData | None = None
            if request.method == "POST":
                try:
                    # 600 fields: the queue's bulk form ticks up to a page (500) of tickets.
                    form = await request.form(max_files=1, max_fields=600,
                                              max_part_size=state.web.max_upload_bytes)
                except MultiPartException:
                    choose_locale(request, None)
                    return error_page(state, request, 400, _("送信された内容を読めませんでした。"))
                if not csrf_ok(request, form):
                    log.warning("refused a POST to %s without a valid CSRF token",
                                request.url.path)
                    choose_locale(request, None)
                    return error_page(state, request, 403, _(
                        "フォームの有効期限が切れました。ページを開き直してください。"))
            if _has_nul(request, form):
                if form is not None:
                    await form.close()
                choose_locale(request, None)
                return error_page(state, request, 400, _("送信された内容を読めませんでした。"))
            try:
                return await run_in_threadpool(_run, fn, request, form, state, auth, role)
            finally:
                if form is not None:
                    await form.close()

        handler.__name__ = fn.__name__
        return handler

    return wrap
