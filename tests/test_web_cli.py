"""``madoguchi users`` and ``madoguchi web``, and the web desk served by uvicorn in a thread."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from madoguchi import web_cli
from madoguchi.app import Desk
from madoguchi.config import Settings
from madoguchi.config.web import WebSettings
from madoguchi.ticketing.models import Role, StaffUser
from madoguchi.web.auth import verify_password
from madoguchi.web_server import WebServer, start_for_daemon
from tests.conftest import make_settings

pytest_plugins = ["tests.test_web_kit"]


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path, quick_hashing: None) -> tuple[typer.Typer, Settings]:
    settings = make_settings(sqlite_url, tmp_path)
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = settings

    app.add_typer(web_cli.users_app, name="users")
    return app, settings


def _users(settings: Settings) -> dict[str, StaffUser]:
    desk = Desk.open(settings)
    try:
        with desk.factory() as s:
            return {u.login: u for u in s.scalars(select(StaffUser))}
    finally:
        desk.close()


def test_users_add_takes_the_password_from_a_file_or_the_environment(
    cli: tuple[typer.Typer, Settings], tmp_path: Path
) -> None:
    app, settings = cli
    runner = CliRunner()
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n")
    r = runner.invoke(app, ["users", "add", "hanako", "--name", "山田 花子", "--role",
                            "supervisor", "--password-file", str(secret)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", "taro", "--name", "田中 太郎"],
                      env={web_cli.PASSWORD_ENV: "another long password"})
    assert r.exit_code == 0, r.output
    users = _users(settings)
    assert users["hanako"].role == Role.SUPERVISOR and users["taro"].role == Role.AGENT
    assert verify_password(users["hanako"].password_hash, "a long enough password")
    assert verify_password(users["taro"].password_hash, "another long password")
    listing = runner.invoke(app, ["users", "list"]).output
    assert "hanako" in listing and "supervisor" in listing and "田中 太郎" in listing
    assert "password" not in listing and "$argon2" not in listing


def test_users_add_refuses_short_passwords_duplicates_and_no_password(
    cli: tuple[typer.Typer, Settings],
) -> None:
    app, settings = cli
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", "x", "--name", "X"],
                      env={web_cli.PASSWORD_ENV: "short"})
    assert r.exit_code == 1 and "at least" in r.output
    r = runner.invoke(app, ["users", "add", "x", "--name", "X"], env={web_cli.PASSWORD_ENV: ""})
    assert r.exit_code == 1 and "--password-file" in r.output
    env = {web_cli.PASSWORD_ENV: "long enough password"}
    assert runner.invoke(app, ["users", "add", "x", "--name", "X"], env=env).exit_code == 0
    r = runner.invoke(app, ["users", "add", "x", "--name", "X"], env=env)
    assert r.exit_code == 1 and "exists" in r.output
    r = runner.invoke(app, ["users", "add", "y", "--name", "Y", "--role", "admin"], env=env)
    assert r.exit_code != 0
    assert set(_users(settings)) == {"x"}


def test_users_passwd_and_disable(cli: tuple[typer.Typer, Settings]) -> None:
    app, settings = cli
    runner = CliRunner()
    runner.invoke(app, ["users", "add", "x", "--name", "X"],
                  env={web_cli.PASSWORD_ENV: "first long password"})
    r = runner.invoke(app, ["users", "passwd", "x"],
                      env={web_cli.PASSWORD_ENV: "second long password"})
    assert r.exit_code == 0
    assert verify_password(_users(settings)["x"].password_hash, "second long password")
    assert runner.invoke(app, ["users", "disable", "x"]).exit_code == 0
    assert _users(settings)["x"].active is False
    assert runner.invoke(app, ["users", "disable", "nobody"]).exit_code == 1


def test_the_demo_user_gets_a_fresh_password_each_time(sqlite_url: str, tmp_path: Path,
                                                      quick_hashing: None) -> None:
    desk = Desk.open(make_settings(sqlite_url, tmp_path))
    try:
        login, first = web_cli.ensure_demo_user(desk)
        _, second = web_cli.ensure_demo_user(desk)
        with desk.factory() as s:
            user = s.scalars(select(StaffUser).where(StaffUser.login == login)).one()
        assert first != second and user.role == Role.SUPERVISOR
        assert verify_password(user.password_hash, second)
        assert not verify_password(user.password_hash, first)
    finally:
        desk.close()


def test_the_server_thread_serves_on_a_free_loopback_port(sqlite_url: str,
                                                         tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path)
    server = WebServer(settings, host="127.0.0.1", port=0).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
            assert r.read() == b"ok"
        with urllib.request.urlopen(server.url + "/login", timeout=5) as r:
            assert "ログイン" in r.read().decode() and r.headers["X-Frame-Options"] == "DENY"
    finally:
        server.stop()


def test_the_daemon_serves_the_desk_only_when_configured(sqlite_url: str,
                                                        tmp_path: Path) -> None:
    desk = Desk.open(make_settings(sqlite_url, tmp_path))
    try:
        assert start_for_daemon(desk) is None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # As the lead's Settings.web will hold it; Settings has no such field yet.
        desk.settings.__dict__["web"] = WebSettings(serve_in_daemon=True, port=port,
                                                    secret_key_file=tmp_path / "secret")
        server = start_for_daemon(desk)
        assert server is not None
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
                assert r.read() == b"ok"
        finally:
            server.stop()
    finally:
        desk.close()
