"""``madoguchi outbox list|retry|cancel``: what became of the desk's mail, and what to do.

Registered by madoguchi/cli.py::

    from madoguchi.outbox_cli import outbox_app
    app.add_typer(outbox_app, name="outbox")

Thin over ``ticketing.delivery``, as the web desk's outbox page is.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from madoguchi.cli_kit import settings_of
from madoguchi.ticketing import delivery
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.storage import Storage
from madoguchi.ticketing.views import iso

outbox_app = typer.Typer(help="Outgoing mail: its delivery, sending again, taking back.",
                         no_args_is_help=True)


def _one_line(text: str | None, width: int = 120) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


@outbox_app.command("list")
def outbox_list(
    ctx: typer.Context,
    state: Annotated[str, typer.Option(help="queued, sending, sent, retrying, failed, "
                                            "unknown, bounced, cancelled (or all)")] = "all",
    limit: int = 100,
    format: Annotated[str, typer.Option("--format", help="text or jsonl")] = "text",
) -> None:
    """The outbox, newest first: id, ticket, recipient, state, attempts, next attempt, error."""
    settings = settings_of(ctx)
    if format not in ("text", "jsonl"):
        typer.echo("madoguchi: --format is text or jsonl", err=True)
        raise typer.Exit(2)
    try:
        wanted = delivery.parse_state(state)
    except ActionError as exc:
        typer.echo(f"madoguchi: {exc}", err=True)
        raise typer.Exit(2) from None
    storage = Storage.open(settings)
    try:
        with storage.factory() as session:
            rows = delivery.outbox_list(session, wanted, limit=limit)
    finally:
        storage.close()
    if format == "jsonl":
        for d in rows:
            typer.echo(json.dumps({
                "id": d.id, "ticket": d.ticket_number, "kind": d.kind,
                "recipients": list(d.recipients), "state": d.state.value,
                "attempts": d.attempts, "last_error": d.last_error,
                "next_attempt_at": iso(d.next_attempt_at, settings.tz),
                "server_reply": d.server_reply, "bounce": d.bounce_detail,
            }, ensure_ascii=False))
        return
    typer.echo(f"{'ID':>6}  {'TICKET':<14} {'RECIPIENT':<32} {'STATE':<10} {'TRIES':>5}  "
               "NEXT ATTEMPT               LAST ERROR")
    for d in rows:
        error = d.bounce_detail or d.last_error or ""
        typer.echo(f"{d.id:>6}  {d.ticket_number or '-':<14} {', '.join(d.recipients):<32} "
                   f"{d.state.value:<10} {d.attempts:>5}  "
                   f"{iso(d.next_attempt_at, settings.tz) or '-':<26} {_one_line(error)}")


def _act(ctx: typer.Context, ids: list[int], what: str) -> None:
    settings = settings_of(ctx)
    action = delivery.retry if what == "retry" else delivery.cancel
    storage = Storage.open(settings)
    try:
        with transaction(storage.factory) as session:
            outcomes = action(session, ids, None, datetime.now(UTC))
    finally:
        storage.close()
    for outcome in outcomes:
        typer.echo(outcome.text, err=not outcome.done)
    if not all(o.done for o in outcomes):
        raise typer.Exit(1)


@outbox_app.command("retry")
def outbox_retry(ctx: typer.Context, ids: Annotated[list[int], typer.Argument()]) -> None:
    """Send failed, unknown or cancelled mail again (check an unknown one's mailbox first)."""
    _act(ctx, ids, "retry")


@outbox_app.command("cancel")
def outbox_cancel(ctx: typer.Context, ids: Annotated[list[int], typer.Argument()]) -> None:
    """Take back mail that has not gone yet (queued, or waiting to retry)."""
    _act(ctx, ids, "cancel")
