"""The web desk as an ASGI application (Starlette), built from the desk's settings.

    from madoguchi.web.app import create_app
    app = create_app(settings)              # opens its own Desk, closed at shutdown
    app = create_app(settings, desk=desk)   # or shares one (the daemon, the tests)
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

from madoguchi.app import Desk
from madoguchi.config import Settings
from madoguchi.config.web import WebSettings
from madoguchi.ticketing.outbox import OutboxSender
from madoguchi.web.auth import LoginThrottle, load_secret
from madoguchi.web.http import DeskWeb, SecurityHeaders, error_page
from madoguchi.web.routes import routes
from madoguchi.web.templating import environment

log = logging.getLogger("madoguchi.web")

SESSION_COOKIE = "madoguchi_session"


def web_settings(settings: Settings) -> WebSettings:
    """The ``[web]`` section, or its defaults while Settings has none."""
    value = getattr(settings, "web", None)
    return value if isinstance(value, WebSettings) else WebSettings()


def _outbox_round(desk: Desk) -> None:
    try:
        report = OutboxSender(desk.settings, desk.factory).send_due()
    except Exception:
        # The rows stay in the outbox; the daemon's next round sends them.
        log.exception("outbox: sending after a reply failed")
        return
    if report.sent or report.failed or report.retrying:
        log.info("outbox after a reply: %s", report)


def create_app(settings: Settings, *, desk: Desk | None = None,
               web: WebSettings | None = None) -> Starlette:
    """The web desk for ``settings``; shares ``desk`` if given, else opens its own.

    ``web`` overrides the ``[web]`` section (tests, embedding).
    """
    web = web or web_settings(settings)
    owned = desk is None
    the_desk = desk or Desk.open(settings)
    secret = load_secret(web.secret_path(settings.storage_dir))
    state = DeskWeb(
        settings=settings,
        web=web,
        desk=the_desk,
        templates=environment(settings.tz, settings.support_number),
        secret=secret,
        throttle=LoginThrottle(web.login_max_failures, web.login_lockout_seconds),
        on_reply=(lambda: _outbox_round(the_desk)) if web.send_outbox_after_reply else None,
    )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "ページが見つかりません。",
                   405: "この操作はできません。"}.get(status, "エラーが発生しました。")
        return error_page(state, request, status, message)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_page(state, request, 500,
                          "内部エラーが発生しました。時間をおいてもう一度お試しください。")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if owned:
            the_desk.close()

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret.decode(),
                session_cookie=SESSION_COOKIE,
                max_age=web.session_idle_minutes * 60,
                same_site="lax",
                https_only=web.cookie_secure,
            ),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
        max_body_size=web.max_upload_bytes + 1024 * 1024,
    )
    app.state.desk = state
    return app
