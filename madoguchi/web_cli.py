"""``madoguchi web`` and ``madoguchi users``: the web desk and its staff accounts.

Registered by madoguchi/cli.py::

    from madoguchi.web_cli import users_app, web_command
    app.command("web")(web_command)
    app.add_typer(users_app, name="users")

Passwords are never command-line arguments (they would land in the shell's
history and in ``ps``): they come from ``--password-file``, from the
environment variable MADOGUCHI_NEW_PASSWORD, or from a hidden prompt.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from madoguchi.cli_kit import fail, settings_of
from madoguchi.ticketing import sessions
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Role, StaffUser
from madoguchi.ticketing.storage import Storage
from madoguchi.web.auth import PasswordPolicyError, check_new_password, hash_password

PASSWORD_ENV = "MADOGUCHI_NEW_PASSWORD"
DEMO_LOGIN = "demo"

users_app = typer.Typer(help="Staff accounts of the web desk.", no_args_is_help=True)

PasswordFile = Annotated[
    Path | None,
    typer.Option("--password-file", help="Read the password from this file (first line).",
                 exists=True, dir_okay=False),
]


def _new_password(password_file: Path | None, *about: str) -> str:
    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise fail(f"give the password with --password-file or {PASSWORD_ENV}")
    try:
        check_new_password(password, user_inputs=about)
    except PasswordPolicyError as exc:
        raise fail(str(exc)) from exc
    return password


def set_password(desk: Storage, login: str, password: str, *, name: str = "",
                 role: Role = Role.AGENT, email: str = "", create: bool) -> StaffUser:
    """Create a staff account (``create``) or set an existing one's password."""
    with transaction(desk.factory) as session:
        user = session.scalar(select(StaffUser).where(StaffUser.login == login))
        if create:
            if user is not None:
                raise fail(f"a user {login!r} exists already")
            user = StaffUser(login=login, name=name or login, email=email, role=role,
                             active=True, password_hash=hash_password(password))
            session.add(user)
        else:
            if user is None:
                raise fail(f"no user {login!r}")
            user.password_hash = hash_password(password)
            user.active = True
            sessions.revoke_all(session, user.id, datetime.now(UTC), "password")
        session.flush()
        return user


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    login: str,
    name: Annotated[str, typer.Option("--name", help="The name staff see (e.g. 山田 花子).")],
    role: Annotated[Role, typer.Option("--role")] = Role.AGENT,
    email: Annotated[str, typer.Option("--email")] = "",
    password_file: PasswordFile = None,
) -> None:
    """Create a staff account that can sign in to the web desk."""
    login = login.strip()
    if not login or len(login) > 100 or any(c.isspace() for c in login):
        raise fail("a login is 1 to 100 characters without spaces")
    password = _new_password(password_file, login, name, email)
    desk = Storage.open(settings_of(ctx))
    try:
        set_password(desk, login, password, name=name, role=role, email=email, create=True)
    finally:
        desk.close()
    typer.echo(f"user {login} ({role.value}) created")


@users_app.command("passwd")
def users_passwd(ctx: typer.Context, login: str, password_file: PasswordFile = None) -> None:
    """Set a new password (every session of the user ends)."""
    password = _new_password(password_file, login)
    desk = Storage.open(settings_of(ctx))
    try:
        set_password(desk, login, password, create=False)
    finally:
        desk.close()
    typer.echo(f"password of {login} changed")


def _end_sessions(ctx: typer.Context, login: str, reason: str, *, disable: bool) -> int:
    """End every session of ``login`` (and stop the account with ``disable``)."""
    desk = Storage.open(settings_of(ctx))
    try:
        with transaction(desk.factory) as session:
            user = session.scalar(select(StaffUser).where(StaffUser.login == login))
            if user is None:
                raise fail(f"no user {login!r}")
            if disable:
                user.active = False
            return sessions.revoke_all(session, user.id, datetime.now(UTC), reason)
    finally:
        desk.close()


@users_app.command("disable")
def users_disable(ctx: typer.Context, login: str) -> None:
    """Stop a user from signing in (every session of the user ends)."""
    _end_sessions(ctx, login, "disabled", disable=True)
    typer.echo(f"user {login} disabled")


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every staff account."""
    desk = Storage.open(settings_of(ctx))
    try:
        with desk.factory() as session:
            users = session.scalars(select(StaffUser).order_by(StaffUser.login)).all()
            for u in users:
                state = "active" if u.active else "disabled"
                typer.echo(f"{u.login:<20} {u.role.value:<10} {state:<8} {u.name}"
                           + (f" <{u.email}>" if u.email else ""))
    finally:
        desk.close()


@users_app.command("sessions")
def users_sessions(ctx: typer.Context, login: str) -> None:
    """The user's live web sessions: since when, last seen, from where."""
    from madoguchi.web.app import web_settings

    settings = settings_of(ctx)
    web = web_settings(settings)
    limits = sessions.Limits(timedelta(minutes=web.session_idle_minutes),
                             timedelta(hours=web.session_max_hours))
    desk = Storage.open(settings)
    try:
        with desk.factory() as session:
            user = session.scalar(select(StaffUser).where(StaffUser.login == login))
            if user is None:
                raise fail(f"no user {login!r}")
            for s in sessions.sessions_of(session, user.id, datetime.now(UTC), limits):
                typer.echo(f"{s.id[:12]}  since {s.created_at:%Y-%m-%d %H:%M}Z  "
                           f"seen {s.last_seen_at:%Y-%m-%d %H:%M}Z  {s.client}  {s.user_agent}")
    finally:
        desk.close()


@users_app.command("revoke")
def users_revoke(ctx: typer.Context, login: str) -> None:
    """End every web session of the user now (the account stays usable)."""
    n = _end_sessions(ctx, login, "revoked", disable=False)
    typer.echo(f"{n} session(s) of {login} ended")


def ensure_demo_user(desk: Storage) -> tuple[str, str]:
    """A supervisor ``demo`` with a fresh random password, for the demo desk only."""
    password = secrets.token_urlsafe(12)
    with desk.factory() as session:
        exists = session.scalar(select(StaffUser.id).where(StaffUser.login == DEMO_LOGIN))
    set_password(desk, DEMO_LOGIN, password, name="デモ 担当者", role=Role.SUPERVISOR,
                 create=exists is None)
    return DEMO_LOGIN, password


def web_command(
    ctx: typer.Context,
    # No "[web]" in the help: Typer's rich markup takes it for a style and drops it.
    host: Annotated[str | None, typer.Option(
        help="Listen here (default: web.host of the configuration).")] = None,
    port: Annotated[int | None, typer.Option(
        help="And on this port (default: web.port of the configuration).")] = None,
    demo_user: Annotated[bool, typer.Option(
        "--demo-user", help="Create or reset the demo supervisor and print its password."
    )] = False,
) -> None:
    """Serve the staff web desk until interrupted."""
    from madoguchi.web.app import web_settings
    from madoguchi.web_server import serve

    settings = settings_of(ctx)
    web = web_settings(settings)
    if demo_user:
        desk = Storage.open(settings)
        try:
            login, password = ensure_demo_user(desk)
        finally:
            desk.close()
    shown = host or web.host
    typer.echo(f"web desk: http://{'127.0.0.1' if shown in ('0.0.0.0', '') else shown}:"
               f"{port or web.port}/")
    if demo_user:
        typer.echo(f"demo login: {login}  password: {password}")
    typer.echo("stop with Ctrl+C")
    serve(settings, host=host, port=port)
