"""``madoguchi search QUERY [--format jsonl]``: the web desk's search from the command line.

Registered by madoguchi/cli.py::

    from madoguchi.search_cli import search_command
    app.command("search")(search_command)

Thin over ``ticketing.search``: the same tickets, in the same order, as the
desk's search page (one line per ticket).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from madoguchi.config import Settings
from madoguchi.ticketing.search import SearchHit, search
from madoguchi.ticketing.storage import Storage


def _record(hit: SearchHit) -> dict[str, object]:
    return {
        "number": hit.ticket.number,
        "subject": hit.ticket.subject,
        "snippet": "".join(hit.snippet),
        "status": hit.ticket.status.value,
        "message_id": hit.message.id,
        "received_at": hit.message.received_at.isoformat(),
    }


def search_command(
    ctx: typer.Context,
    query: str,
    format: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
) -> None:
    """Tickets whose messages contain every word of QUERY, newest first."""
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise typer.BadParameter("no settings: run through the madoguchi command")
    if format not in ("table", "jsonl"):
        typer.echo("madoguchi: --format is table or jsonl", err=True)
        raise typer.Exit(2)
    storage = Storage.open(settings)
    try:
        with storage.factory() as session:
            result = search(session, query, limit=limit)
            records = [_record(h) for h in result.hits]
    finally:
        storage.close()
    if result.problem:
        typer.echo(f"madoguchi: {result.problem}", err=True)
        raise typer.Exit(2)
    for r in records:
        if format == "jsonl":
            typer.echo(json.dumps(r, ensure_ascii=False))
        else:
            typer.echo(f"{r['number']}  {r['status']:<8} {r['subject']}\n    {r['snippet']}")
    if format == "table":
        more = "以上" if result.next_before is not None else ""
        typer.echo(f"{len(records)}件{more}")
