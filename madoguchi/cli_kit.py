"""What every ``madoguchi`` sub-command shares: its settings and how it fails."""

from __future__ import annotations

import typer

from madoguchi.config import Settings


def settings_of(ctx: typer.Context) -> Settings:
    """The settings ``madoguchi``'s callback loaded into the context."""
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise typer.BadParameter("no settings: run through the madoguchi command")
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``madoguchi: message`` on stderr; raise the result to exit with ``code``."""
    typer.echo(f"madoguchi: {message}", err=True)
    return typer.Exit(code)
