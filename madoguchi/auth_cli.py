"""``madoguchi auth login SOURCE``: authorise a mailbox's OAuth sign-in once (device code).

Registered by madoguchi/cli.py::

    from madoguchi.auth_cli import auth_app
    app.add_typer(auth_app, name="auth")

SOURCE is an IMAP source's name, ``smtp`` for the ``[smtp]`` sign-in, or
``smtp:PRODUCT`` for a product's own ``[products.smtp]``.
Thin over ``ticketing.oauth_login``; the refresh token goes to the
configured ``token_file`` (0600, encrypted when a key is configured).
"""

from __future__ import annotations

from typing import Annotated

import typer

from madoguchi.config import ConfigError, ImapSource, Settings
from madoguchi.config.oauth import OAuthSettings
from madoguchi.ticketing.oauth import OAuthError, token_source
from madoguchi.ticketing.oauth_login import device_login

auth_app = typer.Typer(help="OAuth 2.0 sign-in of the mailboxes.", no_args_is_help=True)


def _oauth_of(settings: Settings, name: str) -> tuple[str, OAuthSettings]:
    if name == "smtp":
        if settings.smtp.oauth is None:
            raise ConfigError("smtp: no [smtp.oauth] configured")
        return "smtp", settings.smtp.oauth
    if name.startswith("smtp:"):  # a product's own SMTP server
        product = next((p for p in settings.products if p.name == name[5:]), None)
        if product is None or product.smtp is None or product.smtp.oauth is None:
            raise ConfigError(f"{name}: no product {name[5:]!r} with [products.smtp.oauth]")
        return "smtp", product.smtp.oauth
    for source in settings.sources:
        if source.name == name:
            if not isinstance(source, ImapSource) or source.oauth is None:
                raise ConfigError(f"sources.{name}: no [sources.oauth] configured")
            return f"sources.{name}", source.oauth
    names = ", ".join([s.name for s in settings.sources] + ["smtp"])
    raise ConfigError(f"no source named {name!r} (configured: {names})")


@auth_app.command("login")
def login(ctx: typer.Context,
          source: Annotated[str, typer.Argument(help="an IMAP source's name, or smtp")]) -> None:
    """Show a code to enter at the provider's sign-in page; keep the refresh token."""
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise typer.BadParameter("no settings: run through the madoguchi command")
    try:
        key, oauth = _oauth_of(settings, source)
        tokens = token_source(key, oauth)
        device_login(tokens, lambda text: typer.echo(text, err=True))
        tokens.token()  # the new refresh token works
    except (ConfigError, OAuthError) as exc:
        typer.echo(f"madoguchi: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{source}: signed in; refresh token kept in {oauth.token_file}")
