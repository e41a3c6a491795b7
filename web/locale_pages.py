"""Choosing the desk's language: one's own on "個人設定" (/me), a user's on the sessions page.

The new language shows from the very next page: the redirect's flash is
written in it (``i18n.set_locale`` before the message is translated).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.models import Role
from madoguchi.ticketing.staff_locale import set_staff_locale
from madoguchi.web import i18n
from madoguchi.web.http import Ctx, endpoint
from madoguchi.web.i18n import gettext as _


@endpoint()
def my_settings(ctx: Ctx) -> Response:
    return ctx.render("settings.html", nav="settings")


@endpoint()
def set_my_locale(ctx: Ctx) -> Response:
    assert ctx.user is not None
    try:
        set_staff_locale(ctx.db, ctx.user.id, ctx.field("locale"), i18n.LOCALES)
    except ActionError:
        return ctx.redirect("/me", error=_("表示言語を選んでください。"))
    ctx.db.commit()
    i18n.set_locale(ctx.user.locale)
    ctx.request.session["locale"] = ctx.user.locale
    return ctx.redirect("/me", ok=_("表示言語を変更しました。"))


@endpoint(role=Role.SUPERVISOR)
def set_staff_locale_page(ctx: Ctx) -> Response:
    try:
        staff = set_staff_locale(ctx.db, parse_id(ctx.field("staff_id")), ctx.field("locale"),
                                 i18n.LOCALES)
    except ActionError:
        return ctx.redirect("/staff/sessions", error=_("対象が見つかりません。"))
    ctx.db.commit()
    return ctx.redirect("/staff/sessions", ok=_("%(name)s の表示言語を%(language)sにしました。")
                        % {"name": staff.name, "language": i18n.LOCALE_NAMES[staff.locale]})


def routes() -> list[BaseRoute]:
    return [
        Route("/me", my_settings),
        Route("/me/locale", set_my_locale, methods=["POST"]),
        Route("/staff/locale", set_staff_locale_page, methods=["POST"]),
    ]
