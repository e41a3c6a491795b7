"""The web desk as an ASGI application (Starlette), on the desk's storage.

    from madoguchi.web.app import create_app
    app = create_app(storage)                          # the caller closes the storage
    app = create_app(storage, close_storage=True)      # closed at the app's shutdown
    app = create_app(storage, metrics=collector)       # and /metrics reports this

The application (``madoguchi.web_server``) builds it with the desk's own
collector (``madoguchi.health.metric_families``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from madoguchi.config import Settings
from madoguchi.config.web import WebSettings
from madoguchi.ticketing import presence
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.outbox import OutboxSender
from madoguchi.ticketing.storage import Storage
from madoguchi.web.auth import PasswordChecks, load_secret
from madoguchi.web.count_cache import CountCache
from madoguchi.web.http import DeskWeb, SecurityHeaders, choose_locale, error_page
from madoguchi.web.i18n import gettext as _
from madoguchi.web.live import COALESCE, QUEUE_EVERY, StreamRounds
from madoguchi.web.live_hub import LiveHub
from madoguchi.web.metrics import Collector
from madoguchi.web.refusal import EarlyRefusal, RefusalPage
from madoguchi.web.routes import routes
from madoguchi.web.templating import environment
from madoguchi.web.throttle import SignInThrottle

log = logging.getLogger("madoguchi.web")

SESSION_COOKIE = "madoguchi_session"


def web_settings(settings: Settings) -> WebSettings:
    """The ``[web]`` section, or its defaults while Settings has none."""
    value = getattr(settings, "web", None)
    return value if isinstance(value, WebSettings) else WebSettings()


def _outbox_round(storage: Storage) -> None:
    try:
        report = OutboxSender(storage.settings, storage.factory).send_due()
    except Exception:
        # The rows stay in the outbox; the daemon's next round sends them.
        log.exception("outbox: sending after a reply failed")
        return
    if report.sent or report.failed or report.retrying:
        log.info("outbox after a reply: %s", report)


class DeskApp(Starlette):
    """Starlette with the security headers outside everything, errors included.

    Starlette's own error middleware is the outermost layer of its stack, so
    a header middleware inside it never sees a 500; this one wraps it.
    """

    def build_middleware_stack(self) -> ASGIApp:
        inner = EarlyRefusal(super().build_middleware_stack(), self.state.desk,
                             self.state.refusal)
        return SecurityHeaders(inner, self.state.desk.web)


def create_app(storage: Storage, *, web: WebSettings | None = None,
               metrics: Collector | None = None, close_storage: bool = False) -> Starlette:
    """The web desk on ``storage`` (closed at shutdown with ``close_storage``).

    ``web`` overrides the ``[web]`` section (tests, embedding); ``metrics``
    is what GET /metrics reports (none given: /metrics answers 404).
    """
    settings = storage.settings
    web = web or web_settings(settings)
    secret = load_secret(web.secret_path(settings.storage_dir))
    state = DeskWeb(
        settings=settings,
        web=web,
        storage=storage,
        templates=environment(settings.tz, settings.support_number),
        secret=secret,
        throttle=SignInThrottle(free_failures=web.login_max_failures,
                                max_delay=web.login_lockout_seconds,
                                window=web.login_failure_window_seconds,
                                max_keys=web.login_tracked_keys),
        password_checks=PasswordChecks(web.max_password_checks),
        on_reply=(lambda: _outbox_round(storage)) if web.send_outbox_after_reply else None,
        metrics=metrics,
    )

    # One listener per process for every live page (web.live).
    live = LiveHub(storage.engine, web.live_poll_seconds, tend=StreamRounds(state),
                   tend_every=presence.BEAT.total_seconds(), queue_coalesce=COALESCE,
                   queue_every=QUEUE_EVERY)
    counts_kept = dialect_of(storage.engine).snapshot_per_statement

    # Kept only while the feed that clears them listens (from start-up, below).
    state.counts = CountCache(lambda: counts_kept and live.listening)
    live.on_ticket_change.append(state.counts.clear)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if "session" in request.scope:  # an unknown page speaks the session's language
            choose_locale(request, None)
        message = {404: _("ページが見つかりません。"),
                   405: _("この操作はできません。")}.get(status, _("エラーが発生しました。"))
        return error_page(state, request, status, message)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_page(state, request, 500,
                          _("内部エラーが発生しました。時間をおいてもう一度お試しください。"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if counts_kept:
            live.start()  # its word clears the kept counts, streams or none
        yield
        live.close()
        if close_storage:
            storage.close()

    app = DeskApp(
        routes=routes(),
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret.decode(),
                session_cookie=SESSION_COOKIE,
                # The row decides idle and absolute time; the cookie lasts the lifetime.
                max_age=int(web.session_max_hours * 3600),
                same_site="lax",
                https_only=web.secure_cookie,
            ),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
        max_body_size=web.max_upload_bytes + 1024 * 1024,
    )
    app.state.desk = state
    # The sign-in refusal's page, rendered once per language (web.refusal).
    app.state.refusal = RefusalPage(state)
    app.state.live = live
    return app
