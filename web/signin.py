"""Signing in and out, and the supervisor's view of who is signed in.

Sign-in asks the throttle (``web.throttle``) before anything costly: an
address that must wait is refused (429, with Retry-After) from the raw bytes
of its request or, failing that, before the session, the form or the
database is read (``web.refusal``); then the account is looked up and an
attempt *reserved* before Argon2 runs, at most ``[web] max_password_checks``
at once (503 when none frees in time), on threads of lower priority than the
event loop (``PasswordChecks.run``); the reservation is ``finished`` when the
check is over, so that after a pause a place has one check under way at most.
Attempts whose password was checked are written to ``sign_in_attempts``.
Sign-out revokes the session's row.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from madoguchi.ticketing import sessions
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.models import Role, StaffUser
from madoguchi.ticketing.security_models import SignInAttempt
from madoguchi.web.auth import TooBusyError, check_password, find_user
from madoguchi.web.http import (
    Ctx,
    current_user,
    end_session,
    endpoint,
    start_session,
)
from madoguchi.web.i18n import N_
from madoguchi.web.i18n import gettext as _
from madoguchi.web.refusal import PAUSED
from madoguchi.web.throttle import Refusal, address_key

log = logging.getLogger("madoguchi.web")

WRONG = N_("ログイン名またはパスワードが正しくありません。")
BUSY = N_("ただいま混み合っています。少し時間をおいてからお試しください。")


def safe_next(target: str) -> str:
    # Only a path on this site: never "//host" or "https://host".
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


@endpoint(auth=False)
def login_form(ctx: Ctx) -> Response:
    if current_user(ctx.request, ctx.db, ctx.state) is not None:
        return RedirectResponse(safe_next(ctx.param("next")), status_code=303)
    return ctx.render("login.html", next=safe_next(ctx.param("next")), login="", error="")


def _refused(ctx: Ctx, name: str, target: str, wait: float) -> Response:
    response = ctx.render("login.html", 429, next=target, login=name, error=_(PAUSED))
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@endpoint(auth=False)
def login(ctx: Ctx) -> Response:
    name = ctx.field("login").strip()[:100]
    password = ctx.field("password")[:1024]
    target = safe_next(ctx.field("next"))
    client = ctx.state.client(ctx.request)
    throttle, address = ctx.state.throttle, address_key(client)
    user = find_user(ctx.db, name) if name else None
    reserved = throttle.reserve(address, f"staff:{user.id}" if user is not None else None)
    if isinstance(reserved, Refusal):
        log.warning("sign-in of %r from %s refused: too many failures", name, client)
        return _refused(ctx, name, target, reserved.retry_after)
    checks = ctx.state.password_checks
    try:
        with checks.slot(clean=reserved.clean):
            ok = bool(name and password) and checks.run(lambda: check_password(user, password))
    except TooBusyError:
        if reserved.clean:
            throttle.succeeded(reserved)  # a clean place is not punished for the crowd
        # Elsewhere the refusal counts as a failure: a flood runs into the throttle.
        return ctx.render("login.html", 503, next=target, login=name, error=_(BUSY))
    finally:
        throttle.finished(reserved)
    ctx.db.add(SignInAttempt(at=ctx.now, login=name, client=client[:64], succeeded=ok))
    if not ok or user is None:
        ctx.db.commit()
        log.info("failed sign-in for %r from %s", name, client)
        return ctx.render("login.html", 401, next=target, login=name, error=_(WRONG))
    throttle.succeeded(reserved)
    start_session(ctx.request, ctx.db, user, ctx.state)  # commits a rehashed password too
    log.info("%s signed in from %s", user.login, client)
    return RedirectResponse(target, status_code=303)


@endpoint()
def logout(ctx: Ctx) -> Response:
    end_session(ctx.request, ctx.db)
    ctx.flash(_("ログアウトしました。"))
    return RedirectResponse("/login", status_code=303)


# -- the supervisor's view of sessions ---------------------------------------


@endpoint(role=Role.SUPERVISOR)
def staff_sessions(ctx: Ctx) -> Response:
    now = datetime.now(UTC)
    staff = ctx.db.query(StaffUser).order_by(StaffUser.login).all()
    live = {u.id: sessions.sessions_of(ctx.db, u.id, now, ctx.state.limits) for u in staff}
    return ctx.render("sessions.html", nav="sessions", staff=staff, live=live)


@endpoint(role=Role.SUPERVISOR)
def revoke_sessions(ctx: Ctx) -> Response:
    staff_id = parse_id(ctx.field("staff_id"))
    session_id = ctx.field("session_id")
    now = datetime.now(UTC)
    if session_id:
        done = sessions.revoke_session(ctx.db, session_id[:64], now)
        message = _("セッションを終了しました。") if done else _("そのセッションは終了済みです。")
    elif staff_id is not None and ctx.db.get(StaffUser, staff_id) is not None:
        n = sessions.revoke_all(ctx.db, staff_id, now, "revoked")
        message = _("%(n)s件のセッションを終了しました。") % {"n": n}
    else:
        return ctx.redirect("/staff/sessions", error=_("対象が見つかりません。"))
    ctx.db.commit()
    return ctx.redirect("/staff/sessions", ok=message)


def routes() -> list[BaseRoute]:
    return [
        Route("/login", login_form),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/staff/sessions", staff_sessions),
        Route("/staff/sessions/revoke", revoke_sessions, methods=["POST"]),
    ]
